"""``infomux resume`` decides by the run lock, not by the recorded host and pid.

A run left ``running`` by a process that is gone is resumable even when its
recorded hostname differs (a new container) or its pid now belongs to another
live process (pid reuse); a run whose lock a live process holds is refused.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from infomux import pipeline, storage
from infomux.job import JobStatus, StepStatus
from tests.require import media_file


def _left_running(hostname: str, pid: int) -> Path:
    """A run of the ``audio`` pipeline recorded as running by (hostname, pid), then abandoned."""
    media = media_file("speech_a.wav")
    job, run_dir = pipeline.create_run(media, pipeline="audio", config={})
    job.status = JobStatus.RUNNING
    job.steps[0].status = StepStatus.RUNNING
    job.steps[0].started_at = job.created_at
    job.host = {**job.host, "hostname": hostname, "pid": pid}
    storage.save_job(job, run_dir)
    return run_dir


def _resume(run_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infomux", "resume", "-q", run_dir.name],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _status(run_dir: Path) -> str:
    return str(json.loads((run_dir / "job.json").read_text())["status"])


def test_run_left_running_in_another_container_is_resumable() -> None:
    run_dir = _left_running("container-that-is-gone", 4242)
    proc = _resume(run_dir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(run_dir)
    job = json.loads((run_dir / "job.json").read_text())
    assert job["status"] == "completed"
    attempt = job["steps"][0]["attempts"][0]
    assert attempt["status"] == "interrupted" and "abandoned" in attempt["error"]


def test_run_whose_pid_was_reused_is_resumable() -> None:
    # The recorded pid is alive on this host (this test process), but it does not hold
    # the run lock: the process that ran it is gone and the pid now names another one.
    run_dir = _left_running(socket.gethostname(), os.getpid())
    proc = _resume(run_dir)
    assert proc.returncode == 0, proc.stderr
    assert _status(run_dir) == "completed"


@pytest.fixture
def lock_holder() -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """A run left running, and another process holding its run lock."""
    run_dir = _left_running(socket.gethostname(), 4242)
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from infomux import storage
        with storage.RunLock(Path({str(run_dir)!r})):
            print("ready", flush=True)
            sys.stdin.read()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    try:
        yield run_dir, proc
    finally:
        proc.communicate("", timeout=30)


def test_run_whose_lock_is_held_is_refused(
    lock_holder: tuple[Path, subprocess.Popen[str]],
) -> None:
    run_dir, holder = lock_holder
    before = (run_dir / "job.json").read_bytes()
    proc = _resume(run_dir)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"Error: run {run_dir.name} is being processed by another infomux process"
    )
    assert proc.stdout == ""
    assert (run_dir / "job.json").read_bytes() == before
    holder.communicate("", timeout=30)  # the holder exits: the lock is free
    assert _resume(run_dir).returncode == 0
    assert _status(run_dir) == "completed"
