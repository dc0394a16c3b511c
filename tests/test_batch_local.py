"""``infomux batch`` on the local engine (issue 15): the worker, the driver-only steps,
inputs, batch.json, failures, resume after SIGKILL, the model loaded once per worker.

The end-to-end tests run the real CLI on real media (short clips of ``../shared/media``)
with the real tiny.en model; the runner's seams are exercised with small toy steps.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from infomux import pipeline, storage
from infomux.batch import DONE, FAILED, FileTask, Worker, WorkerSettings
from infomux.job import SCHEMA_PATH, JobStatus
from infomux.steps import StepContext, StepResult, register_step, unregister_step
from tests.fixtures import REPO, cli, media_folder
from tests.require import media_file

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


# ----------------------------------------------------------------------------- inputs


def test_collect_probes_directories_and_reads_manifests(tmp_path: Path) -> None:
    from infomux.batch.inputs import ManifestError, collect, read_manifest

    media = media_file("speech_c_8k_mulaw.wav").parent
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for name in ("speech_c_8k_mulaw.wav", "truncated.mp4", "not_media.mp3", "video_only.mp4"):
        shutil.copy(media / name, folder / name)
    shutil.copy(media / "speech_ja.m4a", folder / "sub" / "speech_ja.m4a")
    (folder / "empty.wav").write_bytes(b"")
    (folder / ".hidden.wav").write_bytes(b"")
    items = {Path(i.path).name: i for i in collect([folder])}
    assert list(items) == [
        "empty.wav",
        "not_media.mp3",
        "speech_c_8k_mulaw.wav",
        "truncated.mp4",
        "video_only.mp4",
        "speech_ja.m4a",
    ]
    assert items["empty.wav"].skipped == "empty file"
    assert items["not_media.mp3"].skipped == "a text file, not media"  # named .mp3, text
    assert items["video_only.mp4"].skipped == "no audio stream"
    assert items["truncated.mp4"].skipped is None  # damaged media: its run fails
    assert items["speech_c_8k_mulaw.wav"].skipped is None
    assert items["speech_c_8k_mulaw.wav"].audio_seconds == pytest.approx(12.51, abs=0.05)
    # a file named on the command line is taken whatever it is; duplicates once
    named = collect([folder / "not_media.mp3", folder / "not_media.mp3"])
    assert [(Path(i.path).name, i.skipped) for i in named] == [("not_media.mp3", None)]

    manifest = tmp_path / "list.txt"
    manifest.write_text(
        "# inputs\n"
        "in/speech_c_8k_mulaw.wav\n"
        "\n"
        '{"path": "in/sub/speech_ja.m4a", "language": "ja", "prompt": "kissaten"}\n'
    )
    listed = collect([], manifest)
    assert [Path(i.path).name for i in listed] == ["speech_c_8k_mulaw.wav", "speech_ja.m4a"]
    assert listed[1].options == {"language": "ja", "prompt": "kissaten"}
    assert listed[1].origin == f"{manifest}:4"
    manifest.write_text('{"path": "in/a.wav", "threads": 9}\n')
    with pytest.raises(ManifestError, match=r"list\.txt:1: unknown option 'threads'"):
        read_manifest(manifest)
    manifest.write_text('{"file": "in/a.wav"}\n')
    with pytest.raises(ManifestError, match='needs "path"'):
        read_manifest(manifest)
    with pytest.raises(FileNotFoundError):
        collect([tmp_path / "nope"])


def test_plan_workers_from_the_core_count() -> None:
    from infomux.batch.local import plan_workers

    plan = plan_workers(10, cores=2)
    assert (plan.workers, plan.threads) == (2, 1)  # measured: 2 x 1 beats 1 x 2
    assert (plan_workers(1, cores=8).workers, plan_workers(1, cores=8).threads) == (1, 4)
    assert (plan_workers(2, cores=8).workers, plan_workers(2, cores=8).threads) == (2, 4)
    assert (plan_workers(100, cores=8).workers, plan_workers(100, cores=8).threads) == (8, 1)
    given = plan_workers(10, workers=1, threads=2, cores=2)
    assert (given.workers, given.threads) == (1, 2) and "--workers" in given.rule
    assert plan.to_dict()["cores"] == 2 and "cores" in plan.rule


# ----------------------------------------------------------------------------- end to end

GOOD = ("speech_c_8k_mulaw.wav", "two_audio_streams.mkv", "speech_ja.m4a")


def _batch_json(data_dir: Path) -> dict[str, Any]:
    (path,) = (data_dir / "batches").glob("batch-*/batch.json")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _job(run_dir: str | Path) -> dict[str, Any]:
    data = json.loads((Path(run_dir) / "job.json").read_text(encoding="utf-8"))
    jsonschema.validate(data, SCHEMA)
    return dict(data)


@pytest.mark.model
def test_batch_directory_with_a_damaged_file(
    tmp_path: Path, real_model: Any, hermetic_env: Path
) -> None:
    """Good files -> one completed run each, the transcript `infomux run` gives; the
    damaged file -> a failed run named on stderr; a text file -> skipped; exit 1."""
    folder = media_folder(tmp_path, (*GOOD, "truncated.mp4", "not_media.mp3"))
    proc = cli("batch", str(folder), "--workers", "2")
    stderr = proc.stderr.decode()
    assert proc.returncode == 1, stderr
    run_dirs = proc.stdout.decode().splitlines()
    assert len(run_dirs) == len(GOOD), proc.stdout
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith(f"Error: {folder / 'truncated.mp4'}: ")
    assert "infomux: batch: 4/4 files (1 failed)" in stderr
    assert "not_media.mp3: a text file, not media" in stderr

    batch = _batch_json(hermetic_env)
    assert batch["status"] == "failed"
    totals = {k: batch["totals"][k] for k in ("files", "completed", "failed", "skipped")}
    assert totals == {"files": 5, "completed": 3, "failed": 1, "skipped": 1}
    assert batch["engine"]["name"] == "local"
    assert (batch["engine"]["workers"], batch["engine"]["threads_per_worker"]) == (2, 1)
    by_name = {Path(f["path"]).name: f for f in batch["files"]}
    text = by_name["not_media.mp3"]
    assert text["status"] == "skipped" and text["run_id"] is None
    bad = by_name["truncated.mp4"]
    assert bad["status"] == "failed" and "extract_audio" in bad["error"]
    assert _job(bad["run_dir"])["status"] == "failed"
    assert sorted(run_dirs) == sorted(by_name[n]["run_dir"] for n in GOOD)

    # the model is loaded once per worker: every outcome says its worker loaded one,
    # and only each worker's first run spent time loading it
    outcomes = [by_name[n]["outcome"] for n in (*GOOD, "truncated.mp4")]
    assert all(o["model_loads"] in (0, 1) for o in outcomes)
    pids = {o["worker"]["pid"] for o in outcomes}
    assert len(pids) <= 2
    loads = 0
    for name in GOOD:
        job = _job(by_name[name]["run_dir"])
        assert job["status"] == "completed"
        assert [s["status"] for s in job["steps"]] == ["completed"] * 3  # store by the driver
        loads += job["steps"][1]["metadata"]["model_load_seconds"] > 0
        assert by_name[name]["outcome"]["model_loads"] == 1
    assert loads == len({by_name[n]["outcome"]["worker"]["pid"] for n in GOOD})

    # the same transcripts as `infomux run`
    single = cli("run", *(str(folder / n) for n in GOOD))
    assert single.returncode == 0, single.stderr.decode()
    for name, run_dir in zip(GOOD, single.stdout.decode().splitlines(), strict=True):
        expected = (Path(run_dir) / "transcript.txt").read_text(encoding="utf-8")
        got = (Path(by_name[name]["run_dir"]) / "transcript.txt").read_text(encoding="utf-8")
        assert got == expected, name
        assert got.strip()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.model
def test_batch_resume_after_sigkill_finishes_only_the_rest(
    tmp_path: Path, real_model: Any, hermetic_env: Path
) -> None:
    folder = media_folder(tmp_path, GOOD)
    with subprocess.Popen(
        [sys.executable, "-m", "infomux", "batch", str(folder), "--workers", "1", "--threads", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    ) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline().decode().strip()  # the first run dir: then SIGKILL
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert first, "the batch printed no run directory"
    before = _batch_json(hermetic_env)
    done = [f for f in before["files"] if f["status"] == "completed"]
    assert [f["run_dir"] for f in done] == [first]
    # the orphaned worker notices and stops (recording its run as interrupted)
    worker_pid = done[0]["outcome"]["worker"]["pid"]
    deadline = time.monotonic() + 30
    while _alive(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(worker_pid), "the worker outlived its killed batch"
    # it had the next file (handed over before the first run dir was printed): recorded
    # as interrupted, then resumed by the resumed batch's worker
    second = next(f for f in before["files"] if f["index"] == done[0]["index"] + 1)
    assert _job(second["run_dir"])["status"] == "interrupted"
    first_job = (Path(first) / "job.json").read_text()

    resumed = cli("batch", "--resume", before["id"])
    assert resumed.returncode == 0, resumed.stderr.decode()
    again = resumed.stdout.decode().splitlines()
    after = _batch_json(hermetic_env)
    assert after["status"] == "completed" and after["totals"]["completed"] == len(GOOD)
    assert sorted(again) == sorted(f["run_dir"] for f in after["files"] if f["run_dir"] != first)
    assert (Path(first) / "job.json").read_text() == first_job  # not touched again
    assert [e["event"] for e in after["history"]] == ["started", "resumed"]
    rest = [f for f in after["files"] if f["run_dir"] != first]
    # as recorded: one worker did the rest, its model loaded once for both files
    assert after["engine"]["workers"] == 1 and "recorded" in after["engine"]["rule"]
    assert len({f["outcome"]["worker"]["pid"] for f in rest}) == 1
    assert all(f["outcome"]["model_loads"] == 1 for f in rest)
    resumed_events = [e for e in _job(second["run_dir"])["history"] if e["event"] == "resumed"]
    assert [e["previous_status"] for e in resumed_events] == ["interrupted"]
    for item in after["files"]:
        job = _job(item["run_dir"])
        assert job["status"] == "completed" and item["attempts"] == 1
        assert (Path(item["run_dir"]) / "transcript.txt").read_text().strip()


def _wait_for_step(hermetic_env: Path, step: str, timeout: float = 120) -> dict[str, Any]:
    """Poll the runs until one has ``step`` running; return its job.json."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in (hermetic_env / "runs").glob("run-*/job.json"):
            try:
                job = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if any(s["name"] == step and s["status"] == "running" for s in job["steps"]):
                return dict(job)
        time.sleep(0.05)
    raise AssertionError(f"no run reached {step}")


