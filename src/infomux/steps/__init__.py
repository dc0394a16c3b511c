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
import pkgutil
import threading
from collections.abc import Callable
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
        options: the run's recorded options (``job.config``).
        data: in-memory hand-over between the steps of one run (e.g. ``"audio"``).
        resources: shared by all runs of one process (e.g. a loaded model).
        on_progress: progress reporting, or None.
        cancel: when set, long steps stop at their next check and raise
            :class:`~infomux.errors.TranscriptionCancelled` (recorded as interrupted);
            how a run in a worker thread is stopped, where Ctrl-C does not reach.
    """

    job: JobEnvelope
    run_dir: Path
    options: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    on_progress: ProgressCallback | None = None
    cancel: threading.Event | None = None

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
    """

    name: str
    factory: Callable[[], Step]
    requires: tuple[str, ...] = ()
    needs_input: bool = False
    description: str = ""


_REGISTRY: dict[str, StepSpec] = {}
_discovered = False


def register_step(
    name: str, *, requires: tuple[str, ...] = (), needs_input: bool = False
) -> Callable[[type], type]:
    """Class decorator: register a step class under ``name``.

    Raises:
        ValueError: a different class is already registered under ``name``.
    """

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
