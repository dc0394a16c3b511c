"""Relative paths are recorded as absolute ones, so a run resumes from any directory.

A relative ``--model`` or ``INFOMUX_WHISPER_MODEL`` is taken relative to the
current directory, a relative ``model`` in the config file relative to the
config file, and ``resume --vad-model`` / ``resume --model`` are made absolute
too. Names in the model cache stay names.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infomux import config
from infomux.cli import build_parser
from infomux.commands import resume as resume_cmd
from tests.require import media_file


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of its own, with ``models/m.bin`` in it."""
    cwd = tmp_path / "cwd"
    (cwd / "models").mkdir(parents=True)
    (cwd / "models" / "m.bin").write_bytes(b"not read here")
    monkeypatch.chdir(cwd)
    return cwd


def test_cli_and_env_model_paths_are_made_absolute(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = str(elsewhere / "models" / "m.bin")
    assert config.model_spec("models/m.bin") == expected
    assert config.model_spec("./models/m.bin") == expected
    monkeypatch.setenv(config.ENV_MODEL, "models/m.bin")
    assert config.model_spec(None) == expected
    monkeypatch.setenv(config.ENV_MODEL, "tiny.en-q8_0")
    assert config.model_spec(None) == "tiny.en-q8_0"  # a name stays a name
    assert config.model_spec("base.en") == "base.en"
    assert config.model_spec("/abs/ggml-x.bin") == "/abs/ggml-x.bin"


def test_home_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config.model_spec("~/ggml-x.bin") == str(tmp_path / "ggml-x.bin")


def test_config_file_model_path_is_relative_to_the_config_file(
    elsewhere: Path, tmp_path: Path
) -> None:
    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    cfg_file = cfg_dir / "config.toml"
    cfg_file.write_text('model = "weights/ggml-small.bin"\n')
    cfg = config.load_config(cfg_file)
    assert config.model_spec(None, cfg) == str(cfg_dir / "weights" / "ggml-small.bin")
    cfg_file.write_text('model = "tiny.en"\n')
    assert config.model_spec(None, config.load_config(cfg_file)) == "tiny.en"


def test_resume_overrides_are_absolute(elsewhere: Path) -> None:
    args = build_parser().parse_args(
        ["resume", "latest", "--model", "models/m.bin", "--vad-model", "vad/silero.bin"]
    )
    changes = resume_cmd.overrides(args)
    assert changes["model"] == str(elsewhere / "models" / "m.bin")
    assert changes["vad_model"] == str(elsewhere / "vad" / "silero.bin")
    args = build_parser().parse_args(["resume", "latest", "--model", "tiny.en"])
    assert resume_cmd.overrides(args)["model"] == "tiny.en"


def _infomux(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infomux", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_run_and_resume_record_absolute_paths(tmp_path: Path) -> None:
    """End to end: a run made in one directory, resumed from another, records absolute paths."""
    media = media_file("speech_a.wav")
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    shutil.copy(media, first / "speech.wav")
    env_model = os.environ.get(config.ENV_MODEL)
    assert env_model is None  # the hermetic fixture removed it
    proc = _infomux(
        first,
        "run",
        "-q",
        "--pipeline",
        "audio",
        "--model",
        "./ggml-mine.bin",
        "--vad-model",
        "vad.bin",
        "speech.wav",
    )
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.strip())
    job = json.loads((run_dir / "job.json").read_text())
    assert job["config"]["model"] == str(first / "ggml-mine.bin")
    assert job["config"]["vad_model"] == str(first / "vad.bin")
    assert job["input"]["path"] == str(first / "speech.wav")
    (run_dir / "audio.wav").unlink()  # so that resume has a step to run
    proc = _infomux(second, "resume", "-q", run_dir.name, "--vad-model", "other-vad.bin")
    assert proc.returncode == 0, proc.stderr
    job = json.loads((run_dir / "job.json").read_text())
    assert job["config"]["vad_model"] == str(second / "other-vad.bin")
    assert job["config"]["model"] == str(first / "ggml-mine.bin")


def test_resolved_model_path_is_absolute(
    whisper_cpp_dir: Path, elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from infomux import models

    shutil.copy(whisper_cpp_dir / "models" / "for-tests-ggml-tiny.en.bin", elsewhere / "models")
    for spec in ("models/for-tests-ggml-tiny.en.bin", Path("models/for-tests-ggml-tiny.en.bin")):
        ref = models.resolve_model(spec)
        assert ref.path == elsewhere / "models" / "for-tests-ggml-tiny.en.bin"
        assert ref.path.is_absolute()
    monkeypatch.chdir(elsewhere / "models")
    ref = models.resolve_model("for-tests-ggml-tiny.en.bin")  # a bare existing file name
    assert ref.path == elsewhere / "models" / "for-tests-ggml-tiny.en.bin"
