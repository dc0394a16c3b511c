"""The Ray engine (``infomux batch --ray``): the files of a batch processed by Ray actors.

Ray Core only. Each actor (:class:`RayWorker`, made a ``@ray.remote`` class at run time)
holds one :class:`~infomux.batch.worker.Worker`, so the model is loaded once per actor,
however many files it gets. The driver keeps its own queue: each actor has at most one
file at a time, handed over with ``actor.process.remote(task)`` as soon as it is idle,
and ``ray.wait`` collects the outcomes, which go to the runner in the driver thread.
The runner, not the actors, runs the driver-only steps (the SQLite store is written by
the driver only, never by a worker over a network filesystem).

Where Ray comes from (:func:`choose_address`): ``--ray-address`` > ``RAY_ADDRESS`` > a
local Ray instance started for the batch (``ray.init(num_cpus=...)``, no dashboard) and
stopped after it. A driver already connected to Ray (a program calling
:func:`~infomux.batch.runner.run_batch` from inside its own Ray job) keeps its
connection. Ray's usage statistics are off unless ``RAY_USAGE_STATS_ENABLED`` says
otherwise.

How many actors, and where: an actor asks for ``threads`` CPUs and, when the cluster
offers it, one unit of the custom resource :data:`WORKER_RESOURCE` (``ray start
--resources '{"infomux_worker": 2}'`` lets a node hold two actors, whatever its CPU
count says). ``--workers N`` gives N actors; by default as many as the cluster holds
(the sum over the nodes of ``min(infomux_worker, CPUs // threads)``; on a cluster
without the resource, ``CPUs // threads`` spread over the nodes), at most one per file.
The local instance is started with ``infomux_worker`` = the workers it is to run.

Failures: a file's own failure is an outcome (the worker never raises). An actor that
dies (killed, OOM, a crash in native code) is restarted by Ray (``max_restarts``) and
the file it had is retried on the restarted actor (``max_task_retries``): the retry
finds the run directory the dead actor left (its steps ``running``, its lock released
by the kernel) and resumes it as ``infomux resume`` does. A file that kills its actor
every time fails once the retries are spent; an actor past its restarts is replaced
while files are left. Every run directory, and the models under the data directory,
must be on storage every node reaches (``--data-dir`` on a shared filesystem) for a
cluster of more than one machine.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from infomux.batch.worker import FileOutcome, FileTask, Worker, WorkerSettings
from infomux.errors import InfomuxError

log = logging.getLogger("infomux.batch.ray")

RAY_EXTRA = "pip install 'infomux[ray]'"
"""How to get Ray (named in the error when it is missing)."""
WORKER_RESOURCE = "infomux_worker"
"""The custom resource a node advertises to say how many infomux actors it holds."""
MAX_RESTARTS = 3
"""How many times Ray restarts an actor that died (``max_restarts``)."""
MAX_TASK_RETRIES = 2
"""How many times a file whose actor died is retried on the restarted actor
(``max_task_retries``); each retry resumes the run the dead actor left."""
START_TIMEOUT_SECONDS = 300.0
"""How long the batch waits for a first actor to start (an autoscaling cluster may
have to add a node) before it gives up."""
STOP_GRACE_SECONDS = 30.0
"""How long Ctrl-C / cancel waits for the actors to record their runs as interrupted."""
USAGE_STATS_ENV = "RAY_USAGE_STATS_ENABLED"
LOCAL_OBJECT_STORE_BYTES = 128 * 1024 * 1024
"""The object store of a local instance: tasks and outcomes are a few hundred bytes."""


class RayEngineError(InfomuxError):
    """Ray is missing, cannot be reached, or has no room for a worker."""


def import_ray() -> Any:
    """The ``ray`` module, imported on first use (never on ``infomux run``'s path).

    Raises:
        RayEngineError: Ray is not installed (the message names the extra).
    """
    try:
        import ray
    except ImportError as exc:
        raise RayEngineError(
            f"--ray needs Ray, which is not installed ({exc.msg}): {RAY_EXTRA}"
        ) from None
    return ray


def choose_address(
    address: str | None, environ: Mapping[str, str] | None = None
) -> tuple[str | None, str]:
    """The Ray cluster to join and where that came from: ``--ray-address``, else
    ``RAY_ADDRESS``, else ``(None, "local")`` (a local instance for the batch)."""
    env = os.environ if environ is None else environ
    if address and address.strip():
        return address.strip(), "--ray-address"
    value = env.get("RAY_ADDRESS", "").strip()
    if value:
        return value, "RAY_ADDRESS"
    return None, "local"


def plan_actors(
    nodes: Sequence[Mapping[str, Any]], *, threads: int, workers: int | None
) -> tuple[int, bool, str]:
    """Actors for a cluster of ``nodes`` (``ray.nodes()`` entries, alive ones): how
    many, whether they ask for :data:`WORKER_RESOURCE`, and the rule, for batch.json."""
    threads = max(1, threads)
    resources = [dict(n.get("Resources") or {}) for n in nodes]
    use_resource = any(r.get(WORKER_RESOURCE, 0) >= 1 for r in resources)
    if use_resource:
        capacity = sum(
            min(int(r.get(WORKER_RESOURCE, 0)), int(r.get("CPU", 0) // threads)) for r in resources
        )
        rule = f"per node min({WORKER_RESOURCE}, CPUs // {threads} thread(s))"
    else:
        capacity = sum(int(r.get("CPU", 0) // threads) for r in resources)
        rule = f"no node has {WORKER_RESOURCE}: CPUs // {threads} thread(s), spread"
    if workers is not None:
        return workers, use_resource, f"--workers; cluster holds {capacity} ({rule})"
    return max(1, capacity), use_resource, f"{capacity} the cluster holds ({rule})"


class RayWorker:
    """The actor: one :class:`Worker`, its model loaded once, for every file it is given.

    Made a Ray actor class by :class:`RayEngine` (``ray.remote(RayWorker)``), so that
    importing this module does not import Ray. Runs with ``max_concurrency=2``: ``stop``
    reaches the actor while ``process`` runs.
    """

    def __init__(self, settings: WorkerSettings, name: str) -> None:
        # The driver's stdout is the list of run directories: nothing of the actor's
        # (Ray forwards a worker's stdout to the driver's) may end up there.
        with contextlib.suppress(OSError):
            os.dup2(2, 1)
        from infomux.log import setup_logging

        setup_logging(settings.verbosity)
        if settings.verbosity == 0:  # the driver reports files; runs' info would interleave
            logging.getLogger("infomux").setLevel(logging.WARNING)
        self.worker = Worker(settings, name=name)
        self.cancel = threading.Event()

    def info(self) -> dict[str, Any]:
        """Where the actor runs (answers once the actor is up)."""
        import ray

        return {
            "worker": self.worker.name,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "node_id": ray.get_runtime_context().get_node_id(),
        }

    def process(self, task: FileTask) -> FileOutcome:
        """Process one file (:meth:`Worker.process`); the outcome says which node did."""
        outcome = self.worker.process(task, cancel=self.cancel)
        outcome.worker["node_id"] = self.info()["node_id"]
        return outcome

    def stop(self) -> None:
        """Stop the file in progress (recorded as interrupted); the actor takes no more."""
        self.cancel.set()


@dataclass
class _Actor:
    """The driver's view of one actor."""

    number: int
    name: str
    handle: Any
    ready: bool = False
    dead: str | None = None
    task: FileTask | None = None
    task_pid: int | None = None  # the actor's process when the task was handed over
    info: dict[str, Any] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "worker": self.name,
            "hostname": self.info.get("hostname"),
            "node_id": self.info.get("node_id"),
            "pids": list(self.pids),
            **({"dead": self.dead} if self.dead else {}),
        }


