"""The search store: every run's transcript in one SQLite database, searchable with FTS5.

``<data dir>/infomux.db`` (stdlib :mod:`sqlite3`, WAL mode) holds:

* ``runs``: id, input path, sha256, created, status, pipeline, model, duration,
  language, run directory;
* ``segments``: run id, ``start_ms``, ``end_ms``, text; indexed by ``segments_fts``
  (FTS5, ``porter unicode61`` tokenizer, external content kept in step by triggers);
* ``summaries``: a run's summary text when a step wrote one (``summary.md`` or
  ``summary.txt``), indexed by ``summaries_fts``.

The run directories stay the source of truth: :func:`reindex` rebuilds the database
from them. Writers take the write lock at the start of their transaction
(``BEGIN IMMEDIATE``) and wait up to :data:`BUSY_TIMEOUT` seconds for another writer;
readers never wait for writers (WAL). A locked or corrupt database raises
:class:`StoreError` saying what to do; nothing here touches a run directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import filelock

from infomux import config, storage
from infomux.errors import InfomuxError
from infomux.job import JobEnvelope

log = logging.getLogger("infomux.store")

DB_NAME = "infomux.db"
BUSY_TIMEOUT = 30.0
"""Seconds a writer waits for another writer's transaction before giving up."""
SCHEMA_VERSION = 1
SETUP_LOCK_SUFFIX = ".setup-lock"
"""Beside ``infomux.db``: held while a process connects and makes the schema."""
TRANSCRIPT_JSON = "transcript.json"
SUMMARY_FILES = ("summary.md", "summary.txt")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    input_path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created TEXT NOT NULL,
    status TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    model TEXT,
    duration REAL,
    language TEXT,
    run_dir TEXT NOT NULL,
    stored_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_created ON runs(created);
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS segments_run ON segments(run_id);
CREATE VIRTUAL TABLE IF NOT EXISTS segments_fts USING fts5(
    text, content='segments', content_rowid='id', tokenize='porter unicode61'
);
CREATE TRIGGER IF NOT EXISTS segments_ai AFTER INSERT ON segments BEGIN
    INSERT INTO segments_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER IF NOT EXISTS segments_ad AFTER DELETE ON segments BEGIN
    INSERT INTO segments_fts(segments_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TABLE IF NOT EXISTS summaries (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE REFERENCES runs(id) ON DELETE CASCADE,
    text TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS summaries_fts USING fts5(
    text, content='summaries', content_rowid='id', tokenize='porter unicode61'
);
CREATE TRIGGER IF NOT EXISTS summaries_ai AFTER INSERT ON summaries BEGIN
    INSERT INTO summaries_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER IF NOT EXISTS summaries_ad AFTER DELETE ON summaries BEGIN
    INSERT INTO summaries_fts(summaries_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
"""


class StoreError(InfomuxError):
    """The search database cannot be used (locked, corrupt, no FTS5)."""


def db_path() -> Path:
    """The database's path in the data directory (not created)."""
    return config.data_dir() / DB_NAME


def _explain(exc: sqlite3.Error, path: Path) -> StoreError:
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return StoreError(
            f"the search database {path} is locked by another process (waited "
            f"{BUSY_TIMEOUT:g} s): {text}; try again when it is done"
        )
    if isinstance(exc, sqlite3.DatabaseError) and (
        "not a database" in text or "malformed" in text or "corrupt" in text
    ):
        return StoreError(
            f"the search database {path} is damaged ({text}); the runs are safe in their "
            f"directories: move {path.name} away and run 'infomux reindex' to rebuild it"
        )
    return StoreError(f"search database {path}: {text}")


class Store:
    """An open database: ``with Store.open() as store: store.search("bridge")``."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path | None = None, *, timeout: float = BUSY_TIMEOUT) -> Store:
        """Open (creating if needed) the database and its schema.

        Raises:
            StoreError: locked past ``timeout``, corrupt, or SQLite without FTS5.
        """
        path = path or db_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        # SQLite answers "database is locked" at once, without waiting, when two
        # processes set up one new database together (the switch to WAL and the schema
        # transaction can deadlock, and then the busy handler is skipped): set-ups take
        # turns on a lock file beside the database. It is held for milliseconds.
        setup_lock = storage.exclusive_lock(path.with_name(path.name + SETUP_LOCK_SUFFIX))
        try:
            setup_lock.acquire(timeout=timeout)
        except filelock.Timeout:
            raise StoreError(
                f"the search database {path} is locked by another process (waited "
                f"{timeout:g} s to open it); try again when it is done"
            ) from None
        try:
            return cls._connect(path, timeout)
        finally:
            setup_lock.release()

    @classmethod
    def _connect(cls, path: Path, timeout: float) -> Store:
        try:
            conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise _explain(exc, path) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.debug("journal mode %s (WAL not available here)", mode)
            conn.execute("PRAGMA synchronous = NORMAL")
            store = cls(conn, path)
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                # one transaction; IF NOT EXISTS: another process may have just made it
                conn.executescript(
                    f"BEGIN IMMEDIATE;\n{_SCHEMA}\nPRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;"
                )
        except sqlite3.OperationalError as exc:
            conn.close()
            if "fts5" in str(exc).lower():
                raise StoreError(
                    f"this Python's SQLite ({sqlite3.sqlite_version}) has no FTS5; "
                    "the search store needs it"
                ) from exc
            raise _explain(exc, path) from exc
        except sqlite3.Error as exc:
            conn.close()
            raise _explain(exc, path) from exc
        return store

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on any error).

        Raises:
            StoreError: the write lock was not had within the busy timeout, or the
                database is damaged.
        """
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _explain(exc, self.path) from exc
        try:
            yield self.conn
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
            raise _explain(exc, self.path) from exc

    # ----------------------------------------------------------------- writes

    def put_run(self, job: JobEnvelope, run_dir: Path, *, status: str | None = None) -> int:
        """Store (or replace) one run's rows from its job and run directory.

        Idempotent: the run's earlier rows are replaced in one transaction. Returns the
        number of segments stored.

        Raises:
            StoreError: locked or damaged database.
        """
        rows = _run_rows(job, run_dir, status)
        try:
            with self.transaction() as conn:
                return _insert(conn, *rows)
        except sqlite3.Error as exc:
            raise _explain(exc, self.path) from exc

    def delete_runs(self, run_ids: Iterable[str]) -> int:
        """Delete runs' rows; return how many runs there were."""
        ids = list(run_ids)
        try:
            with self.transaction() as conn:
                return sum(_delete(conn, run_id) for run_id in ids)
        except sqlite3.Error as exc:
            raise _explain(exc, self.path) from exc

    def run_ids(self) -> set[str]:
        """The ids of the stored runs."""
        try:
            return {r[0] for r in self.conn.execute("SELECT id FROM runs")}
        except sqlite3.Error as exc:
            raise _explain(exc, self.path) from exc

    # ----------------------------------------------------------------- search

    def search(
        self,
        query: str,
        *,
        limit: int = 20,
        since: str | None = None,
        pipeline: str | None = None,
        marks: tuple[str, str] = ("[", "]"),
    ) -> list[Hit]:
        """Segments (and summaries) matching ``query``, newest run first.

        ``query`` is FTS5 syntax (``bridge``, ``"stone bridge"``, ``bread OR coffee``,
        ``fish*``); when it is not valid FTS5 it is searched as plain words. ``since``
        is an ISO time (runs created then or later); ``marks`` go around matches in
        the snippet.

        Raises:
            StoreError: a damaged database, or an empty query.
        """
        if not query.strip():
            raise StoreError("empty search query")
        try:
            return self._search(query, limit, since, pipeline, marks)
        except sqlite3.OperationalError as exc:
            if "fts5" not in str(exc) and "syntax" not in str(exc):
                raise _explain(exc, self.path) from exc
        try:
            return self._search(_plain_query(query), limit, since, pipeline, marks)
        except sqlite3.Error as exc:
            raise _explain(exc, self.path) from exc

    def _search(
        self,
        query: str,
        limit: int,
        since: str | None,
        pipeline: str | None,
        marks: tuple[str, str],
    ) -> list[Hit]:
        sql = """
        SELECT * FROM (
            SELECT r.id, r.created, r.pipeline, r.input_path, s.start_ms, s.end_ms, s.text,
                   snippet(segments_fts, 0, :open, :close, '…', 16) AS snip,
                   'segment' AS kind, bm25(segments_fts) AS rank
            FROM segments_fts JOIN segments s ON s.id = segments_fts.rowid
            JOIN runs r ON r.id = s.run_id
            WHERE segments_fts MATCH :q
              AND (:since IS NULL OR r.created >= :since)
              AND (:pipeline IS NULL OR r.pipeline = :pipeline)
            UNION ALL
            SELECT r.id, r.created, r.pipeline, r.input_path, NULL, NULL, m.text,
                   snippet(summaries_fts, 0, :open, :close, '…', 16),
                   'summary', bm25(summaries_fts)
            FROM summaries_fts JOIN summaries m ON m.id = summaries_fts.rowid
            JOIN runs r ON r.id = m.run_id
            WHERE summaries_fts MATCH :q
              AND (:since IS NULL OR r.created >= :since)
              AND (:pipeline IS NULL OR r.pipeline = :pipeline)
        )
        ORDER BY created DESC, id DESC, kind = 'segment', start_ms, rank
        LIMIT :limit
        """
        params = {
            "q": query,
            "since": since,
            "pipeline": pipeline,
            "open": marks[0],
            "close": marks[1],
            "limit": max(0, limit),
        }
        return [
            Hit(
                run_id=r[0],
                created=r[1],
                pipeline=r[2],
                input_path=r[3],
                start_ms=r[4],
                end_ms=r[5],
                text=r[6],
                snippet=r[7],
                kind=r[8],
            )
            for r in self.conn.execute(sql, params)
        ]


def _plain_query(query: str) -> str:
    """Each word of ``query`` as a quoted FTS5 string (so no character is an operator)."""
    words = re.findall(r"\w[\w'’-]*", query)
    return " ".join('"' + w.replace('"', '""') + '"' for w in words) or '""'


@dataclass(frozen=True)
class Hit:
    """One search result."""

    run_id: str
    created: str
    pipeline: str
    input_path: str
    start_ms: int | None
    end_ms: int | None
    text: str
    snippet: str
    kind: str  # "segment" or "summary"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (times also as ``HH:MM:SS``)."""
        data = asdict(self)
        data["start"] = hms(self.start_ms)
        data["end"] = hms(self.end_ms)
        return data


def hms(ms: int | None) -> str | None:
    """``HH:MM:SS`` of a time in milliseconds (None stays None)."""
    if ms is None:
        return None
    seconds = max(0, int(ms)) // 1000
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# --------------------------------------------------------------------------- rows


def _run_rows(
    job: JobEnvelope, run_dir: Path, status: str | None
) -> tuple[dict[str, Any], list[tuple[int, int, str]], str | None]:
    transcript = read_transcript(run_dir)
    segments: list[tuple[int, int, str]] = []
    language = None
    duration = None
    if transcript is not None:
        language = transcript.get("language")
        duration = transcript.get("duration")
        for seg in transcript.get("segments", []):
            text = " ".join(str(seg.get("text", "")).split())
            if text:
                start = round(float(seg.get("start") or 0) * 1000)
                end = max(start, round(float(seg.get("end") or 0) * 1000))
                segments.append((start, end, text))
    if duration is None and job.audio:
        duration = job.audio.get("decoded_duration") or job.audio.get("duration")
    summary = None
    for name in SUMMARY_FILES:
        path = run_dir / name
        if path.is_file():
            summary = path.read_text(encoding="utf-8", errors="replace")
            break
    model = (job.model or {}).get("name") or job.config.get("model")
    job.input.settle()  # a sha256 computed beside the first steps
    run = {
        "id": job.id,
        "input_path": job.input.path,
        "sha256": job.input.sha256,
        "created": job.created_at,
        "status": status or str(job.status),
        "pipeline": job.pipeline,
        "model": model,
        "duration": duration,
        "language": language,
        "run_dir": str(run_dir),
        "stored_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    return run, segments, summary


def read_transcript(run_dir: Path) -> dict[str, Any] | None:
    """A run's ``transcript.json`` as data, or None when it has none (or it is unreadable)."""
    path = run_dir / TRANSCRIPT_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("%s: not stored: %s", path, exc)
        return None
    return data if isinstance(data, dict) else None


def _delete(conn: sqlite3.Connection, run_id: str) -> int:
    conn.execute("DELETE FROM segments WHERE run_id = ?", (run_id,))
    conn.execute("DELETE FROM summaries WHERE run_id = ?", (run_id,))
    return conn.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount


def _insert(
    conn: sqlite3.Connection,
    run: dict[str, Any],
    segments: list[tuple[int, int, str]],
    summary: str | None,
) -> int:
    _delete(conn, run["id"])
    conn.execute(
        "INSERT INTO runs (id, input_path, sha256, created, status, pipeline, model, duration,"
        " language, run_dir, stored_at) VALUES (:id, :input_path, :sha256, :created, :status,"
        " :pipeline, :model, :duration, :language, :run_dir, :stored_at)",
        run,
    )
    conn.executemany(
        "INSERT INTO segments (run_id, start_ms, end_ms, text) VALUES (?, ?, ?, ?)",
        [(run["id"], *seg) for seg in segments],
    )
    if summary:
        conn.execute("INSERT INTO summaries (run_id, text) VALUES (?, ?)", (run["id"], summary))
    return len(segments)


# --------------------------------------------------------------------------- reindex


@dataclass(frozen=True)
class ReindexReport:
    """What :func:`reindex` did."""

    runs: int
    segments: int
    removed: int
    seconds: float
    moved_aside: str | None = None


def reindex(path: Path | None = None, runs_root: Path | None = None) -> ReindexReport:
    """Rebuild the database from the run directories (one transaction).

    A damaged database file is renamed ``infomux.db.damaged-<time>`` and a new one
    built. Rows of runs whose directories are gone are removed.

    Raises:
        StoreError: the database is locked.
    """
    from infomux import storage

    path = path or db_path()
    started = time.perf_counter()
    moved = None
    try:
        store = Store.open(path)
    except StoreError as exc:
        if "damaged" not in str(exc):
            raise
        moved = _move_aside(path)
        store = Store.open(path)
    with store:
        entries = storage.list_runs(runs_root)
        count = 0
        try:
            with store.transaction() as conn:
                on_disk = {e.job.id for e in entries}
                stale = [r[0] for r in conn.execute("SELECT id FROM runs") if r[0] not in on_disk]
                removed = sum(_delete(conn, run_id) for run_id in stale)
                for entry in entries:
                    count += _insert(conn, *_run_rows(entry.job, entry.path, None))
        except sqlite3.Error as exc:
            raise _explain(exc, path) from exc
    return ReindexReport(
        runs=len(entries),
        segments=count,
        removed=removed,
        seconds=time.perf_counter() - started,
        moved_aside=moved,
    )


def _move_aside(path: Path) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    path.rename(target)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            side.rename(target.with_name(target.name + suffix))
    log.warning("damaged search database moved to %s", target)
    return str(target)


# --------------------------------------------------------------------------- ages


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(value: str, now: datetime | None = None) -> str:
    """An ISO UTC time from an age (``30d``, ``12h``, ``2w``, ``90m``) or a date/time
    (``2025-01-31``, ``2025-01-31T12:00``), comparable with job.json's ``created_at``.

    Raises:
        ValueError: neither.
    """
    now = now or datetime.now(UTC)
    match = _AGE.match(value)
    if match:
        moment = now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    else:
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"expected an age (30d, 12h, 2w, 90m) or a date (2025-01-31), got {value!r}"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
