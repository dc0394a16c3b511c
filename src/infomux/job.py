"""The job envelope: what ``job.json`` holds, as plain dataclasses.

This module is data only: no file I/O (see :mod:`infomux.storage`), no heavy
imports. Every class round-trips through ``to_dict()`` / ``from_dict()``, and
the dict form is what ``src/infomux/schema/job.schema.json`` describes.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from infomux._version import __version__

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "job.schema.json"


class JobStatus(StrEnum):
    """Status of a whole run."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class StepStatus(StrEnum):
    """Status of one step of a run."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


def utc_now() -> str:
    """Return the current time as ISO 8601 UTC, e.g. ``2025-01-31T12:00:00.123456Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime:
    """Parse a timestamp written by :func:`utc_now` (any ISO 8601 form is accepted)."""
    return datetime.fromisoformat(value)


def host_info() -> dict[str, Any]:
    """Describe this machine and process (recorded in ``job.json`` as ``host``)."""
    return {
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "os": platform.system(),
        "os_release": platform.release(),
        "os_version": platform.version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "python_executable": sys.executable,
    }


@dataclass
class InputFile:
    """The media a run was made from.

    A local file: ``path`` (absolute), its ``sha256`` and ``size_bytes``. Media read as a
    stream (standard input ``-``, an ``http(s)://`` URL, a pipe or FIFO) is hashed while it
    is read to its end and spooled into the run directory: ``kind`` says which
    (``stdin``, ``url``, ``pipe``; None for a local file), ``source`` what the user gave
    (``-``, the URL, the pipe's path), ``copy`` the spooled file (relative to the run
    dir; ``path`` is its absolute path), ``content_type`` the HTTP Content-Type.
    These fields are absent from the JSON form of a local file (and of old runs).

    ``digest`` (never in the JSON form): the sha256 still being computed beside the
    run's first steps (:func:`storage.describe_input` with ``beside=True``); ``sha256``
    is filled in from it by :meth:`settle`, which :meth:`to_dict` calls, so no JSON form
    is ever written without it.
    """

    path: str
    sha256: str
    size_bytes: int
    kind: str | None = None
    source: str | None = None
    copy: str | None = None
    content_type: str | None = None
    digest: Future[str] | None = field(default=None, repr=False, compare=False)

    OPTIONAL = ("kind", "source", "copy", "content_type")

    @property
    def is_stream(self) -> bool:
        """Whether the input was read once as a stream (its source cannot be re-read)."""
        return self.kind is not None and self.kind != "file"

    @property
    def hashing(self) -> bool:
        """Whether the sha256 is still being computed (see ``digest``)."""
        return self.digest is not None

    def settle(self) -> None:
        """Wait for a sha256 still being computed and record it (raises what hashing
        raised)."""
        if self.digest is not None:
            self.sha256 = self.digest.result()
            self.digest = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (waits for a sha256 still being computed)."""
        self.settle()
        data: dict[str, Any] = {
            "path": self.path,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
        }
        for key in self.OPTIONAL:
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputFile:
        """Build from the JSON form."""
        return cls(
            path=data["path"],
            sha256=data["sha256"],
            size_bytes=int(data["size_bytes"]),
            **{k: data.get(k) for k in cls.OPTIONAL},
        )


@dataclass
class StepAttempt:
    """An earlier attempt of a step, kept when the step is run again (audit history)."""

    status: StepStatus
    started_at: str | None
    completed_at: str | None
    duration_seconds: float | None
    error: str | None
    outputs: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "status": str(self.status),
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "duration_seconds": self.duration_seconds,
            "error": self.error,
            "outputs": list(self.outputs),
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepAttempt:
        """Build from the JSON form."""
        return cls(
            status=StepStatus(data["status"]),
            started_at=data.get("started_at"),
            completed_at=data.get("completed_at"),
            duration_seconds=data.get("duration_seconds"),
            error=data.get("error"),
            outputs=list(data.get("outputs", [])),
            metadata=dict(data.get("metadata", {})),
        )


@dataclass
class StepRecord:
    """One step of a run: its current state plus the history of earlier attempts."""

    name: str
    status: StepStatus = StepStatus.PENDING
    started_at: str | None = None
    completed_at: str | None = None
    duration_seconds: float | None = None
    error: str | None = None
    outputs: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    attempts: list[StepAttempt] = field(default_factory=list)

    def archive_attempt(self) -> None:
        """Move the current state into :attr:`attempts` and reset to pending.

        Does nothing for a step that never started.
        """
        if self.status == StepStatus.PENDING and self.started_at is None:
            return
        self.attempts.append(
            StepAttempt(
                status=self.status,
                started_at=self.started_at,
                completed_at=self.completed_at,
                duration_seconds=self.duration_seconds,
                error=self.error,
                outputs=list(self.outputs),
                metadata=dict(self.metadata),
            )
        )
        self.status = StepStatus.PENDING
        self.started_at = self.completed_at = None
        self.duration_seconds = None
        self.error = None
        self.outputs = []
        self.metadata = {}

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "name": self.name,
            "status": str(self.status),
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "duration_seconds": self.duration_seconds,
            "error": self.error,
            "outputs": list(self.outputs),
            "metadata": dict(self.metadata),
            "attempts": [a.to_dict() for a in self.attempts],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepRecord:
        """Build from the JSON form."""
        return cls(
            name=data["name"],
            status=StepStatus(data["status"]),
            started_at=data.get("started_at"),
            completed_at=data.get("completed_at"),
            duration_seconds=data.get("duration_seconds"),
            error=data.get("error"),
            outputs=list(data.get("outputs", [])),
            metadata=dict(data.get("metadata", {})),
            attempts=[StepAttempt.from_dict(a) for a in data.get("attempts", [])],
        )


@dataclass
class JobEnvelope:
    """Everything ``job.json`` records about one run.

    The first block of fields is the envelope proper; the second is what makes a
    run reproducible (versions, model, decoding options, audio, host). Steps fill
    ``environment``, ``model``, ``options`` and ``audio`` as they learn them.

    ``config`` holds the run's options as requested (pipeline, model spec,
    language, threads, formats, vad, word_timestamps); ``infomux resume`` reuses it.
    """

    id: str
    created_at: str
    updated_at: str
    status: JobStatus
    input: InputFile
    steps: list[StepRecord]
    artifacts: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    # reproducibility
    schema_version: int = SCHEMA_VERSION
    infomux_version: str = __version__
    pipeline: str = ""
    host: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    audio: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    # the resolved step graph (name, description, source, steps: id, step, needs,
    # options); None in runs recorded before pipelines were graphs
    graph: dict[str, Any] | None = None
    # what --output-dir put where: {file, path, method: hardlink|copy, at}; absent if none
    exports: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def new(
        cls,
        run_id: str,
        input_file: InputFile,
        *,
        pipeline: str,
        steps: list[str],
        config: dict[str, Any] | None = None,
        graph: dict[str, Any] | None = None,
    ) -> JobEnvelope:
        """Create a pending job whose steps are all pending."""
        now = utc_now()
        host = host_info()
        return cls(
            id=run_id,
            created_at=now,
            updated_at=now,
            status=JobStatus.PENDING,
            input=input_file,
            steps=[StepRecord(name=name) for name in steps],
            config=dict(config or {}),
            pipeline=pipeline,
            host=host,
            environment={"infomux": __version__, "python": host["python_version"]},
            history=[
                {"event": "created", "at": now, "hostname": host["hostname"], "pid": host["pid"]}
            ],
            graph=graph,
        )

    def step(self, name: str) -> StepRecord:
        """Return the record of step ``name``; raise KeyError if the run has no such step."""
        for record in self.steps:
            if record.name == name:
                return record
        raise KeyError(name)

    def add_artifacts(self, names: list[str]) -> None:
        """Append artifact names (relative to the run dir) not already listed."""
        for name in names:
            if name not in self.artifacts:
                self.artifacts.append(name)

    def touch(self) -> None:
        """Set ``updated_at`` to now."""
        self.updated_at = utc_now()

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (key order is the order in ``job.json``)."""
        data: dict[str, Any] = {
            "id": self.id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "status": str(self.status),
            "input": self.input.to_dict(),
            "steps": [s.to_dict() for s in self.steps],
            "artifacts": list(self.artifacts),
            "config": dict(self.config),
            "error": self.error,
            "schema_version": self.schema_version,
            "infomux_version": self.infomux_version,
            "pipeline": self.pipeline,
            "host": dict(self.host),
            "environment": dict(self.environment),
            "model": dict(self.model) if self.model is not None else None,
            "options": dict(self.options) if self.options is not None else None,
            "audio": dict(self.audio) if self.audio is not None else None,
            "history": [dict(h) for h in self.history],
            "graph": dict(self.graph) if self.graph is not None else None,
        }
        if self.exports:
            data["exports"] = [dict(e) for e in self.exports]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobEnvelope:
        """Build from the JSON form.

        Raises:
            ValueError: a required key is missing or a status is unknown.
        """
        try:
            return cls(
                id=data["id"],
                created_at=data["created_at"],
                updated_at=data["updated_at"],
                status=JobStatus(data["status"]),
                input=InputFile.from_dict(data["input"]),
                steps=[StepRecord.from_dict(s) for s in data["steps"]],
                artifacts=list(data.get("artifacts", [])),
                config=dict(data.get("config", {})),
                error=data.get("error"),
                schema_version=int(data.get("schema_version", SCHEMA_VERSION)),
                infomux_version=data.get("infomux_version", ""),
                pipeline=data.get("pipeline", ""),
                host=dict(data.get("host", {})),
                environment=dict(data.get("environment", {})),
                model=data.get("model"),
                options=data.get("options"),
                audio=data.get("audio"),
                history=list(data.get("history", [])),
                graph=data.get("graph"),
                exports=list(data.get("exports", [])),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed job: {exc!r}") from exc
