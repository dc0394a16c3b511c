"""The command line through real subprocesses: exit codes, the stdout contract, job.json.

``python -m infomux`` is run exactly as a user would. Tests marked ``model`` need
the native engine and the default model (fixture ``real_model``) and skip with
the reason when they are missing (fail in CI: ``tests/require.py``). Signal handling
is also tested with a small sleeping step registered by a wrapper script (``toy_cli``),
which needs neither.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from infomux.job import SCHEMA_PATH
from tests.wer import wer

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
BAD_MEDIA = ["empty.wav", "not_media.mp3", "video_only.mp4", "truncated.mp4"]


def infomux(*args: str, timeout: float = 300, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``python -m infomux ARGS`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "infomux", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
        **kwargs,
    )


def load_job(run_dir: Path | str) -> dict[str, Any]:
    data = json.loads((Path(run_dir) / "job.json").read_text(encoding="utf-8"))
    jsonschema.validate(data, SCHEMA)
    return data


def single_run_dir(proc: subprocess.CompletedProcess[str]) -> Path:
    """The stdout contract: exactly one line, an existing run directory."""
    assert proc.stdout.endswith("\n"), proc.stdout
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    path = Path(lines[0])
    assert path.is_absolute() and path.is_dir() and (path / "job.json").is_file()
    return path


def run_dirs(data_dir: Path) -> list[Path]:
    runs = data_dir / "runs"
    return sorted(runs.iterdir()) if runs.is_dir() else []


def wait_for(predicate: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # job.json is replaced atomically: never read half-written
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def step_status(data_dir: Path, step: str) -> str | None:
    """Status of ``step`` in the only run, or None before job.json exists."""
    dirs = run_dirs(data_dir)
    if not dirs or not (dirs[0] / "job.json").exists():
        return None
    data = json.loads((dirs[0] / "job.json").read_text())
    return next(s["status"] for s in data["steps"] if s["name"] == step)


# ============================================================================ no model needed


def test_help_and_version() -> None:
    proc = infomux("--help")
    assert proc.returncode == 0
    for command in ("run", "inspect", "resume", "runs", "doctor", "pipelines", "steps"):
        assert command in proc.stdout
    proc = infomux("run", "--help")
    assert proc.returncode == 0 and "--word-timestamps" in proc.stdout
    proc = infomux("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("infomux ")


def test_cli_import_is_light() -> None:
    """cli.py, the command modules and step discovery import no numpy, av or extension."""
    code = textwrap.dedent(
        """
        import sys
        from infomux import cli
        cli.build_parser()
        from infomux.steps import discover_steps
        discover_steps()
        print([m for m in ("numpy", "av", "infomux._whisper", "infomux.engine",
                           "infomux.audio", "jsonschema") if m in sys.modules])
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["run"],
        ["run", "x.wav", "--threads", "0"],
        ["run", "x.wav", "--threads", "many"],
        ["run", "x.wav", "--formats", "txt,docx"],
        ["run", "x.wav", "--pipeline", "nope"],
        ["run", "x.wav", "--bogus"],
        ["inspect", "a", "b"],
        ["runs", "--status", "weird"],
        ["resume"],
    ],
)
def test_usage_errors_exit_2(args: list[str], hermetic_env: Path) -> None:
    proc = infomux(*args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert run_dirs(hermetic_env) == []


def test_missing_input_exit_1_without_run(hermetic_env: Path) -> None:
    proc = infomux("run", "-q", "/nonexistent/talk.mp4")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "Error: cannot read input /nonexistent/talk.mp4: No such file or directory"
    ]
    assert run_dirs(hermetic_env) == []


@pytest.mark.parametrize("name", BAD_MEDIA)
def test_bad_media_exit_1_and_failed_job(name: str, media_dir: Path, hermetic_env: Path) -> None:
    proc = infomux("run", "-q", str(media_dir / name))
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: extract_audio: "), proc.stderr
    [run_dir] = run_dirs(hermetic_env)
    data = load_job(run_dir)
    assert data["status"] == "failed"
    assert data["error"].startswith("extract_audio: ")
    assert data["steps"][0]["status"] == "failed" and data["steps"][0]["error"]
    assert data["steps"][1]["status"] == "pending"


