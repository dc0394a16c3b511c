"""``infomux batch`` on the local engine (issue 15): the worker, the driver-only steps,
inputs, batch.json, failures, resume after SIGKILL, the model loaded once per worker.

The end-to-end tests run the real CLI on real media (short clips of ``../shared/media``)
with the real tiny.en model; the runner's seams are exercised with small toy steps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from infomux import pipeline, storage
from infomux.batch import DONE, FAILED, FileTask, Worker, WorkerSettings
from infomux.job import SCHEMA_PATH, JobStatus
from infomux.steps import StepContext, StepResult, register_step, unregister_step

SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- toy steps


@pytest.fixture
def toy_batch_steps() -> Iterator[dict[str, int]]:
    """``bt_make`` (writes made.txt) -> ``bt_index`` (driver-only), pipeline ``bt``."""
    calls = {"bt_make": 0, "bt_index": 0}

    @register_step("bt_make", needs_input=True)
    class Make:
        """Copy the input into made.txt."""

        def run(self, ctx: StepContext) -> StepResult:
            calls["bt_make"] += 1
            text = Path(ctx.job.input.path).read_text()
            if "broken" in text:
                raise ValueError("toy input is broken")
            (ctx.run_dir / "made.txt").write_text(text.upper())
            return StepResult(outputs=["made.txt"])

    @register_step("bt_index", requires=("bt_make",), driver_only=True)
    class Index:
        """Count what bt_make made (the driver's part)."""

        def run(self, ctx: StepContext) -> StepResult:
            calls["bt_index"] += 1
            return StepResult(metadata={"chars": len((ctx.run_dir / "made.txt").read_text())})

    pipeline.register_pipeline("bt", ("bt_make", "bt_index"))
    try:
        yield calls
    finally:
        unregister_step("bt_make")
        unregister_step("bt_index")
        pipeline.unregister_pipeline("bt")


def test_store_is_driver_only() -> None:
    from infomux.steps import get_step

    assert get_step("store").driver_only
    assert not get_step("transcribe").driver_only
    assert pipeline.driver_only_steps(pipeline.get_pipeline("transcribe")) == {"store"}


def test_worker_leaves_driver_only_steps_pending_and_resume_finishes(
    tmp_path: Path, toy_batch_steps: dict[str, int]
) -> None:
    media = tmp_path / "in.txt"
    media.write_text("hello\n")
    job, run_dir = pipeline.create_run(media, pipeline="bt", config={})
    worker = Worker(WorkerSettings(threads=1), name="w1")
    outcome = worker.process(FileTask(0, str(run_dir), str(media)))
    assert outcome.status == DONE and outcome.error is None
    assert outcome.run_id == job.id and outcome.worker["worker"] == "w1"
    on_disk = json.loads((run_dir / "job.json").read_text())
    jsonschema.validate(on_disk, SCHEMA)
    # the worker's part is done; the run says pending, the driver-only step still pending
    assert on_disk["status"] == "pending" and on_disk["error"] is None
    assert [s["status"] for s in on_disk["steps"]] == ["completed", "pending"]
    assert toy_batch_steps == {"bt_make": 1, "bt_index": 0}
    # processing it again does nothing: the worker's steps are done
    assert worker.process(FileTask(0, str(run_dir))).status == DONE
    assert toy_batch_steps["bt_make"] == 1
    # a plain resume (the driver died) finishes the run
    job = storage.load_job(run_dir)
    pipeline.execute(job, run_dir)
    assert storage.load_job(run_dir).status == JobStatus.COMPLETED
    assert toy_batch_steps == {"bt_make": 1, "bt_index": 1}


def test_worker_failure_is_an_outcome_and_a_second_try_resumes(
    tmp_path: Path, toy_batch_steps: dict[str, int]
) -> None:
    media = tmp_path / "in.txt"
    media.write_text("broken\n")
    _, run_dir = pipeline.create_run(media, pipeline="bt", config={})
    worker = Worker(WorkerSettings())
    outcome = worker.process(FileTask(3, str(run_dir)))
    assert outcome.status == FAILED and outcome.index == 3
    assert "toy input is broken" in (outcome.error or "")
    assert storage.load_job(run_dir).status == JobStatus.FAILED
    # the input is fixed (same size would be needed to pass the sha256 check: it is not)
    media.write_text("mended\n")
    again = worker.process(FileTask(3, str(run_dir)))
    assert again.status == FAILED and "changed" in (again.error or "")
