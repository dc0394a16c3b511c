"""``--output-dir DIR``: the chosen outputs of a run, put beside each other in DIR.

What is exported: the run's artifacts that are files at the top of the run directory
(the transcripts, a captioned video, ...), except ``audio.wav``, the spooled copy of a
streamed input (``input.<ext>``) and ``frames.json`` (whose frames stay in the run dir).
``transcript.<fmt>`` becomes ``<stem>.<fmt>``, another artifact ``<name>`` becomes
``<stem>.<name>``, where ``<stem>`` is the input's file name without its extension (for
a URL the last part of its path, for standard input ``stdin``).

A file is hard-linked when DIR is on the run directory's file system (no copy, no
space), else copied (to a temporary name in DIR, then renamed: never half a file).
Nothing in DIR is overwritten: when one of a run's names is taken, all of that run's
files are named ``<stem>.<run-id>.<...>``; only the run's own earlier exports are
replaced (a resumed run, ``resume --from-step``). Each export is recorded in ``job.json``
(``exports``: the run-dir file, the path written, ``hardlink`` or ``copy``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from infomux.errors import InfomuxError
from infomux.job import JobEnvelope, utc_now

_NO_LINKS = (errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES, errno.EOPNOTSUPP)
NOT_EXPORTED = frozenset({"audio.wav", "frames.json"})
OUTPUT_DIR_KEY = "output_dir"


class ExportError(InfomuxError):
    """An output could not be put into the output directory."""


def input_stem(job: JobEnvelope) -> str:
    """The name exported files start with (see the module)."""
    kind = getattr(job.input, "kind", None)
    if kind == "stdin":
        return "stdin"
    if kind == "url" and job.input.source:
        parts = urlsplit(job.input.source)
        name = PurePosixPath(parts.path).name or parts.hostname or "download"
    else:
        name = Path(job.input.source or job.input.path).name
    stem = Path(name).stem or name
    stem = re.sub(r"[^\w.+-]", "_", stem).strip(".") or "input"
    return stem


def chosen_outputs(job: JobEnvelope, run_dir: Path) -> list[str]:
    """The run-dir files ``--output-dir`` exports (see the module)."""
    copy = getattr(job.input, "copy", None)
    chosen = []
    for name in job.artifacts:
        if "/" in name or name in NOT_EXPORTED or name == copy:
            continue
        if (run_dir / name).is_file():
            chosen.append(name)
    return chosen


def _target_name(stem: str, name: str) -> str:
    if name.startswith("transcript."):
        return f"{stem}.{name.removeprefix('transcript.')}"
    return f"{stem}.{name}"


def _place(source: Path, target: Path, *, replace: bool = False) -> str:
    """Hard-link (same file system) or copy ``source`` to a temp name, then rename it to
    ``target`` (never over an existing file unless ``replace``); 'hardlink' or 'copy'."""
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    try:
        os.link(source, temp)
        method = "hardlink"
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, *_NO_LINKS):
            raise
        shutil.copyfile(source, temp)
        with open(temp, "rb+") as fh:
            os.fsync(fh.fileno())
        method = "copy"
    if replace:
        os.replace(temp, target)
        return method
    try:
        try:
            # link() does not replace: an existing target (a race) keeps its content
            os.link(temp, target)
        except OSError as exc:
            if exc.errno not in _NO_LINKS:
                raise
            if target.exists():  # a file system without hard links: checked, then renamed
                raise FileExistsError(errno.EEXIST, "exists", str(target)) from None
            os.replace(temp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    return method


def export_outputs(job: JobEnvelope, run_dir: Path, dest: str | os.PathLike[str]) -> list[dict]:
    """Put the chosen outputs of a completed run into ``dest``; record them in
    ``job.exports`` (job not saved) and return the new records.

    Raises:
        ExportError: ``dest`` cannot be created or written.
    """
    directory = Path(dest).expanduser().absolute()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create output dir {directory}: {exc.strerror or exc}") from None
    names = chosen_outputs(job, run_dir)
    stem = input_stem(job)
    ours = {e.get("path") for e in job.exports}  # this run's earlier exports (a resume)
    targets = {n: directory / _target_name(stem, n) for n in names}
    if any(t.exists() and str(t) not in ours for t in targets.values()):
        targets = {n: directory / _target_name(f"{stem}.{job.id}", n) for n in names}
    records: list[dict[str, Any]] = []
    for name, target in targets.items():
        try:
            method = _place(run_dir / name, target, replace=str(target) in ours)
        except FileExistsError:
            raise ExportError(f"output dir {directory}: {target.name} exists already") from None
        except OSError as exc:
            raise ExportError(
                f"cannot write {target} (output dir): {exc.strerror or exc}"
            ) from None
        records.append({"file": name, "path": str(target), "method": method, "at": utc_now()})
    job.exports.extend(records)
    return records
