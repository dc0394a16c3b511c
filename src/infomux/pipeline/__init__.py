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

The package's modules: :mod:`~infomux.pipeline.registry` (pipelines by name, graphs),
:mod:`~infomux.pipeline.runs` (new runs), :mod:`~infomux.pipeline.runner` (execute) and
:mod:`~infomux.pipeline.resume` (resuming a run). This module re-exports their names, so
``infomux.pipeline.X`` works as it did when the package was one module.
"""

from __future__ import annotations

from infomux.graph import Pipeline, PipelineError, PipelineFileError, StepNode
from infomux.pipeline.registry import (
    DEFAULT_PIPELINE,
    available_pipelines,
    builtin_pipelines,
    check_steps,
    get_pipeline,
    job_graph,
    register_pipeline,
    registered_pipelines,
    resolve_run_graph,
    unregister_pipeline,
)
from infomux.pipeline.resume import (
    ATTEMPTS_DIR,
    driver_only_steps,
    prepare_resume,
    steps_to_run,
    worker_steps_to_run,
)
from infomux.pipeline.runner import (
    MAX_PARALLEL_STEPS,
    background_work_pending,
    close_resources,
    execute,
)
from infomux.pipeline.runs import InputChangedError, create_run, step_is_done

__all__ = [
    "ATTEMPTS_DIR",
    "DEFAULT_PIPELINE",
    "MAX_PARALLEL_STEPS",
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
    "driver_only_steps",
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
    "worker_steps_to_run",
]
