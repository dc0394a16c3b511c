"""Captions into a video, in-process with PyAV (no ffmpeg process).

:func:`mux_captions` copies every video, audio and subtitle stream of the input
packet by packet (no re-encoding: the packets' bytes are the input's) and adds a soft
subtitle track made from cues: ``mov_text`` in MP4/MOV/M4V, SubRip in Matroska,
WebVTT in WebM (inputs in other containers get a Matroska output). The track is
tagged with the transcript's language (ISO 639-2).

:func:`burn_captions` draws cues into the picture with FFmpeg's ``subtitles`` filter
(libass), re-encoding the video; :func:`burn_support` says whether this PyAV's FFmpeg
can, and what is missing when it cannot.

PyAV is imported inside the functions (it is heavy).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from infomux.errors import InfomuxError

log = logging.getLogger("infomux.mux")

_MS = Fraction(1, 1000)

# container (by output extension) → subtitle codec
SOFT_CODECS: dict[str, str] = {
    "mp4": "mov_text",
    "m4v": "mov_text",
    "mov": "mov_text",
    "mkv": "subrip",
    "webm": "webvtt",
}

# whisper.cpp's language codes → ISO 639-2/B (what MP4 and Matroska tag tracks with)
_ISO639_2 = (
    "en:eng de:ger es:spa ru:rus ko:kor fr:fre ja:jpn pt:por tr:tur pl:pol ca:cat "
    "nl:dut ar:ara sv:swe it:ita id:ind hi:hin fi:fin vi:vie he:heb uk:ukr el:gre "
    "ms:may cs:cze ro:rum da:dan hu:hun ta:tam no:nor th:tha ur:urd hr:hrv bg:bul "
    "lt:lit la:lat mi:mao ml:mal cy:wel sk:slo te:tel fa:per lv:lav bn:ben sr:srp "
    "az:aze sl:slv kn:kan et:est mk:mac br:bre eu:baq is:ice hy:arm ne:nep mn:mon "
    "bs:bos kk:kaz sq:alb sw:swa gl:glg mr:mar pa:pan si:sin km:khm sn:sna yo:yor "
    "so:som af:afr oc:oci ka:geo be:bel tg:tgk sd:snd gu:guj am:amh yi:yid lo:lao "
    "uz:uzb fo:fao ht:hat ps:pus tk:tuk nn:nno mt:mlt sa:san lb:ltz my:bur bo:tib "
    "tl:tgl mg:mlg as:asm tt:tat haw:haw ln:lin ha:hau ba:bak jw:jav su:sun "
    "yue:chi zh:chi"
)
ISO639_2: dict[str, str] = dict(pair.split(":", 1) for pair in _ISO639_2.split())


class MuxError(InfomuxError):
    """The captions cannot be put into this input (no video, unsupported, missing filter)."""


@dataclass(frozen=True)
class MuxReport:
    """What :func:`mux_captions` wrote."""

    path: Path
    container: str
    subtitle_codec: str
    language: str
    cues: int
    copied_packets: dict[int, int]  # input stream index → packets copied

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (recorded in job.json)."""
        return {
            "output": self.path.name,
            "container": self.container,
            "subtitle_codec": self.subtitle_codec,
            "language": self.language,
            "cues": self.cues,
            "copied_packets": {str(k): v for k, v in self.copied_packets.items()},
        }


def language_tag(code: str | None) -> str:
    """The ISO 639-2 tag of a whisper language code (``und`` when unknown)."""
    if not code:
        return "und"
    code = code.lower()
    if len(code) == 3 and code not in ISO639_2:
        return code
    return ISO639_2.get(code, "und")


def output_extension(input_path: Path, format_name: str) -> str:
    """The output's extension: the input's for MP4/MOV/M4V/MKV/WebM, else ``mkv``."""
    ext = input_path.suffix.lower().lstrip(".")
    if ext in SOFT_CODECS:
        return ext
    names = set(format_name.split(","))
    if "mp4" in names or "mov" in names:
        return "mp4"
    return "mkv"


def _video_streams(container: Any) -> list[Any]:
    import av

    attached = getattr(av.stream.Disposition, "attached_pic", 0)
    return [s for s in container.streams.video if not (int(s.disposition) & int(attached))]


def check_has_video(container: Any, path: str | Path) -> None:
    """Raise :class:`MuxError` when the input has no video (audio only, or a cover image)."""
    if not _video_streams(container):
        raise MuxError(
            f"{Path(path).name} has no video stream (audio only): captions need a video; "
            "the transcribe pipeline writes .srt/.vtt files for audio"
        )


def _payload(text: str, codec: str) -> bytes:
    data = text.encode("utf-8")
    if codec == "mov_text":  # tx3g sample: 16-bit big-endian length, then the text
        return struct.pack(">H", min(len(data), 0xFFFF)) + data[:0xFFFF]
    return data


