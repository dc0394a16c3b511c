"""``infomux batch --ray`` (issue 15): the Ray engine on a real Ray cluster on this machine.

The cluster tests start real Ray (``ray.cluster_utils.Cluster``: a head and a second node,
or the local instance the engine starts itself) on 127.0.0.1 and run the real CLI on real
media (short clips of ``../shared/media``, one damaged) with the real tiny.en model. One
actor is SIGKILLed in the middle of a file: Ray restarts it, the file is retried and the
run the dead actor left is resumed. The cheap tests (no Ray started) check the missing-Ray
error, the address order and the actor plan.

Ray binds a node to the machine's own address unless told it is a single-machine
installation (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, Ray's switch for that), which keeps
every node on 127.0.0.1: nothing of the tests listens on the network.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from infomux.batch.ray_engine import RAY_EXTRA, WORKER_RESOURCE, choose_address, plan_actors
from infomux.job import SCHEMA_PATH
from tests.fixtures import REPO, cli, media_folder
from tests.require import media_file, missing

SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
GOOD = ("speech_c_8k_mulaw.wav", "two_audio_streams.mkv", "speech_ja.m4a")
DAMAGED = "truncated.mp4"


@pytest.fixture
def loopback_ray(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Ray, on 127.0.0.1 only, with no cluster named by the environment."""
    try:
        import ray
    except ImportError:
        missing(f"Ray is not installed ({RAY_EXTRA})")
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_USAGE_STATS_ENABLED", raising=False)
    return ray


@pytest.fixture
def two_node_cluster(loopback_ray: Any) -> Iterator[Any]:
    """A head and a second node on 127.0.0.1, one CPU and one infomux worker slot each."""
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 1, "resources": {WORKER_RESOURCE: 1}}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        cluster.add_node(**node)
        yield cluster
    finally:
        cluster.shutdown()


def _batch_json(data_dir: Path, batch_id: str | None = None) -> dict[str, Any]:
    paths = sorted((data_dir / "batches").glob("batch-*/batch.json"))
    data = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    found = [b for b in data if batch_id is None or b["id"] == batch_id]
    assert len(found) == 1, [b["id"] for b in data]
    return dict(found[0])


def _job(run_dir: str | Path) -> dict[str, Any]:
    data = json.loads((Path(run_dir) / "job.json").read_text(encoding="utf-8"))
    jsonschema.validate(data, SCHEMA)
    return dict(data)


