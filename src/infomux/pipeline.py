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

import dataclasses
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from infomux import graph, retention, storage
from infomux.errors import InfomuxError, StepError, TranscriptionCancelled
from infomux.graph import Pipeline, PipelineError, PipelineFileError, StepNode, linear_nodes
from infomux.job import JobEnvelope, JobStatus, StepRecord, StepStatus, host_info, utc_now
from infomux.steps import ProgressCallback, StepContext, StepSpec, get_step

log = logging.getLogger("infomux.pipeline")

DEFAULT_PIPELINE = "transcribe"

__all__ = [
    "DEFAULT_PIPELINE",
    "InputChangedError",
    "Pipeline",
    "PipelineError",
    "PipelineFileError",
    "StepNode",
    "available_pipelines",
    "background_work_pending",
    "builtin_pipelines",
    "check_steps",
    "close_resources",
    "create_run",
    "execute",
    "get_pipeline",
    "job_graph",
    "prepare_resume",
    "register_pipeline",
    "registered_pipelines",
    "resolve_run_graph",
    "step_is_done",
    "steps_to_run",
    "unregister_pipeline",
]


class InputChangedError(InfomuxError):
    """The input of a run changed or vanished, and a step that still has to run needs it."""


# --------------------------------------------------------------------------- registry

_PIPELINES: dict[str, Pipeline] = {}
_BUILTIN: dict[str, Pipeline] | None = None
_BUILTIN_LOCK = threading.Lock()


def register_pipeline(
    name: str,
    steps: tuple[Any, ...] | list[Any],
    description: str = "",
) -> Pipeline:
    """Register (or replace) a pipeline from Python; checked when it is used.

    ``steps`` are step names (each after the one before), or mappings of the pipeline
    file's shape (``{"step": ..., "id": ..., "needs": [...], "options": {...}}``), or
    :class:`StepNode` objects. A registered pipeline replaces a built-in one of the same
    name; the user's pipeline files replace both.
    """
    if not name or not steps:
        raise PipelineError("a pipeline needs a name and at least one step")
    pipeline = Pipeline(name=name, nodes=linear_nodes(steps), description=description)
    _PIPELINES[name] = pipeline
    return pipeline


def unregister_pipeline(name: str) -> None:
    """Remove a pipeline registered from Python (for tests); unknown names are ignored."""
    _PIPELINES.pop(name, None)


def builtin_pipelines() -> dict[str, Pipeline]:
    """The pipelines of the packaged ``pipelines.yaml`` (read once)."""
    global _BUILTIN
    with _BUILTIN_LOCK:
        if _BUILTIN is None:
            loaded = graph.load_file(graph.BUILTIN_FILE)
            _BUILTIN = {
                n: Pipeline(p.name, p.nodes, p.description, "builtin") for n, p in loaded.items()
            }
        return dict(_BUILTIN)


def registered_pipelines() -> dict[str, Pipeline]:
    """The built-in pipelines and those registered from Python (not the user's files)."""
    return {**builtin_pipelines(), **_PIPELINES}


def available_pipelines(pipeline_file: str | os.PathLike[str] | None = None) -> dict[str, Pipeline]:
    """Every pipeline a run may use: built-in, registered, then the user's files.

    Raises:
        PipelineFileError: a user file is malformed (file, line, problem).
    """
    pipelines = registered_pipelines()
    for path in graph.user_files(pipeline_file):
        pipelines.update(graph.load_file(path))
    return pipelines


def get_pipeline(name: str, *, pipeline_file: str | os.PathLike[str] | None = None) -> Pipeline:
    """Return pipeline ``name``, its graph checked (see :func:`graph.check_pipeline`).

    Raises:
        PipelineError: unknown pipeline, unknown step, bad options, a cycle, a step
            before one it requires; PipelineFileError for a broken pipeline file.
    """
    pipelines = available_pipelines(pipeline_file)
    try:
        pipeline = pipelines[name]
    except KeyError:
        available = ", ".join(sorted(pipelines)) or "none"
        raise PipelineError(f"unknown pipeline {name!r} (available: {available})") from None
    graph.check_pipeline(pipeline)
    return pipeline


