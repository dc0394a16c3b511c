"""pipeline.py and steps/: registries, the runner's recording, failures, interruption, resume.

The runner is exercised with small real steps registered by the ``toy_steps``
fixture (and removed afterwards); the real steps are exercised end to end in
test_cli.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from infomux import pipeline, storage
from infomux.errors import InfomuxError, StepError
from infomux.job import SCHEMA_PATH, JobEnvelope, JobStatus, StepStatus
from infomux.steps import (
    StepContext,
    StepResult,
    discover_steps,
    get_step,
    register_step,
    registered_steps,
    unregister_step,
)

SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def assert_valid(run_dir: Path) -> dict[str, Any]:
    data = json.loads((run_dir / "job.json").read_text(encoding="utf-8"))
    jsonschema.validate(data, SCHEMA)
    return data


class Toy:
    """Configuration of the toy steps, read from the run's options."""

    @staticmethod
    def maybe_fail(ctx: StepContext, name: str) -> None:
        action = ctx.options.get("break", {}).get(name)
        if action == "fail":
            raise StepError(name, "toy failure")
        if action == "infomux":
            raise InfomuxError("toy infomux error")
        if action == "interrupt":
            raise KeyboardInterrupt
        if action == "bug":
            raise RuntimeError("toy bug")


@pytest.fixture
def toy_steps() -> Iterator[dict[str, Any]]:
    """Register toy steps ``toy_read`` -> ``toy_upper`` and pipeline ``toy``."""
    calls: dict[str, Any] = {"toy_read": 0, "toy_upper": 0, "seen_running": []}

    @register_step("toy_read", needs_input=True)
    class ToyRead:
        """Copy the input into read.txt."""

        def run(self, ctx: StepContext) -> StepResult:
            calls["toy_read"] += 1
            on_disk = json.loads((ctx.run_dir / "job.json").read_text())
            calls["seen_running"].append((on_disk["status"], on_disk["steps"][0]["status"]))
            Toy.maybe_fail(ctx, "toy_read")
            text = Path(ctx.job.input.path).read_text()
            (ctx.run_dir / "read.txt").write_text(text)
            ctx.data["text"] = text
            ctx.job.audio = {"sample_rate": 1, "channels": 1, "decoded_duration": 0.0}
            ctx.progress("toy_read", 100)
            return StepResult(outputs=["read.txt"], metadata={"chars": len(text)})

    @register_step("toy_upper", requires=("toy_read",))
    class ToyUpper:
        """Upper-case read.txt into upper.txt."""

        def prepare(self, ctx: StepContext) -> None:
            calls.setdefault("prepared_in", []).append(threading.current_thread().name)
            if ctx.options.get("break", {}).get("toy_upper_prepare") == "fail":
                raise InfomuxError("toy prepare failure")
            ctx.resources["prepared"] = True

        def run(self, ctx: StepContext) -> StepResult:
            calls["toy_upper"] += 1
            ctx.resources.setdefault("shared", []).append(ctx.job.id)
            Toy.maybe_fail(ctx, "toy_upper")
            from_memory = "text" in ctx.data
            text = ctx.data["text"] if from_memory else (ctx.run_dir / "read.txt").read_text()
            (ctx.run_dir / "upper.txt").write_text(text.upper())
            return StepResult(outputs=["upper.txt"], metadata={"from_memory": from_memory})

    pipeline.register_pipeline("toy", ("toy_read", "toy_upper"), "toy pipeline")
    try:
        yield calls
    finally:
        unregister_step("toy_read")
        unregister_step("toy_upper")
        pipeline.unregister_pipeline("toy")


@pytest.fixture
def media(tmp_path: Path) -> Path:
    path = tmp_path / "input.txt"
    path.write_text("hello world\n")
    return path


def new_run(media: Path, **options: Any) -> tuple[JobEnvelope, Path]:
    return pipeline.create_run(media, pipeline="toy", config=options)


# ----------------------------------------------------------------------------- registries


def test_builtin_steps_and_pipelines_are_registered() -> None:
    discover_steps()
    steps = registered_steps()
    assert {"extract_audio", "transcribe"} <= set(steps)
    assert steps["extract_audio"].needs_input
    assert steps["transcribe"].requires == ("extract_audio",)
    assert not steps["transcribe"].needs_input
    pipes = pipeline.builtin_pipelines()  # the packaged pipelines.yaml
    assert pipes["transcribe"].steps == ("extract_audio", "transcribe", "store")
    assert pipes["audio"].steps == ("extract_audio", "store")
    assert all(p.steps[-1] == "store" for p in pipes.values())  # every run is searchable
    assert set(pipes) <= set(pipeline.registered_pipelines())
    assert pipeline.DEFAULT_PIPELINE == "transcribe"
    assert pipeline.get_pipeline("transcribe").name == "transcribe"


