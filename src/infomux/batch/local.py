"""The local engine: worker processes on this machine, each with one :class:`Worker`.

Each worker process (``multiprocessing``'s ``spawn`` start method: no fork of a process
that holds threads and native state) keeps its Worker, and with it the loaded model,
for every file it gets. The driver hands one task at a time to an idle worker (its own
queue), so it always knows which file each worker has: when a worker process dies (a
crash in native code on a damaged file, an OOM kill), that file's outcome is a failure
naming the signal, and a new worker takes its place for the files left.

Workers x threads (:func:`plan_workers`): ``threads`` per worker defaults to
:data:`THREADS_PER_WORKER`, and as many workers as the cores hold (at most one per
file); cores left over when there are fewer files than that go to the workers. Measured
on a 2-core machine with tiny.en (docs/batch.md): 2 workers x 1 thread processed short
files faster than 1 worker x 2 threads, as whisper.cpp's threads wait for each other at
every graph node (the same finding as :func:`infomux.streams.plan_streams`).

Workers ignore SIGINT: Ctrl-C reaches the driver, which sets the shared cancel event;
each worker records its run as interrupted and stops. A worker whose driver is gone
(killed) notices within a second, stops its run the same way and exits, so it never
holds a run's lock for long.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from infomux.batch.worker import FileOutcome, FileTask, Worker, WorkerSettings

log = logging.getLogger("infomux.batch.local")

THREADS_PER_WORKER = 1
"""Default whisper.cpp threads per worker: one graph per core keeps the cores busiest."""
MAX_THREADS_PER_WORKER = 4
"""Threads a worker gets at most when cores are left over (whisper.cpp scales poorly
beyond 4)."""
STOP_GRACE_SECONDS = 30.0
"""How long ``close``/Ctrl-C waits for workers to record their runs before killing them."""


@dataclass(frozen=True)
class WorkerPlan:
    """How many workers, with how many threads each, and why."""

    workers: int
    threads: int
    cores: int
    rule: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (in batch.json's engine)."""
        return {
            "workers": self.workers,
            "threads_per_worker": self.threads,
            "cores": self.cores,
            "rule": self.rule,
        }