def test_bad_media_default_verbosity_has_no_traceback(media_dir: Path) -> None:
    proc = infomux("run", str(media_dir / "not_media.mp3"))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
    proc = infomux("run", "-v", str(media_dir / "not_media.mp3"))
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "debug:" in proc.stderr


def read_wav_header(path: Path) -> tuple[int, int, int, int]:
    with wave.open(str(path)) as w:
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()


def test_audio_pipeline_end_to_end(media_dir: Path, hermetic_env: Path) -> None:
    proc = infomux("run", "-q", "--pipeline", "audio", str(media_dir / "speech_a_video.mp4"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    run_dir = single_run_dir(proc)
    assert run_dir.parent == (hermetic_env / "runs").resolve()
    rate, channels, width, frames = read_wav_header(run_dir / "audio.wav")
    assert (rate, channels, width) == (16000, 1, 2) and frames > 16000
    data = load_job(run_dir)
    assert data["status"] == "completed" and data["artifacts"] == ["audio.wav"]
    assert data["pipeline"] == "audio"
    assert data["audio"]["decoded_duration"] == pytest.approx(frames / 16000, abs=0.01)
    assert data["environment"]["pyav"] and data["environment"]["ffmpeg"]
    assert data["input"]["path"] == str(media_dir / "speech_a_video.mp4")
    assert data["input"]["size_bytes"] == (media_dir / "speech_a_video.mp4").stat().st_size
    # -q before the command works the same
    proc = infomux("-q", "run", "--pipeline", "audio", str(media_dir / "speech_a.wav"))
    assert proc.returncode == 0 and proc.stderr == ""
    single_run_dir(proc)


def test_multiple_inputs_print_successes_in_order(media_dir: Path, hermetic_env: Path) -> None:
    inputs = [media_dir / "speech_a.wav", media_dir / "not_media.mp3", media_dir / "speech_a.flac"]
    proc = infomux("run", "-q", "--pipeline", "audio", *map(str, inputs))
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert len(lines) == 2
    assert [load_job(p)["input"]["path"] for p in lines] == [str(inputs[0]), str(inputs[2])]
    assert len(proc.stderr.splitlines()) == 1


def test_config_file_options_are_recorded(
    media_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('threads = 3\nlanguage = "en"\n')
    monkeypatch.setenv("INFOMUX_CONFIG", str(cfg))
    proc = infomux("run", "-q", "--pipeline", "audio", str(media_dir / "speech_a.wav"))
    assert proc.returncode == 0, proc.stderr
    config = load_job(single_run_dir(proc))["config"]
    assert config["threads"] == 3 and config["language"] == "en"
    proc = infomux(
        "run",
        "-q",
        "--pipeline",
        "audio",
        "--threads",
        "1",
        "--language",
        "auto",
        "--formats",
        "srt,txt",
        str(media_dir / "speech_a.wav"),
    )
    config = load_job(single_run_dir(proc))["config"]
    assert config["threads"] == 1 and config["language"] is None
    assert config["formats"] == ["srt", "txt"]
    cfg.write_text("threads = 'x'\n")
    proc = infomux("run", "--pipeline", "audio", str(media_dir / "speech_a.wav"))
    assert proc.returncode == 1 and "Error: config file" in proc.stderr


def test_inspect_and_runs(media_dir: Path, hermetic_env: Path) -> None:
    ok = single_run_dir(
        infomux("run", "-q", "--pipeline", "audio", str(media_dir / "speech_a.wav"))
    )
    bad = infomux("run", "-q", str(media_dir / "video_only.mp4"))
    assert bad.returncode == 1
    [failed] = [p for p in run_dirs(hermetic_env) if p != ok]
    # by id, path, prefix, latest
    for ref in (ok.name, str(ok)):
        proc = infomux("inspect", ref)
        assert proc.returncode == 0, proc.stderr
        assert f"run:       {ok.name}" in proc.stdout and "completed" in proc.stdout
    proc = infomux("inspect", "latest")
    assert failed.name in proc.stdout and "no audio stream" in proc.stdout
    assert "extract_audio  failed" in proc.stdout
    proc = infomux("inspect", failed.name[:-1])
    assert proc.returncode == 0 and failed.name in proc.stdout
    proc = infomux("inspect", "--json", ok.name)
    assert json.loads(proc.stdout) == load_job(ok)
    # runs
    proc = infomux("runs")
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [failed.name, ok.name]
    proc = infomux("runs", "--status", "completed", "--json")
    assert [r["id"] for r in json.loads(proc.stdout)] == [ok.name]
    assert infomux("runs", "--status", "interrupted").stdout == ""


@pytest.mark.parametrize(
    "ref",
    [
        "../x",
        "..",
        "/etc",
        "/etc/passwd",
        "../../etc/passwd",
        "run-20250101-000000-abcdef/../..",
        "nope",
        "run-20250101-000000-abcdef",
    ],
)
def test_inspect_refuses_traversal_and_unknown(
    ref: str, media_dir: Path, hermetic_env: Path
) -> None:
    single_run_dir(infomux("run", "-q", "--pipeline", "audio", str(media_dir / "speech_a.wav")))
    for command in ("inspect", "resume"):
        proc = infomux(command, ref)
        assert proc.returncode == 1, (command, proc.stdout, proc.stderr)
        assert proc.stdout == ""
        assert proc.stderr.startswith("Error: ") and "Traceback" not in proc.stderr


def test_inspect_refuses_symlink_out(media_dir: Path, hermetic_env: Path, tmp_path: Path) -> None:
    real = single_run_dir(
        infomux("run", "-q", "--pipeline", "audio", str(media_dir / "speech_a.wav"))
    )
    outside = tmp_path / "elsewhere" / "run-20250101-000000-abcdef"
    shutil.copytree(real, outside)
    link = real.parent / outside.name
    link.symlink_to(outside, target_is_directory=True)
    for ref in (outside.name, str(link), str(outside)):
        proc = infomux("inspect", ref)
        assert proc.returncode == 1 and proc.stderr.startswith("Error: "), ref


def test_pipelines_and_steps() -> None:
    proc = infomux("pipelines")
    assert proc.returncode == 0
    assert "transcribe (default)" in proc.stdout and "<- extract_audio" in proc.stdout
    assert "audio" in proc.stdout
    data = json.loads(infomux("pipelines", "--json").stdout)
    assert {p["name"]: p["steps"] for p in data}["audio"][0] == "extract_audio"
    proc = infomux("steps")
    assert proc.returncode == 0
    assert "extract_audio" in proc.stdout and "transcribe" in proc.stdout
    data = {s["name"]: s for s in json.loads(infomux("steps", "--json").stdout)}
    assert data["transcribe"]["requires"] == ["extract_audio"]


def test_resume_refuses_changed_input(media_dir: Path, tmp_path: Path, hermetic_env: Path) -> None:
    """A copy fails to decode, then changes: resume refuses (the run is bound to its sha256)."""
    copy = tmp_path / "talk.mp3"
    shutil.copy(media_dir / "not_media.mp3", copy)
    assert infomux("run", "-q", "--pipeline", "audio", str(copy)).returncode == 1
    [run_dir] = run_dirs(hermetic_env)
    shutil.copy(media_dir / "speech_a_44k_stereo.mp3", copy)
    proc = infomux("resume", "-q", run_dir.name)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"Error: cannot resume {run_dir.name}: input {copy} changed (size differs); "
        "step extract_audio needs the original input"
    ]
    assert load_job(run_dir)["status"] == "failed"
    copy.unlink()
    proc = infomux("resume", run_dir.name)
    assert proc.returncode == 1 and "no longer exists" in proc.stderr


def test_resume_completed_run_is_a_no_op(media_dir: Path) -> None:
    run_dir = single_run_dir(
        infomux("run", "-q", "--pipeline", "audio", str(media_dir / "speech_a.wav"))
    )
    before = (run_dir / "job.json").read_text()
    proc = infomux("resume", "-q", "latest")
    assert proc.returncode == 0 and proc.stdout == f"{run_dir}\n" and proc.stderr == ""
    assert (run_dir / "job.json").read_text() == before


def run_two_at_once(
    cmd: list[str], first: Path, second: Path, *, timeout: float
) -> tuple[tuple[str, str], tuple[str, str]]:
    """Run ``cmd first`` and ``cmd second`` concurrently; both must exit 0.

    Returns each process's (stdout, stderr).
    """
    procs = [
        subprocess.Popen(
            [*cmd, str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for path in (first, second)
    ]
    outputs = [proc.communicate(timeout=timeout) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], [err for _, err in outputs]
    return outputs[0], outputs[1]


def test_two_audio_runs_at_once(media_dir: Path, hermetic_env: Path) -> None:
    cmd = [sys.executable, "-m", "infomux", "run", "-q", "--pipeline", "audio"]
    (out_a, _), (out_b, _) = run_two_at_once(
        cmd, media_dir / "speech_a.wav", media_dir / "speech_a.flac", timeout=120
    )
    assert out_a != out_b
    assert load_job(out_a.strip())["status"] == load_job(out_b.strip())["status"] == "completed"


# ============================================================================ signals (toy step)

TOY_CLI = '''
"""infomux's CLI plus a step that sleeps until told to finish (for signal tests)."""
import os, sys, time
from pathlib import Path
from infomux import pipeline
from infomux.cli import main
from infomux.steps import StepContext, StepResult, register_step

@register_step("toy_sleep", needs_input=True)
class ToySleep:
    """Sleep until the file named by TOY_RELEASE exists."""
    def run(self, ctx: StepContext) -> StepResult:
        release = Path(os.environ["TOY_RELEASE"])
        while not release.exists():
            time.sleep(0.02)
        (ctx.run_dir / "slept.txt").write_text("done")
        return StepResult(outputs=["slept.txt"])

pipeline.register_pipeline("toy_sleep", ("toy_sleep",))
sys.exit(main())
'''


@pytest.fixture
def toy_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], Path]:
    """(command prefix of a CLI with a ``toy_sleep`` pipeline, its release file)."""
    script = tmp_path / "toy_cli.py"
    script.write_text(TOY_CLI)
    release = tmp_path / "release"
    monkeypatch.setenv("TOY_RELEASE", str(release))
    return [sys.executable, str(script)], release


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_interrupts_and_resume_finishes(
    sig: signal.Signals, toy_cli: tuple[list[str], Path], media_dir: Path, hermetic_env: Path
) -> None:
    cmd, release = toy_cli
    with subprocess.Popen(
        [*cmd, "run", "--pipeline", "toy_sleep", str(media_dir / "speech_a.wav")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        wait_for(lambda: step_status(hermetic_env, "toy_sleep") == "running", what="step start")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert out == ""
    assert "Traceback" not in err and "interrupted" in err
    [run_dir] = run_dirs(hermetic_env)
    data = load_job(run_dir)
    assert data["status"] == "interrupted"
    assert data["steps"][0]["status"] == "interrupted"
    release.touch()
    proc2 = subprocess.run(
        [*cmd, "resume", "-q", run_dir.name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc2.returncode == 0, proc2.stderr
    assert proc2.stdout == f"{run_dir}\n" and proc2.stderr == ""
    data = load_job(run_dir)
    assert data["status"] == "completed"
    assert [a["status"] for a in data["steps"][0]["attempts"]] == ["interrupted"]
    assert data["history"][-1]["event"] == "resumed"


def test_sigkill_leaves_valid_job_and_resume_works(
    toy_cli: tuple[list[str], Path], media_dir: Path, hermetic_env: Path
) -> None:
    cmd, release = toy_cli
    with subprocess.Popen(
        [*cmd, "run", "-q", "--pipeline", "toy_sleep", str(media_dir / "speech_a.wav")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        wait_for(lambda: step_status(hermetic_env, "toy_sleep") == "running", what="step start")
        # while it runs, a resume is refused
        busy = subprocess.run(
            [*cmd, "resume", "latest"], capture_output=True, text=True, timeout=60, check=False
        )
        assert busy.returncode == 1 and busy.stderr.startswith("Error: ")
        assert "another infomux process" in busy.stderr
        proc.kill()
        proc.communicate(timeout=30)
    [run_dir] = run_dirs(hermetic_env)
    data = load_job(run_dir)
    assert data["status"] == "running"  # the process died mid-step
    release.touch()
    done = subprocess.run(
        [*cmd, "resume", "-q", "latest"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    data = load_job(run_dir)
    assert data["status"] == "completed"
    attempt = data["steps"][0]["attempts"][0]
    assert attempt["status"] == "interrupted" and "abandoned" in attempt["error"]


# ============================================================================ real model


@pytest.mark.model
def test_no_encoder_bf16_keeps_the_files_f16(
    real_model: Any, media_dir: Path, hermetic_env: Path
) -> None:
    proc = infomux("run", "-q", "--no-encoder-bf16", str(media_dir / "speech_c_8k_mulaw.wav"))
    assert proc.returncode == 0, proc.stderr
    data = load_job(single_run_dir(proc))
    assert data["config"]["encoder_bf16"] is False
    assert data["model"]["encoder_type"] == "f16"
    assert (single_run_dir(proc) / "transcript.txt").read_text().strip()


@pytest.mark.model
def test_transcribe_end_to_end(
    real_model: Any, media_dir: Path, references: dict[str, Any], hermetic_env: Path
) -> None:
    proc = infomux("run", "-q", str(media_dir / "speech_a_video.mp4"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    run_dir = single_run_dir(proc)
    for name in (
        "audio.wav",
        "transcript.txt",
        "transcript.srt",
        "transcript.vtt",
        "transcript.json",
    ):
        assert (run_dir / name).is_file(), name
    data = load_job(run_dir)
    assert data["status"] == "completed"
    assert data["artifacts"] == [
        "audio.wav",
        "transcript.txt",
        "transcript.srt",
        "transcript.vtt",
        "transcript.json",
    ]
    assert data["model"]["sha256"] == real_model.sha256
    assert data["model"]["path"] == str(real_model.path)
    from infomux.engine import encoder_bf16_default

    assert data["model"]["encoder_type"] == ("bf16" if encoder_bf16_default() else "f16")
    assert data["options"]["n_threads"] >= 1 and "beam_size" in data["options"]
    assert data["environment"]["engine"]
    assert data["audio"]["codec"]
    text = (run_dir / "transcript.txt").read_text()
    assert wer(references["speech_a_video.mp4"], text) < 0.25, text
    assert (run_dir / "transcript.vtt").read_text().startswith("WEBVTT\n\n00:00:0")
    assert json.loads((run_dir / "transcript.json").read_text())["segments"]
    # inspect shows the model
    proc = infomux("inspect", "latest")
    assert "model:" in proc.stdout and "transcribe     completed" in proc.stdout


@pytest.mark.model
def test_default_verbosity_progress_lines(real_model: Any, media_dir: Path) -> None:
    proc = infomux("run", str(media_dir / "speech_a.wav"))
    assert proc.returncode == 0, proc.stderr
    single_run_dir(proc)
    assert "infomux: transcribe: 100%" in proc.stderr
    assert "\r" not in proc.stderr  # not a TTY: plain lines


@pytest.mark.model
def test_word_timestamps_and_formats(real_model: Any, media_dir: Path) -> None:
    proc = infomux(
        "run", "-q", "--word-timestamps", "--formats", "json,txt", str(media_dir / "speech_a.wav")
    )
    assert proc.returncode == 0, proc.stderr
    run_dir = single_run_dir(proc)
    assert not (run_dir / "transcript.srt").exists()
    data = json.loads((run_dir / "transcript.json").read_text())
    words = [w for s in data["segments"] for w in s.get("words", [])]
    assert words and all(w["start"] <= w["end"] for w in words)
    assert load_job(run_dir)["options"]["word_timestamps"] is True


@pytest.mark.model
def test_many_inputs_load_model_once(real_model: Any, media_dir: Path) -> None:
    inputs = [media_dir / "speech_a.wav", media_dir / "speech_c_8k_mulaw.wav"]
    proc = infomux("run", "-q", *map(str, inputs))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2
    loads = [load_job(p)["steps"][1]["metadata"]["model_load_seconds"] for p in lines]
    # the inputs run side by side: whichever got there first loaded the model, once
    assert sorted(loads)[0] == 0 and sorted(loads)[1] > 0


@pytest.mark.model
def test_resume_after_bad_model(real_model: Any, media_dir: Path, hermetic_env: Path) -> None:
    proc = infomux(
        "run", "-q", "--model", "/nonexistent/ggml-model.bin", str(media_dir / "speech_a.wav")
    )
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: transcribe: ")
    [run_dir] = run_dirs(hermetic_env)
    before = load_job(run_dir)
    assert before["status"] == "failed"
    assert before["steps"][0]["status"] == "completed"
    assert before["steps"][1]["status"] == "failed" and before["steps"][1]["error"]
    # resume with the recorded (bad) model fails again; with a good one it finishes
    assert infomux("resume", "-q", run_dir.name).returncode == 1
    proc = infomux("resume", "-q", "--model", str(real_model.path), run_dir.name)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{run_dir}\n"
    after = load_job(run_dir)
    assert after["status"] == "completed" and after["error"] is None
    assert after["steps"][0] == before["steps"][0]  # extract_audio untouched
    assert [a["status"] for a in after["steps"][1]["attempts"]] == ["failed", "failed"]
    assert after["config"]["model"] == str(real_model.path)
    assert after["history"][-1]["overrides"] == {"model": str(real_model.path)}
    assert len(after["artifacts"]) == len(set(after["artifacts"])) == 5


@pytest.mark.model
def test_resume_prints_what_the_run_was_asked_to_print(
    real_model: Any, media_dir: Path, hermetic_env: Path
) -> None:
    media = str(media_dir / "speech_c_8k_mulaw.wav")
    proc = infomux("run", "-q", "--print", "txt", "--model", "/nonexistent/ggml.bin", media)
    assert proc.returncode == 1 and proc.stdout == ""
    [run_dir] = run_dirs(hermetic_env)
    proc = infomux("resume", "-q", "--model", str(real_model.path), run_dir.name)
    assert proc.returncode == 0, proc.stderr
    transcript = (run_dir / "transcript.txt").read_text()
    assert transcript.strip() and proc.stdout == f"{run_dir}\n{transcript}"
    # a completed run resumed again prints the same
    assert infomux("resume", "-q", run_dir.name).stdout == proc.stdout


@pytest.mark.model
def test_resume_with_changed_input(
    real_model: Any, media_dir: Path, tmp_path: Path, hermetic_env: Path
) -> None:
    copy = tmp_path / "talk.wav"
    shutil.copy(media_dir / "speech_a.wav", copy)
    assert infomux("run", "-q", "--model", "/nonexistent.bin", str(copy)).returncode == 1
    [run_dir] = run_dirs(hermetic_env)
    with copy.open("r+b") as fh:  # same size, different content
        fh.seek(1000)
        fh.write(b"\x00" * 64)
    # audio.wav gone: extract_audio must run again and needs the original input
    (run_dir / "audio.wav").unlink()
    proc = infomux("resume", "-q", "--model", str(real_model.path), run_dir.name)
    assert proc.returncode == 1
    assert "sha256 differs" in proc.stderr and "extract_audio" in proc.stderr
    # a run whose remaining steps don't read the input still finishes
    shutil.copy(media_dir / "speech_a.wav", tmp_path / "talk2.wav")
    assert (
        infomux("run", "-q", "--model", "/nonexistent.bin", str(tmp_path / "talk2.wav")).returncode
        == 1
    )
    (tmp_path / "talk2.wav").unlink()
    proc = infomux("resume", "--model", str(real_model.path), "latest")
    assert proc.returncode == 0, proc.stderr
    assert "no longer exists" in proc.stderr  # warned


def write_float_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> None:
    """A mono IEEE-float WAV: samples reach the engine as decoded, beyond ±1 too."""
    data = samples.astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    path.write_bytes(
        b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"data" + struct.pack("<I", len(data)) + data
    )  # fmt: skip


@pytest.mark.model
@pytest.mark.parametrize("source", ["speech_a_44k_stereo.mp3", "loud_float.wav"])
def test_resumed_transcription_equals_an_uninterrupted_one(
    real_model: Any, media_dir: Path, tmp_path: Path, hermetic_env: Path, source: str
) -> None:
    """The engine gets the samples audio.wav holds, first run or resumed from audio.wav."""
    if source == "loud_float.wav":  # peaks at ±3: audio.wav (s16) has to clip them
        from infomux.audio import load_audio

        media = tmp_path / source
        write_float_wav(media, 3.0 * load_audio(media_dir / "speech_a_44k_stereo.mp3") / 0.275)
    else:
        media = media_dir / source
    flags = ("-q", "--threads", "2", "--word-timestamps")
    whole = infomux("run", *flags, str(media))
    assert whole.returncode == 0, whole.stderr
    first = single_run_dir(whole)
    # Interrupted after extract_audio: transcribe fails, resume reads audio.wav.
    failed = infomux("run", *flags, "--model", "/nonexistent.bin", str(media))
    assert failed.returncode == 1
    run_dir = next(d for d in run_dirs(hermetic_env) if d != first)
    statuses = [s["status"] for s in load_job(run_dir)["steps"]]
    assert statuses[:2] == ["completed", "failed"]
    assert set(statuses[2:]) <= {"pending"}  # steps after transcribe (store) never started
    resumed = infomux("resume", "-q", "--model", str(real_model.path), run_dir.name)
    assert resumed.returncode == 0, resumed.stderr
    assert (run_dir / "audio.wav").read_bytes() == (first / "audio.wav").read_bytes()
    for name in ("transcript.txt", "transcript.json"):  # .json: every time and probability
        assert (run_dir / name).read_text() == (first / name).read_text(), name


@contextlib.contextmanager
def start_transcription(
    data_dir: Path, media: Path, *flags: str
) -> Iterator[subprocess.Popen[str]]:
    """Start ``infomux run --threads 1 MEDIA`` and yield once its transcribe step runs."""
    with subprocess.Popen(
        [sys.executable, "-m", "infomux", "run", *flags, "--threads", "1", str(media)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    ) as proc:
        wait_for(lambda: step_status(data_dir, "transcribe") == "running", 120, "transcribe")
        yield proc


@pytest.mark.model
@pytest.mark.slow
def test_sigint_during_transcription_then_resume(
    real_model: Any, media_dir: Path, hermetic_env: Path
) -> None:
    with start_transcription(hermetic_env, media_dir / "long_speech.mp3") as proc:
        time.sleep(1.0)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    assert proc.returncode == 130, err
    assert out == "" and "Traceback" not in err
    [run_dir] = run_dirs(hermetic_env)
    data = load_job(run_dir)
    assert data["status"] == "interrupted"
    assert data["steps"][0]["status"] == "completed"
    assert data["steps"][1]["status"] == "interrupted"
    proc2 = infomux("resume", "-q", "--threads", "2", run_dir.name, timeout=900)
    assert proc2.returncode == 0, proc2.stderr
    after = load_job(run_dir)
    assert after["status"] == "completed"
    assert after["steps"][0] == data["steps"][0]
    assert [a["status"] for a in after["steps"][1]["attempts"]] == ["interrupted"]
    # Reference, measured now: the resumed transcription of the same file (22 encoder
    # windows on 2 threads). Stopping costs one encoder/decoder call on 1 thread plus
    # the exit, a small part of that; ignoring SIGINT would take longer than all of it.
    full = after["steps"][1]["metadata"]["inference_seconds"]
    assert took < 0.25 * full, (took, full)


@pytest.mark.model
@pytest.mark.slow
def test_sigkill_during_transcription_then_resume(
    real_model: Any, media_dir: Path, hermetic_env: Path
) -> None:
    # a 28 s clip on one thread: transcription takes long enough to be caught running
    with start_transcription(hermetic_env, media_dir / "speech_a.wav", "-q") as proc:
        proc.kill()
        proc.communicate(timeout=30)
    [run_dir] = run_dirs(hermetic_env)
    assert load_job(run_dir)["status"] == "running"
    done = infomux("resume", "-q", "latest", timeout=600)
    assert done.returncode == 0, done.stderr
    assert load_job(run_dir)["status"] == "completed"


@pytest.mark.model
def test_two_transcriptions_at_once(real_model: Any, media_dir: Path) -> None:
    cmd = [sys.executable, "-m", "infomux", "run", "-q", "--threads", "1"]
    (out_a, err_a), (out_b, err_b) = run_two_at_once(
        cmd, media_dir / "speech_a.wav", media_dir / "speech_c_8k_mulaw.wav", timeout=300
    )
    assert err_a == err_b == ""
    for out in (out_a, out_b):
        assert load_job(out.strip())["status"] == "completed"


@pytest.mark.model
def test_doctor(real_model: Any) -> None:
    proc = infomux("doctor")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for key in ("infomux:", "python:", "numpy:", "PyAV:", "FFmpeg:", "model:", "model load:"):
        assert key in proc.stdout
    proc = infomux("doctor", "--model", "/nonexistent.bin")
    assert proc.returncode == 1 and "FAILED" in proc.stdout


def test_python_dash_m_equals_cli_main(tmp_path: Path) -> None:
    """``python -m infomux`` and ``infomux.cli.main`` agree (same parser, same exit codes)."""
    from infomux.cli import main

    assert main(["--version"]) == 0
    assert main(["run"]) == 2
    assert infomux("run").returncode == 2


# ============================================================================ in-process helpers


class FakeStream:
    """A text stream that can claim to be a TTY."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return self.tty


def test_progress_plain_lines() -> None:
    from infomux.commands import ProgressReporter

    stream = FakeStream(tty=False)
    progress = ProgressReporter(stream=stream)  # type: ignore[arg-type]
    for pct in (0, 5, 10, 12, 25, 99, 100, 100):
        progress("transcribe", pct)
    progress.close()
    assert stream.text.splitlines() == [
        "infomux: transcribe: 10%",
        "infomux: transcribe: 25%",
        "infomux: transcribe: 99%",
        "infomux: transcribe: 100%",
    ]


def test_progress_bar_on_tty() -> None:
    from infomux.commands import ProgressReporter

    stream = FakeStream(tty=True)
    progress = ProgressReporter(stream=stream)  # type: ignore[arg-type]
    progress("transcribe", 0)
    progress("transcribe", 50)
    progress.close()
    assert stream.text.startswith("\rinfomux: transcribe [")
    assert " 50%" in stream.text and stream.text.endswith("\n")
    stream.text = ""
    progress("transcribe", 100)
    assert stream.text.endswith("100%\n")
    quiet = FakeStream(tty=True)
    ProgressReporter(enabled=False, stream=quiet)("transcribe", 50)  # type: ignore[arg-type]
    assert quiet.text == ""


def test_log_format_and_levels(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from infomux.log import setup_logging, teardown_logging

    log = logging.getLogger("infomux.test")
    native = logging.getLogger("infomux.whisper")
    try:
        setup_logging(0)
        log.info("hello")
        log.warning("careful")
        log.debug("hidden")
        native.info("whisper_init: hidden")
        setup_logging(1)
        log.debug("shown")
        native.debug("whisper native")
        setup_logging(-1)
        log.warning("quiet hides this")
        log.error("but not this")
    finally:
        teardown_logging()
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "infomux: hello",
        "infomux: warning: careful",
        "infomux: debug: [test] shown",
        "infomux: debug: [whisper] whisper native",
        "infomux: error: but not this",
    ]


def test_main_in_process_stdout_contract(
    media_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from infomux.cli import main
    from infomux.log import teardown_logging

    try:
        code = main(["run", "-q", "--pipeline", "audio", str(media_dir / "speech_a.wav")])
    finally:
        teardown_logging()
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert Path(out.strip()).is_dir() and out.count("\n") == 1


_SLOW_PREPARE = """
import os, signal, sys, threading, time
from infomux import pipeline
from infomux.steps import StepResult, register_step

@register_step("test_wait_for_signal")
class Wait:
    def run(self, ctx):
        time.sleep(120)
        return StepResult()

@register_step("test_slow_prepare", requires=("test_wait_for_signal",))
class SlowPrepare:
    def prepare(self, ctx):
        time.sleep(120)  # a model load whisper.cpp cannot abort
    def run(self, ctx):
        return StepResult()

pipeline.register_pipeline("test_slow", ("test_wait_for_signal", "test_slow_prepare"))
threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
sys.argv = ["infomux", "run", "-q", "--pipeline", "test_slow", sys.argv[1]]
from infomux.cli import run
run()
"""


def test_ctrl_c_does_not_wait_for_a_background_prepare(media_dir: Path) -> None:
    """Issue 10.9: after Ctrl-C the exit does not wait for a prepare() still running in
    the background (job.json is already saved)."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", _SLOW_PREPARE, str(media_dir / "speech_a.wav")],
        capture_output=True,
        text=True,
        timeout=100,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 130, proc.stderr
    assert elapsed < 60, f"the exit waited {elapsed:.1f} s for the background prepare()"
    runs = Path(os.environ["INFOMUX_DATA_DIR"]) / "runs"
    (run_dir,) = list(runs.iterdir())
    assert json.loads((run_dir / "job.json").read_text())["status"] == "interrupted"