def _kill_a_transcribing_actor(runs: Path, driver: subprocess.Popen[bytes]) -> tuple[Path, int]:
    """SIGKILL the process of the first run seen transcribing (an actor, mid-file)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and driver.poll() is None:
        for path in runs.glob("*/job.json"):
            try:
                job = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # being replaced
            steps = {s["name"]: s["status"] for s in job["steps"]}
            pid = job["host"].get("pid")
            if steps.get("transcribe") == "running" and pid and pid != driver.pid:
                os.kill(pid, signal.SIGKILL)
                return path.parent, pid
        time.sleep(0.05)
    pytest.fail("no file was seen transcribing (the batch ended or never started)")


@pytest.mark.ray
@pytest.mark.model
def test_ray_cluster_batch_survives_a_killed_actor(
    tmp_path: Path, real_model: Any, hermetic_env: Path, two_node_cluster: Any
) -> None:
    """A two-node cluster the test started: one actor per node (the custom resource);
    an actor killed mid-file is restarted and its file resumed; every good file
    completes with the transcript the local engine gives; the damaged file fails."""
    folder = media_folder(tmp_path, (*GOOD, DAMAGED, "not_media.mp3"))
    started = time.monotonic()
    address = two_node_cluster.address
    with subprocess.Popen(
        [sys.executable, "-m", "infomux", "batch", "--ray-address", address, str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    ) as proc:
        killed_run, killed_pid = _kill_a_transcribing_actor(hermetic_env / "runs", proc)
        out, err = proc.communicate(timeout=300)
    seconds = time.monotonic() - started
    stderr = err.decode()
    assert proc.returncode == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith(f"Error: {folder / DAMAGED}: "), stderr
    assert "infomux: batch: 4/4 files (1 failed)" in stderr

    batch = _batch_json(hermetic_env)
    assert batch["status"] == "failed"
    assert {k: batch["totals"][k] for k in ("completed", "failed", "skipped")} == {
        "completed": 3,
        "failed": 1,
        "skipped": 1,
    }
    engine = batch["engine"]
    assert engine["name"] == "ray" and engine["ray_version"]
    assert engine["address_from"] == "--ray-address" and not engine["started_for_batch"]
    assert engine["address"] == two_node_cluster.address
    assert not engine["usage_stats_enabled"]
    assert len(engine["nodes"]) == 2 and engine["cpus"] == 2
    assert engine["resources"][WORKER_RESOURCE] == 2
    assert (engine["workers"], engine["threads_per_worker"]) == (2, 1)
    assert engine["worker_resource"] == WORKER_RESOURCE
    # one actor per node: each node offers one infomux_worker
    assert len({a["node_id"] for a in engine["actors"]}) == 2
    assert engine["actor_restarts"] == 1 and engine["files_retried"] == 1
    assert any(killed_pid == a["pids"][0] and len(a["pids"]) == 2 for a in engine["actors"])

    by_name = {Path(f["path"]).name: f for f in batch["files"]}
    assert sorted(out.decode().splitlines()) == sorted(by_name[n]["run_dir"] for n in GOOD)
    bad = by_name[DAMAGED]
    assert bad["status"] == "failed" and "extract_audio" in bad["error"]
    for name in GOOD:
        item = by_name[name]
        job = _job(item["run_dir"])
        assert item["status"] == "completed" and item["attempts"] == 1
        assert job["status"] == "completed"
        assert [s["status"] for s in job["steps"]] == ["completed"] * 3  # store: the driver
        assert item["outcome"]["model_loads"] == 1
    # the killed file: retried on the restarted actor, which resumed the run
    killed = next(f for f in batch["files"] if f["run_dir"] == str(killed_run))
    assert killed["outcome"]["worker"]["retried_after_actor_death"] is True
    job = _job(killed_run)
    resumed = [e for e in job["history"] if e["event"] == "resumed"]
    assert [e["previous_status"] for e in resumed] == ["running"]
    transcribe = next(s for s in job["steps"] if s["name"] == "transcribe")
    assert [a["status"] for a in transcribe["attempts"]] == ["interrupted"]

    # the same transcripts as the local engine
    local = cli("batch", str(folder), "--workers", "2")
    assert local.returncode == 1, local.stderr.decode()
    local_dirs = local.stdout.decode().splitlines()
    local_by_input = {Path(_job(d)["input"]["path"]).name: Path(d) for d in local_dirs}
    assert sorted(local_by_input) == sorted(GOOD)
    for name in GOOD:
        expected = (local_by_input[name] / "transcript.txt").read_text(encoding="utf-8")
        got = (Path(by_name[name]["run_dir"]) / "transcript.txt").read_text(encoding="utf-8")
        assert got == expected, name
        assert got.strip()
    print(f"ray batch on a two-node cluster, one actor killed: {seconds:.1f} s")


def _processes_with_env(key: str, value: str) -> list[int]:
    """Processes of this user whose environment has ``key=value`` (Linux /proc)."""
    wanted = f"{key}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if wanted in environ and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.mark.ray
@pytest.mark.model
def test_ray_local_instance_is_started_for_the_batch_and_stopped(
    tmp_path: Path, real_model: Any, hermetic_env: Path, loopback_ray: Any
) -> None:
    """No --ray-address, no RAY_ADDRESS: a local Ray instance (127.0.0.1) is started for
    the batch, its facts recorded, usage statistics off, and nothing of it is left."""
    clip = media_file("speech_c_8k_mulaw.wav")
    proc = cli("batch", "--ray", str(clip))
    assert proc.returncode == 0, proc.stderr.decode()
    (run_dir,) = proc.stdout.decode().splitlines()
    assert "library on the hill" in (Path(run_dir) / "transcript.txt").read_text().lower()
    batch = _batch_json(hermetic_env)
    engine = batch["engine"]
    assert batch["status"] == "completed"
    assert engine["address_from"] == "local" and engine["started_for_batch"]
    assert engine["address"].startswith("127.0.0.1:")
    assert not engine["usage_stats_enabled"]
    assert len(engine["nodes"]) == 1 and engine["workers"] == 1
    assert engine["resources"][WORKER_RESOURCE] >= 1
    assert engine["actor_restarts"] == 0
    # the instance (GCS, raylet, actors) went with the batch; they all inherited its env
    deadline = time.monotonic() + 20
    while (left := _processes_with_env("INFOMUX_DATA_DIR", str(hermetic_env))) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.2)
    assert not left, f"processes of the batch's Ray instance left: {left}"


# --------------------------------------------------------------------------- no Ray started


def test_ray_missing_is_a_one_line_error_naming_the_extra(
    tmp_path: Path, hermetic_env: Path
) -> None:
    """Without Ray installed, ``--ray`` says which extra to install before anything is
    probed or recorded (and `run` never imports Ray)."""
    clip = media_file("speech_c_8k_mulaw.wav")
    code = (
        "import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
        "from infomux.cli import main\n"
        f"sys.exit(main(['batch', '--ray', {str(clip)!r}]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, cwd=REPO, timeout=120, check=False
    )
    assert proc.returncode == 1
    assert proc.stdout == b""
    errors = [line for line in proc.stderr.decode().splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and RAY_EXTRA in errors[0], proc.stderr.decode()
    assert not (hermetic_env / "batches").exists()
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, infomux.cli, infomux.commands.run, infomux.commands.batch, "
            "infomux.batch.ray_engine; print('ray' in sys.modules)",
        ],
        capture_output=True,
        cwd=REPO,
        timeout=120,
        check=True,
    )
    assert imported.stdout.decode().strip() == "False"


def test_ray_address_nobody_answers_fails_fast(hermetic_env: Path, loopback_ray: Any) -> None:
    """An address where nothing listens is a one-line error at once (Ray itself would
    retry for minutes), and no batch is left behind."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    proc = cli("batch", "--ray-address", f"127.0.0.1:{port}", str(media_file(GOOD[0])))
    assert proc.returncode == 1 and proc.stdout == b""
    assert time.monotonic() - started < 60
    errors = [line for line in proc.stderr.decode().splitlines() if line.startswith("Error:")]
    assert errors == [
        f"Error: cannot join the Ray cluster at 127.0.0.1:{port} (--ray-address): "
        "nothing answers there (Connection refused)"
    ]
    assert not list((hermetic_env / "batches").glob("*/batch.json"))


