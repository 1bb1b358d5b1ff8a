"""CLI: ``breastlab evaluate RUN_DIR`` (metrics.json) and ``breastlab report RUN_DIR``
(one self-contained HTML file). See ``docs/evaluation.md``."""
from __future__ import annotations

from pathlib import Path

import typer

from breastlab.core.device import DEVICE_HELP
from breastlab.core.vocab import AucCi, ProportionCi

from ._tables import print_fourview_metrics


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
        ci: ProportionCi = typer.Option(ProportionCi.WILSON, "--ci",
                                        help="Proportion CI (exact = Clopper-Pearson)."),
        auc_ci: AucCi = typer.Option(AucCi.DELONG, "--auc-ci",
                                     help="AUC CI in the main tables (the other is in the "
                                          "level tables: both are always computed)."),
        set_threshold: bool = typer.Option(
            False, "--set-threshold",
            help="Make --threshold-rule the operating rule: rewrite threshold.json, which "
                 "`breastlab predict` uses. Without it another rule goes to "
                 "metrics_<rule>.json and predict is unchanged."),
    ) -> None:
        """Recompute thresholds and metrics (CIs, mean ± sd, paired tests); print a table."""
        from breastlab.core.errors import UsageError
        from breastlab.evaluation.run import evaluate_run, operating_rule
        from breastlab.evaluation.threshold import parse_rule

        try:
            if threshold_rule is not None:
                parse_rule(threshold_rule)
            before = operating_rule(run_dir)
            metrics = evaluate_run(run_dir, threshold_rule=threshold_rule, ci=str(ci),
                                   auc_method=str(auc_ci), set_threshold=set_threshold)
        except (FileNotFoundError, ValueError) as exc:  # not a run folder, a bad rule
            raise UsageError(str(exc)) from exc
        print_fourview_metrics(metrics)
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
        from breastlab.core.device import resolve_device
        from breastlab.core.errors import UsageError
        from breastlab.reporting.build import build_report

        if gallery:
            resolve_device(device)  # DeviceError: one line, exit 2, before any work
        try:
            path = build_report(run_dir, out, gallery=gallery, n_gallery=gallery_cases,
                                device=device)
        except (FileNotFoundError, ValueError) as exc:  # not a run folder
            raise UsageError(str(exc)) from exc
        typer.echo(str(path))
