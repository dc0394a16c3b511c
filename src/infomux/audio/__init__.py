"""In-process audio decoding: any media file → float32, 16 kHz, mono.

PyAV demuxes only the chosen audio stream's packets (video is never decoded),
decodes them, and libswresample (through ``av.AudioResampler``) converts them
to packed float32 mono at 16 kHz. The samples are written into one
preallocated float32 buffer that grows geometrically if the container's
duration was an underestimate and is trimmed in place at the end, so peak
memory is about the size of the result plus a small constant.

Decisions
---------
* **Stream choice.** ``stream=None`` takes FFmpeg's best audio stream (the
  default-disposition one where there is one); ``stream=N`` is the N-th audio
  stream (0-based, counting audio streams only).
* **Resampling.** libswresample with its default filter (the same as the
  ``ffmpeg`` CLI), any input rate, layout and sample format, output frames of
  one second. The downmix matrix is normalised (``rematrix_maxval=1``): stereo
  becomes (L + R) / 2 and 5.1 a weighted sum with weights adding up to 1, exactly
  the samples of the ``ffmpeg -ac 1 -ar 16000 -c:a pcm_s16le`` step this module
  replaces (and of faster-whisper's s16 resampler), minus the s16 rounding.
  Without it, float output would get (L + R) / √2: 3 dB louder and able to
  exceed ±1.
  Decoded frames are collected in an ``av.AudioFifo`` and converted about a
  second at a time (bit-identical to frame-by-frame, half the cost). Input that
  already is 16 kHz mono ``flt``/``fltp``/``s16``/``s16p`` skips the resampler:
  float samples are copied, s16 samples scaled by 1/32768, bit-identical to
  what libswresample would produce. A higher-quality resampler setting (longer
  swr filter; soxr is not in PyAV's FFmpeg) was measured and not adopted: see
  ``benchmarks/README_audio.md``.
* **Length.** The output has the decoder's samples, as ``ffmpeg`` gives them,
  with one exception: for MP4/MOV, whose sample tables give the exact duration,
  the encoder padding FFmpeg leaves at the end (up to one AAC frame, 59 ms in
  ``speech_a_video.mp4``) is trimmed, so the decoded duration matches the
  stream's duration.
* **Mid-stream changes.** When the sample rate, layout or sample format of the
  decoded frames changes (concatenated ADTS/MP3 streams, some broadcast
  captures), the current resampler is flushed and a new one is created for the
  new parameters; decoding continues.
* **Damaged input.** A file whose header cannot be read (``truncated.mp4``
  without its ``moov`` atom, a text file named ``.mp3``, a 0-byte file) raises
  :class:`AudioDecodeError`. Once decoding has started, a packet the decoder
  rejects is skipped and counted, and a read error in the middle of the file
  ends decoding and is counted too: whatever audio could be decoded is
  returned, ``AudioInfo.decode_errors`` says how many packets were lost, and a
  warning is logged. A file that yields no audio at all raises
  :class:`AudioDecodeError`. When the decoded duration falls well short of the
  duration the container claims (a cut-off file), a warning is logged.
* **Sources.** A path (``str``/``os.PathLike``; any Unicode; a name with a colon
  is opened through FFmpeg's ``file:`` protocol, never as a URL) or a binary
  file-like object (seekable or not).
* **Errors.** :class:`AudioFileNotFoundError` for a missing path, a directory or
  anything that is not a regular file (a FIFO would block); :class:`AudioDecodeError`
  for everything else. Messages are one line and name the file and the reason.

``av`` is imported lazily, so ``import infomux.audio`` stays cheap.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
import wave
from collections import deque
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from infomux.errors import AudioDecodeError, AudioFileNotFoundError

if TYPE_CHECKING:
    import av.audio.fifo
    import av.audio.frame
    import av.audio.resampler
    import av.audio.stream
    import av.container

__all__ = [
    "SAMPLE_RATE",
    "AudioInfo",
    "DecodedAudio",
    "decode_audio",
    "iter_audio_chunks",
    "load_audio",
    "quantize_s16",
    "write_wav",
]

SAMPLE_RATE = 16000

logger = logging.getLogger("infomux.audio")

Source = str | os.PathLike[str] | BinaryIO

# Output frame size of the resampler: one second. Larger sizes were measured to
# make no difference; much smaller ones (or 0 = pass frames through as they come)
# cost per-frame overhead.
_RESAMPLER_FRAME_SIZE = SAMPLE_RATE
# Decoded frames are collected in an AudioFifo and resampled this many seconds of
# input at a time (one resampler call per 20-60 ms codec frame costs twice as much).
_GROUP_SECONDS = 1.0
# Preallocation: duration estimate × 16000 × (1 + margin) + one second; the
# estimate is capped so that a bogus container duration cannot ask for a huge
# allocation (the buffer grows past the cap if the audio really is longer).
_CAPACITY_MARGIN = 0.01
_MAX_INITIAL_SECONDS = 4 * 3600
_UNKNOWN_DURATION_SECONDS = 60
_GROWTH = 1.5
# Warn about a probably cut-off file when the decoded audio is shorter than the
# container's duration by more than this (seconds, and fraction of the duration).
_SHORTFALL_SECONDS = 1.0
_SHORTFALL_FRACTION = 0.05

# libswresample options. rematrix_maxval=1 normalises the downmix matrix as FFmpeg does
# for integer output: stereo → (L + R) / 2, 5.1 → weights summing to 1, exactly what the
# old ``ffmpeg -ac 1 -c:a pcm_s16le`` step (and faster-whisper's s16 resampler) produced.
# With float output swr would otherwise use (L + R) / √2, 3 dB louder for correlated
# channels and able to exceed ±1.
_SWR_OPTIONS = {"rematrix_maxval": "1.0"}

_S16_SCALE = np.float32(1.0 / 32768.0)
_FLOAT_FORMATS = frozenset({"flt", "fltp"})
_S16_FORMATS = frozenset({"s16", "s16p"})


@dataclass(frozen=True)
class AudioInfo:
    """What was decoded, from where, and how well. All fields are JSON-friendly."""

    source: str
    container_format: str
    codec: str
    sample_rate: int  # original sample rate of the stream
    channels: int  # original channel count
    channel_layout: str
    sample_format: str
    stream_index: int  # index among the container's audio streams
    duration: float | None  # what the container/stream says, seconds
    decoded_duration: float  # seconds of 16 kHz output
    decode_errors: int  # packets that failed and were skipped (+1 for a read error)
    pyav_version: str
    ffmpeg_version: str

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain dict (JSON-serialisable)."""
        return asdict(self)