def plan_workers(
    files: int,
    *,
    workers: int | None = None,
    threads: int | None = None,
    cores: int | None = None,
    threads_source: str = "--threads",
    workers_source: str = "--workers",
) -> WorkerPlan:
    """Workers x threads for ``files`` files on ``cores`` cores (default: this machine's).

    Given ``workers`` and ``threads`` are kept. Otherwise threads default to
    :data:`THREADS_PER_WORKER` and workers to ``cores // threads`` (at most ``files``);
    when fewer workers than that are needed, each gets ``cores // workers`` threads (at
    most :data:`MAX_THREADS_PER_WORKER`). ``threads_source`` and ``workers_source`` say in the
    rule where given values came from.
    """
    cores = max(1, cores or os.cpu_count() or 1)
    files = max(1, files)
    if workers is None:
        per = threads or THREADS_PER_WORKER
        count = max(1, min(files, cores // per))
        rule = f"{cores} cores / {per} thread(s) per worker, at most one worker per file"
    else:
        count = max(1, min(files, workers)) if workers_source != "--workers" else workers
        rule = workers_source
    if threads is None:
        threads = max(1, min(MAX_THREADS_PER_WORKER, cores // count))
        if workers is None and threads > THREADS_PER_WORKER:
            rule += f"; {cores // count} core(s) per worker left over, {threads} threads each"
    else:
        rule += f"; {threads_source}"
    return WorkerPlan(count, threads, cores, rule)


class LocalEngine:
    """Worker processes on this machine (see the module docstring).

    Args:
        settings: what every worker gets (threads, data dir, verbosity).
        plan: workers x threads (:func:`plan_workers`).
    """

    name = "local"

    def __init__(self, settings: WorkerSettings, plan: WorkerPlan) -> None:
        self.settings = settings
        self.plan = plan
        self._context = multiprocessing.get_context("spawn")
        self._results: Any = self._context.Queue()
        self._cancel = self._context.Event()
        self._procs: dict[int, Any] = {}  # worker number -> Process
        self._inboxes: dict[int, Any] = {}  # worker number -> its task Queue
        self._next_number = 0
        self.restarts = 0

    def describe(self) -> dict[str, Any]:
        """batch.json's ``engine``: name, workers x threads, cores, the rule, restarts."""
        return {
            "name": self.name,
            **self.plan.to_dict(),
            "start_method": "spawn",
            "worker_restarts": self.restarts,
        }

    def _start_worker(self) -> int:
        number = self._next_number = self._next_number + 1
        inbox = self._context.Queue()
        proc = self._context.Process(
            target=_worker_main,
            args=(self.settings, f"local-{number}", inbox, self._results, self._cancel),
            name=f"infomux-worker-{number}",
            daemon=True,
        )
        proc.start()
        self._procs[number], self._inboxes[number] = proc, inbox
        log.debug("worker local-%d: pid %s", number, proc.pid)
        return number

    def run(
        self,
        tasks: Sequence[FileTask],
        on_outcome: Callable[[FileOutcome], None],
        cancel: threading.Event,
    ) -> None:
        """Process ``tasks`` on the worker processes; see :class:`~infomux.batch.worker.Engine`."""
        todo = list(tasks)
        todo.reverse()  # pop() from the end: the first task first
        busy: dict[int, FileTask] = {}
        idle: list[int] = []
        wanted = min(self.plan.workers, len(todo))
        while len(self._procs) < wanted:
            idle.append(self._start_worker())
        idle = sorted(set(idle) | (set(self._procs) - set(busy)))
        finished: list[FileOutcome] = []
        try:
            while todo or busy or finished:
                if cancel.is_set():
                    break
                while todo and idle:
                    number = idle.pop(0)
                    task = todo.pop()
                    busy[number] = task
                    self._inboxes[number].put(task)
                # the worker has its next file before the driver finishes this one
                while finished:
                    on_outcome(finished.pop(0))
                if not (todo or busy):
                    break
                try:
                    number, outcome = self._results.get(timeout=0.2)
                except queue.Empty:
                    self._check_workers(busy, idle, todo, finished.append)
                    continue
                self._handle(number, outcome, busy, idle, finished.append)
        except BaseException:
            self._stop(busy, finished, on_outcome)
            raise
        if cancel.is_set():
            self._stop(busy, finished, on_outcome)

    def _handle(
        self,
        number: int,
        outcome: FileOutcome,
        busy: dict[int, FileTask],
        idle: list[int],
        on_outcome: Callable[[FileOutcome], None],
    ) -> None:
        """Worker ``number`` finished its file: pass the outcome on, the worker is idle."""
        task = busy.get(number)
        if task is None or task.index != outcome.index:
            return  # already reported (the worker died after sending it)
        del busy[number]
        if number in self._procs:
            idle.append(number)
        on_outcome(outcome)

    def _check_workers(
        self,
        busy: dict[int, FileTask],
        idle: list[int],
        todo: list[FileTask],
        on_outcome: Callable[[FileOutcome], None],
    ) -> None:
        """A dead worker's file fails; a new worker replaces it while files are left."""
        for number, proc in list(self._procs.items()):
            if proc.is_alive():
                continue
            with contextlib.suppress(queue.Empty):  # what it sent before it died
                while True:
                    sender, outcome = self._results.get_nowait()
                    self._handle(sender, outcome, busy, idle, on_outcome)
            proc.join()
            del self._procs[number]
            self._inboxes.pop(number).close()
            if number in idle:
                idle.remove(number)
            task = busy.pop(number, None)
            how = _exit_description(proc.exitcode)
            log.warning("worker local-%d (pid %s) %s", number, proc.pid, how)
            if task is not None:
                on_outcome(
                    FileOutcome.failure(
                        task,
                        f"the worker process {how} while processing this file",
                        {"worker": f"local-{number}", "pid": proc.pid},
                    )
                )
            if todo and len(self._procs) < self.plan.workers and self.restarts < len(todo) + 8:
                self.restarts += 1
                idle.append(self._start_worker())
        if todo and not self._procs:  # workers keep dying at start: give up on the rest
            while todo:
                task = todo.pop()
                on_outcome(
                    FileOutcome.failure(
                        task, f"no worker process left ({self.restarts} restarted, all died)"
                    )
                )

    def _stop(
        self,
        busy: dict[int, FileTask],
        finished: list[FileOutcome],
        on_outcome: Callable[[FileOutcome], None],
    ) -> None:
        """Tell the workers to stop, collect the outcomes of the files they had (their
        runs recorded as interrupted), for at most :data:`STOP_GRACE_SECONDS`."""
        self._cancel.set()
        for outcome in finished:
            with contextlib.suppress(Exception):
                on_outcome(outcome)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while busy and time.monotonic() < deadline:
            try:
                number, outcome = self._results.get(timeout=0.2)
            except queue.Empty:
                if not any(self._procs[n].is_alive() for n in busy if n in self._procs):
                    break
                continue
            except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
                break
            if busy.pop(number, None) is not None:
                with contextlib.suppress(Exception):
                    on_outcome(outcome)
        self.close()

    def close(self) -> None:
        """Stop every worker: a clean exit when idle, killed after the grace period."""
        for inbox in self._inboxes.values():
            with contextlib.suppress(Exception):
                inbox.put(None)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for proc in self._procs.values():
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
        for inbox in self._inboxes.values():
            with contextlib.suppress(Exception):
                inbox.close()
        self._procs.clear()
        self._inboxes.clear()


def _exit_description(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _worker_main(
    settings: WorkerSettings, name: str, inbox: Any, results: Any, shared_cancel: Any
) -> None:
    """A worker process: take tasks from ``inbox`` until None, put ``(number, outcome)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    from infomux.log import setup_logging

    setup_logging(settings.verbosity)
    if settings.verbosity == 0:  # the driver reports files; runs' info lines would interleave
        logging.getLogger("infomux").setLevel(logging.WARNING)
    number = int(name.rsplit("-", 1)[-1])
    worker = Worker(settings, name=name)
    cancel = threading.Event()
    parent = os.getppid()

    def watch() -> None:
        """Turn the driver's cancel, or the driver's death, into this worker's cancel."""
        while not cancel.is_set():
            if shared_cancel.wait(0.5) or os.getppid() != parent:
                cancel.set()

    threading.Thread(target=watch, name="infomux-worker-watch", daemon=True).start()
    try:
        while not cancel.is_set():
            try:
                task = inbox.get(timeout=0.5)
            except queue.Empty:
                continue
            if task is None:
                break
            outcome = worker.process(task, cancel=cancel)
            results.put((number, outcome))
    finally:
        worker.close()
