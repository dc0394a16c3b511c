"""store.py, the store step, search/reindex/runs rm: on hand-made runs (no model)."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from infomux import pipeline, store
from infomux.errors import StepError
from infomux.job import JobStatus
from infomux.steps import StepContext
from infomux.steps.store import Store as StoreStep
from infomux.storage import save_job

SEGMENTS = [
    (0.0, 2.5, "The river town woke slowly that morning."),
    (2.5, 5.3, "Fishing boats drifted past the old stone bridge,"),
    (3725.0, 3727.0, "Good records make good decisions possible."),
]


def make_run(tmp_path: Path, name: str = "talk.txt", segments=SEGMENTS) -> tuple[object, Path]:
    media = tmp_path / name
    media.write_text(name)
    job, run_dir = pipeline.create_run(media, pipeline="audio")
    job.status = JobStatus.COMPLETED
    save_job(job, run_dir)
    data = {
        "language": "en",
        "duration": 3727.0,
        "segments": [{"start": a, "end": b, "text": " " + t} for a, b, t in segments],
    }
    (run_dir / "transcript.json").write_text(json.dumps(data))
    return job, run_dir


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infomux", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        input=stdin,
    )


def test_search_finds_a_word_with_its_time_range(tmp_path: Path) -> None:
    job, run_dir = make_run(tmp_path)
    with store.Store.open() as db:
        assert db.put_run(job, run_dir) == 3
        assert db.put_run(job, run_dir) == 3  # idempotent
        [hit] = db.search("bridge")
        assert (hit.run_id, hit.start_ms, hit.end_ms) == (job.id, 2500, 5300)
        assert "[bridge]" in hit.snippet
        assert db.search("drift")[0].start_ms == 2500  # porter stemming
        [late] = db.search("decisions")
        assert store.hms(late.start_ms) == "01:02:05"
        assert db.search("o'clock OR (bridge") == []  # not FTS5: searched as words
        assert len(db.search("stone bridge")) == 1
        assert db.search("bridge", pipeline="transcribe") == []
        assert db.search("bridge", since="2999-01-01") == []
    assert db.path == tmp_path / "infomux-data" / "infomux.db"
    mode = sqlite3.connect(db.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_search_and_reindex_cli(tmp_path: Path) -> None:
    job, _run_dir = make_run(tmp_path)
    assert cli("reindex").returncode == 0
    proc = cli("search", "bridge")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{job.id}  00:00:02-00:00:05  " + (
        "Fishing boats drifted past the old stone [bridge],\n"
    )
    [hit] = json.loads(cli("search", "--json", "bridge").stdout)
    assert hit["start"] == "00:00:02" and hit["run_id"] == job.id
    # the database deleted: reindex rebuilds it from the run directories
    for path in (tmp_path / "infomux-data").glob("infomux.db*"):
        path.unlink()
    proc = cli("reindex")
    assert proc.returncode == 0 and proc.stdout.startswith("1 runs, 3 segments"), proc
    assert json.loads(cli("search", "--json", "bridge").stdout)[0]["run_id"] == job.id
    assert cli("search", "--since", "yesterday-ish", "x").returncode == 2


def test_newest_first_and_limit(tmp_path: Path) -> None:
    first, d1 = make_run(tmp_path, "a.txt")
    second, d2 = make_run(tmp_path, "b.txt")
    with store.Store.open() as db:
        db.put_run(first, d1)
        db.put_run(second, d2)
        hits = db.search("bridge")
        assert [h.run_id for h in hits] == sorted([first.id, second.id], reverse=True) or [
            h.created for h in hits
        ] == sorted([h.created for h in hits], reverse=True)
        assert len(db.search("bridge", limit=1)) == 1


def test_damaged_database_is_a_clear_error_and_reindex_moves_it_aside(tmp_path: Path) -> None:
    job, run_dir = make_run(tmp_path)
    path = store.db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(store.StoreError, match="reindex"):
        store.Store.open()
    # the store step fails with that message; the run's files stay
    ctx = StepContext(job=job, run_dir=run_dir, options={})
    with pytest.raises(StepError, match=r"damaged.*files are kept"):
        StoreStep().run(ctx)
    assert (run_dir / "transcript.json").is_file()
    report = store.reindex()
    assert report.moved_aside and Path(report.moved_aside).is_file()
    with store.Store.open() as db:
        assert db.search("bridge")[0].run_id == job.id


def test_locked_database_is_a_clear_error(tmp_path: Path) -> None:
    job, run_dir = make_run(tmp_path)
    store.Store.open().close()
    holder = sqlite3.connect(store.db_path(), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with store.Store.open(timeout=0.2) as db:
            with pytest.raises(store.StoreError, match="locked"):
                db.put_run(job, run_dir)
            assert db.search("bridge") == []  # readers are not blocked by the writer
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_two_concurrent_stores(tmp_path: Path) -> None:
    runs = [make_run(tmp_path, f"in{i}.txt") for i in range(2)]
    store.Store.open().close()
    code = (
        "import sys; from pathlib import Path; from infomux import store, storage\n"
        "p = Path(sys.argv[1]); job = storage.load_job(p)\n"
        "for _ in range(20):\n"
        "    with store.Store.open() as db: db.put_run(job, p)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(run_dir)]) for _, run_dir in runs]
    errors: list[BaseException] = []

    def read() -> None:  # a search during the writes
        try:
            for _ in range(20):
                with store.Store.open() as db:
                    db.search("bridge")
        except BaseException as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    reader.join()
    assert not errors
    with store.Store.open() as db:
        assert {h.run_id for h in db.search("bridge")} == {job.id for job, _ in runs}
        count = db.conn.execute("SELECT count(*) FROM segments").fetchone()[0]
        assert count == 6


def _set_up_databases(folder: str, barrier: Any, rounds: int) -> None:
    """In a child process: open a new database together with the others, ``rounds`` times."""
    for i in range(rounds):
        barrier.wait(timeout=20)
        with store.Store.open(Path(folder) / f"{i}.db") as db, db.transaction() as conn:
            conn.execute("SELECT count(*) FROM runs").fetchone()


def test_processes_setting_up_one_new_database_together(tmp_path: Path) -> None:
    # Two `infomux run`s that end at once both create the search database; SQLite then
    # said "database is locked" at once to one of them (about one round in three here).
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    procs = [
        ctx.Process(target=_set_up_databases, args=(str(tmp_path), barrier, 12)) for _ in range(3)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in procs] == [0, 0, 0]


def test_runs_rm(tmp_path: Path) -> None:
    keep, keep_dir = make_run(tmp_path, "keep.txt")
    gone, gone_dir = make_run(tmp_path, "gone.txt")
    failed, failed_dir = make_run(tmp_path, "failed.txt")
    failed.status = JobStatus.FAILED
    save_job(failed, failed_dir)
    assert cli("reindex").returncode == 0
    proc = cli("runs", "rm", gone.id)  # not a terminal, no --yes: refused
    assert proc.returncode == 2 and "--yes" in proc.stderr and gone_dir.is_dir()
    assert cli("runs", "rm", "--yes").returncode == 2  # nothing selected: refused
    proc = cli("runs", "rm", "--yes", gone.id)
    assert proc.returncode == 0 and proc.stdout == f"{gone_dir}\n", proc.stderr
    proc = cli("runs", "rm", "--yes", "--status", "failed")
    assert proc.stdout == f"{failed_dir}\n"
    assert cli("runs", "rm", "--yes", "--older-than", "30d").stdout == ""
    assert not gone_dir.exists() and not failed_dir.exists() and keep_dir.is_dir()
    with store.Store.open() as db:
        assert db.run_ids() == {keep.id}
    assert cli("runs").stdout.count("\n") == 1


def test_parse_since() -> None:
    from datetime import UTC, datetime

    now = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)
    assert store.parse_since("30d", now) == "2025-01-01T12:00:00.000000Z"
    assert store.parse_since("2025-01-02", now) == "2025-01-02T00:00:00.000000Z"
    with pytest.raises(ValueError):
        store.parse_since("soon", now)
