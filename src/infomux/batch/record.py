"""The batch record: ``batch.json`` in ``config.data_dir()/batches/<batch-id>/``.

It says what the batch was asked to do (inputs, manifest, pipeline, options, engine with
its workers × threads), what became of each file (its run id and status, the worker
that processed it, how long it took, the error) and the totals and timings. It is written
atomically (:func:`infomux.storage.atomic_write_json`) on every change, by the driver
only, so a reader (or a batch killed at any moment) always sees a whole file; ``infomux
batch --resume BATCH`` reads it back (:func:`load_batch`).

File statuses: ``pending`` (no worker has it yet), ``running`` (handed to a worker),
``completed`` (every step, the driver-only ones too), ``failed``, ``interrupted``,
``skipped`` (not media; no run directory).
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infomux.errors import InfomuxError

BATCH_FILE = "batch.json"
BATCH_VERSION = 1
BATCH_ID_RE = re.compile(r"^batch-\d{8}-\d{6}-[0-9a-f]{6}$")

PENDING, RUNNING, COMPLETED, FAILED, INTERRUPTED, SKIPPED = (
    "pending",
    "running",
    "completed",
    "failed",
    "interrupted",
    "skipped",
)
TO_REDO = frozenset({PENDING, RUNNING, FAILED, INTERRUPTED})
"""File statuses ``--resume`` processes again."""


class BatchNotFoundError(InfomuxError):
    """No batch matches the reference given."""


def batches_dir() -> Path:
    """Where batch records live: ``config.data_dir()/batches``."""
    from infomux import config

    return config.data_dir() / "batches"


def new_batch_id(now: datetime | None = None) -> str:
    """A fresh batch id ``batch-YYYYMMDD-HHMMSS-xxxxxx`` (UTC, 6 random hex chars)."""
    now = now or datetime.now(UTC)
    return f"batch-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


@dataclass
class BatchFile:
    """One input of the batch and what became of it.

    Attributes:
        index: its place in ``files``.
        path: the input (absolute).
        origin: ``argument``, ``directory DIR`` or ``manifest FILE:LINE``.
        options: run options for this file only (manifest).
        status: see the module docstring.
        skipped: why it was skipped (status ``skipped``).
        run_id, run_dir: its run, once created.
        error: one line, when failed or interrupted.
        audio_seconds: the duration probed before the batch started (None: unknown).
        decoded_seconds: the seconds of audio its run decoded.
        outcome: the worker's :class:`~infomux.batch.worker.FileOutcome` (JSON form).
        driver_seconds: seconds the driver spent on its driver-only steps.
        attempts: how many times it was handed to a worker.
    """

    index: int
    path: str
    origin: str = "argument"
    options: dict[str, Any] = field(default_factory=dict)
    status: str = PENDING
    skipped: str | None = None
    run_id: str | None = None
    run_dir: str | None = None
    error: str | None = None
    audio_seconds: float | None = None
    decoded_seconds: float | None = None
    outcome: dict[str, Any] | None = None
    driver_seconds: float | None = None
    attempts: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchFile:
        """Read the JSON form (unknown keys ignored: newer records stay readable)."""
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class BatchRecord:
    """A whole batch (``batch.json``); :meth:`save` after every change.

    Attributes:
        id: the batch id (its directory's name).
        status: ``running``, ``completed`` (every file completed or skipped),
            ``failed`` (some failed), ``interrupted``.
        inputs: the INPUT arguments as given; manifest: the manifest given (absolute).
        pipeline, pipeline_file: what the runs run.
        options: the batch's run options (each run records its own in job.json).
        explicit: the options given as flags (they win over a pipeline file's);
            steps: ``--steps``; both used again for the runs ``--resume`` creates.
        engine: the engine's description (name, workers, threads per worker, ...).
        files: one :class:`BatchFile` per input, skipped ones included.
        totals: counts by status, audio hours done; timings: started/ended, seconds.
        history: ``started`` and each ``resumed``, with host and pid.
    """

    id: str
    directory: Path
    status: str = RUNNING
    created_at: str = ""
    updated_at: str = ""
    inputs: list[str] = field(default_factory=list)
    manifest: str | None = None
    pipeline: str = "transcribe"
    pipeline_file: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    explicit: list[str] = field(default_factory=list)
    steps: list[str] | None = None
    engine: dict[str, Any] = field(default_factory=dict)
    files: list[BatchFile] = field(default_factory=list)
    totals: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    infomux_version: str = ""

    @classmethod
    def new(cls, root: Path | None = None, **fields: Any) -> BatchRecord:
        """A new batch with a fresh id and directory (created), not yet saved."""
        from infomux._version import __version__
        from infomux.job import utc_now

        root = root or batches_dir()
        root.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            batch_id = new_batch_id()
            try:
                (root / batch_id).mkdir()
            except FileExistsError:
                continue
            now = utc_now()
            record = cls(
                id=batch_id,
                directory=root / batch_id,
                created_at=now,
                updated_at=now,
                infomux_version=__version__,
                **fields,
            )
            record.event("started")
            return record
        raise InfomuxError(f"could not create a unique batch directory in {root}")

    @property
    def path(self) -> Path:
        """The ``batch.json`` file."""
        return self.directory / BATCH_FILE

    def event(self, name: str, **extra: Any) -> None:
        """Add a history event (``started``, ``resumed``, ``interrupted``...)."""
        from infomux.job import utc_now

        self.history.append(
            {"event": name, "at": utc_now(), "hostname": socket.gethostname(), "pid": os.getpid()}
            | extra
        )

    def count(self) -> dict[str, Any]:
        """Recompute ``totals``: files by status, audio seconds and hours done."""
        by_status = {s: 0 for s in (PENDING, RUNNING, COMPLETED, FAILED, INTERRUPTED, SKIPPED)}
        for item in self.files:
            by_status[item.status] = by_status.get(item.status, 0) + 1
        done_audio = sum(f.decoded_seconds or 0.0 for f in self.files if f.status == COMPLETED)
        total_audio = sum(f.audio_seconds or 0.0 for f in self.files if f.status != SKIPPED)
        self.totals = {
            "files": len(self.files),
            "to_process": len(self.files) - by_status[SKIPPED],
            **by_status,
            "audio_seconds_done": round(done_audio, 3),
            "audio_hours_done": round(done_audio / 3600, 4),
            "audio_seconds_total": round(total_audio, 3),
        }
        return self.totals

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of ``batch.json``."""
        return {
            "batch_version": BATCH_VERSION,
            "id": self.id,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "infomux_version": self.infomux_version,
            "inputs": list(self.inputs),
            "manifest": self.manifest,
            "pipeline": self.pipeline,
            "pipeline_file": self.pipeline_file,
            "options": self.options,
            "explicit": sorted(self.explicit),
            "steps": self.steps,
            "engine": self.engine,
            "totals": self.count(),
            "timings": self.timings,
            "files": [f.to_dict() for f in self.files],
            "history": self.history,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], directory: Path) -> BatchRecord:
        """Read ``batch.json``'s JSON form (from :meth:`to_dict`)."""
        return cls(
            id=data["id"],
            directory=directory,
            status=data.get("status", RUNNING),
            created_at=data.get("created_at", ""),
            updated_at=data.get("updated_at", ""),
            inputs=list(data.get("inputs") or []),
            manifest=data.get("manifest"),
            pipeline=data.get("pipeline", "transcribe"),
            pipeline_file=data.get("pipeline_file"),
            options=dict(data.get("options") or {}),
            explicit=list(data.get("explicit") or []),
            steps=data.get("steps"),
            engine=dict(data.get("engine") or {}),
            files=[BatchFile.from_dict(f) for f in data.get("files") or []],
            totals=dict(data.get("totals") or {}),
            timings=dict(data.get("timings") or {}),
            history=list(data.get("history") or []),
            infomux_version=data.get("infomux_version", ""),
        )

    def save(self) -> None:
        """Write ``batch.json`` atomically (and durably)."""
        from infomux import storage
        from infomux.job import utc_now

        self.updated_at = utc_now()
        storage.atomic_write_json(self.path, self.to_dict())


def resolve_batch(ref: str, root: Path | None = None) -> Path:
    """The directory of batch ``ref``: an id, a unique id prefix, ``latest``, or a path
    to the batch directory or its ``batch.json``.

    Raises:
        BatchNotFoundError: no such batch, or the prefix is ambiguous.
    """
    root = root or batches_dir()
    candidate = Path(ref).expanduser()
    if candidate.name == BATCH_FILE and candidate.is_file():
        return candidate.parent
    if (candidate / BATCH_FILE).is_file() and (os.sep in ref or ref.startswith(".")):
        return candidate
    known = sorted(p.name for p in root.glob("batch-*") if (p / BATCH_FILE).is_file())
    if ref == "latest":
        if not known:
            raise BatchNotFoundError(f"no batches in {root}")
        return root / known[-1]
    matches = [name for name in known if name == ref] or [n for n in known if n.startswith(ref)]
    if len(matches) == 1:
        return root / matches[0]
    if not matches:
        raise BatchNotFoundError(f"no batch {ref!r} in {root}")
    raise BatchNotFoundError(f"batch {ref!r} is ambiguous ({len(matches)} batches match)")


def load_batch(ref: str | Path) -> BatchRecord:
    """Read a batch record (see :func:`resolve_batch` for ``ref``).

    Raises:
        BatchNotFoundError: no such batch, or an unreadable ``batch.json``.
    """
    import json

    directory = resolve_batch(str(ref))
    try:
        data = json.loads((directory / BATCH_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BatchNotFoundError(f"cannot read {directory / BATCH_FILE}: {exc}") from None
    return BatchRecord.from_dict(data, directory)
