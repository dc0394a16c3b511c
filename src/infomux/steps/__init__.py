"""Pipeline steps: the registry, and what a step receives and returns.

A step is a class with ``run(self, ctx: StepContext) -> StepResult``, registered
under a name with :func:`register_step`. Step modules in this package are found
with :mod:`pkgutil` by :func:`discover_steps`, so adding a step is adding a module
here; no core code changes. A step signals failure by raising
:class:`~infomux.errors.StepError` (or any :class:`~infomux.errors.InfomuxError`).

Step modules must stay cheap to import: heavy imports (numpy, av, the engine)
go inside ``run``.
"""

from __future__ import annotations

import importlib
import logging
import math
import pkgutil
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from infomux.job import JobEnvelope

log = logging.getLogger("infomux.steps")

ProgressCallback = Callable[[str, int], None]
"""``(step_name, percent)``: progress of the running step, 0 to 100."""


@dataclass
class StepContext:
    """What a step gets to work with.

    Attributes:
        job: the run's job envelope; a step may fill its reproducibility fields
            (``environment``, ``model``, ``options``, ``audio``). The pipeline
            saves it after every step.
        run_dir: the run directory; outputs are written here.
        options: the run's recorded options (``job.config``) with this step's resolved
            options (its declared options, defaults filled in) over them.
        data: in-memory hand-over between the steps of one run (e.g. ``"audio"``).
        resources: shared by all runs of one process (e.g. a loaded model).
        on_progress: progress reporting, or None.
        cancel: when set, long steps stop at their next check and raise
            :class:`~infomux.errors.TranscriptionCancelled` (recorded as interrupted);
            how a run in a worker thread is stopped, where Ctrl-C does not reach.
        step_id: the id of the step in the pipeline (its name unless the pipeline
            gives it another).
    """

    job: JobEnvelope
    run_dir: Path
    options: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    on_progress: ProgressCallback | None = None
    cancel: threading.Event | None = None
    step_id: str = ""

    def progress(self, step: str, percent: int) -> None:
        """Report progress of ``step`` (does nothing without a callback)."""
        if self.on_progress is not None:
            self.on_progress(step, percent)


@dataclass
class StepResult:
    """What a successful step produced.

    Attributes:
        outputs: file names relative to the run dir (become artifacts).
        metadata: recorded in ``job.json`` under the step's record.
    """

    outputs: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


class Step(Protocol):
    """The interface of a step class's instances.

    A step may also define ``prepare(self, ctx) -> None``: input-independent set-up
    (loading a model, say) that the pipeline starts in a background thread while the
    earlier steps run. It may only touch ``ctx.resources`` and ``ctx.data`` (not
    ``ctx.job``); whatever it raises is raised again when the step runs, and is
    recorded as the step's failure.
    """

    def run(self, ctx: StepContext) -> StepResult:
        """Do the work; raise StepError (or another InfomuxError) on failure."""
        ...


OPTION_TYPES = ("bool", "int", "float", "str", "duration", "list")

