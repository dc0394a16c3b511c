"""Pipelines: named lists of steps, and the runner that executes and records them.

A pipeline is a name and an ordered tuple of step names, kept in a registry
(:func:`register_pipeline`), so pipelines from a config file can be added later
without touching the runner. The runner resolves every step from the step
registry (:mod:`infomux.steps`), records each state change in ``job.json``
(atomically, see :mod:`infomux.storage`) and never deletes what a step produced.

Typical use (what ``infomux run`` does)::

    job, run_dir = create_run(path, pipeline="transcribe", config={...})
    with storage.RunLock(run_dir):
        execute(job, run_dir, resources=resources)
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infomux import storage
from infomux.errors import InfomuxError, StepError, TranscriptionCancelled
from infomux.job import JobEnvelope, JobStatus, StepRecord, StepStatus, host_info, utc_now
from infomux.steps import ProgressCallback, StepContext, StepSpec, get_step

log = logging.getLogger("infomux.pipeline")

DEFAULT_PIPELINE = "transcribe"


class PipelineError(InfomuxError):
    """A pipeline is unknown or malformed."""


class InputChangedError(InfomuxError):
    """The input of a run changed or vanished, and a step that still has to run needs it."""


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Pipeline:
    """A named, ordered list of steps."""

    name: str
    steps: tuple[str, ...]
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {"name": self.name, "steps": list(self.steps), "description": self.description}


_PIPELINES: dict[str, Pipeline] = {}


def register_pipeline(
    name: str, steps: tuple[str, ...] | list[str], description: str = ""
) -> Pipeline:
    """Register (or replace) a pipeline. Steps are checked when the pipeline is used."""
    if not name or not steps:
        raise PipelineError("a pipeline needs a name and at least one step")
    pipeline = Pipeline(name=name, steps=tuple(steps), description=description)
    _PIPELINES[name] = pipeline
    return pipeline


def unregister_pipeline(name: str) -> None:
    """Remove a pipeline (for tests); unknown names are ignored."""
    _PIPELINES.pop(name, None)


def registered_pipelines() -> dict[str, Pipeline]:
    """Return all pipelines by name."""
    return dict(_PIPELINES)


def get_pipeline(name: str) -> Pipeline:
    """Return pipeline ``name``, its steps checked (see :func:`check_steps`).

    Raises:
        PipelineError: unknown pipeline, unknown step, or a step before one it requires.
    """
    try:
        pipeline = _PIPELINES[name]
    except KeyError:
        available = ", ".join(sorted(_PIPELINES)) or "none"
        raise PipelineError(f"unknown pipeline {name!r} (available: {available})") from None
    check_steps(pipeline.steps)
    return pipeline


def check_steps(steps: tuple[str, ...] | list[str]) -> list[StepSpec]:
    """Resolve step names from the registry and check their order.

    Raises:
        PipelineError: a step is unknown, listed twice, or comes before a step it requires.
    """
    specs: list[StepSpec] = []
    seen: set[str] = set()
    for name in steps:
        try:
            spec = get_step(name)
        except KeyError:
            raise PipelineError(f"unknown step {name!r}") from None
        if name in seen:
            raise PipelineError(f"step {name!r} is listed twice")
        missing = [r for r in spec.requires if r not in seen]
        if missing:
            raise PipelineError(f"step {name!r} requires {', '.join(missing)} before it")
        seen.add(name)
        specs.append(spec)
    return specs


register_pipeline(
    "transcribe",
    ("extract_audio", "transcribe"),
    "media → audio.wav → transcript (txt/srt/vtt/json)",
)
register_pipeline("audio", ("extract_audio",), "media → audio.wav (16 kHz mono PCM)")


# --------------------------------------------------------------------------- runs


def create_run(
    input_path: str | os.PathLike[str],
    *,
    pipeline: str = DEFAULT_PIPELINE,
    config: dict[str, Any] | None = None,
    runs_root: Path | None = None,
) -> tuple[JobEnvelope, Path]:
    """Hash the input, create a run directory and write its pending ``job.json``.

    Raises:
        PipelineError: unknown pipeline.
        FileNotFoundError, IsADirectoryError, PermissionError: the input is not a readable file.
    """
    spec = get_pipeline(pipeline)
    input_file = storage.describe_input(input_path)
    run_id, run_dir = storage.create_run_dir(runs_root)
    config = {"pipeline": pipeline, **(config or {})}
    job = JobEnvelope.new(
        run_id, input_file, pipeline=pipeline, steps=list(spec.steps), config=config
    )
    storage.save_job(job, run_dir)
    log.debug("created %s for %s", run_dir, input_file.path)
    return job, run_dir


def step_is_done(record: StepRecord, run_dir: Path) -> bool:
    """Return whether a step completed and all its outputs are still there."""
    return record.status == StepStatus.COMPLETED and all(
        (run_dir / name).exists() for name in record.outputs
    )


def _check_outputs(step: str, outputs: list[str], run_dir: Path) -> list[str]:
    checked = []
    for name in outputs:
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts:
            raise StepError(step, f"output {name!r} is not inside the run directory")
        if not (run_dir / rel).exists():
            raise StepError(step, f"declared output {name!r} was not written")
        checked.append(rel.as_posix())
    return checked


def _finish(record: StepRecord, status: StepStatus, started: float, error: str | None) -> None:
    record.status = status
    record.completed_at = utc_now()
    record.duration_seconds = round(time.perf_counter() - started, 6)
    record.error = error


# prepare() calls still running in the background (e.g. a model load that Ctrl-C
# interrupted the run around): the CLI exits without waiting for them.
_BACKGROUND: set[Future[None]] = set()
_BACKGROUND_LOCK = threading.Lock()


def background_work_pending() -> bool:
    """Whether a step's ``prepare()`` is still running in a background thread."""
    with _BACKGROUND_LOCK:
        return any(not f.done() for f in _BACKGROUND)