@dataclass(frozen=True)
class DecodedAudio:
    """Decoded samples (float32, 1-D, C-contiguous, 16 kHz mono) and their metadata."""

    samples: np.ndarray
    info: AudioInfo


# --------------------------------------------------------------------------- helpers


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _label(source: Source) -> str:
    if isinstance(source, str | os.PathLike):
        return os.fsdecode(os.fspath(source))
    name = getattr(source, "name", None)
    if isinstance(name, str | bytes) and name:
        return os.fsdecode(name)
    return f"<{type(source).__name__}>"


def _error(label: str, reason: object) -> AudioDecodeError:
    return AudioDecodeError(f"cannot decode audio from {label!r}: {_one_line(reason)}")


def _ffmpeg_reason(exc: BaseException) -> str:
    """FFmpeg's error text without PyAV's ``[Errno N]`` prefix and file name suffix."""
    strerror = getattr(exc, "strerror", None)
    if isinstance(strerror, str) and strerror:
        return strerror
    return _one_line(exc) or type(exc).__name__


def _versions() -> tuple[str, str]:
    import av

    ffmpeg = getattr(av, "ffmpeg_version_info", None)
    if not ffmpeg:
        libs = getattr(av, "library_versions", {}) or {}
        ffmpeg = " ".join(f"{name}={'.'.join(map(str, ver))}" for name, ver in sorted(libs.items()))
    return str(av.__version__), str(ffmpeg or "unknown")