class RayEngine:
    """Ray actors, on a cluster joined or a local instance started (module docstring).

    Args:
        settings: what every worker gets; ``settings.threads`` CPUs per actor.
        workers: actors (``--workers``); None: as many as the cluster holds.
        address: ``--ray-address`` (None: ``RAY_ADDRESS``, else a local instance).
        max_restarts, max_task_retries: Ray's actor restarts and file retries.

    Raises:
        RayEngineError: Ray is not installed, or the cluster cannot be reached.
    """

    name = "ray"

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        workers: int | None = None,
        address: str | None = None,
        max_restarts: int = MAX_RESTARTS,
        max_task_retries: int = MAX_TASK_RETRIES,
    ) -> None:
        self._ray = import_ray()
        self.settings = settings
        self.threads = max(1, settings.threads)
        self.max_restarts = max_restarts
        self.max_task_retries = max_task_retries
        self._requested = workers
        self._actors: list[_Actor] = []
        self._actor_class: Any = None
        self._closed = False
        self._stdout: Any = None
        self.replaced = 0
        self.files_retried = 0
        self._owns_connection = False
        self._connect(address)
        try:
            self._facts = self._cluster_facts()
            self.workers, self.use_resource, self.rule = plan_actors(
                self._alive_nodes(), threads=self.threads, workers=workers
            )
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ connection

    def _connect(self, address: str | None) -> None:
        ray = self._ray
        self.usage_stats = os.environ.setdefault(USAGE_STATS_ENV, "0") not in ("0", "false")
        if not _isatty_stderr():  # the actors' lines Ray forwards: no colour codes in logs
            os.environ.setdefault("RAY_COLOR_PREFIX", "0")
        verbose = self.settings.verbosity > 0
        common: dict[str, Any] = {
            "logging_level": logging.INFO if verbose else logging.ERROR,
            "log_to_driver": self.settings.verbosity >= 0,
        }
        if ray.is_initialized():
            self.address, self.source, self.started = None, "connected before the batch", False
            self._owns_connection = False
        else:
            self.address, self.source = choose_address(address)
            self.started = self.address is None
            try:
                if self.address is None:
                    cores = os.cpu_count() or 1
                    slots = self._requested or max(1, cores // self.threads)
                    ray.init(
                        address="local",
                        num_cpus=max(cores, slots * self.threads),
                        resources={WORKER_RESOURCE: slots},
                        include_dashboard=False,
                        object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                        **common,
                    )
                else:
                    _check_reachable(self.address, self.source)
                    ray.init(address=self.address, **common)
            except RayEngineError:
                raise
            except Exception as exc:
                where = (
                    "start a local Ray instance"
                    if self.started
                    else (f"join the Ray cluster at {self.address} ({self.source})")
                )
                raise RayEngineError(f"cannot {where}: {' '.join(str(exc).split())}") from None
            self._owns_connection = True
            self._guard_stdout()
        with contextlib.suppress(Exception):
            self.address = ray.get_runtime_context().gcs_address
        log.info(
            "Ray %s: %s (%s)",
            ray.__version__,
            self.address,
            "started for this batch" if self.started else self.source,
        )

    def _guard_stdout(self) -> None:
        """Keep stdout for the driver's run directories: Ray's threads print the actors'
        forwarded lines and the raylet's messages ("A worker died ...") on
        ``sys.stdout``; while Ray is connected those go to stderr."""
        import sys

        if not isinstance(sys.stdout, _DriverStdout):
            self._stdout = sys.stdout
            sys.stdout = _DriverStdout(sys.stdout, threading.current_thread())

    def _unguard_stdout(self) -> None:
        import sys

        if isinstance(sys.stdout, _DriverStdout) and self._stdout is not None:
            sys.stdout = self._stdout
        self._stdout = None

    def _alive_nodes(self) -> list[dict[str, Any]]:
        return [n for n in self._ray.nodes() if n.get("Alive")]

    def _cluster_facts(self) -> dict[str, Any]:
        """Ray's version, the nodes and the resources, for batch.json."""
        nodes = []
        for node in self._alive_nodes():
            res = node.get("Resources") or {}
            nodes.append(
                {
                    "node_id": node.get("NodeID"),
                    "hostname": node.get("NodeManagerHostname"),
                    "address": node.get("NodeManagerAddress"),
                    "cpus": res.get("CPU", 0),
                    "gpus": res.get("GPU", 0),
                    "memory_bytes": int(res.get("memory", 0)),
                    WORKER_RESOURCE: res.get(WORKER_RESOURCE, 0),
                }
            )
        totals = self._ray.cluster_resources()
        return {
            "nodes": nodes,
            "cpus": totals.get("CPU", 0),
            "resources": {
                k: totals[k] for k in ("CPU", "GPU", "memory", WORKER_RESOURCE) if k in totals
            },
        }

    def describe(self) -> dict[str, Any]:
        """batch.json's ``engine``: Ray's version, the cluster, the actors, restarts."""
        if not self._closed:
            with contextlib.suppress(Exception):
                self._facts = self._cluster_facts()
        return {
            "name": self.name,
            "ray_version": self._ray.__version__,
            "address": self.address,
            "address_from": self.source,
            "started_for_batch": self.started,
            "usage_stats_enabled": self.usage_stats,
            **self._facts,
            "workers": self.workers,
            "threads_per_worker": self.threads,
            "rule": self.rule,
            "worker_resource": WORKER_RESOURCE if self.use_resource else None,
            "max_restarts": self.max_restarts,
            "max_task_retries": self.max_task_retries,
            "actors": [a.to_dict() for a in self._actors],
            "actor_restarts": sum(max(0, len(a.pids) - 1) for a in self._actors),
            "files_retried": self.files_retried,
            "actors_replaced": self.replaced,
        }

    # ------------------------------------------------------------------ actors

    def _start_actor(self) -> _Actor:
        ray = self._ray
        if self._actor_class is None:
            self._actor_class = ray.remote(RayWorker)
        options: dict[str, Any] = {
            "num_cpus": self.threads,
            "max_restarts": self.max_restarts,
            "max_task_retries": self.max_task_retries,
            "max_concurrency": 2,  # stop() while process() runs
        }
        if self.use_resource:
            options["resources"] = {WORKER_RESOURCE: 1}
        else:
            options["scheduling_strategy"] = "SPREAD"
        number = len(self._actors) + 1
        name = f"ray-{number}"
        handle = self._actor_class.options(**options).remote(self.settings, name)
        actor = _Actor(number, name, handle)
        self._actors.append(actor)
        return actor

    def run(
        self,
        tasks: Sequence[FileTask],
        on_outcome: Callable[[FileOutcome], None],
        cancel: threading.Event,
    ) -> None:
        """Process ``tasks`` on the actors; see :class:`~infomux.batch.worker.Engine`."""
        ray = self._ray
        todo = collections.deque(tasks)
        self.workers = min(self.workers, max(1, len(todo)))
        pending: dict[Any, tuple[str, _Actor]] = {}  # ObjectRef -> ("ready"|"task", actor)
        while sum(a.dead is None for a in self._actors) < self.workers:
            actor = self._start_actor()
            pending[actor.handle.info.remote()] = ("ready", actor)
        finished: list[FileOutcome] = []
        began = time.monotonic()
        try:
            while todo or any(a.task for a in self._actors) or finished:
                if cancel.is_set():
                    break
                for actor in self._actors:
                    if todo and actor.ready and actor.dead is None and actor.task is None:
                        task = todo.popleft()
                        actor.task, actor.task_pid = task, (actor.pids[-1] if actor.pids else None)
                        pending[actor.handle.process.remote(task)] = ("task", actor)
                while finished:  # each actor has its next file before the driver's part
                    on_outcome(finished.pop(0))
                if not (todo or any(a.task for a in self._actors)):
                    break
                self._check_progress(pending, todo, began)
                done, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)
                for ref in done:
                    self._collect(ref, pending, todo, finished)
        except BaseException:
            self._stop(pending, finished, on_outcome)
            raise
        if cancel.is_set():
            self._stop(pending, finished, on_outcome)

    def _check_progress(self, pending: dict[Any, Any], todo: Any, began: float) -> None:
        """Raise when no actor is left, or none could start in time."""
        if not pending:
            causes = [a.dead for a in self._actors if a.dead]
            raise RayEngineError(
                f"no Ray worker left ({causes[-1] if causes else 'none started'}); "
                f"{len(todo)} file(s) not processed (infomux batch --resume processes them)"
            )
        if not any(a.pids for a in self._actors):
            waited = time.monotonic() - began
            if waited > START_TIMEOUT_SECONDS:
                need = f"{self.threads} CPU(s)"
                if self.use_resource:
                    need += f" and one {WORKER_RESOURCE}"
                raise RayEngineError(
                    f"no Ray worker started in {waited:.0f} s: no node has {need} free "
                    "(`ray status` shows the cluster's resources)"
                )

    def _collect(
        self,
        ref: Any,
        pending: dict[Any, tuple[str, _Actor]],
        todo: Any,
        finished: list[FileOutcome],
    ) -> None:
        """One finished call: an actor is up, or a file ended (or its actor died)."""
        ray = self._ray
        kind, actor = pending.pop(ref)
        try:
            value = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            cause = _one_line(exc)
            if kind == "task":
                task, actor.task = actor.task, None
                assert task is not None
                finished.append(self._lost(task, actor, cause))
                actor.ready = False  # restarted, or dead: ask it
                pending[actor.handle.info.remote()] = ("ready", actor)
            else:
                actor.dead = cause
                log.warning("Ray worker %s is gone: %s", actor.name, cause)
                if todo and self.replaced < self.workers:
                    self.replaced += 1
                    new = self._start_actor()
                    pending[new.handle.info.remote()] = ("ready", new)
            return
        except ray.exceptions.RayError as exc:  # process() raised: a bug, as an outcome
            if kind == "task" and actor.task is not None:
                task, actor.task = actor.task, None
                finished.append(self._lost(task, actor, f"internal error: {_one_line(exc)}"))
            return
        if kind == "ready":
            actor.ready, actor.info = True, dict(value)
            self._saw_pid(actor, value["pid"])
            return
        outcome: FileOutcome = value
        actor.task = None
        pid = outcome.worker.get("pid")
        if actor.task_pid is not None and pid != actor.task_pid:
            self.files_retried += 1  # the actor process it was handed to died meanwhile
            outcome.worker["retried_after_actor_death"] = True
        if isinstance(pid, int):
            self._saw_pid(actor, pid)
        finished.append(outcome)

    @staticmethod
    def _saw_pid(actor: _Actor, pid: int) -> None:
        if not actor.pids or actor.pids[-1] != pid:
            actor.pids.append(pid)

    def _lost(self, task: FileTask, actor: _Actor, cause: str) -> FileOutcome:
        """The outcome of a file whose actor died on every try."""
        tries = 1 + self.max_task_retries
        return FileOutcome.failure(
            task,
            f"the Ray worker {actor.name} died while processing this file "
            f"({tries} {'try' if tries == 1 else 'tries'}): {cause}",
            {"worker": actor.name, "hostname": actor.info.get("hostname")},
        )

    def _stop(
        self,
        pending: dict[Any, tuple[str, _Actor]],
        finished: list[FileOutcome],
        on_outcome: Callable[[FileOutcome], None],
    ) -> None:
        """Tell the busy actors to stop, pass on the outcomes of the files they had
        (runs recorded as interrupted) for at most :data:`STOP_GRACE_SECONDS`, close."""
        ray = self._ray
        for outcome in finished:
            with contextlib.suppress(Exception):
                on_outcome(outcome)
        busy = {ref: actor for ref, (kind, actor) in pending.items() if kind == "task"}
        for actor in busy.values():
            with contextlib.suppress(Exception):
                actor.handle.stop.remote()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while busy and time.monotonic() < deadline:
            try:
                done, _ = ray.wait(list(busy), num_returns=1, timeout=0.2)
                for ref in done:
                    busy.pop(ref)
                    with contextlib.suppress(Exception):
                        on_outcome(ray.get(ref))
            except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
                break
        self.close()

    def close(self) -> None:
        """Kill the actors; stop the local instance (or leave the cluster). Idempotent."""
        if self._closed:
            return
        self._closed = True
        ray = self._ray
        for actor in self._actors:
            with contextlib.suppress(Exception):
                ray.kill(actor.handle, no_restart=True)
        if self._owns_connection:
            with contextlib.suppress(Exception):
                ray.shutdown()
        self._unguard_stdout()


