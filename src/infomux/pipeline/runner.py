"""The runner: :func:`execute` runs a job's step graph (independent steps in threads),
recording every state change in ``job.json``; background work tracking for the CLI's exit,
and :func:`close_resources` for what runs share (a loaded model)."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from infomux import graph, retention, storage
from infomux.errors import InfomuxError, StepError, TranscriptionCancelled
from infomux.graph import PipelineError
from infomux.job import JobEnvelope, JobStatus, StepRecord, StepStatus, host_info, utc_now
from infomux.pipeline.registry import job_graph
from infomux.pipeline.resume import driver_only_steps, steps_to_run
from infomux.steps import ProgressCallback, StepContext, get_step

log = logging.getLogger("infomux.pipeline")


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
    defer_driver_only: bool = False,
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

    ``defer_driver_only`` (a batch's worker): the driver-only steps and those after them
    are not run; when every other step is done, the run is recorded ``pending`` (no
    error), those steps still ``pending``: the batch's driver runs them next with a plain
    ``execute``, and if the driver is gone, ``infomux resume RUN`` finishes the run.

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
    deferred = driver_only_steps(plan) & set(todo) if defer_driver_only else set()
    todo = [sid for sid in todo if sid not in deferred]

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
            must_save = bool(starting) or (changed and running)
            if must_save and not job.input.hashing:
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
            if must_save and job.input.hashing:
                # a new run's first write waits for the input's sha256, which is being
                # computed beside the steps that just started (create_run(hash_beside))
                save()
            if not running:
                break
            # short waits keep Ctrl-C (delivered to this thread) responsive
            wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
        if not failures and len(done) + len(deferred) < len(records):  # cancelled between steps
            failures.append((todo[0], TranscriptionCancelled("run cancelled")))
        if failures:
            hard = [f for f in failures if _failure(f[1])[0] == StepStatus.FAILED]
            sid, first_error = (hard or failures)[0]
            status, message = _failure(first_error)
            job.status = JobStatus.FAILED if hard else JobStatus.INTERRUPTED
            job.error = f"{sid}: {message}"
            save()
        elif deferred:  # a batch worker's part is done; the driver runs the rest
            job.status = JobStatus.PENDING
            job.error = None
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
