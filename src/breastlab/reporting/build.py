"""After training: evaluation, the Grad-CAM gallery, then the report, in that order.

``reporting.html`` only renders; this is the step that makes sure what it renders exists
(``breastlab report`` calls it):

1. ``metrics.json`` missing or older than a ``predictions.csv``: ``evaluate_run``;
2. ``gallery=True`` and no ``RUN_DIR/explain`` gallery: ``generate_gallery`` (a failure is
   logged and the report says the gallery is missing);
3. ``write_report``.
"""
from __future__ import annotations

import logging
from pathlib import Path

from breastlab.core.rundir import RunDir

log = logging.getLogger(__name__)


def metrics_current(run: RunDir) -> bool:
    """True when ``metrics.json`` exists and is newer than every ``predictions.csv``."""
    if not run.metrics.is_file():
        return False
    t = run.metrics.stat().st_mtime
    return all(p.stat().st_mtime <= t for reps in run.discover().values() for p in reps.values())


def build_report(run_dir: str | Path, out: str | Path | None = None, *, gallery: bool = True,
                 n_gallery: int = 6, device: str = "auto") -> Path:
    """Evaluate and build the gallery when they are missing (Grad-CAM on ``device``), then
    write the report."""
    from breastlab.evaluation.run import evaluate_run
    from breastlab.explain.gallery import gallery_entries, generate_gallery

    from .html import write_report

    run = RunDir(run_dir)
    if not metrics_current(run):
        evaluate_run(run.root)
    if gallery and not gallery_entries(run.root):
        try:
            generate_gallery(run.root, n_cases=n_gallery, device=device)
        except Exception as exc:  # noqa: BLE001 - a report must not fail because of the gallery
            log.warning("Grad-CAM gallery not generated: %s", exc)
    return write_report(run.root, out)