@pytest.mark.model
def test_a_killed_worker_fails_its_file_only_and_resume_redoes_it(
    tmp_path: Path, real_model: Any, hermetic_env: Path
) -> None:
    folder = media_folder(tmp_path, ("speech_c_8k_mulaw.wav", "speech_ja.m4a"))
    with subprocess.Popen(
        [sys.executable, "-m", "infomux", "batch", str(folder), "--workers", "1", "--threads", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    ) as proc:
        job = _wait_for_step(hermetic_env, "transcribe")
        os.kill(job["host"]["pid"], signal.SIGKILL)  # the worker, mid-transcription
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err.decode()
    batch = _batch_json(hermetic_env)
    killed = next(f for f in batch["files"] if f["run_id"] == job["id"])
    assert killed["status"] == "failed"
    assert "worker process was killed by SIGKILL" in killed["error"]
    assert f"Error: {killed['path']}: the worker process was killed by SIGKILL" in err.decode()
    other = next(f for f in batch["files"] if f["run_id"] != job["id"])
    assert other["status"] == "completed" and out.decode().splitlines() == [other["run_dir"]]
    assert batch["engine"]["worker_restarts"] == 1  # a new worker took the other file
    assert _job(killed["run_dir"])["status"] == "running"  # as the dead worker left it

    resumed = cli("batch", "--resume", "latest")
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert resumed.stdout.decode().splitlines() == [killed["run_dir"]]
    done = _job(killed["run_dir"])
    assert done["status"] == "completed"
    transcribe = next(s for s in done["steps"] if s["name"] == "transcribe")
    assert "abandoned" in transcribe["attempts"][-1]["error"]  # the killed attempt, kept
    assert _batch_json(hermetic_env)["files"][killed["index"]]["attempts"] == 2


@pytest.mark.model
def test_ctrl_c_records_the_batch_and_stops_the_workers(
    tmp_path: Path, real_model: Any, hermetic_env: Path
) -> None:
    folder = media_folder(tmp_path, ("long_speech.mp3",))
    with subprocess.Popen(
        [sys.executable, "-m", "infomux", "batch", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    ) as proc:
        job = _wait_for_step(hermetic_env, "transcribe")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()
    assert out == b""
    assert "to finish it: infomux batch --resume batch-" in err.decode()
    batch = _batch_json(hermetic_env)
    assert batch["status"] == "interrupted"
    assert [f["status"] for f in batch["files"]] == ["interrupted"]
    assert [e["event"] for e in batch["history"]] == ["started", "interrupted"]
    assert _job(batch["files"][0]["run_dir"])["status"] == "interrupted"
    assert not _alive(job["host"]["pid"]), "the worker outlived the batch"


def test_batch_manifest_with_per_file_options(tmp_path: Path, hermetic_env: Path) -> None:
    """The audio pipeline (no model): a manifest's per-file option reaches that file's
    run only; the driver-only store step ran in the driver; a bad option names its line
    and records nothing."""
    media = media_file("two_audio_streams.mkv").parent
    manifest = tmp_path / "inputs.jsonl"
    manifest.write_text(
        f'{{"path": "{media / "two_audio_streams.mkv"}", "audio_stream": 1}}\n'
        f"{media / 'speech_c_8k_mulaw.wav'}\n"
    )
    proc = cli("batch", "--manifest", str(manifest), "--pipeline", "audio", "--workers", "1")
    assert proc.returncode == 0, proc.stderr.decode()
    run_dirs = proc.stdout.decode().splitlines()
    batch = _batch_json(hermetic_env)
    assert run_dirs == [f["run_dir"] for f in batch["files"]]
    assert [f["options"] for f in batch["files"]] == [{"audio_stream": 1}, {}]
    assert batch["files"][0]["origin"] == f"{manifest}:1"
    first, second = (_job(d) for d in run_dirs)
    assert first["config"]["audio_stream"] == 1 and "audio_stream" not in second["config"]
    assert first["steps"][0]["name"] == "extract_audio"
    assert [s["status"] for s in first["steps"]] == ["completed", "completed"]
    store = first["steps"][1]
    assert store["name"] == "store" and store["metadata"]["segments"] == 0
    assert first["host"]["pid"] == batch["history"][0]["pid"]  # the driver ran store last
    assert batch["files"][0]["outcome"]["worker"]["pid"] != batch["history"][0]["pid"]

    manifest.write_text(f'{{"path": "{media / "speech_c_8k_mulaw.wav"}", "audio_stream": "x"}}\n')
    bad = cli("batch", "--manifest", str(manifest), "--pipeline", "audio")
    assert bad.returncode == 1
    assert f"{manifest}:1" in bad.stderr.decode() and "audio_stream" in bad.stderr.decode()
    assert len(list((hermetic_env / "batches").glob("batch-*"))) == 1  # nothing new recorded


def test_batch_data_dir_flag_puts_everything_there(tmp_path: Path, hermetic_env: Path) -> None:
    """--data-dir (the shared directory of a multi-machine batch) receives the batch
    record, the runs and the search store, for the driver and its workers alike."""
    shared = tmp_path / "shared-data"
    media = media_file("speech_c_8k_mulaw.wav")
    proc = cli("batch", str(media), "--pipeline", "audio", "--data-dir", str(shared))
    assert proc.returncode == 0, proc.stderr.decode()
    (run_dir,) = proc.stdout.decode().splitlines()
    assert Path(run_dir).parent == shared / "runs"
    assert (Path(run_dir) / "audio.wav").is_file()
    assert len(list((shared / "batches").glob("batch-*/batch.json"))) == 1
    assert _job(run_dir)["steps"][-1]["metadata"]["database"].startswith(str(shared))
    assert not (hermetic_env / "batches").exists()
