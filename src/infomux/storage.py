"""Run directories on disk: atomic writes, hashing, inputs, run ids, lookup, listing, locks.

A run lives in ``config.runs_dir()/<run-id>/`` with its ``job.json``. Every write
of ``job.json`` (and of every output file) goes through :func:`atomic_open`
(temp file in the same directory, fsync, rename, fsync of the directory), so a
reader, or a process killed at any moment, only ever sees a complete file; files
get the permissions the umask gives any new file.

An input is checked before it is read (:func:`describe_input`): devices and
sockets are refused, a pipe or FIFO without data fails after :data:`PIPE_TIMEOUT`.

Run references given by users are validated: a run id must match
:data:`RUN_ID_RE`, and whatever a reference names must resolve (symlinks
followed) to a directory directly inside the runs directory.

A process working on a run holds :class:`RunLock` (the run directory's ``.lock``
file, through the ``filelock`` package: ``flock`` on POSIX, ``LockFileEx`` on
Windows); the operating system releases it when the process dies.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import secrets
import selectors
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from infomux import config
from infomux.errors import InfomuxError, RunNotFoundError
from infomux.job import InputFile, JobEnvelope

if TYPE_CHECKING:
    from filelock import BaseFileLock

log = logging.getLogger("infomux.storage")

JOB_FILE = "job.json"
LOCK_FILE = ".lock"  # in each run directory: held by the process working on the run
RUN_ID_RE = re.compile(r"^run-\d{8}-\d{6}-[0-9a-f]{6}$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")


class RunLockedError(InfomuxError):
    """Another process is working on this run."""


class InputKindError(InfomuxError, OSError):
    """The input is not a regular file: a device, a socket, or a pipe.

    Also an :class:`OSError` (``strerror`` is the reason, ``filename`` the path),
    so callers that report ``OSError`` for unreadable inputs report this too.
    """

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


#: How long :func:`describe_input` waits for the first bytes from a pipe or FIFO.
PIPE_TIMEOUT = 5.0


# --------------------------------------------------------------------------- files


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's file-creation mask (read without changing it where the OS allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # elsewhere: set and restore (other threads may briefly see 022)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str],
    *,
    sync_dir: bool = True,
    check: Callable[[Path], None] | None = None,
) -> Iterator[BinaryIO]:
    """Write a file atomically and durably: ``with atomic_open(path) as fh: fh.write(...)``.

    The data goes to a temp file in the same directory; when the block ends
    without an exception, the temp file is fsynced, given the permissions a new
    file gets (``0o666`` less the umask), passed to ``check(temp_path)`` if given
    (which may raise to refuse it), and renamed over ``path``; then the directory
    is fsynced so the rename survives a crash (``sync_dir=False`` leaves that to
    the caller, who may write several files and call :func:`fsync_dir` once). On
    any error the temp file is removed and ``path`` is untouched.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if sync_dir:
        fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, sync_dir: bool = True) -> None:
    """Write ``data`` to ``path`` atomically and durably (see :func:`atomic_open`)."""
    with atomic_open(path, sync_dir=sync_dir) as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, sync_dir: bool = True) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"), sync_dir=sync_dir)


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON (with a final newline) atomically."""
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write_text(path, text)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory so that renames and creations in it are durable."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def file_digests(
    source: str | os.PathLike[str] | BinaryIO,
    algorithms: tuple[str, ...] = ("sha256",),
    *,
    chunk_size: int = 1 << 20,
) -> dict[str, str]:
    """Hash a file (a path, or a binary file object read to its end) in one pass.

    Returns ``{algorithm: hex digest}`` for each of ``algorithms`` (``hashlib`` names).
    """
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as fh:
            return file_digests(fh, algorithms, chunk_size=chunk_size)
    digests = {name: hashlib.new(name, usedforsecurity=False) for name in algorithms}
    while chunk := source.read(chunk_size):
        for digest in digests.values():
            digest.update(chunk)
    return {name: digest.hexdigest() for name, digest in digests.items()}


def sha256_file(path: str | os.PathLike[str], *, chunk_size: int = 1 << 20) -> str:
    """Return the hex SHA-256 of a file's content."""
    return file_digests(path, ("sha256",), chunk_size=chunk_size)["sha256"]