def check_steps(steps: tuple[str, ...] | list[str]) -> list[StepSpec]:
    """Resolve step names from the registry and check their order (a linear pipeline).

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


def job_graph(job: JobEnvelope) -> Pipeline:
    """The graph of a run: the recorded one, or (runs from before graphs, or steps added
    to ``job.steps`` by hand) each step after the one before it, with no options."""
    recorded = graph.Pipeline.from_dict(job.graph) if job.graph else None
    by_id = {n.id: n for n in recorded.nodes} if recorded else {}
    nodes: list[StepNode] = []
    for record in job.steps:
        node = by_id.get(record.name)
        if node is None:
            previous = (nodes[-1].id,) if nodes else ()
            node = StepNode(record.name, record.name, previous, {})
        nodes.append(node)
    name = recorded.name if recorded else (job.pipeline or "unknown")
    return Pipeline(
        name,
        tuple(nodes),
        recorded.description if recorded else "",
        recorded.source if recorded else "",
    )


def resolve_run_graph(
    name: str,
    config: dict[str, Any] | None = None,
    *,
    explicit: Collection[str] | None = None,
    only: Collection[str] | None = None,
    pipeline_file: str | os.PathLike[str] | None = None,
) -> Pipeline:
    """The resolved graph a new run of pipeline ``name`` would record (for ``--dry-run``).

    Raises:
        PipelineError: unknown pipeline, bad graph, unknown ``only`` id, bad option.
    """
    return graph.resolve(
        get_pipeline(name, pipeline_file=pipeline_file), config, explicit=explicit, only=only
    )


# --------------------------------------------------------------------------- runs


def create_run(
    input_path: str | os.PathLike[str],
    *,
    pipeline: str = DEFAULT_PIPELINE,
    config: dict[str, Any] | None = None,
    runs_root: Path | None = None,
    explicit: Collection[str] | None = None,
    only: Collection[str] | None = None,
    pipeline_file: str | os.PathLike[str] | None = None,
) -> tuple[JobEnvelope, Path]:
    """Hash the input, create a run directory and write its pending ``job.json``.

    The pipeline's graph is resolved (every step option filled in, see
    :func:`graph.resolve`; ``explicit`` names the ``config`` keys given as flags,
    None = all; ``only`` keeps those step ids and what they need) and recorded in
    ``job.graph``; resume runs that graph.

    Raises:
        PipelineError: unknown pipeline, bad graph or options.
        FileNotFoundError, IsADirectoryError, PermissionError: the input is not a readable file.
    """
    resolved = resolve_run_graph(
        pipeline, config, explicit=explicit, only=only, pipeline_file=pipeline_file
    )
    input_file = storage.describe_input(input_path)
    run_id, run_dir = storage.create_run_dir(runs_root)
    config = {"pipeline": pipeline, **(config or {})}
    job = JobEnvelope.new(
        run_id,
        input_file,
        pipeline=pipeline,
        steps=list(resolved.steps),
        config=config,
        graph=resolved.to_record(),
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
    plan = job_graph(job)
    try:
        graph.check_pipeline(plan)
    except PipelineError as exc:
        raise PipelineError(f"run {job.id}: {exc}") from None
    nodes = {n.id: n for n in plan.nodes}
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
    steps = {n.id: get_step(n.step).factory() for n in plan.nodes}
    executor, prepared = _start_preparations(job, run_dir, steps, ctx)
    todo = {r.name for r in steps_to_run(job, run_dir)}
    try:
        for record in job.steps:
            if record.name not in todo:
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
            node = nodes[record.name]
            step_ctx = dataclasses.replace(
                ctx, options={**job.config, **node.options}, step_id=node.id
            )
            result = steps[record.name].run(step_ctx)
            outputs = _check_outputs(record.name, list(result.outputs), run_dir)
            _finish(record, StepStatus.COMPLETED, started, None)
            record.outputs = outputs
            record.metadata = dict(result.metadata)
            job.add_artifacts(outputs)
            log.debug("%s: completed in %.2f s", record.name, record.duration_seconds or 0.0)
        record = None
        job.status = JobStatus.COMPLETED
        job.error = None
        retention.drop_after_success(job, run_dir)  # --no-keep-audio
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
    """Return the steps a resume would run (not completed, or outputs missing; and a step
    whose output was dropped (``--no-keep-audio``) when a step that needs it runs)."""
    todo = {r.name for r in job.steps if not step_is_done(r, run_dir)}
    again = {r.name for r in job.steps if retention.needed_again(job, r, todo)}
    return [r for r in job.steps if r.name in todo or r.name in again]


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
    plan = job_graph(job)
    graph.check_pipeline(plan)
    specs = {n.id: get_step(n.step) for n in plan.nodes}
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
        _override_graph_options(job, changed)
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


def _override_graph_options(job: JobEnvelope, changed: dict[str, Any]) -> None:
    """Put resume's explicit overrides into the recorded graph's step options (each step
    that declares the option), so that they win over what the pipeline file said."""
    if not job.graph:
        return
    for node in job.graph.get("steps", []):
        try:
            spec = get_step(node.get("step", node.get("id")))
        except KeyError:
            continue
        options = node.setdefault("options", {})
        for key, value in changed.items():
            option = spec.option(key)
            if option is None:
                continue
            try:
                options[key] = option.check(value)
            except ValueError as exc:
                raise PipelineError(f"step {node.get('id')!r}: {exc}") from None


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


# --------------------------------------------------------------------------- issue 14
# Every built-in pipeline ends with the ``store`` step (the search database), and the
# caption pipelines. Registered from Python until they move into pipelines.yaml.
register_pipeline(
    "transcribe",
    ("extract_audio", "transcribe", "store"),
    "media → audio.wav → transcript (txt/srt/vtt/json) → search store",
)
register_pipeline("audio", ("extract_audio", "store"), "media → audio.wav (16 kHz mono PCM)")
register_pipeline(
    "caption",
    ("extract_audio", "transcribe", "caption", "store"),
    "video → transcript → captioned.<ext> (soft subtitle track, streams copied)",
)
register_pipeline(
    "caption-burn",
    ("extract_audio", "transcribe", "caption_burn", "store"),
    "video → transcript → captioned.<ext> (subtitles drawn into the picture; needs libass)",
)
