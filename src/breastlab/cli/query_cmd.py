"""CLI: ``breastlab query OUT "SQL"`` asks a sort's header index and outputs questions (DuckDB SQL)."""
from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add ``query`` to the app."""

    @app.command("query")
    def query(
        out: Path = typer.Argument(..., help="Output folder of `breastlab sort`."),
        sql: str = typer.Argument(..., help="DuckDB SQL over the views headers, series, instances, skipped."),
    ) -> None:
        """Run SQL over a sort's header index and outputs; prints CSV (see docs/scale.md for examples)."""
        from breastlab.core.errors import UsageError
        from breastlab.index.query import run_query

        try:
            columns, rows = run_query(out, sql)
        except Exception as exc:  # noqa: BLE001 - a bad query or folder is bad usage (exit 2)
            if os.environ.get("BREASTLAB_DEBUG"):
                raise
            raise UsageError((str(exc).splitlines() or [""])[0]) from None
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        if not rows:  # nothing matched: exit 1, the header line alone on stdout
            raise typer.Exit(1)
