"""Resuming a run: which steps still have to run (:func:`steps_to_run`), and getting an
interrupted or failed run ready to be executed again (:func:`prepare_resume`: the input
re-verified, overrides applied, ``--from-step`` attempts kept, the resume recorded)."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

from infomux import graph, retention, storage
from infomux.graph import Pipeline, PipelineError
from infomux.job import JobEnvelope, StepRecord, StepStatus, utc_now
from infomux.pipeline.registry import job_graph
from infomux.pipeline.runs import InputChangedError, step_is_done
from infomux.steps import get_step

log = logging.getLogger("infomux.pipeline")


def steps_to_run(job: JobEnvelope, run_dir: Path) -> list[StepRecord]:
    """Return the steps a resume would run (not completed, or outputs missing; and a step
    whose output was dropped (``--no-keep-audio``) when a step that needs it runs)."""
    todo = {r.name for r in job.steps if not step_is_done(r, run_dir)}
    again = {r.name for r in job.steps if retention.needed_again(job, r, todo)}
    return [r for r in job.steps if r.name in todo or r.name in again]


def driver_only_steps(plan: Pipeline) -> set[str]:
    """The ids of a graph's driver-only steps (``register_step(driver_only=True)``) and
    of every step after one of them: what a batch's driver runs, not its workers."""
    held = {n.id for n in plan.nodes if get_step(n.step).driver_only}
    for step_id in list(held):
        held |= graph.descendants(plan.nodes, step_id)
    return held


def worker_steps_to_run(job: JobEnvelope, run_dir: Path) -> list[StepRecord]:
    """The steps a batch worker would run: :func:`steps_to_run` less the driver-only
    steps and those after them."""
    held = driver_only_steps(job_graph(job))
    return [r for r in steps_to_run(job, run_dir) if r.name not in held]


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
    redo: set[str] = set()
    if from_step is not None:
        if from_step not in plan.steps:
            raise PipelineError(
                f"run {job.id} has no step {from_step!r} (its steps: {', '.join(plan.steps)})"
            )
        redo = set(graph.descendants(plan.nodes, from_step))
    # The input is checked before --from-step moves any output aside: a refused resume
    # leaves the run directory as it was.
    planned = [r.name for r in steps_to_run(job, run_dir)]
    planned += [r.name for r in job.steps if r.name in redo and r.name not in planned]
    problem = _input_problem(job)
    if problem is not None:
        needing = [name for name in planned if specs[name].needs_input]
        if needing:
            raise InputChangedError(
                f"cannot resume {job.id}: {problem}; step {needing[0]} needs the original input"
            )
    for record in job.steps:
        if record.name in redo:
            _keep_as_attempt(job, record, run_dir)
    todo = steps_to_run(job, run_dir)
    unverified = _stream_source_note(
        job, run_dir, decodes=any(specs[r.name].needs_input for r in todo)
    )
    if problem is not None and todo:
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
