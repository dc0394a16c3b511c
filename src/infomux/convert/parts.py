"""A CTranslate2 ``model.bin`` split into ordered parts, read as one file without joining it.

Some models are published split across several files or packages (PyPI limits the size
of one upload): ``model.bin.part1``, ``model.bin.part2``, ... whose concatenation is the
``model.bin``. :class:`JoinedReader` reads the parts as one seekable stream, so the
converter never writes the joined file; :class:`ModelParts` says which files, in which
order, and what the joined stream must measure (total size, sha256), and
:func:`check_parts` checks what can be checked before reading (each part exists, the
sizes add up, the first part starts a CTranslate2 model). The sha256 of the joined
stream (and of each part) is computed by the converter in its one pass over the data
and compared after it (:func:`infomux.convert.convert_ct2_to_ggml`).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from infomux.errors import ModelError, ModelNotFoundError

_PART_RE = re.compile(r"^(?P<stem>.+?)[._-]?part(?P<n>\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class ModelParts:
    """The ordered files whose concatenation is one CTranslate2 ``model.bin``.

    ``size`` and ``sha256``, when given, are what the joined stream must measure;
    ``part_sizes``/``part_sha256`` (optional, one per part) let a mismatch name the part.
    """

    paths: tuple[Path, ...]
    size: int | None = None
    sha256: str | None = None
    part_sizes: tuple[int, ...] | None = None
    part_sha256: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        """How messages name the joined model (:func:`parts_label`)."""
        return parts_label(self.paths)


def parts_label(paths: Sequence[Path]) -> str:
    """``dir/model.bin.part1+model.bin.part2`` (parts side by side), else ``a + b``."""
    if len(paths) == 1:
        return str(paths[0])
    if len({p.parent for p in paths}) == 1:
        return f"{paths[0].parent}/" + "+".join(p.name for p in paths)
    return " + ".join(str(p) for p in paths)


def part_number(path: Path) -> int | None:
    """The N of a ``...partN`` file name (``model.bin.part2`` -> 2), else None."""
    m = _PART_RE.match(path.name)
    return int(m.group("n")) if m else None


def sorted_parts(paths: Sequence[Path]) -> tuple[Path, ...]:
    """Order part files by the number in their names (``part1``, ``part2``, ... ``part10``).

    Raises:
        ModelError: a name carries no part number, numbers repeat, or one is missing.
    """
    numbered: list[tuple[int, Path]] = []
    for p in paths:
        n = part_number(p)
        if n is None:
            raise ModelError(f"{p}: not a part file (expected a name ending in part1, part2, ...)")
        numbered.append((n, p))
    numbered.sort()
    numbers = [n for n, _ in numbered]
    if len(set(numbers)) != len(numbers):
        raise ModelError(f"part numbers repeat: {', '.join(str(p) for _, p in numbered)}")
    first = numbers[0] if numbers else 1
    gaps = sorted(set(range(first, first + len(numbers))) - set(numbers))
    if first not in (0, 1) or gaps:
        absent = gaps or list(range(1 if first else 0, first))
        raise ModelError(f"part {absent[0]} of the model is missing (have parts {numbers})")
    return tuple(p for _, p in numbered)


def check_parts(parts: ModelParts) -> int:
    """Check the parts before reading them; return the joined size.

    Raises:
        ModelNotFoundError: a part does not exist (the message names it).
        ModelError: a part is not a file, a part's or the total size is not what is
            expected, or the first part does not start a CTranslate2 model (the parts
            are out of order).
    """
    if not parts.paths:
        raise ModelError("no model parts given")
    sizes = []
    for i, path in enumerate(parts.paths, 1):
        if not path.exists():
            raise ModelNotFoundError(f"model part {i} of {len(parts.paths)} is missing: {path}")
        if not path.is_file():
            raise ModelError(f"model part {i} of {len(parts.paths)} is not a file: {path}")
        sizes.append(path.stat().st_size)
    if parts.part_sizes is not None:
        for i, (path, got, want) in enumerate(
            zip(parts.paths, sizes, parts.part_sizes, strict=True), 1
        ):
            if got != want:
                raise ModelError(
                    f"model part {i} ({path}) has {got} bytes, expected {want}: "
                    "truncated or not the right file"
                )
    total = sum(sizes)
    if parts.size is not None and total != parts.size:
        raise ModelError(
            f"the {len(sizes)} parts of {parts.label} add up to {total} bytes, expected "
            f"{parts.size}: a part is missing, truncated or not the right file"
        )
    if len(parts.paths) > 1:
        starts = [_starts_ct2(p) for p in parts.paths]
        if not starts[0]:
            hint = ""
            if any(starts[1:]):
                first = parts.paths[starts.index(True)]
                hint = f"; {first.name} looks like the first part"
            raise ModelError(
                f"{parts.paths[0]}: the first part does not start a CTranslate2 model: "
                f"the parts are out of order or corrupt{hint}"
            )
    return total


def _starts_ct2(path: Path) -> bool:
    """Whether ``path`` begins like a CTranslate2 model.bin (format version, spec name)."""
    try:
        with path.open("rb") as f:
            head = f.read(6)
    except OSError:
        return False
    if len(head) < 6:
        return False
    version, name_len = struct.unpack("<IH", head)
    return 5 <= version <= 6 and 0 < name_len < 256


class JoinedReader(io.RawIOBase):
    """The concatenation of several files as one read-only, seekable binary stream.

    Only one part file is open at a time; nothing is copied or joined on disk.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        super().__init__()
        self._paths = tuple(paths)
        self._starts: list[int] = []
        total = 0
        for p in self._paths:
            self._starts.append(total)
            total += p.stat().st_size
        self._size = total
        self._pos = 0
        self._index = -1
        self._file: io.BufferedReader | None = None

    @property
    def size(self) -> int:
        """Bytes in the joined stream."""
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            pos = self._pos + offset
        elif whence == os.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def _part(self, pos: int) -> int:
        i = len(self._starts) - 1
        while i > 0 and self._starts[i] > pos:
            i -= 1
        return i

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self._size:
            i = self._part(self._pos)
            if i != self._index:
                if self._file is not None:
                    self._file.close()
                self._file = self._paths[i].open("rb")
                self._index = i
            assert self._file is not None
            self._file.seek(self._pos - self._starts[i])
            end = self._starts[i + 1] if i + 1 < len(self._starts) else self._size
            want = min(len(view) - done, end - self._pos)
            n = self._file.readinto(view[done : done + want])
            if not n:
                raise ModelError(f"{self._paths[i]}: changed size while being read")
            done += n
            self._pos += n
        return done

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()


def open_joined(paths: Sequence[Path]) -> io.BufferedReader:
    """A buffered binary stream over the concatenation of ``paths``."""
    return io.BufferedReader(JoinedReader(paths), buffer_size=1 << 16)


def sha256_joined(paths: Sequence[Path]) -> str:
    """sha256 of the concatenation of ``paths`` (streamed, 1 MiB at a time)."""
    h = hashlib.sha256()
    for p in paths:
        with p.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()
