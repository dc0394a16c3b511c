"""What a run keeps after it succeeds: ``--no-keep-audio`` drops ``audio.wav``.

A dropped file is taken out of its step's ``outputs`` and the run's ``artifacts``, and
recorded in the step's metadata (``dropped``) and in ``job.history`` (event
``dropped``), so job.json still says it was made and where it went. The step counts
as done; when a later step has to run again and needs it (a resumed run whose
transcript is gone, say), the step is run again first: the input is decoded anew.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infomux.job import JobEnvelope, StepRecord, utc_now

log = logging.getLogger("infomux.retention")

KEEP_AUDIO_KEY = "keep_audio"
"""Run option: False drops audio.wav once the run has succeeded (default True)."""
AUDIO_FILE = "audio.wav"


def drop_after_success(job: JobEnvelope, run_dir: Path) -> list[str]:
    """Drop what the run asked not to keep; return the dropped names (job not saved)."""
    if job.config.get(KEEP_AUDIO_KEY, True) is not False:
        return []
    dropped: list[str] = []
    for record in job.steps:
        if AUDIO_FILE not in record.outputs:
            continue
        with contextlib.suppress(FileNotFoundError):
            (run_dir / AUDIO_FILE).unlink()
        record.outputs = [o for o in record.outputs if o != AUDIO_FILE]
        record.metadata["dropped"] = sorted({*record.metadata.get("dropped", []), AUDIO_FILE})
        dropped.append(AUDIO_FILE)
    if dropped:
        job.artifacts = [a for a in job.artifacts if a not in dropped]
        job.history.append(
            {
                "event": "dropped",
                "at": utc_now(),
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "files": dropped,
            }
        )
        log.info("dropped %s (--no-keep-audio)", ", ".join(dropped))
    return dropped


def needed_again(job: JobEnvelope, record: StepRecord, todo: set[str]) -> bool:
    """Whether a done step that dropped an output must run again because a step in
    ``todo`` (the ones that will run) requires it."""
    if not record.metadata.get("dropped"):
        return False
    from infomux.steps import get_step

    for other in job.steps:
        if other.name in todo:
            try:
                if record.name in get_step(other.name).requires:
                    return True
            except KeyError:
                continue
    return False


# --------------------------------------------------------------------------- deleting runs


def select_runs(
    refs: list[str], *, older_than: str | None = None, status: str | None = None
) -> list[Any]:
    """The runs to delete: those ``refs`` name (all runs when none), created before
    ``older_than`` (ISO UTC) and with ``status`` when given; newest first.

    Raises:
        RunNotFoundError: a ref names no run.
    """
    from infomux import storage

    if refs:
        paths = {storage.resolve_run(ref) for ref in refs}
        entries = [storage.RunEntry(p, storage.load_job(p)) for p in paths]
        entries.sort(key=lambda e: (e.job.created_at, e.job.id), reverse=True)
    else:
        entries = storage.list_runs()
    if older_than is not None:
        entries = [e for e in entries if _utc(e.job.created_at) < _utc(older_than)]
    if status is not None:
        entries = [e for e in entries if str(e.job.status) == status]
    return entries


def _utc(stamp: str) -> str:
    """A created_at stamp in the one form job.json and parse_since write (comparable)."""
    from datetime import UTC, datetime

    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


@dataclass
class DeleteResult:
    """What :func:`delete_runs` did."""

    deleted: list[str] = field(default_factory=list)  # run directories
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (run id, why)


def delete_runs(entries: list[Any]) -> DeleteResult:
    """Delete the runs' rows from the search database, then their directories.

    A run whose lock another process holds is skipped. The rows go first, in one
    transaction: a directory is never gone while its rows remain searchable.

    Raises:
        StoreError: the database is locked or damaged (nothing is deleted then).
    """
    import shutil

    from infomux import storage, store

    result = DeleteResult()
    locks = []
    try:
        for entry in entries:
            lock = storage.RunLock(entry.path)
            try:
                lock.acquire()
            except (storage.RunLockedError, FileNotFoundError) as exc:
                result.skipped.append((entry.job.id, str(exc)))
                continue
            locks.append((entry, lock))
        if locks and store.db_path().exists():
            with store.Store.open() as db:
                db.delete_runs(e.job.id for e, _ in locks)
        for entry, lock in locks:
            lock.release()
            try:
                shutil.rmtree(entry.path)
            except OSError as exc:
                result.skipped.append((entry.job.id, str(exc)))
                continue
            result.deleted.append(str(entry.path))
        storage.fsync_dir(storage.config.runs_dir())
    finally:
        for _, lock in locks:
            lock.release()
    return result
