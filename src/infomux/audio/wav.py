"""Writing 16 kHz mono PCM s16 WAV files, and the samples such a file holds."""

from __future__ import annotations

import os
import wave

import numpy as np

from infomux.audio.info import S16_SCALE, SAMPLE_RATE
from infomux.storage import atomic_open

__all__ = ["quantize_s16", "write_wav"]

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
        block *= S16_SCALE  # exact: an integer times a power of two
    return out


def write_wav(
    path: str | os.PathLike[str], samples: np.ndarray, sample_rate: int = SAMPLE_RATE
) -> None:
    """Write ``samples`` (float, 1-D, nominally in [-1, 1]) as mono PCM s16 WAV, atomically.

    Samples are clipped to [-1, 1] and scaled by 32768 with rounding (FFmpeg's
    flt → s16 convention, so :func:`decode_audio` reads them back to within
    1/65536, and exactly as :func:`quantize_s16` gives them). NaN becomes 0. Written
    atomically and durably (:func:`infomux.storage.atomic_open`: temp file, fsync,
    rename; the file's mode follows the umask).
    """
    array = np.asarray(samples)
    if array.ndim != 1:
        raise ValueError(f"samples must be 1-D, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"samples must be floating point, got {array.dtype}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r}")
    with atomic_open(path) as raw, wave.open(raw, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.setnframes(array.shape[0])
        for start in range(0, array.shape[0], _BLOCK):
            part = np.array(array[start : start + _BLOCK], dtype=np.float32)
            _quantize_block(part)
            wav.writeframesraw(part.astype("<i2").tobytes())