def _store(dst: np.ndarray, src: np.ndarray) -> None:
    """Write ``src`` (float32 or int16 samples) into the float32 slice ``dst``."""
    if src.dtype == np.float32:
        dst[...] = src
    else:  # int16: exactly libswresample's s16 → flt conversion (x / 32768)
        np.multiply(src, _S16_SCALE, out=dst, casting="unsafe")


class _GrowableBuffer:
    """One float32 buffer, grown geometrically in place and trimmed in place."""

    def __init__(self, capacity: int) -> None:
        self._array: np.ndarray | None = np.empty(max(int(capacity), 1), dtype=np.float32)
        self.size = 0

    def append(self, src: np.ndarray) -> None:
        array = self._array
        assert array is not None
        end = self.size + src.shape[0]
        if end > array.shape[0]:
            new_capacity = max(end, int(array.shape[0] * _GROWTH) + SAMPLE_RATE)
            logger.debug("growing audio buffer to %d samples", new_capacity)
            del array
            # ndarray.resize reallocs (mremap for large blocks: no copy, no second
            # buffer). No view of the buffer is alive here, so refcheck can be off.
            self._array.resize(new_capacity, refcheck=False)  # type: ignore[union-attr]
            array = self._array
        _store(array[self.size : end], src)  # type: ignore[index]
        self.size = end

    def finish(self) -> np.ndarray:
        array = self._array
        assert array is not None
        self._array = None
        if array.shape[0] != self.size:
            array.resize(self.size, refcheck=False)  # shrink in place, no copy
        return array


class _Chunker:
    """Collect samples into fixed-size chunks; full chunks queue up in ``ready``."""

    def __init__(self, chunk_size: int) -> None:
        self.chunk_size = chunk_size
        self.ready: deque[np.ndarray] = deque()
        self._current = np.empty(chunk_size, dtype=np.float32)
        self._fill = 0

    def append(self, src: np.ndarray) -> None:
        pos = 0
        total = src.shape[0]
        while pos < total:
            take = min(self.chunk_size - self._fill, total - pos)
            _store(self._current[self._fill : self._fill + take], src[pos : pos + take])
            self._fill += take
            pos += take
            if self._fill == self.chunk_size:
                self.ready.append(self._current)
                self._current = np.empty(self.chunk_size, dtype=np.float32)
                self._fill = 0

    def tail(self) -> np.ndarray | None:
        if self._fill == 0:
            return None
        last = self._current
        last.resize(self._fill, refcheck=False)
        return last


@dataclass
class _Stats:
    decode_errors: int = 0
    first_error: str | None = None
    read_error: str | None = None
    samples: int = 0
    changes: int = 0
    first_frame: tuple[str, str, int, int] | None = None  # format, layout, rate, channels
    extra: dict[str, Any] = field(default_factory=dict)


class _FrameError(Exception):
    """A decoded frame that could not be converted (reason in ``args[0]``).

    ``ready`` holds samples converted before the failure (an earlier set-up's tail).
    """

    def __init__(self, message: str, ready: list[np.ndarray] | None = None) -> None:
        super().__init__(message)
        self.ready = ready or []


Key = tuple[str, str, int, int]  # sample format, layout name, sample rate, channels


