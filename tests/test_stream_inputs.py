"""Inputs beyond local files (issue 12.5): standard input, http(s) URLs, pipes.

A local HTTP server on 127.0.0.1 (threaded ``http.server``, an ephemeral port) serves
the shared media, and also drops a connection midway and answers 404. Every stream is
read to its end, hashed, spooled into the run dir as ``input.<ext>`` (the MP4 test file
has its ``moov`` at the end: PyAV could not read it as a non-seekable stream) and
recorded in job.json; a failed read leaves no run directory.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from infomux.cli import main
from infomux.job import SCHEMA_PATH
from tests.fixtures import cli
from tests.require import media_file, media_path

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs mkfifo")


class _Handler(http.server.BaseHTTPRequestHandler):
    """/media/NAME: the file; /drop/NAME: its full Content-Length, half its bytes, then
    the connection is closed; anything else: 404."""

    def do_GET(self) -> None:
        kind, _, name = self.path.lstrip("/").partition("/")
        path = media_path() / name
        if kind not in ("media", "drop") or not name or not path.is_file():
            self.send_error(404, "File not found")
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if kind == "media":
            self.wfile.write(data)
            return
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    """The base URL of a local HTTP server (127.0.0.1, ephemeral port)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load(run_dir: Path) -> dict[str, Any]:
    data = json.loads((run_dir / "job.json").read_text(encoding="utf-8"))
    jsonschema.validate(data, SCHEMA)
    return data


def runs(data_dir: Path) -> list[Path]:
    root = data_dir / "runs"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []



def test_url_is_read_hashed_spooled_and_decoded(
    server: str, hermetic_env: Path, capsys: Any
) -> None:
    media = media_file("speech_a_video.mp4")  # moov at the end: needs a seekable file
    url = f"{server}/media/{media.name}"
    assert main(["run", "-q", "--pipeline", "audio", url]) == 0
    out, err = capsys.readouterr()
    [run_dir] = runs(hermetic_env)
    assert out == f"{run_dir}\n" and err == ""
    data = load(run_dir)
    assert data["input"] == {
        "path": str(run_dir / "input.mp4"),
        "sha256": sha256(media),
        "size_bytes": media.stat().st_size,
        "kind": "url",
        "source": url,
        "copy": "input.mp4",
        "content_type": "application/octet-stream",
    }
    assert data["artifacts"] == ["input.mp4", "audio.wav"]
    assert data["audio"]["decoded_duration"] > 27
    assert (run_dir / "input.mp4").read_bytes() == media.read_bytes()


def test_url_dropped_midway_fails_cleanly(server: str, hermetic_env: Path, capsys: Any) -> None:
    media = media_file("speech_a_video.mp4")
    url = f"{server}/drop/{media.name}"
    assert main(["run", "--pipeline", "audio", url]) == 1
    out, err = capsys.readouterr()
    size = media.stat().st_size
    assert out == ""
    assert err == (
        f"Error: cannot read input {url}: the connection closed after {size // 2} of {size} bytes\n"
    )
    assert runs(hermetic_env) == []  # nothing half-written: no run directory at all


def test_url_404_and_refused(server: str, hermetic_env: Path, capsys: Any) -> None:
    url = f"{server}/media/missing.mp4"
    assert main(["run", "--pipeline", "audio", url]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == f"Error: cannot read input {url}: HTTP 404 File not found\n"
    assert runs(hermetic_env) == []


def test_stdin_through_a_real_pipe(hermetic_env: Path) -> None:
    """`cat talk.m4a | infomux run -`: stdout is the run dir, byte for byte."""
    media = media_file("speech_a.m4a")
    with subprocess.Popen(["cat", str(media)], stdout=subprocess.PIPE) as cat:
        proc = cli("run", "-q", "--pipeline", "audio", "-", stdin=cat.stdout)
        assert cat.stdout is not None
        cat.stdout.close()
    assert proc.returncode == 0, proc.stderr
    [run_dir] = runs(hermetic_env)
    assert proc.stdout == os.fsencode(run_dir) + b"\n" and proc.stderr == b""
    data = load(run_dir)
    assert data["input"]["kind"] == "stdin" and data["input"]["source"] == "-"
    assert data["input"]["sha256"] == sha256(media)
    assert data["input"]["size_bytes"] == media.stat().st_size
    assert data["input"]["copy"] == "input.mp4"
    assert data["steps"][0]["status"] == "completed"

    # resume re-decodes from the copy, after checking it, and says it cannot re-verify
    proc = cli("resume", str(run_dir), "--from-step", "extract_audio")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == os.fsencode(run_dir) + b"\n"
    notes = [line for line in proc.stderr.decode().splitlines() if "re-verified" in line]
    assert len(notes) == 1 and "read once from standard input" in notes[0]
    data = load(run_dir)
    assert data["history"][-1]["source_not_reverified"] == "-"
    assert data["steps"][0]["attempts"], "extract_audio ran again"

    # without the copy: a resume that needs no decoding goes on from audio.wav ...
    (run_dir / "input.mp4").unlink()
    proc = cli("resume", str(run_dir), "--from-step", "store")
    assert proc.returncode == 0, proc.stderr
    assert b"cannot be re-verified; resuming from audio.wav" in proc.stderr
    # ... and one that must decode is refused
    proc = cli("resume", str(run_dir), "--from-step", "extract_audio")
    assert proc.returncode == 1 and proc.stdout == b""
    assert b"input.mp4 no longer exists; step extract_audio needs the original input" in (
        proc.stderr
    )


def test_stdin_given_twice_or_empty(hermetic_env: Path) -> None:
    proc = cli("run", "--pipeline", "audio", "-", "-", stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and b"only once" in proc.stderr
    proc = cli("run", "--pipeline", "audio", "-", input=b"")
    assert proc.returncode == 1 and proc.stdout == b""
    assert proc.stderr == b"Error: cannot read input -: standard input was empty (0 bytes)\n"
    assert runs(hermetic_env) == []


@posix_only
def test_fifo_with_a_writer_is_spooled(hermetic_env: Path, tmp_path: Path) -> None:
    """A FIFO path (what `<(cat talk.wav)` gives) is read to its end like stdin."""
    media = media_file("speech_a.wav")
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)

    def writer() -> None:
        with open(fifo, "wb") as fh:
            fh.write(media.read_bytes())

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    proc = cli("run", "-q", "--pipeline", "audio", str(fifo))
    thread.join(10)
    assert proc.returncode == 0, proc.stderr
    data = load(Path(proc.stdout.decode().strip()))
    assert data["input"]["kind"] == "pipe" and data["input"]["source"] == str(fifo)
    assert data["input"]["sha256"] == sha256(media) and data["input"]["copy"] == "input.wav"


def test_old_job_json_still_loads_and_round_trips(hermetic_env: Path) -> None:
    """job.json is a contract: the new input keys and exports are additive."""
    from infomux import pipeline, storage
    from infomux.job import InputFile, JobEnvelope

    old_input = {"path": "/media/talk.mp4", "sha256": "0" * 64, "size_bytes": 3}
    parsed = InputFile.from_dict(old_input)
    assert parsed.kind is None and not parsed.is_stream
    assert parsed.to_dict() == old_input  # no new keys written for a local file
    _job, run_dir = pipeline.create_run(media_file("speech_a.wav"), pipeline="audio")
    data = load(run_dir)
    assert "exports" not in data and set(data["input"]) == set(old_input)
    assert JobEnvelope.from_dict(data).to_dict() == data
    assert storage.load_job(run_dir).input.to_dict() == data["input"]
