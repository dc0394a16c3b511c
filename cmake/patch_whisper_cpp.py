#!/usr/bin/env python3
"""Apply infomux's patch series (``cpp/patches/*.patch``) to a copy of a whisper.cpp tree.

The source tree is never modified: it is copied (without its models, samples and
bindings) into ``DEST`` and the patches are applied to the copy, in file-name order,
with ``git apply`` (or ``patch -p1`` where git is missing). A copy already patched with
the same series is recognised by the marker file ``.infomux-patches`` and reused as it
is, so incremental builds stay incremental. A patch that is already in the source tree
(its reverse applies) counts as applied.

A patch that does not apply is an error naming it, unless ``--best-effort`` is given
(for a whisper.cpp tree the user points at): then the copy is left unpatched and the
build says so.

Prints two lines on stdout: the path of the tree to build, and the applied patches
(comma-separated file names, or ``none``). Standard library only; used by CMakeLists.txt.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

MARKER = ".infomux-patches"
# Not needed to build the library; the tree's models and samples stay in the source.
IGNORED = ("models", "samples", "bindings", ".git", "build", "examples/*.wasm")


def series_key(source: Path, patches: list[Path]) -> str:
    """A key for the source path and the exact bytes of the patch series."""
    digest = hashlib.sha256(str(source.resolve()).encode())
    for patch in patches:
        digest.update(patch.name.encode() + b"\0" + patch.read_bytes())
    return digest.hexdigest()


def _tool(dest: Path) -> list[str] | None:
    if shutil.which("git"):
        return ["git", "apply", "--whitespace=nowarn"]
    if shutil.which("patch"):
        return ["patch", "-p1", "--forward", "--silent"]
    return None


def _applies(cmd: list[str], patch: Path, dest: Path, *, reverse: bool = False) -> bool:
    args = list(cmd)
    if reverse:
        args.append("--reverse" if args[0] == "git" else "-R")
    args.append("--check" if args[0] == "git" else "--dry-run")
    return _run(args, patch, dest).returncode == 0


def _run(args: list[str], patch: Path, dest: Path) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ)
    # Never let git find a repository above the copy (e.g. infomux's own checkout).
    env["GIT_CEILING_DIRECTORIES"] = str(dest.parent)
    with patch.open("rb") as fh:
        return subprocess.run(args, cwd=dest, stdin=fh, capture_output=True, env=env)


def apply_series(dest: Path, patches: list[Path], *, best_effort: bool) -> list[str]:
    """Apply ``patches`` to ``dest`` in order; return the names of those in the tree."""
    if not patches:
        return []
    cmd = _tool(dest)
    if cmd is None:
        raise RuntimeError("neither git nor patch is installed: cannot apply cpp/patches")
    applied = []
    for i, patch in enumerate(patches):
        if _applies(cmd, patch, dest):
            _apply(cmd, patch, dest)
            applied.append(patch.name)
        elif _carries(cmd, patches[i:], dest):
            return applied + [p.name for p in patches[i:]]  # the source tree had them
        elif best_effort:
            return []
        else:
            raise RuntimeError(
                f"patch {patch.name} does not apply to the whisper.cpp tree in {dest}; "
                "is it the pinned whisper.cpp version?"
            )
    return applied


def _apply(cmd: list[str], patch: Path, dest: Path, *, reverse: bool = False) -> None:
    args = list(cmd)
    if reverse:
        args.append("--reverse" if args[0] == "git" else "-R")
    result = _run(args, patch, dest)
    if result.returncode != 0:
        raise RuntimeError(f"{patch.name}: {result.stderr.decode(errors='replace')}")


def _carries(cmd: list[str], patches: list[Path], dest: Path) -> bool:
    """Whether ``dest`` already has all of ``patches``: they come off, last first, and
    go back on (later patches may touch the context of earlier ones)."""
    removed: list[Path] = []
    for patch in reversed(patches):
        if not _applies(cmd, patch, dest, reverse=True):
            break
        _apply(cmd, patch, dest, reverse=True)
        removed.append(patch)
    for patch in reversed(removed):
        _apply(cmd, patch, dest)
    return len(removed) == len(patches)


def prepare(source: Path, dest: Path, patches: list[Path], *, best_effort: bool) -> list[str]:
    """Make ``dest`` a patched copy of ``source`` (reused when already made)."""
    key = series_key(source, patches)
    marker = dest / MARKER
    if marker.is_file():
        lines = marker.read_text().splitlines()
        if lines and lines[0] == key:
            return [name for name in lines[1:] if name]
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(*IGNORED), symlinks=True)
    try:
        applied = apply_series(dest, patches, best_effort=best_effort)
        if best_effort and patches and not applied:
            # a half-applied series is worse than none: start again from the source
            shutil.rmtree(dest)
            shutil.copytree(source, dest, ignore=shutil.ignore_patterns(*IGNORED), symlinks=True)
    except Exception:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    marker.write_text("\n".join([key, *applied]) + "\n")
    return applied


def main(argv: list[str] | None = None) -> int:
    """Command line: SOURCE DEST PATCH... [--best-effort]."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="whisper.cpp source tree (left untouched)")
    parser.add_argument("dest", type=Path, help="where the patched copy goes")
    parser.add_argument("patches", type=Path, nargs="*", help="patch files, applied in order")
    parser.add_argument(
        "--best-effort", action="store_true", help="leave the copy unpatched if a patch fails"
    )
    args = parser.parse_args(argv)
    patches = sorted(args.patches, key=lambda p: p.name)
    try:
        applied = prepare(args.source, args.dest, patches, best_effort=args.best_effort)
    except (OSError, RuntimeError) as exc:
        print(f"infomux: {exc}", file=sys.stderr)
        return 1
    print(args.dest)
    print(",".join(applied) if applied else "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
