"""The batch driver: runs made up front, an engine processing them, the driver-only steps,
``batch.json`` kept up to date.

:func:`start_batch` records the inputs in a new ``batch.json``; :func:`run_batch` (also
for ``--resume``) then

1. creates the run of every file that has none yet (``pipeline.create_run``: input hashed,
   pending ``job.json``; the run id goes into ``batch.json`` at once), per-file manifest
   options checked first;
2. hands a :class:`~infomux.batch.worker.FileTask` per file still to do to the engine,
   whose workers run every step that is not driver-only;
3. for each file a worker finished, runs the driver-only steps (``store``) here with a
   plain ``pipeline.execute`` (it skips the done steps), exports to ``--output-dir``, and
   reports the run directory (``on_done``); a failure is reported with ``on_failed``.

``batch.json`` is saved after every change. A run left by a worker is ``pending`` until
the driver has run its driver-only steps, so ``infomux resume RUN`` finishes it even if
the driver dies; ``--resume BATCH`` processes again every file that did not complete
(a worker resumes a started run as ``infomux resume`` does). Ctrl-C stops the workers,
which record their runs as interrupted; the batch is recorded ``interrupted``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infomux.batch.inputs import BatchItem, ManifestError
from infomux.batch.record import (
    COMPLETED,
    FAILED,
    INTERRUPTED,
    PENDING,
    SKIPPED,
    TO_REDO,
    BatchFile,
    BatchRecord,
)
from infomux.batch.worker import Engine, FileOutcome, FileTask

log = logging.getLogger("infomux.batch.runner")


@dataclass(frozen=True)
class Progress:
    """Where a batch stands, for the progress line on stderr.

    Attributes:
        done: files finished (completed or failed) of ``total`` to process.
        failed: of those, failed.
        audio_done, audio_total: seconds of audio of the finished files / of all.
        elapsed: seconds since this session of the batch started.
        eta: seconds left at this session's pace (None until a file has finished).
    """

    done: int
    total: int
    failed: int
    audio_done: float
    audio_total: float
    elapsed: float
    eta: float | None


def start_batch(
    items: Sequence[BatchItem],
    *,
    inputs: Sequence[str],
    manifest: str | None,
    pipeline: str,
    pipeline_file: str | None,
    options: dict[str, Any],
    explicit: Collection[str] = (),
    steps: Sequence[str] | None = None,
    root: Path | None = None,
) -> BatchRecord:
    """A new batch record for ``items`` (skipped ones listed as ``skipped``), saved.

    ``explicit``: the run options given as flags; ``steps``: ``--steps``.
    """
    record = BatchRecord.new(
        root,
        inputs=list(inputs),
        manifest=manifest,
        pipeline=pipeline,
        pipeline_file=pipeline_file,
        options=dict(options),
        explicit=sorted(explicit),
        steps=list(steps) if steps else None,
    )
    record.files = [
        BatchFile(
            index=i,
            path=item.path,
            origin=item.origin,
            options=dict(item.options),
            status=SKIPPED if item.skipped else PENDING,
            skipped=item.skipped,
            audio_seconds=item.audio_seconds,
        )
        for i, item in enumerate(items)
    ]
    record.save()
    return record


def files_to_do(record: BatchRecord) -> list[BatchFile]:
    """The files a run (or ``--resume``) of the batch processes: every one that did
    not complete and was not skipped."""
    return [f for f in record.files if f.status in TO_REDO]


def check_file_options(
    items: Iterable[BatchItem | BatchFile],
    *,
    pipeline: str,
    pipeline_file: str | None,
    options: dict[str, Any],
    explicit: Collection[str] = (),
    steps: Collection[str] | None = None,
) -> None:
    """Check every file's own options (manifest) against the pipeline's steps, before
    anything is recorded or run.

    Raises:
        ManifestError: a file's option has the wrong type or value (its line named).
    """
    from infomux import pipeline as pipelines

    for item in items:
        if not item.options:
            continue
        try:
            pipelines.resolve_run_graph(
                pipeline,
                {**options, **item.options},
                explicit={*explicit, *item.options},
                only=steps,
                pipeline_file=pipeline_file,
            )
        except pipelines.PipelineError as exc:
            raise ManifestError(f"{item.origin}: {exc}") from None


class _Driver:
    """One session of a batch: the state :func:`run_batch` shares with its callbacks."""

    def __init__(
        self,
        record: BatchRecord,
        *,
        on_done: Callable[[BatchFile], None],
        on_failed: Callable[[BatchFile], None],
        on_progress: Callable[[Progress], None],
    ) -> None:
        self.record = record
        self.on_done = on_done
        self.on_failed = on_failed
        self.on_progress = on_progress
        self.started = time.perf_counter()
        self.resources: dict[str, Any] = {}
        todo = files_to_do(record)
        self.total = len(todo)
        self.audio_total = sum(f.audio_seconds or 0.0 for f in todo)
        self.done = self.failed = 0
        self.audio_done = 0.0

    def fail(self, item: BatchFile, status: str, error: str) -> None:
        """Record a file's failure (or interruption) and save; report a failure."""
        item.status, item.error = status, error
        self.record.save()
        if status == FAILED:
            self.done += 1
            self.failed += 1
            self.audio_done += item.audio_seconds or 0.0
            self.on_failed(item)

    def create_runs(self) -> None:
        """Make the run of every file to do that has none (or whose run dir is gone)."""
        from infomux import pipeline
        from infomux.errors import InfomuxError

        for item in files_to_do(self.record):
            if item.run_dir and (Path(item.run_dir) / "job.json").is_file():
                continue
            try:
                job, run_dir = pipeline.create_run(
                    Path(item.path),
                    pipeline=self.record.pipeline,
                    config={**self.record.options, **item.options},
                    explicit={*self.record.explicit, *item.options},
                    only=self.record.steps,
                    pipeline_file=self.record.pipeline_file,
                )
            except (OSError, InfomuxError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                self.fail(item, FAILED, f"cannot read input {item.path}: {reason}")
            else:
                item.run_id, item.run_dir = job.id, str(run_dir)
                item.status, item.error = PENDING, None
                self.record.save()

    def outcome(self, outcome: FileOutcome) -> None:
        """A worker finished a file: finish its run here, record it (saved), then
        report it (a run dir is printed only once batch.json says it completed)."""
        item = self.record.files[outcome.index]
        item.outcome = outcome.to_dict()
        item.attempts += 1
        item.decoded_seconds = outcome.audio_seconds or item.decoded_seconds
        if outcome.ok:
            started = time.perf_counter()
            error = self._finish_run(Path(outcome.run_dir))
            item.driver_seconds = round(time.perf_counter() - started, 3)
            if error is None:
                item.status, item.error = COMPLETED, None
                self.record.save()
                self.done += 1
                self.audio_done += outcome.audio_seconds or item.audio_seconds or 0.0
                self.on_done(item)
            else:
                self.fail(item, FAILED, error)
        else:
            self.fail(item, outcome.status, outcome.error or outcome.status)
        self.on_progress(self.progress())

    def _finish_run(self, run_dir: Path) -> str | None:
        """Run the driver-only steps of a run a worker finished; None, or why it failed."""
        from infomux import exports, pipeline, storage
        from infomux.errors import InfomuxError
        from infomux.job import JobStatus

        try:
            with storage.RunLock(run_dir):
                job = storage.load_job(run_dir)
                if job.status == JobStatus.COMPLETED and not pipeline.steps_to_run(job, run_dir):
                    return None
                pipeline.execute(job, run_dir, resources=self.resources)
                if job.config.get(exports.OUTPUT_DIR_KEY):
                    exports.export_outputs(job, run_dir, job.config[exports.OUTPUT_DIR_KEY])
                    storage.save_job(job, run_dir)
        except (OSError, InfomuxError) as exc:
            if isinstance(exc, OSError) and exc.strerror:
                return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
            return " ".join(str(exc).split())
        return None

    def progress(self) -> Progress:
        elapsed = time.perf_counter() - self.started
        eta: float | None = None
        if self.done:
            if self.audio_done > 0 and self.audio_total > 0:
                eta = elapsed / self.audio_done * max(0.0, self.audio_total - self.audio_done)
            else:
                eta = elapsed / self.done * (self.total - self.done)
        return Progress(
            self.done,
            self.total,
            self.failed,
            self.audio_done,
            self.audio_total,
            elapsed,
            eta,
        )


def run_batch(
    record: BatchRecord,
    engine: Engine,
    *,
    on_done: Callable[[BatchFile], None] = lambda item: None,
    on_failed: Callable[[BatchFile], None] = lambda item: None,
    on_progress: Callable[[Progress], None] = lambda progress: None,
    cancel: threading.Event | None = None,
) -> BatchRecord:
    """Process every file of ``record`` that did not complete on ``engine`` (see the
    module docstring); return the record, saved, its ``status`` set.

    New runs get the record's options, its ``explicit`` flags (they win over a pipeline
    file's step options) and ``steps``. The engine is closed at the end.

    Raises:
        ManifestError: a file's own options are wrong (nothing was run).
        KeyboardInterrupt: Ctrl-C; the batch is recorded ``interrupted`` first.
    """
    from infomux import pipeline
    from infomux.job import utc_now

    check_file_options(
        files_to_do(record),
        pipeline=record.pipeline,
        pipeline_file=record.pipeline_file,
        options=record.options,
        explicit=record.explicit,
        steps=record.steps,
    )
    driver = _Driver(record, on_done=on_done, on_failed=on_failed, on_progress=on_progress)
    stop = cancel if cancel is not None else threading.Event()
    record.status = "running"
    record.engine = engine.describe()
    record.timings.setdefault("started_at", utc_now())
    record.timings.pop("ended_at", None)
    record.save()
    try:
        driver.create_runs()
        tasks = [
            FileTask(f.index, f.run_dir, f.path, f.audio_seconds)
            for f in files_to_do(record)
            if f.run_dir
        ]
        log.debug("batch %s: %d file(s) to process", record.id, len(tasks))
        if tasks:
            engine.run(tasks, driver.outcome, stop)
    except BaseException:
        record.status = INTERRUPTED
        record.event("interrupted")
        raise
    finally:
        engine_info = engine.describe()
        engine.close()
        pipeline.close_resources(driver.resources)
        record.engine = engine_info
        if stop.is_set() and record.status != INTERRUPTED:
            record.status = INTERRUPTED
            record.event("interrupted")
        elif record.status != INTERRUPTED:
            record.status = (
                FAILED if any(f.status != COMPLETED for f in _processed(record)) else COMPLETED
            )
        _timings(record, time.perf_counter() - driver.started)
        record.save()
    return record


def _processed(record: BatchRecord) -> list[BatchFile]:
    return [f for f in record.files if f.status != SKIPPED]


def _timings(record: BatchRecord, seconds: float) -> None:
    """Session and total seconds, files per minute and audio seconds per second."""
    from infomux.job import utc_now

    timings = record.timings
    timings["ended_at"] = utc_now()
    timings["sessions"] = [*timings.get("sessions", []), round(seconds, 3)]
    total = sum(timings["sessions"])
    timings["seconds"] = round(total, 3)
    completed = [f for f in record.files if f.status == COMPLETED]
    audio = sum(f.decoded_seconds or 0.0 for f in completed)
    timings["files_per_minute"] = round(len(completed) / total * 60, 3) if total else None
    timings["audio_seconds_per_second"] = round(audio / total, 3) if total else None
