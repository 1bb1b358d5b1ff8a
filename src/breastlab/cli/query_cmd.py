"""CLI: ``breastlab query OUT "SQL"`` asks a sort's header index and outputs questions (DuckDB SQL, read-only)."""
from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import typer


def for_terminal(columns: list[str], rows: list[tuple]) -> tuple[list[str], list[tuple]]:
    """Columns and rows with every text cell passed through ``terminal_safe`` (numbers kept)."""
    from breastlab.core.progress import terminal_safe

    def cell(v: object) -> object:
        return v if v is None or isinstance(v, (int, float)) else terminal_safe(v)

    return [terminal_safe(c) for c in columns], [tuple(cell(v) for v in r) for r in rows]


def register(app: typer.Typer) -> None:
    """Add ``query`` to the app."""

    @app.command("query")
    def query(
        out: Path = typer.Argument(..., help="Output folder of `breastlab sort`."),
        sql: str = typer.Argument(..., help="DuckDB SQL over the views headers, series, instances, skipped."),
        max_rows: int = typer.Option(100_000, "--max-rows", min=1, help="Print at most this many rows."),
    ) -> None:
        """Run a read-only SQL query over a sort's header index and outputs; prints CSV (see docs/scale.md)."""
        from breastlab.core.errors import UsageError
        from breastlab.index.query import run_query

        try:
            columns, rows, more = run_query(out, sql, max_rows=max_rows)
        except Exception as exc:  # noqa: BLE001 - a bad query or folder is bad usage (exit 2)
            if os.environ.get("BREASTLAB_DEBUG"):
                raise
            raise UsageError((str(exc).splitlines() or [""])[0]) from None
        if sys.stdout.isatty():  # header text must not drive the terminal (ESC sequences, bidi overrides)
            columns, rows = for_terminal(columns, rows)
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        if more:
            typer.echo(f"breastlab query: only the first {max_rows} rows printed (--max-rows); "
                       "add LIMIT/OFFSET or aggregate", err=True)
        if not rows:  # nothing matched: exit 1, the header line alone on stdout
            raise typer.Exit(1)
