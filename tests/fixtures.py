"""Fixtures shared by the engine, model and pipeline tests (imported by conftest.py)."""

from __future__ import annotations

import importlib.util
import json
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
def media_dir() -> Path:
    """The shared test media (../shared/media beside the repo, or INFOMUX_TEST_MEDIA)."""
    path = Path(os.environ.get("INFOMUX_TEST_MEDIA", REPO.parent / "shared" / "media"))
    if not path.is_dir():
        pytest.fail(f"test media not found at {path} (set INFOMUX_TEST_MEDIA)")
    return path


@pytest.fixture(scope="session")
def references(media_dir: Path) -> dict[str, Any]:
    """The spoken text of each media file."""
    return json.loads((media_dir / "references.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def whisper_cpp_dir() -> Path:
    """The pinned whisper.cpp source tree (samples/jfk.wav, models/for-tests-*.bin)."""
    explicit = os.environ.get("INFOMUX_WHISPER_CPP_DIR")
    if explicit:
        return Path(explicit)
    return Path(_load_fetch_script().ensure_source())


@pytest.fixture(scope="session")
def real_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model (real tiny.en weights), converted once per test session."""
    from infomux.models import resolve_model

    data = tmp_path_factory.mktemp("model-cache")
    saved = os.environ.get("INFOMUX_DATA_DIR")
    os.environ["INFOMUX_DATA_DIR"] = str(data)
    try:
        return resolve_model(None).path
    finally:
        if saved is None:
            os.environ.pop("INFOMUX_DATA_DIR", None)
        else:
            os.environ["INFOMUX_DATA_DIR"] = saved


@pytest.fixture(scope="session")
def real_model(real_model_path: Path) -> Iterator[Any]:
    """A loaded engine.Model of the default model, shared by the session."""
    from infomux.engine import Model

    model = Model(real_model_path)
    yield model
    model.close()
