"""The hand-written _whisper.pyi must match the compiled module (mypy's stubtest)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from tests.require import missing


def test_stub_matches_extension() -> None:
    if importlib.util.find_spec("mypy") is None:
        missing("mypy (a test dependency) is not installed")
    allowlist = Path(__file__).with_name("stubtest_allowlist.txt")
    out = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "infomux._whisper", "--allowlist", str(allowlist)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
