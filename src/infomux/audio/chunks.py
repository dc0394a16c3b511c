"""Decoding in fixed-size chunks with bounded memory: :func:`iter_audio_chunks`."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import numpy as np

from infomux.audio.decode import Decoding, checked
from infomux.audio.info import SAMPLE_RATE, Source
from infomux.audio.resample import store_samples

__all__ = ["iter_audio_chunks"]


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
            store_samples(self._current[self._fill : self._fill + take], src[pos : pos + take])
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
    decoding = Decoding(source, stream)
    arrays = checked(decoding)
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
