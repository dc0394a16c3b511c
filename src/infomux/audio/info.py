"""What decoding produces: the output format (16 kHz mono float32) and its metadata."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any, BinaryIO

import numpy as np

__all__ = ["S16_SCALE", "SAMPLE_RATE", "AudioInfo", "DecodedAudio", "Source", "ffmpeg_versions"]

SAMPLE_RATE = 16000
"""Samples per second of every array infomux.audio returns (and the engine takes)."""

S16_SCALE = np.float32(1.0 / 32768.0)
"""s16 → float: ``k * S16_SCALE`` (libswresample's and FFmpeg's convention)."""

Source = str | os.PathLike[str] | BinaryIO
"""A path, or a binary file-like object (``read``, ideally ``seek``)."""


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


def ffmpeg_versions() -> tuple[str, str]:
    """(PyAV version, FFmpeg version) as recorded in :class:`AudioInfo`."""
    import av

    ffmpeg = getattr(av, "ffmpeg_version_info", None)
    if not ffmpeg:
        libs = getattr(av, "library_versions", {}) or {}
        ffmpeg = " ".join(f"{name}={'.'.join(map(str, ver))}" for name, ver in sorted(libs.items()))
    return str(av.__version__), str(ffmpeg or "unknown")
