"""Opening a source: path checks, the container, the audio stream, and its durations.

Errors are one line naming the source: :class:`AudioFileNotFoundError` for a missing
path, a directory or anything that is not a regular file (a FIFO would block);
:class:`AudioDecodeError` for everything else.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING, Any

from infomux.audio.info import SAMPLE_RATE, Source
from infomux.errors import AudioDecodeError, AudioFileNotFoundError

if TYPE_CHECKING:
    import av.audio.stream
    import av.container

__all__ = [
    "container_duration",
    "decode_error",
    "ffmpeg_reason",
    "label_of",
    "open_container",
    "own_duration",
    "padding_limit",
    "select_stream",
]


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def label_of(source: Source) -> str:
    """How messages name ``source``: its path, a file object's name, or its type."""
    if isinstance(source, str | os.PathLike):
        return os.fsdecode(os.fspath(source))
    name = getattr(source, "name", None)
    if isinstance(name, str | bytes) and name:
        return os.fsdecode(name)
    return f"<{type(source).__name__}>"


def decode_error(label: str, reason: object) -> AudioDecodeError:
    """The one-line error for anything that cannot be decoded from ``label``."""
    return AudioDecodeError(f"cannot decode audio from {label!r}: {_one_line(reason)}")


def ffmpeg_reason(exc: BaseException) -> str:
    """FFmpeg's error text without PyAV's ``[Errno N]`` prefix and file name suffix."""
    strerror = getattr(exc, "strerror", None)
    if isinstance(strerror, str) and strerror:
        return strerror
    return _one_line(exc) or type(exc).__name__


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
        raise decode_error(label, exc.strerror or exc) from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioFileNotFoundError(f"cannot decode audio from {label!r}: is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise AudioFileNotFoundError(f"cannot decode audio from {label!r}: not a regular file")
    if st.st_size == 0:
        raise decode_error(label, "the file is empty (0 bytes)")


def open_container(source: Source, label: str) -> av.container.InputContainer:
    """Open ``source`` for reading with PyAV (a path is checked first: see the module)."""
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
        raise decode_error(
            label,
            f"not a recognised media file, or its header is damaged or missing "
            f"(truncated?) ({ffmpeg_reason(exc)})",
        ) from None
    except av.error.FFmpegError as exc:
        raise decode_error(label, ffmpeg_reason(exc)) from None
    except (OSError, ValueError, EOFError) as exc:
        raise decode_error(label, exc) from None


def select_stream(
    container: av.container.InputContainer, stream: int | None, label: str
) -> tuple[av.audio.stream.AudioStream, int]:
    """The chosen audio stream and its index among the audio streams (None: the best)."""
    audio_streams = list(container.streams.audio)
    count = len(audio_streams)
    if count == 0:
        kinds = ", ".join(s.type for s in container.streams) or "none"
        raise decode_error(label, f"no audio stream (streams: {kinds})")
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
        raise decode_error(
            label,
            f"audio stream {stream} out of range: the file has {count} audio {plural} "
            f"(0..{count - 1})",
        )
    return audio_streams[stream], stream


def own_duration(astream: av.audio.stream.AudioStream) -> float | None:
    """The stream's own duration in seconds, if the container records one."""
    if astream.duration is not None and astream.time_base is not None and astream.duration > 0:
        return float(astream.duration * astream.time_base)
    return None


def container_duration(container: av.container.InputContainer) -> float | None:
    """The container's duration in seconds, if it records one."""
    if container.duration is not None and container.duration > 0:
        return container.duration / 1_000_000
    return None


def padding_limit(
    container: av.container.InputContainer, astream: av.audio.stream.AudioStream
) -> tuple[int, int] | None:
    """(sample limit, allowance) for trimming trailing codec padding, or None.

    MP4/MOV sample tables record the exact duration of the last packet, but FFmpeg
    only trims the start (edit list), not the encoder's padding at the end (up to
    one codec frame, e.g. 944 of 1024 AAC samples = 59 ms at 16 kHz). Output past
    the stream's duration is held back; if it exceeds ``allowance`` (two codec
    frames) the duration was not exact after all and everything is kept.
    """
    own = own_duration(astream)
    if own is None or "mp4" not in str(container.format.name).split(","):
        return None
    ctx = astream.codec_context
    frame_seconds = (ctx.frame_size / ctx.sample_rate) if ctx.frame_size and ctx.sample_rate else 0
    allowance = round(max(0.1, 2 * frame_seconds) * SAMPLE_RATE)
    return round(own * SAMPLE_RATE), allowance
