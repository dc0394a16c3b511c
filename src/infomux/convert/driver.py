"""Writing the ggml file: header, then each tensor converted chunk by chunk, atomically."""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from infomux import ggml, storage
from infomux.convert.ct2 import read_ct2_index, read_ct2_vocabulary, read_rows
from infomux.convert.header import header_bytes
from infomux.convert.plan import F16, Piece, Plan, Planner
from infomux.convert.quantize import quantize_blocks
from infomux.errors import ModelError, ModelNotFoundError
from infomux.ggml import WEIGHT_TYPES as OUT_TYPES
from infomux.ggml import ProgressFn

logger = logging.getLogger("infomux.models")


def _encode(values: np.ndarray, piece: Piece, out_type: str) -> bytes:
    if piece.quantize:
        # Quantize what the f16 file would hold, as whisper.cpp's quantize tool does.
        as_f32 = values.astype(np.float16).astype(np.float32)
        return quantize_blocks(as_f32, out_type)
    if piece.type == F16:
        return values.astype("<f2").tobytes()
    return values.astype("<f4").tobytes()


def _piece_chunks(f: BinaryIO, piece: Piece, max_elems: int = 1 << 20) -> Iterator[np.ndarray]:
    row_elems = max(1, piece.n_elements // (piece.row1 - piece.row0))
    step = max(1, max_elems // row_elems)
    for r in range(piece.row0, piece.row1, step):
        yield read_rows(f, piece.var, r, min(r + step, piece.row1))


def _tensor_header(piece: Piece) -> bytes:
    name = piece.name.encode()
    ne = piece.ne
    return struct.pack(f"<3i{len(ne)}i", len(ne), len(name), piece.type, *ne) + name


def _write_tensors(
    out: BinaryIO,
    src: BinaryIO,
    plan: Plan,
    out_type: str,
    done: int,
    total: int,
    progress: ProgressFn | None,
) -> int:
    for piece in plan.pieces:
        out.write(_tensor_header(piece))
        for chunk in _piece_chunks(src, piece):
            out.write(_encode(chunk, piece, out_type))
        done += piece.record_size
        if progress is not None:
            progress(done, total)
    return done


def _check_source(src_dir: Path) -> Path:
    if not src_dir.exists():
        raise ModelNotFoundError(f"{src_dir}: CTranslate2 model directory does not exist")
    if not src_dir.is_dir():
        raise ModelError(f"{src_dir}: not a directory (expected a CTranslate2 model directory)")
    model_bin = src_dir / "model.bin"
    if not model_bin.is_file():
        raise ModelNotFoundError(f"{src_dir}: no model.bin; not a CTranslate2 model directory")
    return model_bin


def convert_ct2_to_ggml(
    src_dir: str | os.PathLike[str],
    dst_path: str | os.PathLike[str],
    *,
    out_type: str = "f16",
    progress: ProgressFn | None = None,
) -> Path:
    """Convert a CTranslate2 Whisper model directory into a whisper.cpp ggml file.

    Args:
        src_dir: directory with ``model.bin`` and ``vocabulary.txt`` (or ``.json``).
        dst_path: the ggml file to create (replaced atomically if it exists).
        out_type: ``f16`` (default) or a quantization: ``q8_0``, ``q5_1``,
            ``q5_0``, ``q4_1``, ``q4_0``.
        progress: called as ``progress(bytes_written, total_bytes)`` after each tensor.

    Returns:
        ``dst_path`` as a :class:`~pathlib.Path`.

    Raises:
        ModelNotFoundError: ``src_dir`` or its files do not exist.
        ModelError: the source is not a (float) CTranslate2 Whisper model, or the
            output could not be written.
        ValueError: unknown ``out_type``.
    """
    if out_type not in OUT_TYPES:
        raise ValueError(f"unknown out_type {out_type!r}; choose from {', '.join(OUT_TYPES)}")
    src_dir, dst = Path(src_dir), Path(dst_path)
    index = read_ct2_index(_check_source(src_dir))
    if index.spec != "WhisperSpec":
        raise ModelError(f"{index.path}: a {index.spec} model, not a Whisper model")
    plan = Planner(index, out_type).plan()
    header = header_bytes(plan, read_ct2_vocabulary(src_dir), src_dir)
    total = len(header) + sum(p.record_size for p in plan.pieces)
    logger.debug("converting %s to %s (%s, %.1f MB)", src_dir, dst, out_type, total / 1e6)

    def check(tmp: Path) -> None:
        written = tmp.stat().st_size
        if written != total:
            raise ModelError(f"{dst}: wrote {written} bytes, expected {total}")
        ggml.validate_model_file(tmp)

    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        with storage.atomic_open(dst, check=check) as out, index.path.open("rb") as src:
            out.write(header)
            _write_tensors(out, src, plan, out_type, len(header), total, progress)
    except OSError as exc:
        if isinstance(exc, ModelError):
            raise
        raise ModelError(f"{dst}: cannot write the model ({exc.strerror or exc})") from exc
    logger.debug("wrote %s (%d bytes)", dst, total)
    return dst