_DURATION = re.compile(
    r"^\s*(?:(\d+(?:\.\d*)?)\s*h)?\s*(?:(\d+(?:\.\d*)?)\s*m(?!s))?\s*"
    r"(?:(\d+(?:\.\d*)?)\s*s)?\s*(?:(\d+(?:\.\d*)?)\s*ms)?\s*$"
)


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as ``10s``, ``1m30s``, ``1.5h``, ``500ms``.

    Raises:
        ValueError: not a duration.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration (e.g. 10s), got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            match = _DURATION.match(text)
            if not text or match is None or not any(match.groups()):
                raise ValueError(f"expected a duration (e.g. 10s, 1m30s), got {value!r}") from None
            h, m, sec, ms = (float(g) if g else 0.0 for g in match.groups())
            seconds = h * 3600 + m * 60 + sec + ms / 1000
    else:
        raise ValueError(f"expected a duration (e.g. 10s), got {type(value).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"expected a non-negative duration, got {value!r}")
    return seconds


@dataclass(frozen=True)
class OptionSpec:
    """One option a step declares: its type, default, allowed values and help.

    Types: ``bool``, ``int``, ``float``, ``str``, ``duration`` (seconds, from a number
    or ``10s``/``1m30s``), ``list`` (of strings; a comma-separated string is split).
    ``None`` is accepted when ``nullable`` (and is what ``default=None`` means).
    """

    name: str
    type: str
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = True

    def __post_init__(self) -> None:
        if self.type not in OPTION_TYPES:
            raise ValueError(f"option {self.name!r}: unknown type {self.type!r}")

    def check(self, value: Any) -> Any:
        """Return ``value`` checked and normalised (ints as floats for ``float``, ...).

        Raises:
            ValueError: wrong type, not one of the choices, out of range.
        """
        if value is None:
            if self.nullable:
                return None
            raise ValueError(f"option {self.name!r} must be set")
        kind = self.type
        if kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(self._wrong(value, "true or false"))
        elif kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(self._wrong(value, "an integer"))
        elif kind == "float":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(self._wrong(value, "a number"))
            value = float(value)
        elif kind == "str":
            if not isinstance(value, str):
                raise ValueError(self._wrong(value, "a string"))
        elif kind == "duration":
            try:
                value = parse_duration(value)
            except ValueError as exc:
                raise ValueError(f"option {self.name!r}: {exc}") from None
        elif kind == "list":
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ValueError(self._wrong(value, "a list of strings"))
            value = list(value)
        if self.choices:
            items = value if isinstance(value, list) else [value]
            bad = [v for v in items if v not in self.choices]
            if bad:
                allowed = ", ".join(str(c) for c in self.choices)
                raise ValueError(f"option {self.name!r}: {bad[0]!r} is not one of {allowed}")
        if isinstance(value, int | float) and not isinstance(value, bool):
            if self.minimum is not None and value < self.minimum:
                raise ValueError(f"option {self.name!r} must be at least {self.minimum:g}")
            if self.maximum is not None and value > self.maximum:
                raise ValueError(f"option {self.name!r} must be at most {self.maximum:g}")
        return value

    def _wrong(self, value: Any, expected: str) -> str:
        return f"option {self.name!r} must be {expected}, not {type(value).__name__} {value!r}"

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (for ``infomux steps --json``)."""
        data: dict[str, Any] = {"name": self.name, "type": self.type, "default": self.default}
        if self.choices:
            data["choices"] = list(self.choices)
        if self.minimum is not None:
            data["minimum"] = self.minimum
        if self.maximum is not None:
            data["maximum"] = self.maximum
        data["help"] = self.help
        return data


@dataclass(frozen=True)
class StepSpec:
    """A registered step.

    Attributes:
        name: registry name (what pipelines list).
        factory: the step class (called with no arguments to make an instance).
        requires: steps whose outputs this step uses; they must come earlier.
        needs_input: whether the step reads the run's input file (resume then
            re-verifies the input before running it).
        description: one line for ``infomux steps``.
        options: the options the step takes (pipeline files and run options are
            checked against them; their defaults are recorded in job.json).
        driver_only: the step runs where a batch is driven, never in a batch's workers
            (e.g. ``store``: one process writes the SQLite store, never over a network
            file system); ``infomux run`` runs it like any other step.
    """

    name: str
    factory: Callable[[], Step]
    requires: tuple[str, ...] = ()
    needs_input: bool = False
    description: str = ""
    options: tuple[OptionSpec, ...] = ()
    driver_only: bool = False

    def option(self, name: str) -> OptionSpec | None:
        """The declared option ``name``, or None."""
        for spec in self.options:
            if spec.name == name:
                return spec
        return None

    def defaults(self) -> dict[str, Any]:
        """Every declared option with its default."""
        return {o.name: o.default for o in self.options}


_REGISTRY: dict[str, StepSpec] = {}
_discovered = False


def register_step(
    name: str,
    *,
    requires: tuple[str, ...] = (),
    needs_input: bool = False,
    options: Sequence[OptionSpec] = (),
    driver_only: bool = False,
) -> Callable[[type], type]:
    """Class decorator: register a step class under ``name``.

    ``options`` declares what the step takes (see :class:`OptionSpec`); a pipeline
    file's ``options:`` for the step are checked against them. ``driver_only``: a batch
    runs the step (and every step after it) in the driver, after the worker has run the
    others (see :mod:`infomux.batch`).

    Raises:
        ValueError: a different class is already registered under ``name``, or two
            options share a name.
    """
    names = [o.name for o in options]
    if len(set(names)) != len(names):
        raise ValueError(f"step {name!r}: an option is declared twice")

    def decorator(cls: type) -> type:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.factory is not cls:
            same = (
                getattr(existing.factory, "__qualname__", None) == cls.__qualname__
                and getattr(existing.factory, "__module__", None) == cls.__module__
            )
            if not same:  # re-import of the same module is fine
                raise ValueError(f"step {name!r} is already registered")
        doc = (cls.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = StepSpec(
            name=name,
            factory=cls,
            requires=tuple(requires),
            needs_input=needs_input,
            description=doc[0] if doc else "",
            options=tuple(options),
            driver_only=driver_only,
        )
        return cls

    return decorator


def unregister_step(name: str) -> None:
    """Remove a step from the registry (for tests); unknown names are ignored."""
    _REGISTRY.pop(name, None)


def discover_steps() -> None:
    """Import every module of this package once, so that their steps register."""
    global _discovered
    if _discovered:
        return
    for info in pkgutil.iter_modules(__path__, prefix=f"{__name__}."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        importlib.import_module(info.name)
    _discovered = True


def get_step(name: str) -> StepSpec:
    """Return the registered step ``name``.

    Raises:
        KeyError: no such step.
    """
    discover_steps()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown step {name!r}") from None


def registered_steps() -> dict[str, StepSpec]:
    """Return all registered steps by name (after discovery)."""
    discover_steps()
    return dict(_REGISTRY)
