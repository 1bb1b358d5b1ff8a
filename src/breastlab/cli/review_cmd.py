"""CLI: ``breastlab review OUT`` writes OUT/review.html for a finished sort; helpers for ``sort --review/--truth``.

Torch-free, like ``breastlab sort``: the page needs pydicom, numpy and Pillow only.
Exit codes: 0 written; 2 bad usage (not a sort folder, an unreadable truth table, the
folder locked by a running sort); 3 the page could not be written.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def _fail(message: str, code: int = 2) -> Exception:
    """A usage (2) or mid-run (3) error, reported by the one handler in ``cli/main.py``."""
    from breastlab.core.errors import RunFailed, UsageError

    return UsageError(message) if code == 2 else RunFailed(message)


def load_truth(path: Path | None) -> list[Any] | None:
    """The truth table at ``path`` (``None`` when not given); raises ``TruthTableError`` (one line)."""
    if path is None:
        return None
    from breastlab.review.truth import read_truth

    return read_truth(path)


def report(console: Any, step: Any, out: Path) -> None:
    """Print the agreement tables and where the page is (after ``sort`` or ``review``)."""
    from rich.text import Text

    from breastlab.core.progress import terminal_safe

    if step.agreement is not None:
        from breastlab.review.agreement import agreement_tables

        for table in agreement_tables(step.agreement, unmatched=len(step.match.unmatched)):
            console.print(table)
        for row, why in step.match.unmatched[:5]:
            console.print(Text(terminal_safe(f"truth row {row.set_id or row.series_uid} ({row.label}): {why}")))
        console.print(Text(f"agreement written to {terminal_safe(str(out / 'agreement.json'))}"))
    if step.page is not None:
        p = step.page
        console.print(Text(terminal_safe(
            f"review page: {out / p.path.name} ({p.n_bytes / 1024:.0f} KB, {p.n_sets} image sets in "
            f"{p.n_studies} studies" + (f"; {p.n_without_image} without a thumbnail" if p.n_without_image else "")
            + "); open it in a browser")))


def register(app: typer.Typer) -> None:
    """Add ``review`` to the app."""

    @app.command("review")
    def review(
        out: Path = typer.Argument(..., help="The --out folder of a finished `breastlab sort`."),
        truth: Path | None = typer.Option(
            None, "--truth", help="A truth table (CSV exported from review.html): show the sorter's agreement."
        ),
        workers: int | None = typer.Option(
            None, "--workers", "-j", min=1, help="Thumbnail processes [default: the CPU count]."
        ),
    ) -> None:
        """Write OUT/review.html: every image set with its thumbnail, label and evidence; corrections export a truth table."""
        from rich.console import Console

        from breastlab.core.publish import OutputError
        from breastlab.review.sortstep import ReviewStep, add_to_published
        from breastlab.review.truth import TruthTableError

        if not (out / "series.json").is_file():
            raise _fail(f"{out} holds no series.json: give the --out folder of breastlab sort")
        try:
            rows = load_truth(truth)
        except TruthTableError as exc:
            raise _fail(f"--truth: {exc}") from None
        try:
            step = add_to_published(out, ReviewStep(review=True, truth=rows, workers=workers))
        except OutputError as exc:
            raise _fail(str(exc)) from None
        except (OSError, ValueError) as exc:
            raise _fail(f"{type(exc).__name__}: {exc}", 3) from None
        console = Console() if Console().is_terminal else Console(width=160)
        report(console, step, out)
