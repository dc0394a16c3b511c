"""The step graph runner (issue 12.2): independent steps overlap in time, a failing branch
fails the run after its siblings finish, resume runs only what is not done, --from-step
redoes a step and what follows it (earlier outputs kept as attempts)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from infomux import pipeline, storage
from infomux.errors import StepError
from infomux.job import SCHEMA_PATH, parse_time
from infomux.steps import OptionSpec, StepContext, StepResult, register_step, unregister_step

SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def load(run_dir: Path) -> dict[str, Any]:
    data = json.loads((run_dir / "job.json").read_text(encoding="utf-8"))
    jsonschema.validate(data, SCHEMA)
    return data


@pytest.fixture
def graph_steps() -> Iterator[dict[str, Any]]:
    """``g_work`` (sleeps, writes <id>.txt; may fail) and ``g_join`` (joins its needs).

    Pipeline ``g``: a and b independent, c needs both.
    """
    state: dict[str, Any] = {"calls": [], "lock": threading.Lock()}

    @register_step(
        "g_work",
        options=(
            OptionSpec("seconds", "float", 0.3, minimum=0),
            OptionSpec("fail", "bool", False),
        ),
    )
    class Work:
        """Sleep, then write <id>.txt."""

        def run(self, ctx: StepContext) -> StepResult:
            with state["lock"]:
                state["calls"].append(ctx.step_id)
            time.sleep(ctx.options["seconds"])
            if ctx.options["fail"] or ctx.options.get("break") == ctx.step_id:
                raise StepError(ctx.step_id, "broken on purpose")
            (ctx.run_dir / f"{ctx.step_id}.txt").write_text(ctx.step_id)
            return StepResult(outputs=[f"{ctx.step_id}.txt"])

    @register_step("g_join")
    class Join:
        """Concatenate a.txt and b.txt into c.txt."""

        def run(self, ctx: StepContext) -> StepResult:
            with state["lock"]:
                state["calls"].append(ctx.step_id)
            text = (ctx.run_dir / "a.txt").read_text() + (ctx.run_dir / "b.txt").read_text()
            (ctx.run_dir / "c.txt").write_text(text)
            return StepResult(outputs=["c.txt"])

    pipeline.register_pipeline(
        "g",
        [
            {"step": "g_work", "id": "a", "needs": []},
            {"step": "g_work", "id": "b", "needs": [], "options": {"seconds": 0.5}},
            {"step": "g_join", "id": "c", "needs": ["a", "b"]},
        ],
    )
    try:
        yield state
    finally:
        pipeline.unregister_pipeline("g")
        unregister_step("g_work")
        unregister_step("g_join")


@pytest.fixture
def media(tmp_path: Path) -> Path:
    path = tmp_path / "input.bin"
    path.write_bytes(b"x")
    return path


def interval(step: dict[str, Any]) -> tuple[float, float]:
    return parse_time(step["started_at"]).timestamp(), parse_time(step["completed_at"]).timestamp()


def test_independent_steps_overlap(graph_steps: dict[str, Any], media: Path) -> None:
    job, run_dir = pipeline.create_run(media, pipeline="g", config={})
    started = time.perf_counter()
    pipeline.execute(job, run_dir)
    wall = time.perf_counter() - started
    data = load(run_dir)
    assert data["status"] == "completed"
    a, b, c = (data["steps"][i] for i in range(3))
    (a0, a1), (b0, b1), (c0, _) = interval(a), interval(b), interval(c)
    assert a0 < b1 and b0 < a1, "a and b did not overlap"
    assert c0 >= max(a1, b1) - 1e-3  # c waited for both
    assert wall < a["duration_seconds"] + b["duration_seconds"]
    assert (run_dir / "c.txt").read_text() == "ab"
    assert data["graph"]["steps"][2]["needs"] == ["a", "b"]


def test_max_parallel_one_runs_in_order(graph_steps: dict[str, Any], media: Path) -> None:
    job, run_dir = pipeline.create_run(media, pipeline="g", config={})
    pipeline.execute(job, run_dir, max_parallel=1)
    a, b, _ = load(run_dir)["steps"]
    assert interval(a)[1] <= interval(b)[0] + 1e-3


def test_failing_branch_fails_after_siblings_then_resume(
    graph_steps: dict[str, Any], media: Path
) -> None:
    job, run_dir = pipeline.create_run(media, pipeline="g", config={"break": "a"})
    with pytest.raises(StepError, match="broken on purpose") as info:
        pipeline.execute(job, run_dir)
    assert info.value.step_name == "a"
    data = load(run_dir)
    assert data["status"] == "failed" and data["error"] == "a: broken on purpose"
    a, b, c = data["steps"]
    assert a["status"] == "failed"
    assert b["status"] == "completed"  # the sibling ran to its end and was recorded
    assert c["status"] == "pending"  # nothing new started after the failure
    assert data["artifacts"] == ["b.txt"]

    graph_steps["calls"].clear()
    job = storage.load_job(run_dir)
    todo = pipeline.prepare_resume(job, run_dir, overrides={"break": "none"})
    assert [r.name for r in todo] == ["a", "c"]
    pipeline.execute(job, run_dir)
    assert sorted(graph_steps["calls"]) == ["a", "c"]  # b was not run again
    data = load(run_dir)
    assert data["status"] == "completed"
    assert data["steps"][0]["attempts"][0]["status"] == "failed"
    assert (run_dir / "c.txt").read_text() == "ab"


def test_resume_from_step_keeps_earlier_outputs(graph_steps: dict[str, Any], media: Path) -> None:
    job, run_dir = pipeline.create_run(media, pipeline="g", config={})
    pipeline.execute(job, run_dir)
    (run_dir / "b.txt").write_text("B")  # so that the re-run's c differs
    graph_steps["calls"].clear()
    job = storage.load_job(run_dir)
    todo = pipeline.prepare_resume(job, run_dir, from_step="a")
    assert [r.name for r in todo] == ["a", "c"]
    pipeline.execute(job, run_dir)
    assert sorted(graph_steps["calls"]) == ["a", "c"]
    data = load(run_dir)
    a, b, c = data["steps"]
    assert b["attempts"] == []
    assert a["attempts"][0]["outputs"] == ["attempts/a/1/a.txt"]
    assert c["attempts"][0]["outputs"] == ["attempts/c/1/c.txt"]
    assert (run_dir / "attempts/c/1/c.txt").read_text() == "ab"  # kept, not deleted
    assert (run_dir / "c.txt").read_text() == "aB"
    assert data["history"][-1]["from_step"] == "a"
    with pytest.raises(pipeline.PipelineError, match="has no step"):
        pipeline.prepare_resume(storage.load_job(run_dir), run_dir, from_step="zz")


def test_steps_sub_graph_runs_what_it_needs(graph_steps: dict[str, Any], media: Path) -> None:
    job, run_dir = pipeline.create_run(media, pipeline="g", config={}, only=["b"])
    assert [r.name for r in job.steps] == ["b"]
    pipeline.execute(job, run_dir)
    assert graph_steps["calls"] == ["b"]
    job, run_dir = pipeline.create_run(media, pipeline="g", config={}, only=["c"])
    assert [r.name for r in job.steps] == ["a", "b", "c"]


def test_refused_resume_from_step_moves_nothing_aside(media_dir: Path, tmp_path: Path) -> None:
    """`resume --from-step` checks the input before it moves any output to attempts/:
    with the input changed, the resume is refused and the run dir is as it was."""
    source = tmp_path / "talk.wav"
    shutil.copyfile(media_dir / "speech_c_8k_mulaw.wav", source)
    job, run_dir = pipeline.create_run(source, pipeline="audio", config={})
    pipeline.execute(job, run_dir)
    wav = (run_dir / "audio.wav").read_bytes()
    with source.open("ab") as fh:
        fh.write(b"\0")  # the input changed since the run
    job = storage.load_job(run_dir)
    with pytest.raises(pipeline.InputChangedError, match="needs the original input"):
        pipeline.prepare_resume(job, run_dir, from_step="extract_audio")
    assert (run_dir / "audio.wav").read_bytes() == wav
    assert not (run_dir / pipeline.ATTEMPTS_DIR).exists()
