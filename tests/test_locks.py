"""Run and model locks: portable (no ``fcntl`` import), exclusive, and freed when a holder dies."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from infomux import config, storage
from infomux.models import locking


def test_cli_and_lock_modules_import_without_fcntl() -> None:
    """``fcntl`` exists only on POSIX: nothing infomux imports at start-up may need it."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["fcntl"] = None  # what Windows looks like: import fcntl fails
        from infomux import cli, models, pipeline, storage
        from infomux.commands import resume, run, runs
        cli.build_parser()
        print("ok")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def _holder(lock_code: str) -> subprocess.Popen[str]:
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from infomux import storage
        from infomux.models import locking
        {lock_code}
        print("ready", flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _killed(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    if proc.stdout is not None:
        proc.stdout.close()


def test_run_lock_is_freed_when_its_holder_is_killed(tmp_path: Path) -> None:
    run_dir = tmp_path / "run-20260101-000000-abcdef"
    run_dir.mkdir()
    proc = _holder(f"held = storage.RunLock(Path({str(run_dir)!r})); held.acquire()")
    try:
        with pytest.raises(storage.RunLockedError, match="another infomux process"):
            storage.RunLock(run_dir).acquire()
    finally:
        _killed(proc)
    with storage.RunLock(run_dir):  # no stale lock after a crash
        pass


def test_run_lock_is_exclusive_within_a_process_and_across_threads(tmp_path: Path) -> None:
    first = storage.RunLock(tmp_path)
    first.acquire()
    with pytest.raises(storage.RunLockedError):
        storage.RunLock(tmp_path).acquire()
    released = threading.Thread(target=first.release)  # released from another thread
    released.start()
    released.join()
    with storage.RunLock(tmp_path):
        pass


def test_run_lock_on_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        storage.RunLock(tmp_path / "gone").acquire()


def test_model_lock_waits_for_its_holder(tmp_path: Path) -> None:
    proc = _holder('held = locking.locked("tiny.en"); held.__enter__()')
    got = threading.Event()

    def waiter() -> None:
        with locking.locked("tiny.en"):
            got.set()

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    try:
        assert not got.wait(1.0), "the model lock was taken while another process held it"
    finally:
        _killed(proc)
    assert got.wait(30), "the model lock was not freed when its holder died"
    thread.join(30)
    assert (config.models_dir() / ".locks" / "tiny.en.lock").is_file()
