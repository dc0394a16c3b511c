"""storage.py: atomic writes, run ids, run lookup (and traversal refusal), listing, locks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from infomux import config, storage
from infomux.errors import RunNotFoundError
from infomux.job import InputFile, JobEnvelope, JobStatus


def make_run(created_at: str | None = None, status: JobStatus = JobStatus.COMPLETED) -> Path:
    run_id, run_dir = storage.create_run_dir()
    job = JobEnvelope.new(
        run_id,
        InputFile("/m/a.wav", "0" * 64, 1),
        pipeline="audio",
        steps=["extract_audio"],
        config={"pipeline": "audio"},
    )
    job.status = status
    if created_at:
        job.created_at = created_at
    storage.save_job(job, run_dir)
    return run_dir


# ----------------------------------------------------------------------------- writes


def test_atomic_write_json(tmp_path: Path) -> None:
    target = tmp_path / "job.json"
    storage.atomic_write_json(target, {"a": 1, "ü": "ß"})
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": 1, "ü": "ß"}
    storage.atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.json"]  # no temp files left


def test_atomic_write_failure_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "job.json"
    storage.atomic_write_json(target, {"a": 1})
    with pytest.raises(ValueError):
        storage.atomic_write_json(target, {"bad": float("nan")})  # refused before any write
    with pytest.raises(TypeError):
        storage.atomic_write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.json"]


def test_atomic_write_interrupted_rename_keeps_old(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.txt"
    storage.atomic_write_text(target, "old")

    def boom(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        storage.atomic_write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077, 0o002])
def test_atomic_writes_follow_the_umask(tmp_path: Path, umask: int) -> None:
    """Files written atomically get the mode any new file gets: 0o666 less the umask."""
    previous = os.umask(umask)
    try:
        assert storage.current_umask() == umask
        storage.atomic_write_text(tmp_path / "a.txt", "x")
        with storage.atomic_open(tmp_path / "b.bin") as fh:
            fh.write(b"y")
    finally:
        os.umask(previous)
    for name in ("a.txt", "b.bin"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_atomic_open_check_can_refuse(tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")
    seen: list[bytes] = []

    def refuse(tmp: Path) -> None:
        seen.append(tmp.read_bytes())  # complete and flushed when checked
        raise ValueError("not valid")

    with (
        pytest.raises(ValueError, match="not valid"),
        storage.atomic_open(target, check=refuse) as fh,
    ):
        fh.write(b"new")
    assert seen == [b"new"]
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]


@pytest.mark.slow
def test_job_json_survives_sigkill(tmp_path: Path) -> None:
    """A writer killed at random moments never leaves a partial job.json."""
    target = tmp_path / "job.json"
    script = textwrap.dedent(
        f"""
        import sys
        from infomux import storage
        i = 0
        payload = "x" * 200_000
        while True:
            i += 1
            storage.atomic_write_json({str(target)!r}, {{"i": i, "payload": payload}})
            if i == 1:
                print("ready", flush=True)
        """
    )
    for delay in (0.05, 0.13, 0.21, 0.34):
        with subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
        ) as proc:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        data = json.loads(target.read_text())
        assert data["i"] >= 1 and len(data["payload"]) == 200_000


def test_sha256_and_describe_input(tmp_path: Path) -> None:
    media = tmp_path / "a.bin"
    media.write_bytes(b"abc")
    info = storage.describe_input(media)
    assert info.sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert info.size_bytes == 3
    assert Path(info.path).is_absolute()
    with pytest.raises(FileNotFoundError):
        storage.describe_input(tmp_path / "missing.wav")
    with pytest.raises(IsADirectoryError):
        storage.describe_input(tmp_path)


# ----------------------------------------------------------------------------- ids


def test_run_id_format_and_uniqueness() -> None:
    ids = {storage.new_run_id() for _ in range(200)}
    assert len(ids) > 190
    for run_id in ids:
        assert storage.is_valid_run_id(run_id)
    fixed = storage.new_run_id(datetime(2025, 1, 31, 12, 34, 56, tzinfo=UTC))
    assert fixed.startswith("run-20250131-123456-")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "run",
        "run-2025",
        "../run-20250131-123456-abc123",
        "run-20250131-123456-ABC123",
        "run-20250131-123456-abc12",
        "run-20250131-123456-abc1234",
        "run-20250131-123456-abc123/..",
        "x-20250131-123456-abc123",
    ],
)
def test_invalid_run_ids(bad: str) -> None:
    assert not storage.is_valid_run_id(bad)


def test_create_run_dir_under_runs_dir(hermetic_env: Path) -> None:
    run_id, run_dir = storage.create_run_dir()
    assert run_dir.parent == config.runs_dir().resolve()
    assert run_dir.name == run_id and run_dir.is_dir()
    assert run_dir.is_absolute()


# ----------------------------------------------------------------------------- lookup


def test_resolve_by_id_prefix_latest_and_path() -> None:
    old = make_run("2025-01-01T00:00:00.000000Z")
    new = make_run("2025-06-01T00:00:00.000000Z")
    assert storage.resolve_run(old.name) == old
    assert storage.resolve_run("latest") == new
    assert storage.resolve_run(str(old)) == old
    assert storage.resolve_run(old.name[:-2]) == old  # unique prefix (both made this second)
    # a relative path from the runs dir's parent
    cwd = os.getcwd()
    try:
        os.chdir(config.runs_dir())
        assert storage.resolve_run(f"./{new.name}") == new
    finally:
        os.chdir(cwd)


def test_resolve_ambiguous_prefix_and_unknown() -> None:
    make_run()
    make_run()
    with pytest.raises(RunNotFoundError, match="ambiguous"):
        storage.resolve_run("run-")
    with pytest.raises(RunNotFoundError):
        storage.resolve_run("run-19990101-000000-000000")
    with pytest.raises(RunNotFoundError):
        storage.resolve_run("nothing-like-it")


def test_latest_without_runs() -> None:
    with pytest.raises(RunNotFoundError, match="no runs"):
        storage.resolve_run("latest")


def test_traversal_is_refused(tmp_path: Path) -> None:
    run = make_run()
    outside = tmp_path / "outside" / "run-20250101-000000-abcdef"
    outside.mkdir(parents=True)
    (outside / "job.json").write_text(run.joinpath("job.json").read_text())
    runs = config.runs_dir()
    refs = [
        "../x",
        "..",
        f"../{run.parent.name}/{run.name}/..",
        str(outside),
        str(tmp_path),
        "/etc",
        "/etc/passwd",
        f"{runs}/../..",
        f"{run.name}/../../..",
        "run-*",
        "run-20250101-000000-abcdef; rm -rf /",
    ]
    # a symlink inside the runs dir pointing outside it
    link = runs / "run-20250101-000000-fedcba"
    link.symlink_to(outside, target_is_directory=True)
    refs += [link.name, str(link)]
    for ref in refs:
        with pytest.raises(RunNotFoundError):
            storage.resolve_run(ref)
    # the symlink is not listed either
    assert [e.path for e in storage.list_runs()] == [run]


def test_list_runs_newest_first_with_status_filter() -> None:
    a = make_run("2025-01-01T00:00:00.000000Z", JobStatus.FAILED)
    b = make_run("2025-03-01T00:00:00.000000Z", JobStatus.COMPLETED)
    c = make_run("2025-02-01T00:00:00.000000Z", JobStatus.FAILED)
    assert [e.path for e in storage.list_runs()] == [b, c, a]
    assert [e.path for e in storage.list_runs(status="failed")] == [c, a]
    broken = config.runs_dir() / "run-20250101-000000-000001"
    broken.mkdir()
    (broken / "job.json").write_text("{not json")
    (config.runs_dir() / "not-a-run").mkdir()
    assert len(storage.list_runs()) == 3


def test_list_runs_without_runs_dir() -> None:
    assert storage.list_runs() == []


def test_load_job_errors(tmp_path: Path) -> None:
    with pytest.raises(RunNotFoundError):
        storage.load_job(tmp_path)
    (tmp_path / "job.json").write_text("[]")
    with pytest.raises(Exception, match="not a valid job"):
        storage.load_job(tmp_path)


# ----------------------------------------------------------------------------- locks


def test_run_lock_is_exclusive_across_processes(tmp_path: Path) -> None:
    run = make_run()
    with storage.RunLock(run):
        script = textwrap.dedent(
            f"""
            import sys
            from pathlib import Path
            from infomux import storage
            try:
                storage.RunLock(Path({str(run)!r})).acquire()
            except storage.RunLockedError:
                sys.exit(3)
            sys.exit(0)
            """
        )
        assert subprocess.run([sys.executable, "-c", script], check=False).returncode == 3
    assert subprocess.run([sys.executable, "-c", script], check=False).returncode == 0
