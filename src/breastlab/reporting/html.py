"""One self-contained HTML report per run directory.

``write_report(run_dir)`` writes ``RUN_DIR/report.html``: inline CSS, every figure a
base64 PNG, no scripts, no external links (it opens offline and can be mailed as one
file). It only renders what the run holds: ``metrics.json`` as evaluation wrote it (never
recomputed here), the Grad-CAM gallery of ``RUN_DIR/explain`` (never generated here), and
the run configuration (phantom/demo data as the experiment recorded it); what is missing or
stale is said in the report. ``reporting.build.build_report`` runs evaluation and the
gallery first when they are missing. Sections: notes and caveats (a banner when the run
configuration records demo/phantom/synthetic data), data, metrics (mean ± sd over repeats, per repeat
with 95% CIs, pooled), thresholds, paired tests, ROC curves, confusion matrices,
Grad-CAM gallery, configuration, provenance and versions.

No patient names or IDs: cases appear only by the case id of ``predictions.csv``;
``cases.csv`` (which holds the pseudonymous patient id) is never read here, and
configuration keys mentioning patients are dropped.

Sections: ``reporting.sections.SECTIONS`` (one list builds the contents and the body);
markup helpers: ``reporting.markup``.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from breastlab.core import atomic
from breastlab.core.artefacts import read_metrics
from breastlab.core.errors import UsageError
from breastlab.core.rundir import RunDir
from breastlab.reporting.markup import CSS, esc
from breastlab.reporting.sections import SECTIONS, ReportContext, contents


class MissingMetricsError(UsageError, FileNotFoundError):
    """The run has no ``metrics.json`` to render."""


def _load_metrics(run: RunDir) -> tuple[dict[str, Any], list[str]]:
    """``metrics.json`` as evaluation wrote it, and what the report must say about it."""
    data: dict[str, Any] = {}
    if run.metrics.is_file():
        try:
            data = read_metrics(run.metrics)
        except (OSError, ValueError):
            data = {}
    if not (data.get("schema") and data.get("models")):
        raise MissingMetricsError(f"{run.root} has no readable metrics.json: run "
                                  f"`breastlab evaluate {run.root}` first")
    notes = []
    preds = [p for reps in run.discover().values() for p in reps.values()]
    if any(p.stat().st_mtime > run.metrics.stat().st_mtime for p in preds):
        notes.append("metrics.json is older than some predictions.csv: these figures may not "
                     "describe the current predictions; run `breastlab evaluate` again.")
    return data, notes




def render_report(run_dir: str | Path) -> str:
    """The report HTML as a string (see ``write_report``)."""
    run = RunDir(run_dir)
    run_dir = run.root
    metrics, missing = _load_metrics(run)
    prov = run.read_provenance()
    task = ("binary classification (" + " vs ".join(metrics["class_names"]) + ")"
            if metrics["task"] == "binary"
            else f"{len(metrics['class_names'])}-class classification")
    models = ", ".join(metrics["models"])
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    ctx = ReportContext(run, metrics, prov, missing)
    body = "".join([
        f"<h1>breastlab report: {esc(run_dir.name)}</h1>",
        f"<p>{esc(task)}; models: {esc(models)}. Generated {esc(now)}.</p><p>{contents()}</p>",
        *(section.render(ctx) for section in SECTIONS),
    ])
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>breastlab report: {esc(run_dir.name)}</title><style>{CSS}</style>"
            f"</head><body>{body}</body></html>\n")


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the self-contained report (default ``RUN_DIR/report.html``) atomically.

    Renders only: ``MissingMetricsError`` when the run has no ``metrics.json``; a stale
    one and a missing gallery are said in the report. See ``reporting.build``.
    """
    run = RunDir(run_dir)
    target = Path(out) if out else run.report
    return atomic.write_text(target, render_report(run.root))
