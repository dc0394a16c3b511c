"""Decoding a whole source into one float32 buffer: :func:`decode_audio`, :func:`load_audio`."""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator

import numpy as np

from infomux.audio.info import SAMPLE_RATE, AudioInfo, DecodedAudio, Source, ffmpeg_versions
from infomux.audio.resample import Converter, FrameError, Stats, store_samples
from infomux.audio.source import (
    container_duration,
    decode_error,
    ffmpeg_reason,
    label_of,
    open_container,
    own_duration,
    padding_limit,
    select_stream,
)
from infomux.errors import AudioDecodeError

__all__ = ["Decoding", "checked", "decode_audio", "load_audio"]

logger = logging.getLogger("infomux.audio")

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
        store_samples(array[self.size : end], src)  # type: ignore[index]
        self.size = end

    def finish(self) -> np.ndarray:
        array = self._array
        assert array is not None
        self._array = None
        if array.shape[0] != self.size:
            array.resize(self.size, refcheck=False)  # shrink in place, no copy
        return array


class Decoding:
    """An open source: container, chosen stream, and the frame → samples loop."""

    def __init__(self, source: Source, stream: int | None) -> None:
        self.label = label_of(source)
        self.container = open_container(source, self.label)
        try:
            self.stream, self.stream_index = select_stream(self.container, stream, self.label)
            if self.stream.codec_context is None:
                raise decode_error(self.label, f"no decoder for codec {self.stream.codec.name!r}")
            own = own_duration(self.stream)
            self.duration = own if own is not None else container_duration(self.container)
            # Whether a shortfall against ``duration`` says anything about this stream.
            self.duration_is_exact = own is not None or len(self.container.streams) == 1
            self.padding_limit = padding_limit(self.container, self.stream)
        except BaseException:
            self.container.close()
            raise
        self.stats = Stats()

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
        converter = Converter(self.label, stats)
        packets = self.container.demux(self.stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                # A read error part-way through (cut-off or damaged file): keep what we have.
                stats.decode_errors += 1
                stats.read_error = ffmpeg_reason(exc)
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
                stats.first_error = stats.first_error or ffmpeg_reason(exc)
                logger.debug("%s: skipping undecodable packet: %s", self.label, exc)
                continue
            for frame in frames:
                try:
                    ready = converter.convert(frame)
                except FrameError as exc:
                    stats.decode_errors += 1
                    stats.first_error = stats.first_error or str(exc)
                    logger.debug("%s: skipping frame: %s", self.label, exc)
                    yield from exc.ready
                    continue
                if ready:
                    yield from ready
        try:
            yield from converter.flush()
        except FrameError as exc:
            stats.decode_errors += 1
            stats.first_error = stats.first_error or str(exc)

    def finish(self) -> AudioInfo:
        """Check the outcome, log what was lost, and describe the result."""
        stats = self.stats
        decoded = stats.samples / SAMPLE_RATE
        if stats.samples == 0:
            if stats.decode_errors:
                raise decode_error(
                    self.label,
                    f"no audio could be decoded ({stats.decode_errors} packet(s) failed; "
                    f"first error: {stats.first_error})",
                )
            raise decode_error(
                self.label, "the audio stream contains no samples (zero-length audio)"
            )
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
        pyav_version, ffmpeg_version = ffmpeg_versions()
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


def checked(decoding: Decoding) -> Generator[np.ndarray, None, None]:
    """``decoding.samples()`` with stray PyAV/OS errors turned into AudioDecodeError."""
    samples = decoding.samples()
    try:
        yield from samples
    except AudioDecodeError:
        raise
    except (ValueError, OSError, RuntimeError, EOFError) as exc:  # av.error.* included
        raise decode_error(decoding.label, ffmpeg_reason(exc)) from None
    finally:
        samples.close()  # before the container is closed, also on an early exit


def decode_audio(source: Source, *, stream: int | None = None) -> DecodedAudio:
    """Decode ``source`` to float32 16 kHz mono samples, with metadata.

    ``source`` is a path (``str`` or ``os.PathLike``) or a binary file-like object
    (``read``, ideally ``seek``). ``stream`` picks the N-th audio stream; ``None``
    takes the container's best/default one.

    Raises :class:`AudioFileNotFoundError` for a missing path or a directory and
    :class:`AudioDecodeError` for anything that cannot be decoded (see the module
    docstring for how damaged files are handled).
    """
    decoding = Decoding(source, stream)
    try:
        seconds = decoding.duration
        if seconds is None:
            seconds = _UNKNOWN_DURATION_SECONDS
        seconds = min(seconds, _MAX_INITIAL_SECONDS)
        capacity = int(seconds * SAMPLE_RATE * (1 + _CAPACITY_MARGIN)) + SAMPLE_RATE
        buffer = _GrowableBuffer(capacity)
        for arr in checked(decoding):
            buffer.append(arr)
        info = decoding.finish()
    finally:
        decoding.close()
    samples = buffer.finish()
    return DecodedAudio(samples=samples, info=info)


def load_audio(source: Source, *, stream: int | None = None) -> np.ndarray:
    """Decode ``source`` and return only the float32 16 kHz mono samples."""
    return decode_audio(source, stream=stream).samples
