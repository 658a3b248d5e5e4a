"""What several test folders share: the repository root and the CLI runner with its user-error check."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

REPO_ROOT = Path(__file__).resolve().parents[1]

_runner = CliRunner()


def invoke(*args: object):
    """Run ``attnx ARGS...`` in-process through typer's runner; returns its ``Result``."""
    from attnx.deploy.cli.main import app

    return _runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, *fragments: str) -> None:
    """Exit code 2, one line on stderr naming the problem, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    err = result.stderr.strip()
    assert err.startswith("error:") and "Traceback" not in result.output
    assert len(err.splitlines()) <= 2, err  # one message (rich may soft-wrap a long one)
    for fragment in fragments:
        assert fragment in err, err