class _DriverStdout:
    """``sys.stdout`` while this process is connected to Ray: what the driver thread
    writes (the run directories) goes to stdout, what any other thread writes (Ray's
    log and error threads) goes to stderr."""

    def __init__(self, stdout: Any, driver: threading.Thread) -> None:
        self._stdout = stdout
        self._driver = driver

    def write(self, text: str) -> int:
        import sys

        if threading.current_thread() is self._driver:
            return int(self._stdout.write(text))
        return int(sys.stderr.write(text))

    def flush(self) -> None:
        self._stdout.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stdout, name)


CONNECT_TIMEOUT_SECONDS = 10.0
"""How long the check that something answers at ``--ray-address`` waits (Ray itself
retries an unreachable address for minutes)."""


def _check_reachable(address: str, source: str) -> None:
    """Fail fast when nothing accepts a connection at a ``host:port`` address (other
    forms, ``ray://...`` or ``auto``, are left to Ray)."""
    if "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not port.isdigit() or not host:
        return
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_SECONDS):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise RayEngineError(
            f"cannot join the Ray cluster at {address} ({source}): nothing answers there ({reason})"
        ) from None


def _isatty_stderr() -> bool:
    import sys

    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _one_line(exc: BaseException) -> str:
    """The first line of a Ray error, without its traceback."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return " ".join(first.split())[:300]
