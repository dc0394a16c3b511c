"""Shared fixtures: hermetic data directory, test media, and the real default model.

Every test gets its own data directory (``INFOMUX_DATA_DIR`` under ``tmp_path``)
and no config file, so nothing reads or writes the user's runs or models. The
default model is converted once per session (:func:`model_cache_dir`); tests
that need it ask for :func:`real_model`. A missing engine, model, whisper.cpp tree or
media directory is a skip with the reason locally and a failure with
``INFOMUX_TESTS_REQUIRE_ALL=1`` (see ``tests/require.py``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import infomux
from tests.fixtures import jfk_samples, loaded_model, whisper_cpp_dir
from tests.require import media_path, missing

__all__ = ["jfk_samples", "loaded_model", "whisper_cpp_dir"]  # fixtures, for every module

REPO = Path(__file__).resolve().parents[1]
# Subprocesses (python -m infomux) must import the same infomux as the tests: the
# installed package in CI, the source tree (with the in-place built extension) in dev.
SRC = Path(infomux.__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def hermetic_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point infomux at a fresh data dir and a missing config file; return the data dir."""
    data = tmp_path / "infomux-data"
    monkeypatch.setenv("INFOMUX_DATA_DIR", str(data))
    monkeypatch.setenv("INFOMUX_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.delenv("INFOMUX_WHISPER_MODEL", raising=False)
    # subprocesses (python -m infomux) find the package the tests import
    path = os.environ.get("PYTHONPATH", "")
    if SRC == REPO / "src" and str(SRC) not in path.split(os.pathsep):
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(SRC), path) if p))
    return data


@pytest.fixture(scope="session")
def media_dir() -> Path:
    """The shared test media directory (a missing requirement when absent)."""
    path = media_path()
    if not (path / "references.json").is_file():
        missing(f"test media not found at {path} (set INFOMUX_TEST_MEDIA)")
    return path


@pytest.fixture(scope="session")
def references(media_dir: Path) -> dict[str, Any]:
    """references.json: the spoken text of each media file."""
    return json.loads((media_dir / "references.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def _default_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, str | None]:
    """Resolve (convert) the default model once; return (ModelRef or None, skip reason)."""
    try:
        import infomux._whisper  # noqa: F401
    except ImportError as exc:
        return None, f"native engine infomux._whisper not importable: {exc}"
    try:
        from infomux.models import resolve_model
    except ImportError as exc:
        return None, f"infomux.models not importable: {exc}"
    data = tmp_path_factory.mktemp("model-cache")
    saved = {k: os.environ.get(k) for k in ("INFOMUX_DATA_DIR", "INFOMUX_WHISPER_MODEL")}
    os.environ["INFOMUX_DATA_DIR"] = str(data)
    os.environ.pop("INFOMUX_WHISPER_MODEL", None)
    try:
        return resolve_model(None), None
    except Exception as exc:
        return None, f"default model not available: {type(exc).__name__}: {exc}"
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def model_cache_dir(_default_model: tuple[Any, str | None]) -> Path:
    """The session's model cache directory holding the converted default model."""
    ref, reason = _default_model
    if ref is None:
        missing(reason or "default model not available")
    return Path(ref.path).parent


@pytest.fixture
def real_model(
    _default_model: tuple[Any, str | None],
    model_cache_dir: Path,
    hermetic_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    """The default model's ModelRef, usable by in-process code and subprocesses.

    Sets ``INFOMUX_WHISPER_MODEL`` to the converted file and links the hermetic data
    dir's ``models/`` to the session cache, so nothing is converted again.
    """
    ref, _ = _default_model
    hermetic_env.mkdir(parents=True, exist_ok=True)
    models = hermetic_env / "models"
    if not models.exists():
        models.symlink_to(model_cache_dir, target_is_directory=True)
    monkeypatch.setenv("INFOMUX_WHISPER_MODEL", str(ref.path))
    yield ref
