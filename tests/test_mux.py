"""mux.py: a soft subtitle track muxed into MP4/MKV with the streams copied bit-exactly."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from infomux import mux
from infomux.subtitles import Cue
from tests.require import media_file

CUES = [Cue(0.5, 2.0, ("Hello there,", "river town.")), Cue(2.5, 4.0, ("Second cue",))]


def packets(path: Path) -> dict[int, list[tuple[bytes, int | None]]]:
    """Each audio/video stream's packets (bytes, pts), in order."""
    out: dict[int, list[tuple[bytes, int | None]]] = {}
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type in ("video", "audio")]
        for p in c.demux(*streams):
            if p.size:
                out.setdefault(p.stream.index, []).append((bytes(p), p.pts))
    return out


def subtitle_track(path: Path) -> tuple[str, str, list[tuple[int, bytes]]]:
    with av.open(str(path)) as c:
        [s] = c.streams.subtitles
        data = [(int(p.pts), bytes(p)) for p in c.demux(s) if p.size and len(bytes(p)) > 2]
        return s.codec_context.name, s.metadata.get("language", ""), data


@pytest.mark.parametrize(
    ("name", "ext", "codec"),
    [("speech_a_video.mp4", "mp4", "mov_text"), ("two_audio_streams.mkv", "mkv", "subrip")],
)
def test_soft_track_and_bit_exact_copies(tmp_path: Path, name: str, ext: str, codec: str) -> None:
    src = media_file(name)
    out = tmp_path / f"captioned.{ext}"
    report = mux.mux_captions(src, out, CUES, language="en")
    assert report.subtitle_codec == codec and report.language == "eng" and report.cues == 2
    got, tag, cues = subtitle_track(out)
    assert ({"srt": "subrip"}.get(got, got), tag) == (codec, "eng")  # decoder "srt" reads subrip
    assert [pts for pts, _ in cues] == [500, 2500]
    assert cues[0][1].endswith(b"Hello there,\nriver town.")
    before, after = packets(src), packets(out)
    assert len(before) == len(after) == (2 if ext == "mp4" else 3)
    for (_, a), (_, b) in zip(sorted(before.items()), sorted(after.items()), strict=True):
        assert [x[0] for x in a] == [x[0] for x in b]  # the same bytes, in the same order


def test_webm_gets_webvtt_and_unknown_containers_mkv() -> None:
    assert mux.SOFT_CODECS["webm"] == "webvtt"
    assert mux.output_extension(Path("x.avi"), "avi") == "mkv"
    assert mux.output_extension(Path("x.MOV"), "mov,mp4,m4a,3gp,3g2,mj2") == "mov"
    assert mux.language_tag("de") == "ger" and mux.language_tag(None) == "und"


def test_audio_only_input_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(mux.MuxError, match="no video stream"):
        mux.mux_captions(media_file("speech_a.m4a"), tmp_path / "x.mp4", CUES)


def test_burn_in_says_what_is_missing(tmp_path: Path) -> None:
    missing = mux.burn_support()
    if missing is None:
        pytest.skip("this FFmpeg has the subtitles filter")  # data, not the machine
    assert "subtitles" in missing and "libass" in missing and av.__version__ in missing
    with pytest.raises(mux.MuxError, match="libass"):
        mux.burn_captions(media_file("speech_a_video.mp4"), tmp_path / "x.mp4", tmp_path / "c")
