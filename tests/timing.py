"""Wall-clock checks that hold on a loaded machine.

A time is never compared with an absolute number: each test measures a reference in
the same process, at the same moment (what the code must not do, such as hashing the
whole file, or a bigger piece of the same work), and bounds the time it checks by a
multiple of it, so that a machine slowed down for both keeps the ratio.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def best_seconds(fn: Callable[..., Any], *args: Any, repeat: int = 5) -> float:
    """The shortest of ``repeat`` timed calls of ``fn(*args)`` (the least disturbed one)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - started)
    return best


def sha256_of(path: Path) -> str:
    """Hash the whole file: the reference for "does not read the whole file"."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
