"""The ``breastlab`` command line.

Each command lives in its own module of this package and exposes
``register(app)``; this file only assembles them. Heavy libraries (torch,
matplotlib) are imported inside the commands that need them, so ``breastlab
sort`` starts fast.
"""
from __future__ import annotations

import importlib

import typer

from ._help import install as _install_help

_install_help()  # flags without <bool>, choices listed, NAME-style usage (cli/_help.py)

app = typer.Typer(
    name="breastlab",
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
    csv_verbatim: bool = typer.Option(
        False, "--csv-verbatim",
        help="Write CSV/TSV cells verbatim (default: control characters removed, formula cells made inert)."),
) -> None:
    """breastlab: breast MRI series sorting and four-view (BSGI/mammography) diagnosis."""
    if csv_verbatim:  # an environment variable: worker processes inherit it (core/csvcells.py)
        import os

        os.environ["BREASTLAB_CSV_VERBATIM"] = "1"
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
