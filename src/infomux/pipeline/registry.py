"""The pipeline registry: built-in, Python-registered and user-file pipelines, resolved
into checked step graphs.

A pipeline is a name and a graph of steps (:class:`~infomux.graph.Pipeline`). The
built-in ones come from the packaged ``pipelines.yaml``; :func:`register_pipeline` adds
pipelines from Python and the user's pipeline files replace both. :func:`job_graph`
reads the graph a run recorded; :func:`resolve_run_graph` is what a new run records.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Collection
from typing import Any

from infomux import graph
from infomux.graph import Pipeline, PipelineError, StepNode, linear_nodes
from infomux.job import JobEnvelope
from infomux.steps import StepSpec, get_step

log = logging.getLogger("infomux.pipeline")

DEFAULT_PIPELINE = "transcribe"

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
