"""Helpers shared by the command-line tests: run a command, read its one error line."""

from __future__ import annotations

from click.testing import CliRunner

from landscape.cli import main


def invoke(*args):
    """``landscape ARGS`` in-process (paths and numbers as strings)."""
    return CliRunner().invoke(main, [str(a) for a in args])


def error_line(result) -> str:
    """The one ``Error:`` line of a command that failed on bad input (exit 2, no traceback)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    return lines[0]