def _not_regular(mode: int) -> str | None:
    """Why a file of this ``st_mode`` cannot be an input, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISCHR(mode):
        return "is a character device, not a regular media file"
    if stat.S_ISBLK(mode):
        return "is a block device, not a regular media file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular media file"
    return "is not a regular media file"


def wait_for_pipe_data(path: str | os.PathLike[str], timeout: float = PIPE_TIMEOUT) -> int:
    """Open a pipe or FIFO without blocking and wait until it can be read.

    Returns a file descriptor in blocking mode, readable now (data, or end of
    file after a writer closed it); the caller closes it.

    Raises:
        InputKindError: nothing came within ``timeout`` seconds (e.g. no writer).
        OSError: the pipe cannot be opened.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            ready = selector.select(timeout)
        if not ready:
            raise InputKindError(
                errno.ETIMEDOUT, f"is a pipe and no data came within {timeout:g} s", str(path)
            )
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def describe_input(
    path: str | os.PathLike[str], *, pipe_timeout: float = PIPE_TIMEOUT, beside: bool = False
) -> InputFile:
    """Return the :class:`InputFile` (absolute path, sha256, size) of a media file.

    ``beside=True`` returns at once and computes the sha256 in a background thread
    (``InputFile.digest``), so that decoding can start while the file is hashed
    instead of after a first full read; the digest is settled when the job is first
    written. An error while hashing is raised then, as :class:`InputHashError`.

    The kind of file is checked before anything is read, so a device
    (``/dev/zero``), a socket or a pipe never makes this hang: devices and
    sockets are refused at once; a pipe or FIFO is opened without blocking and
    refused when no data comes within ``pipe_timeout`` seconds, or else because
    reading media from a stream is not supported yet.

    Raises:
        FileNotFoundError / IsADirectoryError / PermissionError: not a readable file.
        InputKindError: not a regular file.
    """
    resolved = Path(path).expanduser().absolute()
    mode = resolved.stat().st_mode  # FileNotFoundError; never opens the file
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
    if stat.S_ISFIFO(mode):
        os.close(wait_for_pipe_data(resolved, pipe_timeout))
        raise InputKindError(
            errno.ESPIPE,
            "is a pipe; reading media from a pipe is not supported yet (save it to a file first)",
            str(path),
        )
    reason = _not_regular(mode)
    if reason is not None:
        raise InputKindError(errno.EINVAL, reason, str(path))
    # Opened without blocking and checked again, in case the path changed since stat().
    fd = os.open(resolved, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    fh = os.fdopen(fd, "rb")
    try:
        st = os.fstat(fd)
        reason = _not_regular(st.st_mode)
        if reason is not None:
            raise InputKindError(errno.EINVAL, reason, str(path))
        if beside:
            digest = _hash_beside(fh, str(resolved))
            return InputFile(path=str(resolved), sha256="", size_bytes=st.st_size, digest=digest)
        with fh:
            sha256 = file_digests(fh)["sha256"]
    except BaseException:
        fh.close()
        raise
    return InputFile(path=str(resolved), sha256=sha256, size_bytes=st.st_size)


class InputHashError(InfomuxError):
    """The input could not be read to its end while it was hashed."""


def _hash_beside(fh: BinaryIO, name: str) -> Future[str]:
    """Hash an open file in a daemon thread (closing it); its sha256 in a Future.

    hashlib releases the GIL on large updates, so the hashing runs beside decoding.
    """
    future: Future[str] = Future()
    future.set_running_or_notify_cancel()

    def work() -> None:
        try:
            with fh:
                future.set_result(file_digests(fh)["sha256"])
        except OSError as exc:
            error = InputHashError(f"cannot read input {name}: {exc.strerror or exc}")
            future.set_exception(error)
        except BaseException as exc:  # recorded for whoever waits on the digest
            future.set_exception(exc)

    threading.Thread(target=work, name="infomux-input-hash", daemon=True).start()
    return future


# --------------------------------------------------------------------------- run ids


def new_run_id(now: datetime | None = None) -> str:
    """Return a fresh run id ``run-YYYYMMDD-HHMMSS-xxxxxx`` (UTC time, 6 random hex chars)."""
    now = now or datetime.now(UTC)
    return f"run-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def is_valid_run_id(value: str) -> bool:
    """Return whether ``value`` has the exact form of a run id."""
    return bool(RUN_ID_RE.match(value))


def create_run_dir(runs_root: Path | None = None) -> tuple[str, Path]:
    """Create a new, empty run directory; return its id and path."""
    root = runs_root or config.runs_dir()
    root.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        run_id = new_run_id()
        path = root / run_id
        try:
            path.mkdir()
        except FileExistsError:
            continue
        fsync_dir(root)
        return run_id, path
    raise InfomuxError(f"could not create a unique run directory in {root}")


# --------------------------------------------------------------------------- jobs


def job_path(run_dir: Path) -> Path:
    """Return the path of a run's ``job.json``."""
    return run_dir / JOB_FILE


def save_job(job: JobEnvelope, run_dir: Path) -> None:
    """Write ``job.json`` atomically."""
    atomic_write_json(job_path(run_dir), job.to_dict())


def load_job(run_dir: Path) -> JobEnvelope:
    """Read a run's ``job.json``.

    Raises:
        RunNotFoundError: no ``job.json`` there.
        InfomuxError: the file is not a valid job.
    """
    path = job_path(run_dir)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunNotFoundError(f"no {JOB_FILE} in {run_dir}") from None
    try:
        return JobEnvelope.from_dict(json.loads(raw))
    except ValueError as exc:
        raise InfomuxError(f"{path}: not a valid job file: {exc}") from exc


# --------------------------------------------------------------------------- lookup


def _inside(path: Path, root: Path) -> bool:
    """Return whether ``path`` (resolved) is a direct child of ``root`` (resolved)."""
    return path.parent == root


def _checked_run_dir(candidate: Path, root: Path, ref: str) -> Path:
    """Resolve ``candidate`` and make sure it is a run directory inside ``root``."""
    resolved = candidate.resolve()
    if not _inside(resolved, root) or not is_valid_run_id(resolved.name):
        raise RunNotFoundError(f"{ref!r} is not a run in the runs directory ({root})")
    if not job_path(resolved).is_file():
        raise RunNotFoundError(f"no run {ref!r} (no {JOB_FILE} in {resolved})")
    return resolved


def resolve_run(ref: str, runs_root: Path | None = None) -> Path:
    """Find a run directory from a user's reference.

    ``ref`` is a run id, a unique prefix of one, ``latest``, or a path to a run
    directory. Whatever it names must be a directory directly inside the runs
    directory once symlinks are followed; anything else (``../x``, absolute
    paths elsewhere, symlinks out) is refused with :class:`RunNotFoundError`.
    """
    root = (runs_root or config.runs_dir()).resolve()
    if ref == "latest":
        runs = list_runs(root)
        if not runs:
            raise RunNotFoundError(f"no runs in {root}")
        return runs[0].path
    if not ref or config.looks_like_path(ref):
        return _checked_run_dir(Path(ref).expanduser(), root, ref)
    if is_valid_run_id(ref):
        return _checked_run_dir(root / ref, root, ref)
    if not _PREFIX_RE.match(ref):
        raise RunNotFoundError(f"{ref!r} is not a valid run id or prefix")
    matches = sorted(p for p in _run_dirs(root) if p.name.startswith(ref))
    if not matches and not ref.startswith("run-"):
        matches = sorted(p for p in _run_dirs(root) if p.name.startswith("run-" + ref))
    if not matches:
        raise RunNotFoundError(f"no run matches {ref!r}")
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches[:5])
        more = "" if len(matches) <= 5 else f" and {len(matches) - 5} more"
        raise RunNotFoundError(f"{ref!r} is ambiguous: {names}{more}")
    return _checked_run_dir(matches[0], root, ref)