class _Converter:
    """Turn decoded frames into 16 kHz mono sample arrays (float32, or int16 to scale).

    Frames are collected in an ``av.AudioFifo`` and converted about a second of input
    at a time: one resampler call (or one buffer copy) per second instead of one per
    20-60 ms codec frame, which halves the Python and filter-graph overhead.
    The arrays returned are views of PyAV frames (kept alive by the views).
    """

    def __init__(self, label: str, stats: _Stats) -> None:
        self._label = label
        self._stats = stats
        self._key: Key | None = None
        self._last_good: Key | None = None
        self._resampler: av.audio.resampler.AudioResampler | None = None
        self._fifo: av.audio.fifo.AudioFifo | None = None
        self._group = 0
        self._validated = False
        self._direct_dtype: type[np.generic] = np.float32

    def _configure(self, key: Key) -> list[np.ndarray]:
        import av

        fmt, layout, rate, channels = key
        previous = self._last_good
        if previous is not None and previous != key:
            self._stats.changes += 1
            logger.info(
                "%s: audio parameters changed mid-stream (%s %s %d Hz → %s %s %d Hz); "
                "re-creating the resampler",
                self._label,
                *previous[:3],
                fmt,
                layout,
                rate,
            )
        tail = self.flush()  # what the old FIFO and resampler hold belongs to the output
        self._key = key
        self._fifo = av.AudioFifo()
        self._group = max(1024, int(rate * _GROUP_SECONDS))
        if rate == SAMPLE_RATE and channels == 1 and fmt in _FLOAT_FORMATS | _S16_FORMATS:
            # Already 16 kHz mono float/s16: plane 0 holds exactly the samples.
            self._direct_dtype = np.float32 if fmt in _FLOAT_FORMATS else np.int16
        else:
            self._resampler = av.AudioResampler(
                format="flt",
                layout="mono",
                rate=SAMPLE_RATE,
                frame_size=_RESAMPLER_FRAME_SIZE,
                options=_SWR_OPTIONS,
            )
            self._validated = False
        return tail

    def _fail(self, key: Key, exc: BaseException) -> _FrameError:
        # e.g. a garbled packet the decoder read as 34-channel audio: the filter graph
        # cannot be configured. Drop this set-up; the next frame starts anew.
        self._resampler = self._fifo = None
        self._key = None
        return _FrameError(
            f"cannot convert {key[3]}-channel {key[0]} {key[2]} Hz audio: {_ffmpeg_reason(exc)}"
        )

    def _convert(
        self,
        frame: av.audio.frame.AudioFrame | None,
        resampler: av.audio.resampler.AudioResampler | None,
    ) -> list[np.ndarray]:
        if frame is None:
            return []
        if resampler is None:
            plane = frame.planes[0]
            return [np.frombuffer(plane, self._direct_dtype, frame.samples)]  # type: ignore[call-overload]
        return [
            np.frombuffer(out.planes[0], np.float32, out.samples)  # type: ignore[call-overload]
            for out in resampler.resample(frame)
        ]

    def convert(self, frame: av.audio.frame.AudioFrame) -> list[np.ndarray]:
        """Take one decoded frame; return whatever converted samples are ready."""
        layout = frame.layout
        key = (frame.format.name, layout.name, frame.sample_rate, layout.nb_channels)
        out = self._configure(key) if key != self._key else []
        # Timestamps are not needed (the output is one contiguous stream), and the
        # FIFO would insist on them being contiguous.
        frame.pts = None
        try:
            if self._resampler is not None and not self._validated:
                # The first frame goes straight in, so that a frame the resampler
                # cannot handle fails here, counted against that frame.
                out += self._convert(frame, self._resampler)
                self._validated = True
            else:
                fifo = self._fifo
                assert fifo is not None
                fifo.write(frame)
                if fifo.samples >= self._group:
                    out += self._convert(fifo.read(), self._resampler)
        except (ValueError, OSError, RuntimeError) as exc:  # av.error.* included
            error = self._fail(key, exc)
            error.ready = out
            raise error from None
        if self._last_good != key:
            self._last_good = key
            if self._stats.first_frame is None:
                self._stats.first_frame = key
        return out

    def flush(self) -> list[np.ndarray]:
        """Convert what the FIFO holds and drain the resampler; forget the set-up."""
        out: list[np.ndarray] = []
        key, fifo, resampler = self._key, self._fifo, self._resampler
        self._fifo = self._resampler = None
        if key is None or fifo is None:
            return out
        try:
            if fifo.samples:
                out += self._convert(fifo.read(), resampler)
            if resampler is not None:
                out += [
                    np.frombuffer(o.planes[0], np.float32, o.samples)  # type: ignore[call-overload]
                    for o in resampler.resample(None)
                ]
        except (ValueError, OSError, RuntimeError) as exc:
            raise self._fail(key, exc) from None
        return out


