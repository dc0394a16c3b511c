"""Silero VAD offline: the bundled model installs into the cache, bad files are refused
before whisper.cpp reads them, and it finds speech in real audio."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from infomux import audio, config
from infomux.engine import Model, TranscribeOptions
from infomux.errors import ModelError, ModelNotFoundError
from infomux.vad import (
    VAD_MODEL_FILE,
    VAD_MODEL_SHA256,
    VadModel,
    default_vad_model,
    validate_vad_model_file,
)

RATE = 16000


@pytest.fixture
def vad_path() -> Path:
    try:
        return default_vad_model()
    except ModelNotFoundError as exc:
        from tests.require import missing

        missing(f"no bundled VAD model: {exc}")


def test_bundled_model_installs_offline_into_the_cache(vad_path: Path) -> None:
    assert vad_path == config.models_dir() / VAD_MODEL_FILE
    assert hashlib.sha256(vad_path.read_bytes()).hexdigest() == VAD_MODEL_SHA256
    stamp = vad_path.stat().st_mtime_ns
    assert default_vad_model() == vad_path and vad_path.stat().st_mtime_ns == stamp
    validate_vad_model_file(vad_path)


def test_bad_vad_files_are_refused_before_whisper_cpp(
    vad_path: Path, whisper_cpp_dir: Path, tmp_path: Path
) -> None:
    data = vad_path.read_bytes()
    with pytest.raises(ModelNotFoundError):
        validate_vad_model_file(tmp_path / "missing.bin")
    cases = {
        "truncated": data[: len(data) // 2],
        "header-only": data[:64],
        "bad-magic": b"\0\0\0\0" + data[4:],
        "trailing": data + b"\0" * 16,
        "empty": b"",
    }
    for name, payload in cases.items():
        bad = tmp_path / f"{name}.bin"
        bad.write_bytes(payload)
        with pytest.raises(ModelError, match="not a Silero VAD ggml model"):
            validate_vad_model_file(bad)
        with pytest.raises(ModelError):
            VadModel(bad)
    # a whisper model is not a VAD model
    with pytest.raises(ModelError, match="model type"):
        validate_vad_model_file(whisper_cpp_dir / "models" / "for-tests-ggml-tiny.en.bin")


def test_vad_finds_speech_after_silence(vad_path: Path, media_dir: Path) -> None:
    speech = audio.load_audio(media_dir / "speech_a.wav")
    silence = np.zeros(20 * RATE, dtype=np.float32)
    with VadModel(vad_path) as vad:
        spans = vad.speech(np.concatenate([silence, speech]))
        assert spans and spans[0].start >= 19.5
        assert spans[-1].end <= 20 + speech.size / RATE + 0.1
        assert vad.speech(audio.load_audio(media_dir / "silence_10s.wav")) == []
        assert vad.speech(np.zeros(0, dtype=np.float32)) == []


@pytest.mark.model
def test_whisper_vad_refuses_a_second_vad_model_on_one_model(
    real_model: Any, vad_path: Path, media_dir: Path, tmp_path: Path
) -> None:
    samples = audio.load_audio(media_dir / "speech_c_8k_mulaw.wav")
    other = tmp_path / "copy-of-silero.bin"
    other.write_bytes(vad_path.read_bytes())
    with Model(real_model.path) as model:
        first = model.transcribe(
            samples, TranscribeOptions(n_threads=2, vad=True, vad_model=str(vad_path))
        )
        assert first.text
        with pytest.raises(ValueError, match=r"already runs whisper\.cpp.s VAD"):
            model.transcribe(
                samples, TranscribeOptions(n_threads=2, vad=True, vad_model=str(other))
            )
        with pytest.raises(ValueError, match="VAD model not found"):
            model.transcribe(
                samples, TranscribeOptions(vad=True, vad_model=str(tmp_path / "nope.bin"))
            )


@pytest.mark.model
def test_cli_vad_works_offline_without_a_flag_for_the_model(
    real_model: Any, media_dir: Path
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "infomux", "run", "--vad", str(media_dir / "speech_a.wav")],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stderr
    job = json.loads((Path(proc.stdout.strip()) / "job.json").read_text())
    assert job["options"]["vad"] is True
    assert job["options"]["vad_model"] == str(config.models_dir() / VAD_MODEL_FILE)
    assert (Path(proc.stdout.strip()) / "transcript.txt").read_text().strip()
