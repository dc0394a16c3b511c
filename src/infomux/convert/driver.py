"""Writing the ggml file: header, then each tensor converted chunk by chunk, atomically."""

from __future__ import annotations

import bisect
import hashlib
import itertools
import logging
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from infomux import ggml, storage
from infomux.convert.ct2 import (
    CT2_DTYPES,
    Ct2Index,
    Ct2Variable,
    read_ct2_index,
    read_ct2_vocabulary,
)
from infomux.convert.header import header_bytes
from infomux.convert.parts import ModelParts, check_parts
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


def _tensor_header(piece: Piece) -> bytes:
    name = piece.name.encode()
    ne = piece.ne
    return struct.pack(f"<3i{len(ne)}i", len(ne), len(name), piece.type, *ne) + name


class _Stream:
    """Reads the source model.bin front to back, once, hashing every byte on the way.

    Holds the sha256 of the whole stream and of each part (boundaries at ``starts``).
    """

    def __init__(self, f: BinaryIO, starts: list[int], hashing: bool) -> None:
        self.f, self.pos, self.hashing = f, 0, hashing
        self.starts = starts
        self.whole = hashlib.sha256()
        self.each = [hashlib.sha256() for _ in starts]

    def _hash(self, data: bytes) -> None:
        self.whole.update(data)
        view, pos = memoryview(data), self.pos
        while view:
            i = bisect.bisect_right(self.starts, pos) - 1
            end = self.starts[i + 1] if i + 1 < len(self.starts) else pos + len(view)
            n = min(len(view), end - pos)
            self.each[i].update(view[:n])
            view, pos = view[n:], pos + n

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise ModelError("model.bin: short read (a file changed while being converted)")
        if self.hashing:
            self._hash(data)
        self.pos += n
        return data

    def skip_to(self, offset: int) -> None:
        """Go forward to ``offset`` (reading and hashing what lies between, when hashing)."""
        if not self.hashing:
            self.f.seek(offset)
            self.pos = offset
            return
        while self.pos < offset:
            self.read(min(_CHUNK_BYTES, offset - self.pos))


_CHUNK_BYTES = 1 << 22  # what is read at once: a few MB, whatever the tensor's size


