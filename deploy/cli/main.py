"""The ``attnx`` command line: the typer app, its error translation, and the commands' registration.

Each command lives in :mod:`attnx.deploy.cli.commands` (one module each); the options several commands share
are defined once in :mod:`attnx.deploy.cli.options`. Heavy libraries (torch, onnx, onnxruntime) load inside
commands only, so ``attnx --help`` is instant.

Exit codes: 0 success, 1 a parity failure, 2 bad input (one line on stderr naming the problem and the fix).
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from attnx.core.errors import UserError, library_error_message, os_error_message
from attnx.deploy.cli.commands import (
    accuracy,
    bench,
    build,
    check,
    cpu,
    export,
    k8s,
    parity,
    precision,
    run,
    serve,
    triton_repo,
    zoo,
)
from attnx.deploy.cli.console import err_console, escape_markup


class _AttnxGroup(TyperGroup):
    """Turns a UserError from any command into one line on stderr and exit code 2; so too an OSError the user
    can fix (disk full, permissions, a file in the way: attnx.core.errors.os_error_message) and ONNX / ONNX Runtime
    refusing a model or its inputs. Anything else is a bug in attnx and keeps its traceback."""

    def invoke(self, ctx: typer.Context):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except UserError as exc:
            _error_line(str(exc))
        except OSError as exc:  # disk full, permissions, a file where a folder must be: the user's to fix
            message = os_error_message(exc)
            if message is None:
                raise
            _error_line(message)
        except Exception as exc:  # ONNX / ONNX Runtime refusing a model or its inputs; attnx bugs stay tracebacks
            message = library_error_message(exc)
            if message is None:
                raise
            _error_line(message)


def _error_line(message: str) -> None:
    """One line on stderr and exit code 2."""
    # messages quote names read from files: print them, never style them
    err_console.print(f"[bold red]error:[/] {escape_markup(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2) from None


app = typer.Typer(
    name="attnx",
    cls=_AttnxGroup,
    help="Export attention-augmented vision models to ONNX / ONNX Runtime / TensorRT and prove parity.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# in the order `attnx --help` lists them: the pipeline's steps, then deployment
app.command()(zoo.zoo)
app.command()(export.export)
app.command()(parity.parity)
app.command()(run.run)
app.command()(build.build)
app.command()(bench.bench)
app.command()(check.check)
app.command()(precision.precision)
app.command()(cpu.cpu)
app.command()(accuracy.accuracy)
app.command()(serve.serve)
app.command("triton-repo")(triton_repo.triton_repo)
app.command("k8s")(k8s.k8s)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