def mux_captions(
    input_path: str | Path,
    output_path: str | Path,
    cues: Sequence[Any],
    *,
    language: str | None = None,
    codec: str | None = None,
) -> MuxReport:
    """Write ``output_path``: the input's streams copied, plus a subtitle track of ``cues``
    (objects with ``start``, ``end`` in seconds and ``text``).

    ``codec`` overrides the container's usual subtitle codec (``subrip`` or ``webvtt``
    in Matroska). The output's container follows its extension.

    Raises:
        MuxError: no video stream, or a stream cannot be copied into the container.
        av.FFmpegError (an OSError or ValueError): the input cannot be read.
    """
    import av

    input_path, output_path = Path(input_path), Path(output_path)
    ext = output_path.suffix.lower().lstrip(".")
    codec = codec or SOFT_CODECS.get(ext, "subrip")
    tag = language_tag(language)
    with av.open(str(input_path)) as src:
        check_has_video(src, input_path)
        with av.open(str(output_path), "w", format=_format_for(ext)) as out:
            mapping: dict[int, Any] = {}
            for stream in src.streams:
                if stream.type not in ("video", "audio", "subtitle"):
                    log.info("caption: not copying %s stream %d", stream.type, stream.index)
                    continue
                try:
                    mapping[stream.index] = out.add_stream_from_template(stream)
                except (ValueError, av.FFmpegError) as exc:
                    raise MuxError(
                        f"cannot copy {stream.type} stream {stream.index} "
                        f"({stream.codec_context.name}) into .{ext}: {exc}"
                    ) from exc
            track = out.add_mux_stream(codec, time_base=_MS)
            track.metadata["language"] = tag
            track.metadata["title"] = "infomux"
            pending = sorted(
                ((round(c.start * 1000), round(c.end * 1000), c.text) for c in cues),
                key=lambda c: c[0],
            )
            copied = dict.fromkeys(mapping, 0)
            queue = iter(pending)
            nxt = next(queue, None)

            def write_cue(cue: tuple[int, int, str]) -> None:
                start, end, text = cue
                packet = av.Packet(_payload(text, codec))
                packet.stream = track
                packet.time_base = _MS
                packet.pts = packet.dts = start
                packet.duration = max(1, end - start)
                out.mux(packet)

            try:
                for packet in src.demux(*[src.streams[i] for i in mapping]):
                    if packet.dts is None and packet.pts is None:
                        continue  # a demuxer's flush packet
                    when = packet.dts if packet.dts is not None else packet.pts
                    base = packet.time_base
                    at_ms = float(when * base) * 1000 if base and when is not None else 0.0
                    while nxt is not None and nxt[0] <= at_ms:
                        write_cue(nxt)
                        nxt = next(queue, None)
                    index = packet.stream.index
                    packet.stream = mapping[index]
                    out.mux(packet)
                    copied[index] += 1
                while nxt is not None:
                    write_cue(nxt)
                    nxt = next(queue, None)
            except av.FFmpegError as exc:
                raise MuxError(f"cannot write {output_path.name}: {exc}") from exc
    return MuxReport(output_path, ext, codec, tag, len(pending), copied)


def _format_for(ext: str) -> str:
    return {"mkv": "matroska", "webm": "webm", "mov": "mov", "m4v": "mp4"}.get(ext, "mp4")


# --------------------------------------------------------------------------- burn-in


def burn_support() -> str | None:
    """None when PyAV's FFmpeg can burn subtitles in; otherwise what is missing."""
    import av
    import av.filter

    if "subtitles" in av.filter.filters_available:
        return None
    ffmpeg = getattr(av, "ffmpeg_version_info", "?")
    return (
        f"burning captions in needs FFmpeg's 'subtitles' filter (FFmpeg built with "
        f"libass); the FFmpeg {ffmpeg} inside this PyAV {av.__version__} has no such filter. "
        "Use the 'caption' pipeline for a soft subtitle track, or install a PyAV built "
        "against an FFmpeg with --enable-libass"
    )


def burn_captions(
    input_path: str | Path,
    output_path: str | Path,
    subtitle_file: str | Path,
    *,
    encoder: str = "libx264",
) -> dict[str, Any]:
    """Draw ``subtitle_file`` (.srt) into the video with the ``subtitles`` filter,
    re-encoding the first video stream with ``encoder``; audio is copied.

    Raises:
        MuxError: no video, or no ``subtitles`` filter in this FFmpeg (see
            :func:`burn_support`).
    """
    import av
    import av.filter

    missing = burn_support()
    if missing:
        raise MuxError(missing)
    input_path, output_path = Path(input_path), Path(output_path)
    ext = output_path.suffix.lower().lstrip(".")
    frames = 0
    with av.open(str(input_path)) as src:
        check_has_video(src, input_path)
        video = _video_streams(src)[0]
        audio = list(src.streams.audio)
        with av.open(str(output_path), "w", format=_format_for(ext)) as out:
            ctx = video.codec_context
            rate = video.average_rate or video.guessed_rate or Fraction(25)
            encoded: Any = out.add_stream(encoder, rate=rate)
            encoded.width, encoded.height = ctx.width, ctx.height
            encoded.pix_fmt = "yuv420p"
            copies = {s.index: out.add_stream_from_template(s) for s in audio}
            graph = av.filter.Graph()
            buffer = graph.add_buffer(template=video)
            escaped = str(subtitle_file).replace("\\", "\\\\").replace(":", "\\:")
            burn = graph.add("subtitles", f"filename='{escaped}'")
            fmt = graph.add("format", "yuv420p")
            sink = graph.add("buffersink")
            buffer.link_to(burn)
            burn.link_to(fmt)
            fmt.link_to(sink)
            graph.configure()
            for packet in src.demux(video, *audio):
                if packet.stream.index in copies:
                    if packet.dts is None:
                        continue
                    packet.stream = copies[packet.stream.index]
                    out.mux(packet)
                    continue
                for frame in packet.decode():
                    graph.push(frame)
                    while True:
                        try:
                            drawn = graph.pull()
                        except (av.BlockingIOError, av.EOFError):
                            break
                        out.mux(encoded.encode(drawn))
                        frames += 1
            out.mux(encoded.encode(None))
    return {"output": output_path.name, "encoder": encoder, "frames": frames}
