"""CLI: ``breastlab evaluate RUN_DIR`` (metrics.json) and ``breastlab report RUN_DIR``
(one self-contained HTML file). See ``docs/evaluation.md``."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from breastlab.core.device import DEVICE_HELP

ProportionCi = Literal["wilson", "exact"]
AucCi = Literal["delong", "bootstrap"]


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
        pt = Table(title="Paired tests per repeat (repeats share test cases: no pooled test)")
        for col in ("A vs B", "McNemar p (acc.) per repeat", "DeLong p (AUC) per repeat",
                    "DeLong p, repeat-averaged"):
            pt.add_column(col)
        fmt = (lambda v: "n/a" if v is None else f"{v:.3g}")
        for pr in pairs:
            acr = pr.get("across_repeats", {})
            mc = ", ".join(fmt(v) for v in acr.get("mcnemar_accuracy", {}).get("p_values", []))
            dl = ", ".join(fmt(v) for v in acr.get("delong_auc", {}).get("p_values", []))
            av = (pr.get("averaged") or {}).get("delong", {})
            pt.add_row(f"{pr['model_a']} vs {pr['model_b']}", mc, dl or "n/a",
                       fmt(av.get("p_value")) if av else "n/a")
        console.print(pt)
    levels_rows = [(model, level, lv) for model, m in metrics["models"].items()
                   for level, lv in (m.get("levels") or {}).items()]
    if levels_rows:
        lt = Table(title="Breast / exam / patient level: mean ± sd across repeats")
        for col in ("model", "level", "unit", "AUC", "Sensitivity", "Specificity"):
            lt.add_column(col)
        for model, level, lv in levels_rows:
            s = lv.get("summary", {})
            lt.add_row(model, level, lv.get("unit", ""), format_mean_sd(s.get("auc")),
                       format_mean_sd(s.get("sensitivity")), format_mean_sd(s.get("specificity")))
        console.print(lt)
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
        ci: ProportionCi = typer.Option("wilson", "--ci",
                                        help="Proportion CI (exact = Clopper-Pearson)."),
        auc_ci: AucCi = typer.Option("delong", "--auc-ci",
                                     help="AUC CI in the main tables (the other is in the "
                                          "level tables: both are always computed)."),
        set_threshold: bool = typer.Option(
            False, "--set-threshold",
            help="Make --threshold-rule the operating rule: rewrite threshold.json, which "
                 "`breastlab predict` uses. Without it another rule goes to "
                 "metrics_<rule>.json and predict is unchanged."),
    ) -> None:
        """Recompute thresholds and metrics (CIs, mean ± sd, paired tests); print a table."""
        from breastlab.evaluation.run import evaluate_run, operating_rule
        from breastlab.evaluation.threshold import parse_rule

        if threshold_rule is not None:
            try:
                parse_rule(threshold_rule)
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint="--threshold-rule") from exc
        before = operating_rule(run_dir)
        try:
            metrics = evaluate_run(run_dir, threshold_rule=threshold_rule, ci=ci,
                                   auc_method=auc_ci, set_threshold=set_threshold)
        except (FileNotFoundError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        _print_metrics(metrics)
        st = metrics["settings"]
        typer.echo(f"wrote {run_dir / metrics['written_to']}", err=True)
        if metrics["task"] == "binary":
            if st["threshold_rule"] != st["operating_threshold_rule"]:
                typer.echo(f"threshold rule {st['threshold_rule']!r} evaluated only: "
                           f"`breastlab predict` keeps the {before!r} thresholds "
                           "(threshold.json); add --set-threshold to switch", err=True)
            else:
                typer.echo(f"operating threshold rule: {st['operating_threshold_rule']!r} "
                           "(threshold.json, used by `breastlab predict`)", err=True)

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
        device: str = typer.Option("auto", "--device", help="Grad-CAM of the gallery: " + DEVICE_HELP),
    ) -> None:
        """Write one self-contained HTML report (metrics, ROC, Grad-CAM, provenance)."""
        from breastlab.core.device import DeviceError, resolve_device
        from breastlab.reporting.build import build_report

        try:
            if gallery:
                resolve_device(device)  # one line, exit 2, before any work
        except DeviceError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        try:
            path = build_report(run_dir, out, gallery=gallery, n_gallery=gallery_cases,
                                device=device)
        except (FileNotFoundError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        typer.echo(str(path))
