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
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
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

    ``input_path`` ``"-"`` (standard input), an ``http(s)://`` URL (both as ``str``) or a
    pipe/FIFO is read to its end, hashed and spooled into the run directory
    (:mod:`infomux.inputs`); the copy is an artifact, and ``job.input`` records the source.

    Raises:
        PipelineError: unknown pipeline, bad graph or options.
        FileNotFoundError, IsADirectoryError, PermissionError: the input is not a readable file.
        InputReadError: a stream input failed or ended early (no run directory is left).
    """
    from infomux import inputs

    resolved = resolve_run_graph(
        pipeline, config, explicit=explicit, only=only, pipeline_file=pipeline_file
    )
    stream = inputs.open_stream(input_path)
    if stream is None:
        input_file = storage.describe_input(input_path)
        run_id, run_dir = storage.create_run_dir(runs_root)
    else:
        try:
            run_id, run_dir = storage.create_run_dir(runs_root)
        except BaseException:
            stream.close()
            raise
        input_file = inputs.spool(stream, run_dir)  # removes run_dir when it fails
    config = {"pipeline": pipeline, **(config or {})}
    job = JobEnvelope.new(
        run_id,
        input_file,
        pipeline=pipeline,
        steps=list(resolved.steps),
        config=config,
        graph=resolved.to_record(),
    )
    if input_file.copy:
        job.add_artifacts([input_file.copy])
    storage.save_job(job, run_dir)
    log.debug("created %s for %s", run_dir, input_file.source or input_file.path)
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


MAX_PARALLEL_STEPS = 4
"""How many independent steps of one run may run at once (threads) by default."""


def _finish(
    record: StepRecord,
    status: StepStatus,
    started: float,
    error: str | None,
    *,
    ended: float | None = None,
    ended_at: str | None = None,
) -> None:
    record.status = status
    record.completed_at = ended_at or utc_now()
    end = time.perf_counter() if ended is None else ended
    record.duration_seconds = round(max(0.0, end - started), 6)
    record.error = error


# prepare() calls and steps still running in the background (e.g. a model load that
# Ctrl-C interrupted the run around): the CLI exits without waiting for them.
_BACKGROUND: set[Future[Any]] = set()
_BACKGROUND_LOCK = threading.Lock()


def background_work_pending() -> bool:
    """Whether a step or a step's ``prepare()`` is still running in a background thread."""
    with _BACKGROUND_LOCK:
        return any(not f.done() for f in _BACKGROUND)


def _track(future: Future[Any]) -> None:
    with _BACKGROUND_LOCK:
        _BACKGROUND.add(future)

    def forget(done: Future[Any]) -> None:
        with _BACKGROUND_LOCK:
            _BACKGROUND.discard(done)

    future.add_done_callback(forget)


def _start_preparations(
    todo: list[str],
    ready: set[str],
    steps: dict[str, Any],
    contexts: dict[str, StepContext],
) -> tuple[ThreadPoolExecutor | None, dict[str, Future[None]]]:
    """Start ``prepare(ctx)`` of every step that has to wait for another, in one
    background thread (a step that can start at once gets no head start)."""
    executor: ThreadPoolExecutor | None = None
    prepared: dict[str, Future[None]] = {}
    for step_id in todo:
        if step_id in ready:
            continue
        prepare = getattr(steps[step_id], "prepare", None)
        if callable(prepare):
            if executor is None:
                executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="infomux-prepare")
            prepared[step_id] = executor.submit(prepare, contexts[step_id])
            _track(prepared[step_id])
    return executor, prepared


def _spawn(name: str, fn: Callable[..., Any], *args: Any) -> Future[Any]:
    """Run ``fn(*args)`` in a new daemon thread; its outcome in a Future.

    Daemon threads: after Ctrl-C the run is recorded and the process may exit without
    waiting for a step that cannot be stopped (a decode, a model load).
    """
    future: Future[Any] = Future()

    def target() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = fn(*args)
        except BaseException as exc:  # recorded by the runner, as the step's outcome
            future.set_exception(exc)
        else:
            future.set_result(result)

    threading.Thread(target=target, name=name, daemon=True).start()
    return future


def _run_step(
    step_id: str,
    step: Any,
    ctx: StepContext,
    prepared: Future[None] | None,
    run_dir: Path,
) -> tuple[list[str], dict[str, Any], str, float]:
    """Run one step (in a worker thread): outputs, metadata, when and where it ended."""
    if prepared is not None:
        prepared.result()  # raises what prepare() raised
    result = step.run(ctx)
    outputs = _check_outputs(step_id, list(result.outputs), run_dir)
    return outputs, dict(result.metadata), utc_now(), time.perf_counter()