def _rows(stream: _Stream, var: Ct2Variable) -> Iterator[tuple[int, np.ndarray]]:
    """The rows of ``var`` in chunks of a few MB, read in file order: ``(first_row, rows)``."""
    n_rows = var.shape[0] if var.shape else 1
    row_shape = var.shape[1:] if var.shape else ()
    row_bytes = int(np.prod(row_shape, dtype=np.int64)) * var.itemsize
    step = max(1, _CHUNK_BYTES // max(row_bytes, 1))
    stream.skip_to(var.offset)
    for r in range(0, n_rows, step):
        count = min(step, n_rows - r)
        arr = np.frombuffer(stream.read(count * row_bytes), dtype=CT2_DTYPES[var.dtype])
        if var.dtype == 5:  # bfloat16: the top half of a float32
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        yield r, arr.reshape((count, *row_shape))


def _write_tensors(
    out: BinaryIO,
    stream: _Stream,
    index: Ct2Index,
    plan: Plan,
    out_type: str,
    done: int,
    total: int,
    progress: ProgressFn | None,
) -> int:
    """Write every tensor in one front-to-back pass over the source.

    Each output tensor's place in the file is known from the plan, so the source is read
    in its own order (each variable once) and each chunk of rows is converted and
    written where it belongs; memory holds one chunk, never a whole tensor or model.
    """
    by_var: dict[str, list[tuple[Piece, int]]] = {}
    offset = done
    for piece in plan.pieces:
        head = _tensor_header(piece)
        out.seek(offset)
        out.write(head)
        by_var.setdefault(piece.var.name, []).append((piece, offset + len(head)))
        offset += piece.record_size
    for var in sorted(index.variables.values(), key=lambda v: v.offset):
        targets = by_var.get(var.name)
        if not targets:
            continue
        left = {id(p): p.row1 - p.row0 for p, _ in targets}
        for r0, rows in _rows(stream, var):
            r1 = r0 + rows.shape[0]
            for piece, data_at in targets:
                lo, hi = max(r0, piece.row0), min(r1, piece.row1)
                if lo >= hi:
                    continue
                row_out = piece.record_size - len(_tensor_header(piece))
                row_out //= piece.row1 - piece.row0
                out.seek(data_at + (lo - piece.row0) * row_out)
                out.write(_encode(rows[lo - r0 : hi - r0], piece, out_type))
                left[id(piece)] -= hi - lo
                if not left[id(piece)]:
                    done += piece.record_size
                    if progress is not None:
                        progress(done, total)
    stream.skip_to(index.size)
    out.seek(offset)
    return done


def _check_source(src_dir: Path, parts: ModelParts | None) -> list[Path]:
    if not src_dir.exists():
        raise ModelNotFoundError(f"{src_dir}: CTranslate2 model directory does not exist")
    if not src_dir.is_dir():
        raise ModelError(f"{src_dir}: not a directory (expected a CTranslate2 model directory)")
    if parts is not None:
        check_parts(parts)
        return list(parts.paths)
    model_bin = src_dir / "model.bin"
    if not model_bin.is_file():
        raise ModelNotFoundError(f"{src_dir}: no model.bin; not a CTranslate2 model directory")
    return [model_bin]


def _differing(parts: ModelParts, digests: list[str]) -> str:
    """``; part 2 (model.bin.part2) differs ...`` naming the parts whose sha256 is wrong."""
    assert parts.part_sha256 is not None
    wrong = [
        f"part {i} ({path.name})"
        for i, (path, got, want) in enumerate(
            zip(parts.paths, digests, parts.part_sha256, strict=True), 1
        )
        if got != want.lower()
    ]
    if not wrong:
        return ""
    verb = "differs" if len(wrong) == 1 else "differ"
    return (
        f"; {', '.join(wrong)} {verb} from the published part (corrupt, repeated or out of order)"
    )


def _which_part(parts: ModelParts) -> str:
    """What to add to an error about joined parts that do not read as a model."""
    if parts.part_sha256 is None:
        return "; a part is corrupt, repeated or out of order"
    named = _differing(parts, [storage.sha256_file(p) for p in parts.paths])
    return named or "; each part has its published sha256, yet they do not read as a model"


def _verify(stream: _Stream, parts: ModelParts | None) -> None:
    """Compare what the pass hashed with what the parts should be (raises ModelError)."""
    if parts is None or parts.sha256 is None:
        return
    got = stream.whole.hexdigest()
    if got == parts.sha256.lower():
        return
    named = ""
    if parts.part_sha256 is not None:
        named = _differing(parts, [h.hexdigest() for h in stream.each])
    raise ModelError(
        f"{parts.label}: the joined parts have sha256 {got}, expected {parts.sha256}"
        + (named or ": a part is corrupt or the parts are out of order")
    )


def convert_ct2_to_ggml(
    src_dir: str | os.PathLike[str],
    dst_path: str | os.PathLike[str],
    *,
    out_type: str = "f16",
    progress: ProgressFn | None = None,
    parts: ModelParts | None = None,
) -> Path:
    """Convert a CTranslate2 Whisper model directory into a whisper.cpp ggml file.

    The source is read once, front to back, in chunks of a few MB (each tensor's rows
    are written where the plan puts them), so memory stays far below one tensor.

    Args:
        src_dir: directory with ``model.bin`` and ``vocabulary.txt`` (or ``.json``);
            with ``parts``, the directory of the vocabulary only.
        dst_path: the ggml file to create (replaced atomically if it exists).
        out_type: ``f16`` (default) or a quantization: ``q8_0``, ``q5_1``,
            ``q5_0``, ``q4_1``, ``q4_0``.
        progress: called as ``progress(bytes_written, total_bytes)`` after each tensor.
        parts: a ``model.bin`` split into ordered parts (:class:`ModelParts`), read as
            one stream without joining it on disk; their sizes are checked before, and
            the sha256 of the joined stream (hashed in the same pass) after, the
            conversion: a mismatch leaves no output.

    Returns:
        ``dst_path`` as a :class:`~pathlib.Path`.

    Raises:
        ModelNotFoundError: ``src_dir`` or its files (or a part) do not exist.
        ModelError: the source is not a (float) CTranslate2 Whisper model, or the
            output could not be written.
        ValueError: unknown ``out_type``.
    """
    if out_type not in OUT_TYPES:
        raise ValueError(f"unknown out_type {out_type!r}; choose from {', '.join(OUT_TYPES)}")
    src_dir, dst = Path(src_dir), Path(dst_path)
    try:
        index = read_ct2_index(_check_source(src_dir, parts))
    except ModelError as exc:
        if parts is None or isinstance(exc, ModelNotFoundError):
            raise
        raise ModelError(f"{exc}{_which_part(parts)}") from None
    if index.spec != "WhisperSpec":
        raise ModelError(f"{index.label}: a {index.spec} model, not a Whisper model")
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
        with storage.atomic_open(dst, check=check) as out, index.open() as src:
            out.write(header)
            sizes = (p.stat().st_size for p in index.parts[:-1])
            starts = list(itertools.accumulate(sizes, initial=0))
            stream = _Stream(src, starts, hashing=parts is not None and parts.sha256 is not None)
            _write_tensors(out, stream, index, plan, out_type, len(header), total, progress)
            _verify(stream, parts)
    except OSError as exc:
        if isinstance(exc, ModelError):
            raise
        raise ModelError(f"{dst}: cannot write the model ({exc.strerror or exc})") from exc
    logger.debug("wrote %s (%d bytes)", dst, total)
    return dst