def test_step_modules_import_nothing_heavy() -> None:
    code = (
        "import sys; from infomux import pipeline; pipeline.get_pipeline('transcribe');"
        "heavy = [m for m in ('numpy', 'av', 'infomux._whisper') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_pipeline_checks(toy_steps: dict[str, Any]) -> None:
    with pytest.raises(pipeline.PipelineError, match="unknown pipeline"):
        pipeline.get_pipeline("nope")
    with pytest.raises(pipeline.PipelineError, match="requires toy_read"):
        pipeline.check_steps(["toy_upper", "toy_read"])
    with pytest.raises(pipeline.PipelineError, match="unknown step"):
        pipeline.check_steps(["toy_read", "nope"])
    with pytest.raises(pipeline.PipelineError, match="twice"):
        pipeline.check_steps(["toy_read", "toy_read"])
    pipeline.register_pipeline("toy_bad", ("toy_upper",))
    try:
        with pytest.raises(pipeline.PipelineError):
            pipeline.get_pipeline("toy_bad")
    finally:
        pipeline.unregister_pipeline("toy_bad")
    with pytest.raises(KeyError):
        get_step("nope")


def test_duplicate_step_name_is_refused(toy_steps: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="already registered"):

        @register_step("toy_read")
        class Other:
            def run(self, ctx: StepContext) -> StepResult:
                return StepResult()


# ----------------------------------------------------------------------------- runner


def test_successful_run_is_recorded(toy_steps: dict[str, Any], media: Path) -> None:
    job, run_dir = new_run(media)
    assert assert_valid(run_dir)["status"] == "pending"
    progress: list[tuple[str, int]] = []
    resources: dict[str, Any] = {}
    pipeline.execute(
        job, run_dir, resources=resources, on_progress=lambda s, p: progress.append((s, p))
    )
    data = assert_valid(run_dir)
    assert data["status"] == "completed" and data["error"] is None
    assert data["artifacts"] == ["read.txt", "upper.txt"]
    read, upper = data["steps"]
    assert read["status"] == upper["status"] == "completed"
    assert read["outputs"] == ["read.txt"] and read["metadata"] == {"chars": 12}
    assert upper["metadata"] == {"from_memory": True}  # handed over in ctx.data
    for step in data["steps"]:
        assert step["started_at"] <= step["completed_at"]
        assert step["duration_seconds"] >= 0
        assert step["attempts"] == []
    assert data["audio"]["sample_rate"] == 1  # a step filled a reproducibility field
    assert data["config"]["pipeline"] == "toy"
    assert data["input"]["path"] == str(media)
    assert (run_dir / "upper.txt").read_text() == "HELLO WORLD\n"
    assert progress == [("toy_read", 100)]
    assert resources["shared"] == [job.id]
    # job.json said "running" while the step ran
    assert toy_steps["seen_running"] == [("running", "running")]
    assert data["host"]["pid"] == os.getpid()
    # toy_upper.prepare() ran in the background, before toy_upper ran
    assert toy_steps["prepared_in"][0].startswith("infomux-prepare")
    assert resources["prepared"] is True


def test_prepare_failure_is_the_steps_failure(toy_steps: dict[str, Any], media: Path) -> None:
    job, run_dir = new_run(media, **{"break": {"toy_upper_prepare": "fail"}})
    with pytest.raises(StepError, match="toy prepare failure"):
        pipeline.execute(job, run_dir)
    data = assert_valid(run_dir)
    assert data["steps"][0]["status"] == "completed"
    assert data["steps"][1]["status"] == "failed"
    assert data["steps"][1]["error"] == "toy prepare failure"
    assert toy_steps["toy_upper"] == 0  # run() never called


def test_prepare_is_not_used_for_the_first_step(toy_steps: dict[str, Any], media: Path) -> None:
    job, run_dir = failed_run(media, "toy_upper")
    toy_steps.pop("prepared_in")
    pipeline.prepare_resume(job, run_dir, overrides={"break": {}})
    pipeline.execute(job, run_dir)
    assert "prepared_in" not in toy_steps  # toy_upper ran first: no background prepare


def test_resources_are_shared_across_runs(toy_steps: dict[str, Any], media: Path) -> None:
    resources: dict[str, Any] = {}
    ids = []
    for _ in range(2):
        job, run_dir = new_run(media)
        pipeline.execute(job, run_dir, resources=resources)
        ids.append(job.id)
    assert resources["shared"] == ids


@pytest.mark.parametrize("action", ["fail", "infomux"])
def test_failure_is_recorded_and_outputs_kept(
    toy_steps: dict[str, Any], media: Path, action: str
) -> None:
    job, run_dir = new_run(media, **{"break": {"toy_upper": action}})
    with pytest.raises(StepError) as info:
        pipeline.execute(job, run_dir)
    assert info.value.step_name == "toy_upper"
    data = assert_valid(run_dir)
    assert data["status"] == "failed"
    message = "toy failure" if action == "fail" else "toy infomux error"
    assert data["error"] == f"toy_upper: {message}"
    read, upper = data["steps"]
    assert read["status"] == "completed"
    assert upper["status"] == "failed" and upper["error"] == message
    assert upper["completed_at"] and upper["duration_seconds"] >= 0
    assert (run_dir / "read.txt").exists()  # nothing already produced is deleted
    assert data["artifacts"] == ["read.txt"]


def test_bug_in_step_is_recorded_and_reraised(toy_steps: dict[str, Any], media: Path) -> None:
    job, run_dir = new_run(media, **{"break": {"toy_read": "bug"}})
    with pytest.raises(RuntimeError, match="toy bug"):
        pipeline.execute(job, run_dir)
    data = assert_valid(run_dir)
    assert data["status"] == "failed"
    assert data["steps"][0]["error"] == "internal error: RuntimeError: toy bug"
    assert data["steps"][1]["status"] == "pending"


def test_interrupt_is_recorded(toy_steps: dict[str, Any], media: Path) -> None:
    job, run_dir = new_run(media, **{"break": {"toy_upper": "interrupt"}})
    with pytest.raises(KeyboardInterrupt):
        pipeline.execute(job, run_dir)
    data = assert_valid(run_dir)
    assert data["status"] == "interrupted"
    assert data["steps"][1]["status"] == "interrupted"
    assert data["error"] == "toy_upper: interrupted"


def test_undeclared_output_fails_the_step(toy_steps: dict[str, Any], media: Path) -> None:
    @register_step("toy_liar")
    class Liar:
        """Claims an output it never wrote."""

        def run(self, ctx: StepContext) -> StepResult:
            return StepResult(outputs=["ghost.txt"])

    try:
        job, run_dir = pipeline.create_run(media, pipeline="toy", config={})
        job.steps[1].name = "toy_liar"
        with pytest.raises(StepError, match=r"ghost\.txt"):
            pipeline.execute(job, run_dir)
    finally:
        unregister_step("toy_liar")


# ----------------------------------------------------------------------------- resume


def failed_run(
    media: Path, step: str = "toy_upper", action: str = "fail"
) -> tuple[JobEnvelope, Path]:
    job, run_dir = new_run(media, **{"break": {step: action}})
    with pytest.raises((StepError, KeyboardInterrupt)):
        pipeline.execute(job, run_dir)
    return storage.load_job(run_dir), run_dir


def test_resume_skips_completed_and_keeps_history(toy_steps: dict[str, Any], media: Path) -> None:
    job, run_dir = failed_run(media)
    before = assert_valid(run_dir)
    todo = pipeline.prepare_resume(job, run_dir, overrides={"break": {}, "threads": None})
    assert [r.name for r in todo] == ["toy_upper"]
    pipeline.execute(job, run_dir)
    data = assert_valid(run_dir)
    assert data["status"] == "completed" and data["error"] is None
    assert data["steps"][0] == before["steps"][0]  # untouched, not re-run
    upper = data["steps"][1]
    assert upper["status"] == "completed"
    assert upper["metadata"] == {"from_memory": False}  # read back from disk
    assert len(upper["attempts"]) == 1
    assert upper["attempts"][0]["status"] == "failed"
    assert upper["attempts"][0]["error"] == "toy failure"
    assert data["artifacts"] == ["read.txt", "upper.txt"]
    assert toy_steps["toy_read"] == 1 and toy_steps["toy_upper"] == 2
    resumed = data["history"][-1]
    assert resumed["event"] == "resumed" and resumed["overrides"] == {"break": {}}
    assert resumed["overridden"] == {"break": {"toy_upper": "fail"}}
    assert "threads" not in resumed["overrides"]  # None = keep
    assert data["config"]["break"] == {}


def test_resume_twice_never_duplicates_artifacts(toy_steps: dict[str, Any], media: Path) -> None:
    job, run_dir = failed_run(media, "toy_upper", "interrupt")
    pipeline.prepare_resume(job, run_dir)  # still broken: interrupted again
    with pytest.raises(KeyboardInterrupt):
        pipeline.execute(job, run_dir)
    job = storage.load_job(run_dir)
    pipeline.prepare_resume(job, run_dir, overrides={"break": {}})
    pipeline.execute(job, run_dir)
    data = assert_valid(run_dir)
    assert data["artifacts"] == ["read.txt", "upper.txt"]
    assert [a["status"] for a in data["steps"][1]["attempts"]] == ["interrupted", "interrupted"]


def test_resume_reruns_completed_step_with_missing_output(
    toy_steps: dict[str, Any], media: Path
) -> None:
    job, run_dir = failed_run(media)
    (run_dir / "read.txt").unlink()
    todo = pipeline.prepare_resume(job, run_dir, overrides={"break": {}})
    assert [r.name for r in todo] == ["toy_read", "toy_upper"]
    pipeline.execute(job, run_dir)
    data = assert_valid(run_dir)
    assert data["steps"][0]["attempts"][0]["status"] == "completed"
    assert data["artifacts"] == ["read.txt", "upper.txt"]


def test_resume_refuses_changed_input_when_needed(toy_steps: dict[str, Any], media: Path) -> None:
    job, run_dir = failed_run(media, "toy_read")
    media.write_text("something else\n")
    with pytest.raises(pipeline.InputChangedError, match="changed"):
        pipeline.prepare_resume(job, run_dir)
    media.unlink()
    with pytest.raises(pipeline.InputChangedError, match="no longer exists"):
        pipeline.prepare_resume(job, run_dir)


def test_resume_same_size_change_detected_by_hash(toy_steps: dict[str, Any], media: Path) -> None:
    job, run_dir = failed_run(media, "toy_read")
    media.write_text("HELLO WORLD\n")  # same size
    with pytest.raises(pipeline.InputChangedError, match="sha256"):
        pipeline.prepare_resume(job, run_dir)


def test_resume_ignores_input_when_no_step_needs_it(toy_steps: dict[str, Any], media: Path) -> None:
    job, run_dir = failed_run(media, "toy_upper")
    media.unlink()  # toy_read is done; toy_upper only reads read.txt
    pipeline.prepare_resume(job, run_dir, overrides={"break": {}})
    pipeline.execute(job, run_dir)
    assert assert_valid(run_dir)["status"] == "completed"


def test_resume_of_a_job_left_running(toy_steps: dict[str, Any], media: Path) -> None:
    """Whoever holds the run lock may resume a run left running; the abandoned attempt
    is recorded (which process left it does not matter: see tests/test_resume_lock.py)."""
    job, run_dir = failed_run(media, "toy_upper")
    job.status = JobStatus.RUNNING
    job.steps[1].status = StepStatus.RUNNING
    job.host["hostname"] = "elsewhere.invalid"
    job.host["pid"] = os.getppid()
    todo = pipeline.prepare_resume(job, run_dir, overrides={"break": {}})
    assert [r.name for r in todo] == ["toy_upper"]
    pipeline.execute(job, run_dir)
    data = assert_valid(run_dir)
    assert data["status"] == "completed"
    attempt = data["steps"][1]["attempts"][-1]
    assert attempt["status"] == "interrupted" and "abandoned" in attempt["error"]


def test_close_resources() -> None:
    closed = []

    class Res:
        def close(self) -> None:
            closed.append(1)

    class Bad:
        def close(self) -> None:
            raise RuntimeError("nope")

    resources = {"a": Res(), "b": Bad(), "c": 3}
    pipeline.close_resources(resources)
    assert closed == [1] and resources == {}


def test_interrupt_while_saving_is_recorded(
    toy_steps: dict[str, Any], media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal landing inside a job.json save still ends as 'interrupted'."""
    job, run_dir = new_run(media)
    real_save = storage.save_job
    calls = {"n": 0}

    def flaky_save(job: JobEnvelope, run_dir: Path) -> None:
        real_save(job, run_dir)
        calls["n"] += 1
        if calls["n"] == 1:  # after the step-start save reached the disk
            raise KeyboardInterrupt

    monkeypatch.setattr(storage, "save_job", flaky_save)
    with pytest.raises(KeyboardInterrupt):
        pipeline.execute(job, run_dir)
    data = assert_valid(run_dir)
    assert data["status"] == "interrupted"
    assert data["steps"][0]["status"] == "interrupted"
    assert toy_steps["toy_read"] == 0


def test_job_json_saves_are_batched(
    toy_steps: dict[str, Any], media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One fsync'd save per step start plus one at the end (each save costs an fsync)."""
    job, run_dir = new_run(media)
    real_save = storage.save_job
    seen: list[list[str]] = []

    def counting_save(job: JobEnvelope, run_dir: Path) -> None:
        seen.append([f"{job.status}"] + [f"{s.name}={s.status}" for s in job.steps])
        real_save(job, run_dir)

    monkeypatch.setattr(storage, "save_job", counting_save)
    pipeline.execute(job, run_dir)
    assert seen == [
        ["running", "toy_read=running", "toy_upper=pending"],
        ["running", "toy_read=completed", "toy_upper=running"],
        ["completed", "toy_read=completed", "toy_upper=completed"],
    ]
