"""Inputs that are not regular files: refused quickly and clearly, never a hang.

Devices (``/dev/zero``, ``/dev/urandom``) and sockets are refused before
anything is read; a pipe or FIFO is opened without blocking and refused when
no data comes within the timeout (reading media from a stream is a later
feature, so a FIFO with data is refused too, at once).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from infomux import storage

posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")


def _describe_with_deadline(path: Path, deadline: float = 20.0, **kwargs: float) -> BaseException:
    """Call describe_input in a thread; fail (not hang) if it does not return in time."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            storage.describe_input(path, **kwargs)
        except BaseException as exc:  # handed to the test
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(deadline)
    assert not thread.is_alive(), f"describe_input({path}) still running after {deadline} s"
    exc = outcome[0]
    assert exc is not None, f"describe_input({path}) accepted a non-regular file"
    return exc


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_character_devices_are_refused_at_once(device: str) -> None:
    if not Path(device).exists():
        pytest.skip(f"no {device}")
    exc = _describe_with_deadline(Path(device))
    assert isinstance(exc, storage.InputKindError) and isinstance(exc, OSError)
    assert exc.strerror == "is a character device, not a regular media file"
    assert str(exc) == f"{device}: is a character device, not a regular media file"


@posix_only
def test_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        exc = _describe_with_deadline(path)
    assert isinstance(exc, storage.InputKindError)
    assert "socket" in str(exc)


@posix_only
def test_fifo_without_writer_fails_after_the_timeout(tmp_path: Path) -> None:
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    exc = _describe_with_deadline(fifo, pipe_timeout=0.5)
    assert 0.4 < time.monotonic() - started < 10
    assert isinstance(exc, storage.InputKindError)
    assert "no data came within 0.5 s" in str(exc)


@posix_only
def test_fifo_with_data_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    writer_done = threading.Event()

    def writer() -> None:
        try:
            with open(fifo, "wb") as fh:  # blocks until the reader opens
                fh.write(b"RIFF....WAVE")
        except BrokenPipeError:
            pass
        writer_done.set()

    threading.Thread(target=writer, daemon=True).start()
    started = time.monotonic()
    exc = _describe_with_deadline(fifo, pipe_timeout=30.0)
    assert time.monotonic() - started < 10
    assert isinstance(exc, storage.InputKindError)
    assert "not supported yet" in str(exc)
    assert writer_done.wait(10)


def test_regular_file_still_described(tmp_path: Path) -> None:
    media = tmp_path / "a.bin"
    media.write_bytes(b"abc")
    info = storage.describe_input(media)
    assert info.sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert info.size_bytes == 3


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infomux", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_cli_refuses_dev_zero_and_urandom(hermetic_env: Path) -> None:
    """`infomux run /dev/zero /dev/urandom` returns at once: exit 1, one error line each."""
    proc = _cli("run", "-q", "/dev/zero", "/dev/urandom")
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        "Error: cannot read input /dev/zero: is a character device, not a regular media file",
        "Error: cannot read input /dev/urandom: is a character device, not a regular media file",
    ]
    runs = hermetic_env / "runs"
    assert not runs.exists() or not any(runs.iterdir()), "no run directory is made"


@posix_only
def test_cli_fifo_without_writer_fails_within_the_timeout(tmp_path: Path) -> None:
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    proc = _cli("run", "-q", str(fifo))
    elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip() == (
        f"Error: cannot read input {fifo}: is a pipe and no data came within 5 s"
    )
    assert elapsed >= storage.PIPE_TIMEOUT


def test_decoding_starts_while_the_input_is_hashed(
    media_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run reads its input once before decoding starts, not twice (issue #10): the
    sha256 is computed beside the first steps and job.json is first written with it.

    The hashing is held back here until the decoder has written audio.wav; with the
    input hashed first, audio.wav could never appear while the hash is held."""
    from infomux import pipeline

    source = media_dir / "speech_a_44k_stereo.mp3"
    real_digests = storage.file_digests
    release = threading.Event()

    def held_digests(src: object, *args: object, **kwargs: object) -> dict[str, str]:
        assert release.wait(60), "audio.wav never appeared while the input was being hashed"
        return real_digests(src, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(storage, "file_digests", held_digests)
    job, run_dir = pipeline.create_run(source, pipeline="audio", hash_beside=True)
    assert job.input.hashing and not (run_dir / "job.json").exists()
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            with storage.RunLock(run_dir):
                pipeline.execute(job, run_dir)
        except BaseException as exc:  # handed to the test
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not (run_dir / "audio.wav").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    decoded_first = (run_dir / "audio.wav").exists()
    job_json_before_hash = (run_dir / "job.json").exists()
    release.set()
    thread.join(60)
    assert outcome == [None]
    assert decoded_first, "decoding did not start before the input was hashed"
    assert not job_json_before_hash, "job.json was written without the input's sha256"
    recorded = storage.load_job(run_dir)
    assert recorded.input.sha256 == storage.sha256_file(source)
    assert recorded.status == "completed"
