"""Paths inside a four-view run directory, in one place (layout: docs/architecture.md).

New code asks here for a path rather than spelling it out; older modules still build some
of these paths by hand.
"""
from __future__ import annotations

from pathlib import Path

PROVENANCE = "provenance.json"
CASES = "cases.csv"
METRICS = "metrics.json"
TRAIN_LOG = "train.log"
TRAIN_EVENTS = "train_log.jsonl"
PREDICTIONS = "predictions.csv"
THRESHOLD = "threshold.json"
HISTORY = "history.csv"
#: Breast-level models (trained when the case table carries per-breast labels) live in
#: ``models/{model}/repeat{r}/breast/`` with the same files as the exam-level model.
BREAST_SUBDIR = "breast"


def model_dir(run_dir: str | Path, model: str, repeat: int) -> Path:
    return Path(run_dir) / "models" / model / f"repeat{repeat}"


def breast_dir(run_dir: str | Path, model: str, repeat: int) -> Path:
    return model_dir(run_dir, model, repeat) / BREAST_SUBDIR


def breast_predictions(exam_predictions: str | Path) -> Path:
    """``.../repeat{r}/predictions.csv`` → ``.../repeat{r}/breast/predictions.csv``."""
    return Path(exam_predictions).parent / BREAST_SUBDIR / PREDICTIONS
