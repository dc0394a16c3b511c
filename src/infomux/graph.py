"""Pipelines as data: step graphs, pipeline files (YAML) and their validation.

A pipeline is a name, a description and a list of step nodes; each node runs a
registered step (:mod:`infomux.steps`) under an id, after the ids it ``needs``, with
``options`` checked against the step's declared option schema. Pipelines come from,
lowest first (a later one replaces an earlier one of the same name):

1. ``pipelines.yaml`` shipped in the package (the built-in pipelines);
2. :func:`infomux.pipeline.register_pipeline` (Python);
3. the user's files: ``$XDG_CONFIG_HOME/infomux/pipelines.yaml`` (else
   ``~/.config/infomux/pipelines.yaml``), then ``infomux.yaml`` in the current
   directory; or, instead of both, the file given with ``--pipeline-file``.

The file's shape::

    pipelines:
      NAME:
        description: what it is for
        steps:
          - step: extract_audio        # a registered step
            id: audio                  # optional; default: the step's name
            needs: [other-id]          # optional; default: the step before; [] = none
            options: {every: 10s}      # optional; checked against the step's options

Errors name the file, the line and the problem (:class:`PipelineFileError`).
This module imports nothing heavy; PyYAML is imported when a file is read.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infomux.errors import InfomuxError

BUILTIN_FILE = Path(__file__).resolve().parent / "pipelines.yaml"
USER_FILE_NAME = "infomux.yaml"


class PipelineError(InfomuxError):
    """A pipeline is unknown or malformed."""


class PipelineFileError(PipelineError):
    """A pipeline file is malformed: names the file, the line and the problem."""

    def __init__(self, path: str | os.PathLike[str], line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class StepNode:
    """One step of a pipeline graph.

    Attributes:
        id: unique within the pipeline (default: the step's name).
        step: the registered step it runs.
        needs: ids that must be completed before it runs.
        options: the step's options (as written; resolved ones have every default).
    """

    id: str
    step: str
    needs: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (what job.json's ``graph.steps`` holds)."""
        return {
            "id": self.id,
            "step": self.step,
            "needs": list(self.needs),
            "options": dict(self.options),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepNode:
        """Build from the JSON form."""
        return cls(
            id=str(data["id"]),
            step=str(data.get("step", data["id"])),
            needs=tuple(data.get("needs", ())),
            options=dict(data.get("options") or {}),
        )


@dataclass(frozen=True)
class Pipeline:
    """A named step graph."""

    name: str
    nodes: tuple[StepNode, ...]
    description: str = ""
    source: str = "python"

    @property
    def steps(self) -> tuple[str, ...]:
        """The step ids, in the pipeline's order."""
        return tuple(n.id for n in self.nodes)

    def node(self, step_id: str) -> StepNode:
        """The node ``step_id``; KeyError if there is none."""
        for node in self.nodes:
            if node.id == step_id:
                return node
        raise KeyError(step_id)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form: name, steps (ids), description, source and the graph."""
        return {
            "name": self.name,
            "steps": list(self.steps),
            "description": self.description,
            "source": self.source,
            "graph": [n.to_dict() for n in self.nodes],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Pipeline:
        """Build from the JSON form (job.json's ``graph``)."""
        return cls(
            name=str(data["name"]),
            nodes=tuple(StepNode.from_dict(n) for n in data["steps"]),
            description=str(data.get("description") or ""),
            source=str(data.get("source") or ""),
        )

    def to_record(self) -> dict[str, Any]:
        """The form recorded in job.json (``graph``): name, description, source, steps."""
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "steps": [n.to_dict() for n in self.nodes],
        }


def linear_nodes(entries: Iterable[Any]) -> tuple[StepNode, ...]:
    """Nodes from step names, dicts (the file's shape) or nodes; ``needs`` defaults to
    the node before."""
    nodes: list[StepNode] = []
    for entry in entries:
        previous = (nodes[-1].id,) if nodes else ()
        if isinstance(entry, StepNode):
            nodes.append(entry)
        elif isinstance(entry, str):
            nodes.append(StepNode(id=entry, step=entry, needs=previous))
        elif isinstance(entry, Mapping):
            step = str(entry["step"])
            needs = entry.get("needs")
            nodes.append(
                StepNode(
                    id=str(entry.get("id") or step),
                    step=step,
                    needs=previous if needs is None else tuple(needs),
                    options=dict(entry.get("options") or {}),
                )
            )
        else:
            raise PipelineError(f"a pipeline step must be a name or a mapping, not {entry!r}")
    return tuple(nodes)


# --------------------------------------------------------------------------- checks


def check_pipeline(pipeline: Pipeline, lines: Mapping[str, Any] | None = None) -> None:
    """Check a pipeline's graph against the step registry.

    Every step exists, ids are unique, needs name ids of the pipeline, there is no
    cycle, a step comes after the steps it ``requires``, options are declared and of
    the right type. ``lines`` (from a file) maps ``(id, what)`` to line numbers.

    Raises:
        PipelineError: the first problem found (PipelineFileError for a file).
    """
    from infomux.steps import get_step

    def fail(problem: str, node: StepNode | None = None, what: str = "") -> None:
        if lines is None:
            raise PipelineError(f"pipeline {pipeline.name!r}: {problem}")
        line = None
        if node is not None:
            line = lines.get(f"{node.id}:{what}") or lines.get(f"{node.id}:")
        raise PipelineFileError(
            lines["__path__"],
            line or lines.get("__pipeline__"),
            f"pipeline {pipeline.name!r}: {problem}",
        )

    if not pipeline.nodes:
        fail("has no steps")
    ids: set[str] = set()
    for node in pipeline.nodes:
        if node.id in ids:
            fail(f"duplicate step id {node.id!r}", node, "id")
        ids.add(node.id)
    for node in pipeline.nodes:
        try:
            spec = get_step(node.step)
        except KeyError:
            from infomux.steps import registered_steps

            known = ", ".join(sorted(registered_steps()))
            fail(f"unknown step {node.step!r} (known: {known})", node, "step")
            raise  # unreachable
        for dep in node.needs:
            if dep not in ids:
                fail(f"step {node.id!r} needs {dep!r}, which is not a step of it", node, "needs")
            if dep == node.id:
                fail(f"step {node.id!r} needs itself", node, "needs")
        for key, value in node.options.items():
            option = spec.option(key)
            if option is None:
                known = ", ".join(o.name for o in spec.options) or "none"
                fail(
                    f"step {node.id!r}: unknown option {key!r} of step {node.step!r} "
                    f"(its options: {known})",
                    node,
                    f"option.{key}",
                )
                raise  # unreachable
            try:
                option.check(value)
            except ValueError as exc:
                fail(f"step {node.id!r}: {exc}", node, f"option.{key}")
    cycle = find_cycle(pipeline.nodes)
    if cycle:
        first = pipeline.node(cycle[0])
        fail(f"the needs form a cycle: {' -> '.join([*cycle, cycle[0]])}", first, "needs")
    by_id = {n.id: n for n in pipeline.nodes}
    for node in pipeline.nodes:
        before = {by_id[a].step for a in ancestors(pipeline.nodes, [node.id]) if a != node.id}
        missing = [r for r in get_step(node.step).requires if r not in before]
        if missing:
            fail(
                f"step {node.id!r} ({node.step}) requires {', '.join(missing)} before it "
                "(add it to needs)",
                node,
                "needs",
            )


def find_cycle(nodes: Iterable[StepNode]) -> list[str]:
    """A cycle of ids through ``needs`` (empty when there is none)."""
    needs = {n.id: [d for d in n.needs] for n in nodes}
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for dep in needs.get(node, ()):
            if dep not in needs:
                continue
            if state.get(dep) == 1:
                return path[path.index(dep) :]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return []

    order = list(needs)
    for node in order:
        if node not in state:
            found = visit(node)
            if found:  # start at the step listed first
                first = min(range(len(found)), key=lambda i: order.index(found[i]))
                return found[first:] + found[:first]
    return []


def ancestors(nodes: Iterable[StepNode], ids: Iterable[str]) -> set[str]:
    """``ids`` and everything they need, transitively."""
    needs = {n.id: n.needs for n in nodes}
    seen: set[str] = set()
    todo = list(ids)
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        todo.extend(needs.get(node, ()))
    return seen


def descendants(nodes: Iterable[StepNode], step_id: str) -> set[str]:
    """``step_id`` and every step that needs it, transitively."""
    nodes = list(nodes)
    seen = {step_id}
    changed = True
    while changed:
        changed = False
        for node in nodes:
            if node.id not in seen and any(d in seen for d in node.needs):
                seen.add(node.id)
                changed = True
    return seen


def topological(nodes: Iterable[StepNode]) -> list[StepNode]:
    """The nodes in an order where each comes after what it needs (stable otherwise)."""
    remaining = list(nodes)
    placed: set[str] = set()
    known = {n.id for n in remaining}
    order: list[StepNode] = []
    while remaining:
        for node in remaining:
            if all(d in placed or d not in known for d in node.needs):
                order.append(node)
                placed.add(node.id)
                remaining.remove(node)
                break
        else:
            raise PipelineError(f"the needs form a cycle: {find_cycle(remaining)}")
    return order


# --------------------------------------------------------------------------- resolution


def resolve(
    pipeline: Pipeline,
    config: Mapping[str, Any] | None = None,
    *,
    explicit: Collection[str] | None = None,
    only: Collection[str] | None = None,
) -> Pipeline:
    """The graph a run records: the steps to run, each with every option filled in.

    A step's option takes, highest first: an ``explicit`` run option (a flag), the
    pipeline's own ``options:`` for the step, any other run option of that name
    (config file, recorded defaults), the step's declared default. ``explicit`` None
    means every key of ``config`` is explicit (library callers). ``only`` keeps those
    ids and what they need.

    Raises:
        PipelineError: an unknown id in ``only``, or a run option of the wrong type.
    """
    from infomux.steps import get_step

    check_pipeline(pipeline)
    config = dict(config or {})
    explicit = set(config) if explicit is None else set(explicit)
    nodes = list(pipeline.nodes)
    if only:
        unknown = [s for s in only if s not in {n.id for n in nodes}]
        if unknown:
            raise PipelineError(
                f"pipeline {pipeline.name!r} has no step {unknown[0]!r} "
                f"(its steps: {', '.join(pipeline.steps)})"
            )
        keep = ancestors(nodes, only)
        nodes = [n for n in nodes if n.id in keep]
    resolved = []
    for node in topological(nodes):
        spec = get_step(node.step)
        options: dict[str, Any] = {}
        for option in spec.options:
            if option.name in explicit and config.get(option.name) is not None:
                value = config[option.name]
            elif option.name in node.options:
                value = node.options[option.name]
            elif config.get(option.name) is not None:
                value = config[option.name]
            else:
                value = option.default
            try:
                options[option.name] = option.check(value)
            except ValueError as exc:
                raise PipelineError(f"step {node.id!r}: {exc}") from None
        resolved.append(StepNode(node.id, node.step, node.needs, options))
    return Pipeline(pipeline.name, tuple(resolved), pipeline.description, pipeline.source)


# --------------------------------------------------------------------------- files


def load_file(path: str | os.PathLike[str]) -> dict[str, Pipeline]:
    """Read and check a pipeline file; return its pipelines by name.

    Raises:
        PipelineFileError: unreadable, not YAML, or any problem of shape or graph.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineFileError(path, None, f"cannot read: {exc}") from None
    try:
        data = yaml.load(text, Loader=_loader())  # a SafeLoader that keeps line numbers
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise PipelineFileError(path, line, f"not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise PipelineFileError(path, None, f"not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PipelineFileError(path, 1, "expected a mapping with a 'pipelines' key")
    unknown = [k for k in data if k != "pipelines"]
    if unknown:
        raise PipelineFileError(
            path, _line(data, unknown[0]), f"unknown key {unknown[0]!r} (expected 'pipelines')"
        )
    pipes = data.get("pipelines") or {}
    if not isinstance(pipes, dict):
        raise PipelineFileError(path, _line(data, "pipelines"), "'pipelines' must be a mapping")
    result: dict[str, Pipeline] = {}
    for name, body in pipes.items():
        result[str(name)] = _parse_pipeline(path, str(name), body, _line(pipes, name))
    return result


def _parse_pipeline(path: Path, name: str, body: Any, line: int | None) -> Pipeline:
    def fail(problem: str, at: int | None) -> PipelineFileError:
        return PipelineFileError(path, at or line, f"pipeline {name!r}: {problem}")

    if not isinstance(body, dict):
        raise fail("must be a mapping with 'steps' (and an optional 'description')", line)
    for key in body:
        if key not in ("description", "steps"):
            raise fail(f"unknown key {key!r} (expected description, steps)", _line(body, key))
    description = body.get("description") or ""
    if not isinstance(description, str):
        raise fail("'description' must be a string", _line(body, "description"))
    steps = body.get("steps")
    if not isinstance(steps, list) or not steps:
        raise fail("'steps' must be a non-empty list", _line(body, "steps"))
    lines: dict[str, Any] = {"__path__": str(path), "__pipeline__": line}
    nodes: list[StepNode] = []
    for entry in steps:
        at = getattr(entry, "line", None)
        if not isinstance(entry, dict):
            raise fail("each step must be a mapping with a 'step' key", _line(body, "steps"))
        for key in entry:
            if key not in ("step", "id", "needs", "options"):
                raise fail(
                    f"unknown key {key!r} in a step (expected step, id, needs, options)",
                    _line(entry, key),
                )
        step = entry.get("step")
        if not isinstance(step, str) or not step:
            raise fail("each step needs 'step: NAME' (a registered step)", at)
        step_id = entry.get("id", step)
        if not isinstance(step_id, str) or not step_id:
            raise fail("'id' must be a non-empty string", _line(entry, "id"))
        needs = entry.get("needs")
        if needs is None:
            needs = [nodes[-1].id] if nodes else []
        elif isinstance(needs, str):
            needs = [needs]
        if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
            raise fail("'needs' must be a list of step ids", _line(entry, "needs"))
        options = entry.get("options") or {}
        if not isinstance(options, dict):
            raise fail("'options' must be a mapping", _line(entry, "options"))
        # the first node with an id keeps its lines (duplicates are reported at the second)
        prefix = f"{step_id}:"
        if prefix in lines:
            lines[f"{step_id}:id"] = _line(entry, "id") or at
        else:
            lines[prefix] = at
            lines[f"{step_id}:step"] = _line(entry, "step") or at
            lines[f"{step_id}:needs"] = _line(entry, "needs") or at
            for key in options:
                lines[f"{step_id}:option.{key}"] = _line(options, key) or _line(entry, "options")
        nodes.append(StepNode(step_id, step, tuple(needs), dict(options)))
    pipeline = Pipeline(name, tuple(nodes), description.strip(), str(path))
    check_pipeline(pipeline, lines)
    return pipeline


def _line(mapping: Any, key: Any) -> int | None:
    lines = getattr(mapping, "key_lines", None)
    if lines is not None and key in lines:
        return int(lines[key])
    return getattr(mapping, "line", None)


class _LineDict(dict[Any, Any]):
    """A mapping from YAML that knows its line and each key's line (1-based)."""

    line: int = 0
    key_lines: dict[Any, int]


_LOADER: Any = None


def _loader() -> Any:
    """A ``yaml.SafeLoader`` subclass whose mappings remember lines and refuse duplicate keys."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import yaml

    class LineLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader: Any, node: Any) -> _LineDict:
        loader.flatten_mapping(node)
        result = _LineDict()
        result.line = node.start_mark.line + 1
        result.key_lines = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in result:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            result[key] = loader.construct_object(value_node, deep=True)
            result.key_lines[key] = key_node.start_mark.line + 1
        return result

    LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    _LOADER = LineLoader
    return _LOADER


def user_files(pipeline_file: str | os.PathLike[str] | None = None) -> list[Path]:
    """The user's pipeline files that exist, lowest priority first.

    With ``pipeline_file``, only it (it must exist); else
    ``$XDG_CONFIG_HOME/infomux/pipelines.yaml`` then ``./infomux.yaml``.

    Raises:
        PipelineFileError: ``pipeline_file`` does not exist.
    """
    if pipeline_file is not None:
        path = Path(pipeline_file).expanduser()
        if not path.is_file():
            raise PipelineFileError(path, None, "no such pipeline file")
        return [path]
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    found = [base / "infomux" / "pipelines.yaml", Path.cwd() / USER_FILE_NAME]
    return [p for p in found if p.is_file()]