def _track(future: Future[None]) -> None:
    with _BACKGROUND_LOCK:
        _BACKGROUND.add(future)

    def forget(done: Future[None]) -> None:
        with _BACKGROUND_LOCK:
            _BACKGROUND.discard(done)

    future.add_done_callback(forget)


def _start_preparations(
    job: JobEnvelope, run_dir: Path, steps: dict[str, Any], ctx: StepContext
) -> tuple[ThreadPoolExecutor | None, dict[str, Future[None]]]:
    """Start ``prepare(ctx)`` of every step to run after the first, in one background thread."""
    todo = [r.name for r in job.steps if not step_is_done(r, run_dir)]
    executor: ThreadPoolExecutor | None = None
    prepared: dict[str, Future[None]] = {}
    for name in todo[1:]:
        prepare = getattr(steps[name], "prepare", None)
        if callable(prepare):
            if executor is None:
                executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="infomux-prepare")
            prepared[name] = executor.submit(prepare, ctx)
            _track(prepared[name])
    return executor, prepared


def _record_stop(
    job: JobEnvelope,
    record: StepRecord | None,
    step_status: StepStatus,
    job_status: JobStatus,
    started: float,
    message: str,
) -> None:
    """Record a failed or interrupted step (if one was running) and the job's status."""
    if record is not None and record.status == StepStatus.RUNNING:
        _finish(record, step_status, started, message)
        job.error = f"{record.name}: {message}"
    else:
        job.error = message
    job.status = job_status