def _failure(exc: BaseException) -> tuple[StepStatus, str]:
    """How a step's exception is recorded: its status and message."""
    if isinstance(exc, KeyboardInterrupt):
        return StepStatus.INTERRUPTED, "interrupted"
    if isinstance(exc, TranscriptionCancelled):
        return StepStatus.INTERRUPTED, f"cancelled: {exc}"
    if isinstance(exc, StepError):
        return StepStatus.FAILED, exc.message
    if isinstance(exc, InfomuxError):
        return StepStatus.FAILED, str(exc)
    return StepStatus.FAILED, f"internal error: {type(exc).__name__}: {exc}"


def _to_raise(step_id: str, exc: BaseException) -> BaseException:
    """What :func:`execute` raises for a step's exception."""
    if isinstance(exc, KeyboardInterrupt | TranscriptionCancelled) or (
        isinstance(exc, StepError) and exc.step_name == step_id
    ):
        return exc
    if isinstance(exc, InfomuxError):
        error = StepError(step_id, _failure(exc)[1])
        error.__cause__ = exc
        return error
    return exc


def execute(
    job: JobEnvelope,
    run_dir: Path,
    *,
    resources: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    max_parallel: int | None = None,
) -> JobEnvelope:
    """Run every step of ``job`` that is not done yet, as a graph, recording each change.

    Completed steps whose outputs still exist are skipped. A step starts once every
    step it needs is done; steps whose needs are done run side by side in threads (at
    most ``max_parallel``, default :data:`MAX_PARALLEL_STEPS`). ``job.json`` is saved
    when steps start (one write for the run, the steps starting and the steps that
    just ended), when a step ends while others go on, and when the run ends; each save
    is an fsync. When a step fails, no further step starts; the steps still running
    finish and are recorded, then the run is recorded as failed. On Ctrl-C (in the
    calling thread) the running steps are told to stop (``cancel``), recorded as
    interrupted at once, and the exception goes on (the CLI does not wait for them).
    The caller should hold :class:`storage.RunLock` on ``run_dir``.

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
    records = {r.name: r for r in job.steps}
    stop = cancel if cancel is not None else threading.Event()
    ctx = StepContext(
        job=job,
        run_dir=run_dir,
        options=job.config,
        data=data if data is not None else {},
        resources=resources if resources is not None else {},
        on_progress=on_progress,
        cancel=stop,
    )
    contexts = {
        sid: dataclasses.replace(ctx, options={**job.config, **node.options}, step_id=sid)
        for sid, node in nodes.items()
    }
    limit = max(1, max_parallel or MAX_PARALLEL_STEPS)

    def save() -> None:
        job.touch()
        storage.save_job(job, run_dir)

    job.status = JobStatus.RUNNING
    job.error = None
    job.host = host_info()
    steps = {sid: get_step(node.step).factory() for sid, node in nodes.items()}
    rerun = {r.name for r in steps_to_run(job, run_dir)}  # with dropped outputs needed again
    done = {r.name for r in job.steps if r.name not in rerun}
    for name in sorted(done):
        log.debug("%s: already completed, skipping", name)
    todo = [r.name for r in job.steps if r.name not in done]

    def is_ready(sid: str) -> bool:
        return all(d in done or d not in records for d in nodes[sid].needs)

    prep_executor, prepared = _start_preparations(
        todo, {s for s in todo if is_ready(s)}, steps, contexts
    )
    running: dict[Future[Any], str] = {}
    started: dict[str, float] = {}
    launched: set[str] = set()
    failures: list[tuple[str, BaseException]] = []
    try:
        while True:
            changed = False
            for future in [f for f in running if f.done()]:
                sid = running.pop(future)
                record = records[sid]
                error = future.exception()
                if error is None:
                    outputs, metadata, ended_at, ended = future.result()
                    _finish(
                        record,
                        StepStatus.COMPLETED,
                        started[sid],
                        None,
                        ended=ended,
                        ended_at=ended_at,
                    )
                    record.outputs = outputs
                    record.metadata = metadata
                    job.add_artifacts(outputs)
                    done.add(sid)
                    log.debug("%s: completed in %.2f s", sid, record.duration_seconds or 0.0)
                else:
                    status, message = _failure(error)
                    _finish(record, status, started[sid], message)
                    failures.append((sid, error))
                    if status == StepStatus.INTERRUPTED:
                        stop.set()  # the others stop at their next check too
                    log.debug("%s: %s: %s", sid, status, message)
                changed = True
            starting: list[str] = []
            if not failures and not stop.is_set():
                free = limit - len(running)
                for sid in todo:
                    if free <= 0:
                        break
                    if sid not in launched and is_ready(sid):
                        starting.append(sid)
                        free -= 1
            for sid in starting:
                record = records[sid]
                record.archive_attempt()
                record.status = StepStatus.RUNNING
                record.started_at = utc_now()
                started[sid] = time.perf_counter()
                launched.add(sid)
            if starting or (changed and running):
                save()  # job.json says "running" before the step runs
            for sid in starting:
                log.debug("%s: started", sid)
                future = _spawn(
                    f"infomux-step-{sid}",
                    _run_step,
                    sid,
                    steps[sid],
                    contexts[sid],
                    prepared.pop(sid, None),
                    run_dir,
                )
                running[future] = sid
                _track(future)
            if not running:
                break
            # short waits keep Ctrl-C (delivered to this thread) responsive
            wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
        if not failures and len(done) < len(records):  # cancelled between steps
            failures.append((todo[0], TranscriptionCancelled("run cancelled")))
        if failures:
            hard = [f for f in failures if _failure(f[1])[0] == StepStatus.FAILED]
            sid, first_error = (hard or failures)[0]
            status, message = _failure(first_error)
            job.status = JobStatus.FAILED if hard else JobStatus.INTERRUPTED
            job.error = f"{sid}: {message}"
            save()
        else:
            job.status = JobStatus.COMPLETED
            job.error = None
            retention.drop_after_success(job, run_dir)  # --no-keep-audio
            save()
    except BaseException as stopped:
        # Ctrl-C (or SIGTERM) in this thread, possibly while job.json was being saved,
        # or a failure to save: the running steps are told to stop and recorded now.
        stop.set()
        status, message = _failure(stopped)
        first = None
        for record in job.steps:
            if record.status == StepStatus.RUNNING:
                _finish(record, status, started.get(record.name, time.perf_counter()), message)
                first = first or record.name
        job.status = JobStatus.INTERRUPTED if status == StepStatus.INTERRUPTED else JobStatus.FAILED
        job.error = f"{first}: {message}" if first else message
        storage.save_job(job, run_dir)
        raise
    finally:
        if prep_executor is not None:
            prep_executor.shutdown(wait=False, cancel_futures=True)
    if failures:
        hard = [f for f in failures if _failure(f[1])[0] == StepStatus.FAILED]
        sid, first_error = (hard or failures)[0]
        raise _to_raise(sid, first_error)
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
    from_step: str | None = None,
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
    redone: list[str] = []
    if from_step is not None:
        if from_step not in plan.steps:
            raise PipelineError(
                f"run {job.id} has no step {from_step!r} (its steps: {', '.join(plan.steps)})"
            )
        redo = graph.descendants(plan.nodes, from_step)
        for record in job.steps:
            if record.name in redo:
                _keep_as_attempt(job, record, run_dir)
                redone.append(record.name)
    todo = steps_to_run(job, run_dir)
    unverified = _stream_source_note(
        job, run_dir, decodes=any(specs[r.name].needs_input for r in todo)
    )
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
    if from_step is not None:
        event["from_step"] = from_step
    if unverified is not None:
        event["source_not_reverified"] = unverified
    job.history.append(event)
    return todo


def _stream_source_note(job: JobEnvelope, run_dir: Path, *, decodes: bool) -> str | None:
    """For a run whose input was a stream (stdin, URL, pipe): point ``job.input.path`` at
    its copy in this run dir (the run dir may have moved), say on stderr (one line) that
    the source cannot be re-verified, and return the source (recorded in the resume
    event). ``decodes``: a step that reads the input will run (from the copy)."""
    if not job.input.is_stream:
        return None
    if job.input.copy:
        job.input.path = str((run_dir / job.input.copy).absolute())
    source = job.input.source or "-"
    what = "standard input" if source == "-" else source
    if decodes:
        how = f"decoding again from its copy {job.input.copy} (checked against its sha256)"
    else:
        how = "resuming from audio.wav and the outputs already made"
    log.warning(
        "%s: the input was read once from %s and cannot be re-verified; %s", job.id, what, how
    )
    return source


ATTEMPTS_DIR = "attempts"
"""Where ``resume --from-step`` keeps the outputs of the attempts it redoes."""


def _keep_as_attempt(job: JobEnvelope, record: StepRecord, run_dir: Path) -> None:
    """Archive a step's current state as an attempt, its outputs moved (not deleted) to
    ``attempts/<step-id>/<n>/`` so that the step can be run again."""
    if record.status == StepStatus.PENDING and record.started_at is None:
        return
    number = len(record.attempts) + 1
    kept = []
    for name in record.outputs:
        source = run_dir / name
        if not source.exists():
            kept.append(name)
            continue
        target = Path(ATTEMPTS_DIR) / record.name / str(number) / name
        (run_dir / target).parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, run_dir / target)
        kept.append(target.as_posix())
        if name in job.artifacts:
            job.artifacts[job.artifacts.index(name)] = target.as_posix()
    record.outputs = kept
    record.archive_attempt()


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
