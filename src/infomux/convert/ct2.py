"""Reading CTranslate2 Whisper models: the ``model.bin`` index, row reads, the vocabulary."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from infomux.errors import ModelError, ModelNotFoundError

CT2_DTYPES: dict[int, str] = {0: "<f4", 1: "i1", 2: "<i2", 3: "<i4", 4: "<f2", 5: "<u2"}
CT2_DTYPE_NAMES = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}
FLOAT_DTYPES = (0, 4, 5)


@dataclass(frozen=True)
class Ct2Variable:
    """One variable of a CTranslate2 ``model.bin``: where its raw data lies."""

    name: str
    shape: tuple[int, ...]
    dtype: int
    offset: int
    nbytes: int

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return np.dtype(CT2_DTYPES[self.dtype]).itemsize


@dataclass(frozen=True)
class Ct2Index:
    """The table of contents of a CTranslate2 ``model.bin`` (one file, or ordered parts).

    ``path`` is the file (the first part, for a split model); ``parts`` all of them.
    """

    path: Path
    spec: str
    version: int
    revision: int
    variables: dict[str, Ct2Variable]
    aliases: dict[str, str]
    parts: tuple[Path, ...] = field(default=())
    size: int = 0

    @property
    def label(self) -> str:
        """How messages name the model.bin: its path, or its parts joined by ``+``."""
        from infomux.convert.parts import parts_label

        return parts_label(self.parts or (self.path,))

    def open(self) -> BinaryIO:
        """A binary stream over the whole model.bin (the parts joined, not copied)."""
        if len(self.parts) > 1:
            from infomux.convert.parts import open_joined

            return open_joined(self.parts)
        return self.path.open("rb")


class _Ct2Reader:
    def __init__(self, f: BinaryIO, label: str, size: int) -> None:
        self.f, self.label, self.size = f, label, size

    def fail(self, reason: str) -> ModelError:
        return ModelError(f"{self.label}: {reason}")

    def take(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise self.fail("file is truncated; not a complete CTranslate2 model")
        return data

    def unpack(self, fmt: str) -> tuple[int, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def string(self) -> str:
        (n,) = self.unpack("H")
        raw = self.take(n)
        if not raw.endswith(b"\0"):
            raise self.fail("malformed string in model.bin; not a CTranslate2 model")
        return raw[:-1].decode("utf-8", "replace")


def read_ct2_index(
    model_bin: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
) -> Ct2Index:
    """Index a CTranslate2 ``model.bin`` without reading the tensor data.

    ``model_bin`` is one file, or the ordered parts whose concatenation is the file
    (read as one stream: :mod:`infomux.convert.parts`).

    Raises:
        ModelNotFoundError: the file (or a part) does not exist.
        ModelError: the file is not a CTranslate2 model this code can read.
    """
    if isinstance(model_bin, str | os.PathLike):
        parts: tuple[Path, ...] = (Path(model_bin),)
    else:
        parts = tuple(Path(p) for p in model_bin)
    if not parts:
        raise ModelError("no model.bin parts given")
    for part in parts:
        if not part.is_file():
            raise ModelNotFoundError(f"{part}: CTranslate2 model.bin does not exist")
    path = parts[0]
    size = sum(p.stat().st_size for p in parts)
    probe = Ct2Index(path, "", 0, 0, {}, {}, parts)
    with probe.open() as f:
        r = _Ct2Reader(f, probe.label, size)
        (version,) = r.unpack("I")
        if not 5 <= version <= 6:
            raise r.fail(f"unsupported CTranslate2 model format version {version}")
        spec = r.string()
        (revision,) = r.unpack("I")
        (n_vars,) = r.unpack("I")
        if n_vars > 100_000:
            raise r.fail(f"implausible variable count {n_vars}")
        variables: dict[str, Ct2Variable] = {}
        for _ in range(n_vars):
            name = r.string()
            (rank,) = r.unpack("B")
            shape = r.unpack(f"{rank}I") if rank else ()
            dtype, nbytes = r.unpack("B")[0], r.unpack("I")[0]
            if dtype not in CT2_DTYPES:
                raise r.fail(f"variable '{name}' has unknown dtype {dtype}")
            offset = f.tell()
            if offset + nbytes > size:
                raise r.fail(f"file is truncated (variable '{name}')")
            var = Ct2Variable(name, tuple(shape), dtype, offset, nbytes)
            if int(np.prod(shape, dtype=np.int64)) * var.itemsize != nbytes:
                raise r.fail(f"variable '{name}' size {nbytes} does not match shape {shape}")
            variables[name] = var
            f.seek(nbytes, os.SEEK_CUR)
        aliases: dict[str, str] = {}
        if f.tell() < size:
            (n_alias,) = r.unpack("I")
            for _ in range(n_alias):
                alias = r.string()
                aliases[alias] = r.string()
        if f.tell() != size:
            raise r.fail(f"{size - f.tell()} unexpected trailing bytes after the variables")
    return Ct2Index(path, spec, version, revision, variables, aliases, parts, size)


def read_rows(f: BinaryIO, var: Ct2Variable, row0: int, row1: int) -> np.ndarray:
    """Rows ``[row0, row1)`` of a variable (first axis), in its stored dtype.

    Seeks ``f`` (``os.pread`` would leave its position alone, but does not exist on
    Windows); the callers own their file objects.
    """
    row_elems = int(np.prod(var.shape[1:], dtype=np.int64)) if var.shape else 1
    start = var.offset + row0 * row_elems * var.itemsize
    count = (row1 - row0) * row_elems
    f.seek(start)
    data = f.read(count * var.itemsize)
    if len(data) != count * var.itemsize:
        raise ModelError(f"{var.name}: short read from model.bin")
    arr = np.frombuffer(data, dtype=CT2_DTYPES[var.dtype])
    if var.dtype == 5:  # bfloat16: the top half of a float32
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    return arr.reshape((row1 - row0, *var.shape[1:]) if var.shape else (1,))


def read_ct2_vocabulary(src_dir: Path) -> list[str]:
    """The token strings of a CT2 Whisper model (``vocabulary.txt`` or ``.json``)."""
    txt, js = src_dir / "vocabulary.txt", src_dir / "vocabulary.json"
    if txt.is_file():
        lines = txt.read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return lines
    if js.is_file():
        tokens = json.loads(js.read_text(encoding="utf-8"))
        if isinstance(tokens, list) and all(isinstance(t, str) for t in tokens):
            return tokens
        raise ModelError(f"{js}: expected a JSON list of token strings")
    raise ModelNotFoundError(f"{src_dir}: no vocabulary.txt or vocabulary.json")
