"""Decoded frames → 16 kHz mono samples (libswresample through ``av.AudioResampler``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from infomux.audio.info import S16_SCALE, SAMPLE_RATE
from infomux.audio.source import ffmpeg_reason

__all__ = ["Converter", "FrameError", "Key", "Stats", "store_samples"]

if TYPE_CHECKING:
    import av.audio.fifo
    import av.audio.frame
    import av.audio.resampler

logger = logging.getLogger("infomux.audio")

# Output frame size of the resampler: one second. Larger sizes were measured to
# make no difference; much smaller ones (or 0 = pass frames through as they come)
# cost per-frame overhead.
_RESAMPLER_FRAME_SIZE = SAMPLE_RATE
# Decoded frames are collected in an AudioFifo and resampled this many seconds of
# input at a time (one resampler call per 20-60 ms codec frame costs twice as much).
_GROUP_SECONDS = 1.0

# libswresample options. rematrix_maxval=1 normalises the downmix matrix as FFmpeg does
# for integer output: stereo → (L + R) / 2, 5.1 → weights summing to 1, exactly what the
# old ``ffmpeg -ac 1 -c:a pcm_s16le`` step (and faster-whisper's s16 resampler) produced.
# With float output swr would otherwise use (L + R) / √2, 3 dB louder for correlated
# channels and able to exceed ±1.
_SWR_OPTIONS = {"rematrix_maxval": "1.0"}
_FLOAT_FORMATS = frozenset({"flt", "fltp"})
_S16_FORMATS = frozenset({"s16", "s16p"})


def store_samples(dst: np.ndarray, src: np.ndarray) -> None:
    """Write ``src`` (float32 or int16 samples) into the float32 slice ``dst``."""
    if src.dtype == np.float32:
        dst[...] = src
    else:  # int16: exactly libswresample's s16 → flt conversion (x / 32768)
        np.multiply(src, S16_SCALE, out=dst, casting="unsafe")


@dataclass
class Stats:
    decode_errors: int = 0
    first_error: str | None = None
    read_error: str | None = None
    samples: int = 0
    changes: int = 0
    first_frame: tuple[str, str, int, int] | None = None  # format, layout, rate, channels
    extra: dict[str, Any] = field(default_factory=dict)


class FrameError(Exception):
    """A decoded frame that could not be converted (reason in ``args[0]``).

    ``ready`` holds samples converted before the failure (an earlier set-up's tail).
    """

    def __init__(self, message: str, ready: list[np.ndarray] | None = None) -> None:
        super().__init__(message)
        self.ready = ready or []


Key = tuple[str, str, int, int]  # sample format, layout name, sample rate, channels


class Converter:
    """Turn decoded frames into 16 kHz mono sample arrays (float32, or int16 to scale).

    Frames are collected in an ``av.AudioFifo`` and converted about a second of input
    at a time: one resampler call (or one buffer copy) per second instead of one per
    20-60 ms codec frame, which halves the Python and filter-graph overhead.
    The arrays returned are views of PyAV frames (kept alive by the views).
    """

    def __init__(self, label: str, stats: Stats) -> None:
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

    def _fail(self, key: Key, exc: BaseException) -> FrameError:
        # e.g. a garbled packet the decoder read as 34-channel audio: the filter graph
        # cannot be configured. Drop this set-up; the next frame starts anew.
        self._resampler = self._fifo = None
        self._key = None
        return FrameError(
            f"cannot convert {key[3]}-channel {key[0]} {key[2]} Hz audio: {ffmpeg_reason(exc)}"
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
