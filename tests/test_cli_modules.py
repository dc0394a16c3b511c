"""Every command module ships with infomux: a missing one is a loud packaging error."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from infomux import cli


def test_all_commands_are_registered() -> None:
    parser = cli.build_parser()
    text = parser.format_help()
    for name in cli.COMMANDS:
        assert name in text


def test_missing_command_module_is_not_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "infomux.commands.doctor", None)  # import fails
    with pytest.raises(ModuleNotFoundError, match=r"infomux\.commands\.doctor"):
        cli.build_parser()


def test_cli_reports_a_broken_installation_in_one_line() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["infomux.commands.doctor"] = None
        from infomux import cli
        sys.exit(cli.main(["runs"]))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: infomux is not installed correctly: ")
    assert "infomux.commands.doctor" in lines[0]