def execute(
    job: JobEnvelope,
    run_dir: Path,
    *,
    resources: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> JobEnvelope:
    """Run every step of ``job`` that is not done yet, recording each state change.

    Completed steps whose outputs still exist are skipped. ``job.json`` is saved
    before each step starts (recording the run as running, the step as running
    and the previous step's completion in one write), when a step fails or is
    interrupted, and when the run ends. Each save is an fsync, so transitions
    that happen at the same moment share one. The caller should hold
    :class:`storage.RunLock` on ``run_dir``.

    Raises:
        StepError: a step failed (job and step are recorded as ``failed``).
        KeyboardInterrupt: interrupted (job and step recorded as ``interrupted``).
        TranscriptionCancelled: cancelled (recorded as ``interrupted``).
        Exception: a bug in a step (recorded as ``failed``, re-raised as is).
    """
    try:
        specs = check_steps([r.name for r in job.steps])
    except PipelineError as exc:
        raise PipelineError(f"run {job.id}: {exc}") from None
    ctx = StepContext(
        job=job,
        run_dir=run_dir,
        options=job.config,
        data=data if data is not None else {},
        resources=resources if resources is not None else {},
        on_progress=on_progress,
        cancel=cancel,
    )

    def save() -> None:
        job.touch()
        storage.save_job(job, run_dir)

    job.status = JobStatus.RUNNING
    job.error = None
    job.host = host_info()
    record: StepRecord | None = None  # the step being worked on
    started = time.perf_counter()
    steps = {spec.name: spec.factory() for spec in specs}
    executor, prepared = _start_preparations(job, run_dir, steps, ctx)
    try:
        for record in job.steps:
            if step_is_done(record, run_dir):
                log.debug("%s: already completed, skipping", record.name)
                continue
            record.archive_attempt()
            record.status = StepStatus.RUNNING
            record.started_at = utc_now()
            started = time.perf_counter()
            save()
            log.debug("%s: started", record.name)
            if record.name in prepared:
                prepared.pop(record.name).result()  # raises what prepare() raised
            result = steps[record.name].run(ctx)
            outputs = _check_outputs(record.name, list(result.outputs), run_dir)
            _finish(record, StepStatus.COMPLETED, started, None)
            record.outputs = outputs
            record.metadata = dict(result.metadata)
            job.add_artifacts(outputs)
            log.debug("%s: completed in %.2f s", record.name, record.duration_seconds or 0.0)
        record = None
        job.status = JobStatus.COMPLETED
        job.error = None
        save()
    except (KeyboardInterrupt, TranscriptionCancelled) as exc:
        # also covers a signal that lands while job.json is being saved
        what = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"cancelled: {exc}"
        _record_stop(job, record, StepStatus.INTERRUPTED, JobStatus.INTERRUPTED, started, what)
        save()
        raise
    except InfomuxError as exc:
        message = exc.message if isinstance(exc, StepError) else str(exc)
        _record_stop(job, record, StepStatus.FAILED, JobStatus.FAILED, started, message)
        save()
        if record is None or (isinstance(exc, StepError) and exc.step_name == record.name):
            raise
        raise StepError(record.name, message) from exc
    except Exception as exc:
        message = f"internal error: {type(exc).__name__}: {exc}"
        _record_stop(job, record, StepStatus.FAILED, JobStatus.FAILED, started, message)
        save()
        raise
    finally:
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
    return job


# --------------------------------------------------------------------------- resume


def steps_to_run(job: JobEnvelope, run_dir: Path) -> list[StepRecord]:
    """Return the steps a resume would run (not completed, or outputs missing)."""
    return [r for r in job.steps if not step_is_done(r, run_dir)]


def prepare_resume(
    job: JobEnvelope,
    run_dir: Path,
    *,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
) -> list[StepRecord]:
    """Get a run ready to be executed again; return the steps that will run.

    The caller holds the run's lock (:class:`storage.RunLock`): that, not the
    recorded host and pid, says no other process works on the run (containers get
    new host names, pids are reused). ``force`` is accepted and ignored. Re-verifies
    the input when a step that reads it has to run, applies explicit ``overrides`` of
    the recorded options (``None`` values are ignored), marks steps left
    ``running`` by a dead process as ``interrupted``, and records the resume in
    ``job.history``. Does not save; :func:`execute` does.

    Raises:
        InputChangedError: the input changed or vanished and is still needed.
        PipelineError: the run names a step that no longer exists.
    """
    del force  # kept for callers of the old signature; the run lock decides
    specs = {s.name: s for s in check_steps([r.name for r in job.steps])}
    for record in job.steps:
        if record.status == StepStatus.RUNNING:
            record.status = StepStatus.INTERRUPTED
            record.error = (
                f"abandoned: process {job.host.get('pid')} on {job.host.get('hostname')} "
                "stopped without finishing the step"
            )
    todo = steps_to_run(job, run_dir)
    problem = _input_problem(job)
    if problem is not None:
        needing = [r.name for r in todo if specs[r.name].needs_input]
        if needing:
            raise InputChangedError(
                f"cannot resume {job.id}: {problem}; step {needing[0]} needs the original input"
            )
        if todo:
            log.warning("%s (not needed by the remaining steps)", problem)
    changed = {
        k: v for k, v in (overrides or {}).items() if v is not None and job.config.get(k) != v
    }
    if changed:
        previous = {k: job.config.get(k) for k in changed}
        log.info(
            "overriding recorded options: %s", ", ".join(f"{k}={changed[k]!r}" for k in changed)
        )
        job.config.update(changed)
    else:
        previous = {}
    now = utc_now()
    event: dict[str, Any] = {
        "event": "resumed",
        "at": now,
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "previous_status": str(job.status),
        "steps": [r.name for r in todo],
    }
    if changed:
        event["overrides"] = changed
        event["overridden"] = previous
    job.history.append(event)
    return todo


def _input_problem(job: JobEnvelope) -> str | None:
    """Return why the run's input no longer matches, or None when it does."""
    path = Path(job.input.path)
    if not path.is_file():
        return f"input {path} no longer exists"
    try:
        if path.stat().st_size != job.input.size_bytes:
            return f"input {path} changed (size differs)"
        if storage.sha256_file(path) != job.input.sha256:
            return f"input {path} changed (sha256 differs)"
    except OSError as exc:
        return f"input {path} cannot be read: {exc.strerror or exc}"
    return None


def close_resources(resources: dict[str, Any]) -> None:
    """Close every resource that has a ``close()`` method (e.g. loaded models)."""
    for key, value in list(resources.items()):
        close: Callable[[], None] | None = getattr(value, "close", None)
        if callable(close):
            try:
                close()
            except Exception as exc:  # closing must not hide the run's outcome
                log.debug("closing %s failed: %s", key, exc)
    resources.clear()