def test_ray_address_order() -> None:
    assert choose_address("10.0.0.5:6379", {"RAY_ADDRESS": "10.0.0.9:6379"}) == (
        "10.0.0.5:6379",
        "--ray-address",
    )
    assert choose_address(None, {"RAY_ADDRESS": " 10.0.0.9:6379 "}) == (
        "10.0.0.9:6379",
        "RAY_ADDRESS",
    )
    assert choose_address(None, {"RAY_ADDRESS": ""}) == (None, "local")
    assert choose_address("", {}) == (None, "local")


def test_ray_actor_plan_follows_the_custom_resource() -> None:
    def node(cpus: float, slots: float | None = None) -> dict[str, Any]:
        resources: dict[str, float] = {"CPU": cpus}
        if slots is not None:
            resources[WORKER_RESOURCE] = slots
        return {"Alive": True, "Resources": resources}

    # nodes say how many actors they hold (bounded by their CPUs)
    workers, uses, _ = plan_actors([node(8, 2), node(4, 8), node(16)], threads=2, workers=None)
    assert (workers, uses) == (4, True)
    # no node offers the resource: CPUs // threads, spread
    workers, uses, rule = plan_actors([node(8), node(3)], threads=2, workers=None)
    assert (workers, uses) == (5, False) and "spread" in rule
    # --workers wins
    assert plan_actors([node(2, 2)], threads=1, workers=7)[:2] == (7, True)
    assert plan_actors([node(1)], threads=4, workers=None)[:2] == (1, False)
