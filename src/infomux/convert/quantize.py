"""Quantization for the converter: ggml's own reference quantizers, through the extension.

``ggml_quantize_chunk`` (which ggml's ``quantize_row_*_ref`` functions implement) is
linked into ``infomux._whisper`` already; the converter calls it instead of keeping a
copy of its arithmetic.
"""

from __future__ import annotations

import numpy as np

from infomux.ggml import QUANT_TYPES


def quantize_blocks(x: np.ndarray, qtype: str) -> bytes:
    """Quantize float32 values (length a multiple of 32) with ggml's reference code.

    Returns the raw ggml blocks of type ``qtype`` (``q8_0``, ``q5_1``, ``q5_0``, ``q4_1``
    or ``q4_0``).

    Raises:
        ValueError: an unknown type, or a length that is not a multiple of 32.
    """
    from infomux.engine import _native

    if qtype not in QUANT_TYPES:
        raise ValueError(f"unknown quantization type {qtype!r}; choose from {QUANT_TYPES}")
    values = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    return bytes(_native().quantize(values, qtype))
