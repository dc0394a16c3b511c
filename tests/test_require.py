"""tests/require.py: a missing requirement skips locally and fails in CI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.require import REQUIRE_ALL_ENV

REPO = Path(__file__).resolve().parents[1]

_PROBE = textwrap.dedent(
    """
    from tests.require import missing

    def test_needs_something():
        missing("the thing is not installed")
    """
)


def _run_probe(tmp_path: Path, require_all: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(_PROBE)
    env = {k: v for k, v in os.environ.items() if k != REQUIRE_ALL_ENV}
    if require_all is not None:
        env[REQUIRE_ALL_ENV] = require_all
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "test_probe.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize("value", [None, "0"])
def test_missing_is_a_skip_locally(tmp_path: Path, value: str | None) -> None:
    out = _run_probe(tmp_path, value)
    assert out.returncode == 0, out.stdout
    assert "1 skipped" in out.stdout and "the thing is not installed" in out.stdout


def test_missing_fails_the_run_when_everything_is_required(tmp_path: Path) -> None:
    out = _run_probe(tmp_path, "1")
    assert out.returncode == 1, out.stdout
    assert "1 failed" in out.stdout
    assert "the thing is not installed" in out.stdout and REQUIRE_ALL_ENV in out.stdout
