"""Batches: many files through one pipeline, each file's run made exactly as ``infomux run``
makes it, with the model loaded once per worker (``infomux batch``, issue 15).

The driver (:mod:`~infomux.batch.runner`) collects the inputs (:mod:`~infomux.batch.inputs`),
creates one run per file and records the batch in ``batch.json``
(:mod:`~infomux.batch.record`); an engine processes the files on its workers
(:mod:`~infomux.batch.worker`): worker processes on this machine
(:mod:`~infomux.batch.local`) or Ray actors (:mod:`~infomux.batch.ray_engine`). The same
steps and pipelines run on every engine; they differ only in where a file is processed.
The driver-only steps (``store``) run in the driver. See docs/batch.md.
"""

from __future__ import annotations

from infomux.batch.worker import (
    DONE,
    FAILED,
    INTERRUPTED,
    Engine,
    FileOutcome,
    FileTask,
    Worker,
    WorkerSettings,
)

__all__ = [
    "DONE",
    "FAILED",
    "INTERRUPTED",
    "Engine",
    "FileOutcome",
    "FileTask",
    "Worker",
    "WorkerSettings",
]