# --------------------------------------------------------------------------- opening


def _check_path(label: str, path: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise AudioFileNotFoundError(f"cannot decode audio from {label!r}: no such file") from None
    except NotADirectoryError:
        raise AudioFileNotFoundError(
            f"cannot decode audio from {label!r}: no such file (a parent is not a directory)"
        ) from None
    except OSError as exc:
        raise _error(label, exc.strerror or exc) from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioFileNotFoundError(f"cannot decode audio from {label!r}: is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise AudioFileNotFoundError(f"cannot decode audio from {label!r}: not a regular file")
    if st.st_size == 0:
        raise _error(label, "the file is empty (0 bytes)")


def _open_container(source: Source, label: str) -> av.container.InputContainer:
    import av
    import av.error

    if isinstance(source, str | os.PathLike):
        path = os.fsdecode(os.fspath(source))
        _check_path(label, path)
        # FFmpeg reads "name:rest" as a protocol URL ("concat:", "http:", ...); a local
        # file whose name has a colon must go through the file protocol explicitly.
        target: Any = f"file:{path}" if ":" in path else path
    else:
        if not callable(getattr(source, "read", None)):
            raise TypeError(
                f"source must be a path or a binary file-like object, not {type(source).__name__}"
            )
        target = source
    try:
        return av.open(target, mode="r")
    except av.error.FileNotFoundError:
        raise AudioFileNotFoundError(f"cannot decode audio from {label!r}: no such file") from None
    except av.error.InvalidDataError as exc:
        raise _error(
            label,
            f"not a recognised media file, or its header is damaged or missing "
            f"(truncated?) ({_ffmpeg_reason(exc)})",
        ) from None
    except av.error.FFmpegError as exc:
        raise _error(label, _ffmpeg_reason(exc)) from None
    except (OSError, ValueError, EOFError) as exc:
        raise _error(label, exc) from None


def _select_stream(
    container: av.container.InputContainer, stream: int | None, label: str
) -> tuple[av.audio.stream.AudioStream, int]:
    audio_streams = list(container.streams.audio)
    count = len(audio_streams)
    if count == 0:
        kinds = ", ".join(s.type for s in container.streams) or "none"
        raise _error(label, f"no audio stream (streams: {kinds})")
    if stream is None:
        best = container.streams.best("audio")
        index = next(
            (i for i, s in enumerate(audio_streams) if best is not None and s.index == best.index),
            0,
        )
        return audio_streams[index], index
    if isinstance(stream, bool) or not isinstance(stream, int):
        raise TypeError(f"stream must be an int or None, not {type(stream).__name__}")
    if not 0 <= stream < count:
        plural = "stream" if count == 1 else "streams"
        raise _error(
            label,
            f"audio stream {stream} out of range: the file has {count} audio {plural} "
            f"(0..{count - 1})",
        )
    return audio_streams[stream], stream


def _own_duration(astream: av.audio.stream.AudioStream) -> float | None:
    """The stream's own duration in seconds, if the container records one."""
    if astream.duration is not None and astream.time_base is not None and astream.duration > 0:
        return float(astream.duration * astream.time_base)
    return None


def _container_duration(container: av.container.InputContainer) -> float | None:
    if container.duration is not None and container.duration > 0:
        return container.duration / 1_000_000
    return None


def _padding_limit(
    container: av.container.InputContainer, astream: av.audio.stream.AudioStream
) -> tuple[int, int] | None:
    """(sample limit, allowance) for trimming trailing codec padding, or None.

    MP4/MOV sample tables record the exact duration of the last packet, but FFmpeg
    only trims the start (edit list), not the encoder's padding at the end (up to
    one codec frame, e.g. 944 of 1024 AAC samples = 59 ms at 16 kHz). Output past
    the stream's duration is held back; if it exceeds ``allowance`` (two codec
    frames) the duration was not exact after all and everything is kept.
    """
    own = _own_duration(astream)
    if own is None or "mp4" not in str(container.format.name).split(","):
        return None
    ctx = astream.codec_context
    frame_seconds = (ctx.frame_size / ctx.sample_rate) if ctx.frame_size and ctx.sample_rate else 0
    allowance = round(max(0.1, 2 * frame_seconds) * SAMPLE_RATE)
    return round(own * SAMPLE_RATE), allowance


# --------------------------------------------------------------------------- decoding


class _Decoding:
    """An open source: container, chosen stream, and the frame → samples loop."""

    def __init__(self, source: Source, stream: int | None) -> None:
        self.label = _label(source)
        self.container = _open_container(source, self.label)
        try:
            self.stream, self.stream_index = _select_stream(self.container, stream, self.label)
            if self.stream.codec_context is None:
                raise _error(self.label, f"no decoder for codec {self.stream.codec.name!r}")
            own = _own_duration(self.stream)
            self.duration = own if own is not None else _container_duration(self.container)
            # Whether a shortfall against ``duration`` says anything about this stream.
            self.duration_is_exact = own is not None or len(self.container.streams) == 1
            self.padding_limit = _padding_limit(self.container, self.stream)
        except BaseException:
            self.container.close()
            raise
        self.stats = _Stats()

    def close(self) -> None:
        self.container.close()

    def samples(self) -> Generator[np.ndarray, None, None]:
        """Yield 16 kHz mono arrays (float32, or int16 to be scaled by 1/32768)."""
        arrays = self._decoded()
        if self.padding_limit is not None:
            arrays = self._trim_padding(arrays, *self.padding_limit)
        stats = self.stats
        for arr in arrays:
            stats.samples += arr.shape[0]
            yield arr

    def _trim_padding(
        self, arrays: Iterator[np.ndarray], limit: int, allowance: int
    ) -> Iterator[np.ndarray]:
        emitted = 0
        held: list[np.ndarray] = []
        held_size = 0
        for arr in arrays:
            if held_size == 0 and emitted + arr.shape[0] <= limit:
                emitted += arr.shape[0]
                yield arr
                continue
            keep = max(0, limit - emitted) if held_size == 0 else 0
            if keep:
                emitted += keep
                yield arr[:keep]
            held.append(arr[keep:].copy())
            held_size += arr.shape[0] - keep
            if held_size > allowance:  # not padding: the recorded duration was short
                logger.debug("%s: audio runs past the stream's duration; keeping it", self.label)
                yield from held
                emitted += held_size
                held, held_size = [], 0
                limit = np.iinfo(np.int64).max
        if held_size:
            logger.debug(
                "%s: dropped %d samples of codec padding past the stream's duration",
                self.label,
                held_size,
            )

    def _decoded(self) -> Iterator[np.ndarray]:
        import av.error

        stats = self.stats
        converter = _Converter(self.label, stats)
        packets = self.container.demux(self.stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                # A read error part-way through (cut-off or damaged file): keep what we have.
                stats.decode_errors += 1
                stats.read_error = _ffmpeg_reason(exc)
                stats.first_error = stats.first_error or stats.read_error
                logger.warning(
                    "%s: read error after %.2f s of audio, stopping: %s",
                    self.label,
                    stats.samples / SAMPLE_RATE,
                    stats.read_error,
                )
                break
            try:
                frames = packet.decode()
            except (av.error.FFmpegError, ValueError) as exc:
                stats.decode_errors += 1
                stats.first_error = stats.first_error or _ffmpeg_reason(exc)
                logger.debug("%s: skipping undecodable packet: %s", self.label, exc)
                continue
            for frame in frames:
                try:
                    ready = converter.convert(frame)
                except _FrameError as exc:
                    stats.decode_errors += 1
                    stats.first_error = stats.first_error or str(exc)
                    logger.debug("%s: skipping frame: %s", self.label, exc)
                    yield from exc.ready
                    continue
                if ready:
                    yield from ready
        try:
            yield from converter.flush()
        except _FrameError as exc:
            stats.decode_errors += 1
            stats.first_error = stats.first_error or str(exc)

    def finish(self) -> AudioInfo:
        """Check the outcome, log what was lost, and describe the result."""
        stats = self.stats
        decoded = stats.samples / SAMPLE_RATE
        if stats.samples == 0:
            if stats.decode_errors:
                raise _error(
                    self.label,
                    f"no audio could be decoded ({stats.decode_errors} packet(s) failed; "
                    f"first error: {stats.first_error})",
                )
            raise _error(self.label, "the audio stream contains no samples (zero-length audio)")
        if stats.decode_errors:
            logger.warning(
                "%s: %d packet(s) could not be decoded and were skipped; "
                "%.2f s of audio decoded (first error: %s)",
                self.label,
                stats.decode_errors,
                decoded,
                stats.first_error,
            )
        if (
            self.duration is not None
            and self.duration_is_exact
            and self.duration - decoded
            > max(_SHORTFALL_SECONDS, _SHORTFALL_FRACTION * self.duration)
        ):
            logger.warning(
                "%s: decoded %.2f s of audio but the container says %.2f s (cut-off file?)",
                self.label,
                decoded,
                self.duration,
            )
        ctx = self.stream.codec_context
        first = stats.first_frame
        fmt = ctx.format.name if ctx.format is not None else (first[0] if first else "unknown")
        layout = ctx.layout.name if ctx.layout is not None else (first[1] if first else "unknown")
        rate = ctx.sample_rate or (first[2] if first else 0)
        channels = ctx.channels or (first[3] if first else 0)
        if first is not None:  # the decoder's view after the first frame is authoritative
            fmt, layout, rate, channels = first
        pyav_version, ffmpeg_version = _versions()
        return AudioInfo(
            source=self.label,
            container_format=str(self.container.format.name),
            codec=str(ctx.name),
            sample_rate=int(rate),
            channels=int(channels),
            channel_layout=str(layout),
            sample_format=str(fmt),
            stream_index=self.stream_index,
            duration=self.duration,
            decoded_duration=decoded,
            decode_errors=stats.decode_errors,
            pyav_version=pyav_version,
            ffmpeg_version=ffmpeg_version,
        )


def _checked(decoding: _Decoding) -> Generator[np.ndarray, None, None]:
    """``decoding.samples()`` with stray PyAV/OS errors turned into AudioDecodeError."""
    samples = decoding.samples()
    try:
        yield from samples
    except AudioDecodeError:
        raise
    except (ValueError, OSError, RuntimeError, EOFError) as exc:  # av.error.* included
        raise _error(decoding.label, _ffmpeg_reason(exc)) from None
    finally:
        samples.close()  # before the container is closed, also on an early exit


# --------------------------------------------------------------------------- public API


def decode_audio(source: Source, *, stream: int | None = None) -> DecodedAudio:
    """Decode ``source`` to float32 16 kHz mono samples, with metadata.

    ``source`` is a path (``str`` or ``os.PathLike``) or a binary file-like object
    (``read``, ideally ``seek``). ``stream`` picks the N-th audio stream; ``None``
    takes the container's best/default one.

    Raises :class:`AudioFileNotFoundError` for a missing path or a directory and
    :class:`AudioDecodeError` for anything that cannot be decoded (see the module
    docstring for how damaged files are handled).
    """
    decoding = _Decoding(source, stream)
    try:
        seconds = decoding.duration
        if seconds is None:
            seconds = _UNKNOWN_DURATION_SECONDS
        seconds = min(seconds, _MAX_INITIAL_SECONDS)
        capacity = int(seconds * SAMPLE_RATE * (1 + _CAPACITY_MARGIN)) + SAMPLE_RATE
        buffer = _GrowableBuffer(capacity)
        for arr in _checked(decoding):
            buffer.append(arr)
        info = decoding.finish()
    finally:
        decoding.close()
    samples = buffer.finish()
    return DecodedAudio(samples=samples, info=info)


def load_audio(source: Source, *, stream: int | None = None) -> np.ndarray:
    """Decode ``source`` and return only the float32 16 kHz mono samples."""
    return decode_audio(source, stream=stream).samples


def iter_audio_chunks(
    source: Source, *, chunk_seconds: float = 30.0, stream: int | None = None
) -> Iterator[np.ndarray]:
    """Yield float32 16 kHz mono chunks of ``chunk_seconds`` each (the last may be shorter).

    Memory stays bounded by about one chunk plus the decoder's state, whatever the
    length of the input. Each yielded array is a fresh array the caller may keep.
    Errors are those of :func:`decode_audio`; opening errors are raised on the first
    ``next()``.
    """
    if not chunk_seconds > 0:
        raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds!r}")
    chunk_size = max(1, round(chunk_seconds * SAMPLE_RATE))
    decoding = _Decoding(source, stream)
    arrays = _checked(decoding)
    try:
        chunker = _Chunker(chunk_size)
        for arr in arrays:
            chunker.append(arr)
            while chunker.ready:
                yield chunker.ready.popleft()
        decoding.finish()
        last = chunker.tail()
        if last is not None:
            yield last
    finally:
        arrays.close()
        decoding.close()


_BLOCK = 1 << 18  # samples per pass: 1 MiB of float32 stays in cache through every ufunc


def _quantize_block(block: np.ndarray) -> None:
    """Round a float32 block in place onto the s16 grid: integers in [-32768, 32767].

    FFmpeg's flt → s16 convention: NaN → 0, clip to [-1, 1], scale by 32768, round to
    nearest (+1.0 becomes 32767).
    """
    np.nan_to_num(block, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
    np.clip(block, -1.0, 1.0, out=block)
    block *= np.float32(32768.0)
    np.rint(block, out=block)
    np.clip(block, -32768.0, 32767.0, out=block)


def quantize_s16(samples: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Return the samples :func:`write_wav` stores, as float32: ``k / 32768`` for its s16 ``k``.

    Decoding that WAV file gives exactly this array, so audio handed to the engine after
    ``quantize_s16`` is bit for bit what a later read of the file gives. ``out`` may be
    ``samples`` itself (float32, C-contiguous) to work in place; otherwise a new array
    is returned. One pass over the data, block by block.
    """
    array = np.asarray(samples)
    if array.ndim != 1:
        raise ValueError(f"samples must be 1-D, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"samples must be floating point, got {array.dtype}")
    if out is None:
        out = np.empty(array.shape, dtype=np.float32)
    elif out.dtype != np.float32 or out.shape != array.shape or not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous float32 array of the samples' shape")
    for start in range(0, array.shape[0], _BLOCK):
        block = out[start : start + _BLOCK]
        if out is not array:
            block[...] = array[start : start + _BLOCK]
        _quantize_block(block)
        block *= _S16_SCALE  # exact: an integer times a power of two
    return out


def write_wav(
    path: str | os.PathLike[str], samples: np.ndarray, sample_rate: int = SAMPLE_RATE
) -> None:
    """Write ``samples`` (float, 1-D, nominally in [-1, 1]) as mono PCM s16 WAV, atomically.

    Samples are clipped to [-1, 1] and scaled by 32768 with rounding (FFmpeg's
    flt → s16 convention, so :func:`decode_audio` reads them back to within
    1/65536, and exactly as :func:`quantize_s16` gives them). NaN becomes 0. The file
    is written to a temporary file in the same directory and moved into place with
    ``os.replace``.
    """
    array = np.asarray(samples)
    if array.ndim != 1:
        raise ValueError(f"samples must be 1-D, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"samples must be floating point, got {array.dtype}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r}")
    target = Path(path)
    directory = target.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as raw:
            with wave.open(raw, "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(sample_rate)
                wav.setnframes(array.shape[0])
                for start in range(0, array.shape[0], _BLOCK):
                    part = np.array(array[start : start + _BLOCK], dtype=np.float32)
                    _quantize_block(part)
                    wav.writeframesraw(part.astype("<i2").tobytes())
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
