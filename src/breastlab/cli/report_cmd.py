"""CLI: ``breastlab evaluate RUN_DIR`` (metrics.json) and ``breastlab report RUN_DIR``
(one self-contained HTML file). See ``docs/evaluation.md``."""
from __future__ import annotations

from pathlib import Path

import typer


def _print_metrics(metrics: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from breastlab.evaluation.metrics import format_mean_sd

    console = Console()
    names = metrics["class_names"]
    if metrics["task"] == "binary":
        keys = [("accuracy", "Accuracy"), ("sensitivity", "Sensitivity"),
                ("specificity", "Specificity"), ("auc", "AUC")]
    else:
        keys = [("accuracy", "Overall accuracy"),
                *[(f"per_class.{n}.accuracy", f"Acc. {n}") for n in names],
                ("macro_auc", "Macro AUC")]
    table = Table(title="Test metrics: mean ± sd across repeats "
                        "(per-repeat 95% CIs in metrics.json)")
    table.add_column("model", style="bold")
    table.add_column("repeats", justify="right")
    for _, h in keys:
        table.add_column(h, justify="right")
    for model, m in metrics["models"].items():
        s = m["summary"]
        n = max((v.get("n_repeats", 0) for v in s.values()), default=0)
        table.add_row(model, str(n), *[format_mean_sd(s.get(k)) for k, _ in keys])
    console.print(table)
    pairs = metrics.get("paired") or []
    if pairs:
        pt = Table(title="Paired tests, pooled over repeats (per repeat in metrics.json)")
        for col in ("A vs B", "McNemar p (acc.)", "DeLong p (AUC)"):
            pt.add_column(col)
        for pr in pairs:
            d = pr["pooled"].get("delong", {})
            fmt = (lambda v: "n/a" if v is None else f"{v:.3g}")
            pt.add_row(f"{pr['model_a']} vs {pr['model_b']}",
                       fmt(pr["pooled"]["mcnemar"]["accuracy"]["p_value"]),
                       fmt(d.get("p_value")))
        console.print(pt)
    for w in metrics.get("warnings", []):
        console.print(f"[yellow]note:[/yellow] {w}")


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` and ``report`` to the app."""

    @app.command("evaluate")
    def evaluate(
        run_dir: Path = typer.Argument(
            ..., exists=True, file_okay=False,
            help="Run directory (with models/*/repeat*/predictions.csv)."),
        threshold_rule: str | None = typer.Option(
            None, "--threshold-rule",
            help="youden (default), 'sensitivity>=0.9' or 'fixed:0.5'; chosen on validation."),
        ci: str = typer.Option("wilson", "--ci",
                               help="Proportion CI: wilson or exact (Clopper-Pearson)."),
        auc_ci: str = typer.Option("delong", "--auc-ci", help="AUC CI: delong or bootstrap."),
    ) -> None:
        """Recompute thresholds and metrics.json (CIs, mean ± sd, paired tests); print a table."""
        from breastlab.evaluation.run import evaluate_run

        if ci not in ("wilson", "exact"):
            raise typer.BadParameter("choose wilson or exact", param_hint="--ci")
        if auc_ci not in ("delong", "bootstrap"):
            raise typer.BadParameter("choose delong or bootstrap", param_hint="--auc-ci")
        try:
            metrics = evaluate_run(run_dir, threshold_rule=threshold_rule, ci=ci,
                                   auc_method=auc_ci)
        except (FileNotFoundError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        _print_metrics(metrics)
        typer.echo(f"wrote {run_dir / 'metrics.json'}", err=True)

    @app.command("report")
    def report(
        run_dir: Path = typer.Argument(..., exists=True, file_okay=False,
                                       help="Run directory."),
        out: Path | None = typer.Option(None, "--out", "-o",
                                        help="HTML file to write (default RUN_DIR/report.html)."),
        gallery: bool = typer.Option(True, "--gallery/--no-gallery",
                                     help="Build the Grad-CAM gallery if RUN_DIR/explain is empty."),
        gallery_cases: int = typer.Option(6, "--gallery-cases", min=1,
                                          help="Cases in a generated gallery."),
    ) -> None:
        """Write one self-contained HTML report (metrics, ROC, Grad-CAM, provenance)."""
        from breastlab.reporting.html import write_report

        try:
            path = write_report(run_dir, out, gallery=gallery, n_gallery=gallery_cases)
        except (FileNotFoundError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        typer.echo(str(path))
