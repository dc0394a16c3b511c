"""ggml's reference quantizers (``quantize_row_*_ref``), bit for bit, in numpy.

The native extension links ggml's own ``ggml_quantize_chunk``; using it here would
need a binding for it (see the engine), so these stay until that exists.
"""

from __future__ import annotations

import numpy as np

from infomux.ggml import QUANT_TYPES


def _fp16_bytes(values: np.ndarray) -> np.ndarray:
    """float32 → IEEE half (round to nearest even, as GGML_FP32_TO_FP16), as (n, 2) bytes."""
    return values.astype("<f2").view(np.uint8).reshape(-1, 2)


def _safe_inverse(d: np.ndarray) -> np.ndarray:
    out = np.zeros_like(d)
    np.divide(np.float32(1.0), d, out=out, where=d != 0)
    return out


def _roundf(x: np.ndarray) -> np.ndarray:
    """C ``roundf``: halves away from zero (numpy's ``round`` goes to even)."""
    t = np.trunc(x)
    return t + np.where(np.abs(x - t) >= np.float32(0.5), np.sign(x), np.float32(0.0))


def _pack_nibbles(q: np.ndarray) -> np.ndarray:
    """32 values per block → 16 bytes: low nibble element j, high nibble element j+16."""
    q = q.astype(np.uint8)
    return (q[:, :16] & 0x0F) | ((q[:, 16:] & 0x0F) << 4)


def _high_bits(q: np.ndarray) -> np.ndarray:
    """Bit 4 of each of the 32 values of a block → a little-endian uint32 (4 bytes)."""
    bits = ((q.astype(np.uint8) >> 4) & 1).astype(np.uint8)
    return np.packbits(bits, axis=1, bitorder="little")


def _absmax_signed(x: np.ndarray) -> np.ndarray:
    """Per block, the value of largest magnitude (first one on ties), sign kept."""
    idx = np.argmax(np.abs(x), axis=1)
    return x[np.arange(x.shape[0]), idx]


def quantize_blocks(x: np.ndarray, qtype: str) -> bytes:
    """Quantize float32 values (length a multiple of 32) exactly like ggml's reference code.

    Returns the raw ggml blocks of type ``qtype`` (``q8_0``, ``q5_1``, ``q5_0``, ``q4_1``
    or ``q4_0``).
    """
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, 32)
    f32 = np.float32
    if qtype == "q8_0":
        d = np.abs(x).max(axis=1) / f32(127)
        q = _roundf(x * _safe_inverse(d)[:, None]).astype(np.int8).view(np.uint8)
        parts = [_fp16_bytes(d), q]
    elif qtype in ("q4_0", "q5_0"):
        half = f32(8) if qtype == "q4_0" else f32(16)
        d = _absmax_signed(x) / -half
        q = np.trunc(x * _safe_inverse(d)[:, None] + (half + f32(0.5)))
        q = np.minimum(q, 2 * half - 1).astype(np.uint8)
        if qtype == "q4_0":
            parts = [_fp16_bytes(d), _pack_nibbles(q)]
        else:
            parts = [_fp16_bytes(d), _high_bits(q), _pack_nibbles(q)]
    elif qtype in ("q4_1", "q5_1"):
        levels = f32(15) if qtype == "q4_1" else f32(31)
        lo, hi = x.min(axis=1), x.max(axis=1)
        d = (hi - lo) / levels
        q = np.trunc((x - lo[:, None]) * _safe_inverse(d)[:, None] + f32(0.5))
        if qtype == "q4_1":
            parts = [_fp16_bytes(d), _fp16_bytes(lo), _pack_nibbles(np.minimum(q, levels))]
        else:
            q = q.astype(np.uint8)
            parts = [_fp16_bytes(d), _fp16_bytes(lo), _high_bits(q), _pack_nibbles(q)]
    else:
        raise ValueError(f"unknown quantization type {qtype!r}; choose from {QUANT_TYPES}")
    return np.concatenate(parts, axis=1).tobytes()
