"""Convert a CTranslate2 Whisper model directory to a whisper.cpp ggml file.

Split by concern: :mod:`~infomux.convert.ct2` (reading the source),
:mod:`~infomux.convert.parts` (a ``model.bin`` split into ordered parts, read as one),
:mod:`~infomux.convert.plan` (which tensor comes from where),
:mod:`~infomux.convert.quantize`, :mod:`~infomux.convert.header` (mel filters,
vocabulary) and :mod:`~infomux.convert.driver` (:func:`convert_ct2_to_ggml`);
everything public is importable from ``infomux.convert``.

Pure Python + numpy, streaming: ``model.bin`` is indexed once (names, shapes, file
offsets), then read once front to back in row chunks of a few MB, each chunk converted
and written where the plan puts its tensor, so peak memory is a few MB above the
interpreter's, not a tensor's or the model's size. A split ``model.bin``
(:class:`ModelParts`) is read the same way across its parts, hashed in the same pass.
The output is written to a temporary file in the destination
directory, fsync'ed, validated with :func:`infomux.ggml.validate_model_file` and
renamed into place, so a crash never leaves a half-written model behind.

Quantized outputs (``q8_0``, ``q5_1``, ``q5_0``, ``q4_1``, ``q4_0``) follow ggml's
reference quantizers (``quantize_row_*_ref``) bit for bit, applied like whisper.cpp's
``quantize`` tool does to an f16 file: only the 2-D weight matrices are quantized;
convolutions, biases, layer norms and positional embeddings keep their f16/f32 types,
and the header's ftype becomes ``ftype + 1000 * GGML_QNT_VERSION``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infomux.convert.ct2 import (
        CT2_DTYPES,
        Ct2Index,
        Ct2Variable,
        read_ct2_index,
        read_ct2_vocabulary,
    )
    from infomux.convert.driver import convert_ct2_to_ggml
    from infomux.convert.header import N_FFT, N_TEXT_TOKENS, SAMPLE_RATE, mel_filters
    from infomux.convert.parts import JoinedReader, ModelParts
    from infomux.convert.quantize import quantize_blocks
    from infomux.ggml import QUANT_TYPES, ProgressFn
    from infomux.ggml import WEIGHT_TYPES as OUT_TYPES

# Names are imported on first use (PEP 562): a run that only resolves a cached model
# imports infomux.convert.parts, not the converter and numpy's share of it.
_WHERE = {
    "CT2_DTYPES": ("infomux.convert.ct2", "CT2_DTYPES"),
    "Ct2Index": ("infomux.convert.ct2", "Ct2Index"),
    "Ct2Variable": ("infomux.convert.ct2", "Ct2Variable"),
    "read_ct2_index": ("infomux.convert.ct2", "read_ct2_index"),
    "read_ct2_vocabulary": ("infomux.convert.ct2", "read_ct2_vocabulary"),
    "convert_ct2_to_ggml": ("infomux.convert.driver", "convert_ct2_to_ggml"),
    "N_FFT": ("infomux.convert.header", "N_FFT"),
    "N_TEXT_TOKENS": ("infomux.convert.header", "N_TEXT_TOKENS"),
    "SAMPLE_RATE": ("infomux.convert.header", "SAMPLE_RATE"),
    "mel_filters": ("infomux.convert.header", "mel_filters"),
    "JoinedReader": ("infomux.convert.parts", "JoinedReader"),
    "ModelParts": ("infomux.convert.parts", "ModelParts"),
    "quantize_blocks": ("infomux.convert.quantize", "quantize_blocks"),
    "QUANT_TYPES": ("infomux.ggml", "QUANT_TYPES"),
    "ProgressFn": ("infomux.ggml", "ProgressFn"),
    "OUT_TYPES": ("infomux.ggml", "WEIGHT_TYPES"),
}


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    try:
        module, attr = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])

__all__ = [
    "CT2_DTYPES",
    "N_FFT",
    "N_TEXT_TOKENS",
    "OUT_TYPES",
    "QUANT_TYPES",
    "SAMPLE_RATE",
    "Ct2Index",
    "Ct2Variable",
    "JoinedReader",
    "ModelParts",
    "ProgressFn",
    "convert_ct2_to_ggml",
    "mel_filters",
    "quantize_blocks",
    "read_ct2_index",
    "read_ct2_vocabulary",
]
