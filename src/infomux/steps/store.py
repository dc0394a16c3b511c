"""Step ``store``: put the run into the search database (:mod:`infomux.store`).

Every built-in pipeline ends with it. It is driver-only: in a batch (``infomux batch``) the
driver runs it after a worker has made the run's files, so the SQLite database is written
by one process, never by workers over a network file system. Re-running it replaces the
run's rows, so a resumed run stays in step with its directory. It writes no file; a locked
or damaged database fails the step with a message saying what to do, and leaves every file
the run made where it is (``infomux resume`` or ``infomux reindex`` stores it later).
"""

from __future__ import annotations

import logging
import time

from infomux.errors import StepError
from infomux.job import JobStatus
from infomux.steps import StepContext, StepResult, register_step

log = logging.getLogger("infomux.steps.store")


@register_step("store", driver_only=True)
class Store:
    """Index the run's transcript in the search database (infomux search)."""

    def run(self, ctx: StepContext) -> StepResult:
        """Replace the run's rows in the database."""
        from infomux import store

        started = time.perf_counter()
        # the last step: when it succeeds, the run is complete
        status = str(JobStatus.COMPLETED)
        try:
            with store.Store.open() as db:
                segments = db.put_run(ctx.job, ctx.run_dir, status=status)
                path = db.path
        except store.StoreError as exc:
            raise StepError(
                "store",
                f"{exc} (the run's files are kept; 'infomux resume {ctx.job.id}' stores it "
                "once the database is usable)",
            ) from exc
        seconds = time.perf_counter() - started
        log.info("store: %d segments in %s (%.3f s)", segments, path, seconds)
        return StepResult(
            metadata={"database": str(path), "segments": segments, "seconds": round(seconds, 6)}
        )
