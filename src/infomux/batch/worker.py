"""What an engine runs where a file is processed: :class:`Worker`, its settings, one file's
task and outcome, and the :class:`Engine` protocol every batch engine implements.

One :class:`Worker` lives in each worker process (local engine) or Ray actor. It keeps the
``resources`` dict that :func:`infomux.pipeline.execute` shares across runs (the loaded
model), so the model is loaded once per worker, however many files it processes
(:attr:`Worker.model_loads` counts the loads). :meth:`Worker.process` takes a run the driver
created (``job.json`` pending), or one a killed worker left behind, and runs every step of
it that is not driver-only; the driver runs the rest (see :mod:`infomux.batch.runner`).

Tasks, outcomes and settings are plain dataclasses of JSON-friendly values: they pickle
across processes and Ray, and outcomes go into ``batch.json`` as they are.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("infomux.batch.worker")

DONE, FAILED, INTERRUPTED = "done", "failed", "interrupted"
""":attr:`FileOutcome.status` values: the worker's steps completed (driver-only steps
are left to the driver), a step failed, or the run was stopped (Ctrl-C, cancel)."""

LOCK_WAIT_SECONDS = 30.0
"""How long :meth:`Worker.process` waits for a run's lock: a worker of a batch that was
killed may still be recording its run as interrupted when a resumed batch starts."""


@dataclass(frozen=True)
class WorkerSettings:
    """What every worker of a batch gets (picklable; the same on every engine).

    The run options themselves are recorded in each run's ``job.json`` by the driver, so
    a worker needs none of them to process a run; they are here for engines that want
    to know (a Ray engine sizing its actors, say).

    Attributes:
        threads: CPU threads per worker (whisper.cpp's threads of one transcription).
        model: the model spec the runs use (None: the default model).
        pipeline: the pipeline name.
        pipeline_file: the pipeline file given, if any.
        run_options: the batch's run options (as recorded in each run).
        data_dir: ``INFOMUX_DATA_DIR`` for the worker (None: the process's own); a Ray
            actor on another node needs the shared data directory.
        verbosity: the CLI's verbosity (-1 quiet, 0 normal, >0 debug) for worker logs.
    """

    threads: int = 1
    model: str | None = None
    pipeline: str = "transcribe"
    pipeline_file: str | None = None
    run_options: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    verbosity: int = 0


@dataclass(frozen=True)
class FileTask:
    """One file to process: its place in the batch and its run directory.

    Attributes:
        index: the file's index in ``batch.json``'s ``files``.
        run_dir: the run directory the driver created (absolute).
        source: the input as given (for messages).
        audio_seconds: the input's duration as probed, if known (for progress).
    """

    index: int
    run_dir: str
    source: str = ""
    audio_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)


@dataclass
class FileOutcome:
    """What processing one file came to (never an exception: a failure is an outcome).

    Attributes:
        index: the task's index.
        run_dir: the task's run directory.
        run_id: the run's id.
        status: :data:`DONE`, :data:`FAILED` or :data:`INTERRUPTED`.
        error: a one-line message when not done.
        audio_seconds: seconds of audio the run decoded (0 when unknown).
        seconds: wall-clock seconds the worker spent on the file.
        worker: where it ran: ``hostname``, ``pid``, ``worker`` (a name), ``threads``.
        model_loads: the worker's model loads so far (1 after its first file).
        started_at, ended_at: ISO 8601 UTC.
    """

    index: int
    run_dir: str
    run_id: str = ""
    status: str = FAILED
    error: str | None = None
    audio_seconds: float = 0.0
    seconds: float = 0.0
    worker: dict[str, Any] = field(default_factory=dict)
    model_loads: int = 0
    started_at: str = ""
    ended_at: str = ""

    @property
    def ok(self) -> bool:
        """Whether the worker's steps completed."""
        return self.status == DONE

    @classmethod
    def failure(
        cls, task: FileTask, error: str, worker: dict[str, Any] | None = None
    ) -> FileOutcome:
        """The outcome of a task its worker could not finish (the worker died, or none
        is left to take it): failed, with ``error`` and where it was (if anywhere)."""
        return cls(
            index=task.index,
            run_dir=task.run_dir,
            run_id=os.path.basename(task.run_dir),
            status=FAILED,
            error=error,
            worker=dict(worker or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (recorded in batch.json)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileOutcome:
        """Read the JSON form back (unknown keys are ignored)."""
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


class Engine(Protocol):
    """Where a batch's files are processed; engines differ in nothing else.

    ``run`` hands every task to a :class:`Worker` somewhere and calls ``on_outcome`` in
    the calling (driver) thread as each file ends, in any order; it returns when every
    task has an outcome, or soon after ``cancel`` is set (tasks not started then get no
    outcome). A Ctrl-C in the driver thread stops the workers and is raised again.
    """

    name: str

    def describe(self) -> dict[str, Any]:
        """What batch.json records under ``engine`` (name, workers, threads, ...)."""
        ...

    def run(
        self,
        tasks: Sequence[FileTask],
        on_outcome: Callable[[FileOutcome], None],
        cancel: threading.Event,
    ) -> None:
        """Process ``tasks``; ``on_outcome`` once per finished task, in the driver thread."""
        ...

    def close(self) -> None:
        """Stop the workers and free what the engine holds (idempotent)."""
        ...


class Worker:
    """Processes files one at a time, keeping the loaded model between them.

    Args:
        settings: the batch's worker settings.
        name: how outcomes name this worker (e.g. ``local-1``); default host:pid.
    """

    def __init__(self, settings: WorkerSettings, *, name: str | None = None) -> None:
        self.settings = settings
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.resources: dict[str, Any] = {}
        self.files = 0
        self._models: set[int] = set()
        if settings.data_dir:
            from infomux.config import ENV_DATA_DIR

            os.environ[ENV_DATA_DIR] = settings.data_dir

    @property
    def model_loads(self) -> int:
        """How many models this worker has loaded (each kept for the next files)."""
        return len(self._models)

    def _count_models(self) -> None:
        from infomux.engine import Model

        for value in self.resources.values():
            if isinstance(value, Model):
                self._models.add(id(value))

    def process(
        self,
        task: FileTask,
        *,
        cancel: threading.Event | None = None,
        on_progress: Callable[[str, int], None] | None = None,
    ) -> FileOutcome:
        """Run the steps of ``task``'s run that are not driver-only; never raises for
        the file's own failure (KeyboardInterrupt is raised again after recording).

        A fresh run is executed; a run that was started before (interrupted, failed,
        left ``running`` by a killed worker) is resumed as ``infomux resume`` does
        (:func:`infomux.pipeline.prepare_resume`). A run whose worker steps are all done
        is left as it is.
        """
        from infomux.job import utc_now

        started, started_at = time.perf_counter(), utc_now()
        outcome = FileOutcome(index=task.index, run_dir=task.run_dir, started_at=started_at)
        outcome.run_id = Path(task.run_dir).name
        try:
            outcome.audio_seconds = self._run(Path(task.run_dir), cancel, on_progress)
            outcome.status = DONE
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            outcome.status, outcome.error = _describe_failure(exc, cancel)
        finally:
            self.files += 1
            self._count_models()
            outcome.seconds = round(time.perf_counter() - started, 3)
            outcome.ended_at = utc_now()
            outcome.model_loads = self.model_loads
            outcome.worker = {
                "worker": self.name,
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "threads": self.settings.threads,
            }
        return outcome

    def _run(
        self,
        run_dir: Path,
        cancel: threading.Event | None,
        on_progress: Callable[[str, int], None] | None,
    ) -> float:
        """Process one run under its lock; return the seconds of audio it decoded."""
        from infomux import pipeline, storage

        with _wait_for_lock(run_dir, cancel):
            job = storage.load_job(run_dir)
            if pipeline.worker_steps_to_run(job, run_dir):
                if _started(job):
                    todo = pipeline.prepare_resume(job, run_dir)
                    log.info("%s: resuming (%s)", job.id, ", ".join(r.name for r in todo))
                pipeline.execute(
                    job,
                    run_dir,
                    resources=self.resources,
                    on_progress=on_progress,
                    cancel=cancel,
                    defer_driver_only=True,
                )
            else:
                log.debug("%s: worker steps already done", job.id)
        audio = job.audio or {}
        return float(audio.get("decoded_duration") or audio.get("duration") or 0.0)

    def close(self) -> None:
        """Close the loaded models (the worker can still be used: they load again)."""
        from infomux import pipeline

        pipeline.close_resources(self.resources)


def _started(job: Any) -> bool:
    """Whether any step of the run was ever started (then it is resumed, not begun)."""
    return any(r.started_at is not None or r.attempts for r in job.steps)


class _wait_for_lock:
    """The run's lock, waiting up to :data:`LOCK_WAIT_SECONDS` while another process
    (a stopping worker of a killed batch) still holds it."""

    def __init__(self, run_dir: Path, cancel: threading.Event | None) -> None:
        from infomux import storage

        self._lock = storage.RunLock(run_dir)
        self._cancel = cancel

    def __enter__(self) -> _wait_for_lock:
        from infomux.storage import RunLockedError

        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                self._lock.acquire()
                return self
            except RunLockedError:
                if time.monotonic() >= deadline or (self._cancel and self._cancel.is_set()):
                    raise
                time.sleep(0.25)

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def _describe_failure(exc: BaseException, cancel: threading.Event | None) -> tuple[str, str]:
    """The outcome status and one-line message of a file's exception."""
    from infomux.errors import InfomuxError, TranscriptionCancelled

    if isinstance(exc, InfomuxError):
        message = str(exc)
    elif isinstance(exc, OSError) and exc.strerror:
        message = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    else:
        message = f"internal error: {type(exc).__name__}: {exc}"
    message = " ".join(message.split())
    if isinstance(exc, TranscriptionCancelled) or (cancel is not None and cancel.is_set()):
        return INTERRUPTED, message
    return FAILED, message
