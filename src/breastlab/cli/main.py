"""The ``breastlab`` command line.

Each command lives in its own module of this package and exposes
``register(app)``; this file assembles them and holds the one error handler
(``_Group.invoke``): every command exits 0 done, 1 nothing to do, 2 bad usage,
3 failed mid-run, 130 interrupted (``core.errors``), and every error is
``breastlab COMMAND: error: MESSAGE`` on stderr, never a traceback
(``BREASTLAB_DEBUG=1`` re-raises for developers). Heavy libraries (torch,
matplotlib) are imported inside the commands that need them, so ``breastlab
sort`` starts fast.
"""
from __future__ import annotations

import importlib
import logging
import os
from typing import Any

import typer
from typer.core import TyperGroup

try:  # recent Typer carries its own copy of Click; its exception types live there
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover - older Typer on top of Click
    from click.exceptions import ClickException, NoArgsIsHelpError  # type: ignore[no-redef]

from breastlab.core.errors import EXIT_INTERRUPTED, EXIT_USAGE, exit_code

from ._help import install as _install_help

_install_help()  # flags without <bool>, choices listed, NAME-style usage (cli/_help.py)
log = logging.getLogger("breastlab.cli")


def command_name(group: Any, ctx: Any) -> str:
    """``breastlab sort``, ``breastlab mri train``: the command a context is about to run."""
    args = [*getattr(ctx, "_protected_args", []), *ctx.args]
    words = [ctx.command_path or "breastlab"]
    cmd: Any = group
    for arg in args:
        if not hasattr(cmd, "get_command") or arg.startswith("-"):
            break
        cmd = cmd.get_command(ctx, arg)
        if cmd is None:
            break
        words.append(arg)
    return " ".join(words)


def report_error(command: str, message: str) -> None:
    """``COMMAND: error: MESSAGE`` on stderr (control characters made visible)."""
    from breastlab.core.progress import terminal_safe

    lines = [" ".join(line.split()) for line in str(message).strip().splitlines()] or [""]
    text = "\n  ".join(terminal_safe(line) for line in lines if line) or "failed"
    typer.echo(f"{command}: error: {text}", err=True)


class _Group(TyperGroup):
    """The top-level group: the one place where errors become messages and exit codes."""

    def invoke(self, ctx: Any) -> Any:
        command = command_name(self, ctx)
        from breastlab.core.logs import setup_logging

        setup_logging(command)  # logging: the one channel for messages (core/logs.py)
        try:
            return super().invoke(ctx)
        except (typer.Exit, NoArgsIsHelpError):
            raise
        except ClickException as exc:  # bad option or argument (Typer/Click)
            report_error(command, exc.format_message())
            raise typer.Exit(EXIT_USAGE) from None
        except (KeyboardInterrupt, typer.Abort):
            report_error(command, "interrupted; the output folders keep their previous content")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:  # noqa: BLE001 - no traceback reaches a user
            if os.environ.get("BREASTLAB_DEBUG"):
                raise
            log.debug("%s failed", command, exc_info=True)
            code = exit_code(exc)
            from breastlab.core.errors import BreastlabError

            if isinstance(exc, BreastlabError):
                message = str(exc)
            else:  # not one of ours: name it (a bug, or a failure of the system)
                what = (f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError)
                        and exc.strerror else str(exc))
                message = f"{type(exc).__name__}: {what}"
                if code == 3:
                    message += "; the output folders keep their previous content"
            report_error(command, message)
            raise typer.Exit(code) from None


app = typer.Typer(
    name="breastlab",
    cls=_Group,
    help="Breast-imaging AI toolkit: MRI series sorting and four-view diagnosis.",
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# Order here is the order shown in --help.
COMMAND_MODULES = (
    "sort_cmd",
    "query_cmd",
    "phantom_cmd",
    "cases_cmd",
    "train_cmd",
    "report_cmd",
    "predict_cmd",
    "mri_cmd",
    "demo_cmd",
    "pacs_cmd",
    "listen_cmd",
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"{__package__}.{_name}").register(app)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    """breastlab: breast MRI series sorting and four-view (BSGI/mammography) diagnosis."""
    if version:
        from breastlab import __version__

        typer.echo(__version__)
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