def _run_dirs(root: Path) -> Iterator[Path]:
    """Yield the real (non-symlink) run directories directly inside ``root``."""
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return
    for entry in entries:
        if is_valid_run_id(entry.name) and entry.is_dir(follow_symlinks=False):
            yield Path(entry.path)


@dataclass(frozen=True)
class RunEntry:
    """A run found on disk."""

    path: Path
    job: JobEnvelope


def list_runs(runs_root: Path | None = None, *, status: str | None = None) -> list[RunEntry]:
    """Return the runs in the runs directory, newest first.

    Directories without a readable ``job.json`` are skipped (with a debug log).
    ``status`` keeps only runs with that status.
    """
    root = (runs_root or config.runs_dir()).resolve()
    entries: list[RunEntry] = []
    for path in _run_dirs(root):
        try:
            job = load_job(path)
        except (InfomuxError, OSError) as exc:
            log.debug("skipping %s: %s", path, exc)
            continue
        if status is not None and str(job.status) != status:
            continue
        entries.append(RunEntry(path=path, job=job))
    entries.sort(key=lambda e: (e.job.created_at, e.job.id), reverse=True)
    return entries


# --------------------------------------------------------------------------- locking


def exclusive_lock(path: str | os.PathLike[str]) -> BaseFileLock:
    """An exclusive lock on the lock file ``path`` (created if missing), not yet acquired.

    The ``filelock`` package's OS lock (``flock`` on POSIX, ``LockFileEx`` on
    Windows): released by the operating system when the holding process dies,
    so a crashed process never leaves a stale lock. Usable from any thread
    (``thread_local=False``). Acquire with ``acquire(timeout=0)`` (raises
    ``filelock.Timeout`` when held elsewhere) or ``acquire()`` (waits).
    """
    from filelock import FileLock

    return FileLock(os.fspath(path), thread_local=False)


class RunLock:
    """An exclusive, non-blocking lock on a run directory (its ``.lock`` file).

    Held for as long as a process works on the run; released by the operating
    system if that process dies, so a crashed run never stays locked. Whether
    a run is in use is decided by this lock alone (never by recorded pids).
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._lock: BaseFileLock | None = None

    def acquire(self) -> None:
        """Take the lock; raise :class:`RunLockedError` if another process holds it."""
        from filelock import Timeout

        if not self.run_dir.is_dir():
            raise FileNotFoundError(errno.ENOENT, "no such run directory", str(self.run_dir))
        lock = exclusive_lock(self.run_dir / LOCK_FILE)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise RunLockedError(
                f"run {self.run_dir.name} is being processed by another infomux process"
            ) from None
        self._lock = lock

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

