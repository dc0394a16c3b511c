"""Fixtures for the engine tests: the pinned whisper.cpp tree and a loaded real model."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load_fetch_script() -> Any:
    spec = importlib.util.spec_from_file_location(
        "fetch_whisper_cpp", REPO / "cmake" / "fetch_whisper_cpp.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def whisper_cpp_dir() -> Path:
    """The pinned whisper.cpp source tree (samples/jfk.wav, models/for-tests-*.bin)."""
    explicit = os.environ.get("INFOMUX_WHISPER_CPP_DIR")
    if explicit:
        return Path(explicit)
    return Path(_load_fetch_script().ensure_source())


@pytest.fixture(scope="session")
def loaded_model(_default_model: tuple[Any, str | None]) -> Iterator[Any]:
    """An engine.Model of the default model (real tiny.en weights), shared by the session."""
    from infomux.engine import Model

    ref, reason = _default_model
    if ref is None:
        pytest.skip(reason or "default model not available")
    model = Model(ref.path)
    yield model
    model.close()
