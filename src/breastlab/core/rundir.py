"""The run directory: the one module that knows its layout (docs/architecture.md).

A run directory is what an experiment writes and what evaluation, explanation, the report,
prediction and the CLI read::

    RUN/provenance.json                   configuration (``RunConfig``), seeds, data
                                          fingerprint, library versions
    RUN/cases.csv                         the cases (or series) used
    RUN/splits/repeat{r}.json             patient-level split of repeat r
    RUN/models/{model}/repeat{r}/         checkpoint.pt, model.pt, history.csv,
                                          predictions.csv, threshold.json (+ task extras,
                                          e.g. slice_predictions.csv)
    RUN/models/{model}/repeat{r}/breast/  the breast-level model, same files
    RUN/train.log, RUN/train_log.jsonl    what training said while it ran
    RUN/metrics.json                      evaluation at the operating threshold rule
    RUN/metrics_<rule>.json               evaluation under any other rule
    RUN/explain/                          Grad-CAM gallery (index.json + PNGs)
    RUN/report.html                       the rendered report
    RUN/model.pt                          MRI series runs: repeat 0's model, for ``sort --model``

It lives in ``core`` (not ``training``) because readers of a run (evaluation, reporting)
sit below training and must not import torch to find a file.

>>> run = RunDir("/tmp/run")
>>> run.predictions("resnet18", 2).as_posix()
'/tmp/run/models/resnet18/repeat2/predictions.csv'
>>> run.predictions("resnet18", 2, level="breast").name, run.metrics_for("sensitivity>=0.9").name
('predictions.csv', 'metrics_sensitivity_0.9.json')
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROVENANCE = "provenance.json"
CASES = "cases.csv"
METRICS = "metrics.json"
SLICE_METRICS = "slice_metrics.json"
TRAIN_LOG = "train.log"
TRAIN_EVENTS = "train_log.jsonl"
PREDICTIONS = "predictions.csv"
SLICE_PREDICTIONS = "slice_predictions.csv"
THRESHOLD = "threshold.json"
HISTORY = "history.csv"
CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
REPORT = "report.html"
EXPLAIN = "explain"
GALLERY_INDEX = "index.json"
#: Breast-level models (trained when the case table carries per-breast labels) live in
#: ``models/{model}/repeat{r}/breast/`` with the same files as the exam-level model.
BREAST_SUBDIR = "breast"
LEVELS = ("exam", "breast")
_REPEAT = re.compile(r"^repeat(\d+)$")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class RunConfig:
    """The typed part of ``provenance.json["config"]`` that readers of a run rely on.

    ``class_names`` is required: evaluation, the report and prediction name classes from it
    and never guess. Everything else the experiment recorded stays in ``extra``.

    >>> cfg = RunConfig.from_dict({"task": "fourview", "class_names": ["benign", "malignant"],
    ...                            "phantom": True, "image_size": 64})
    >>> cfg.class_names, cfg.synthetic, cfg.extra["image_size"]
    (('benign', 'malignant'), True, 64)
    """

    task: str
    class_names: tuple[str, ...]
    models: tuple[str, ...] = ()
    repeats: int = 1
    views: tuple[str, ...] = ()
    split_unit: str = "patient"
    split_warnings: tuple[str, ...] = ()
    threshold_rule: str | None = None
    #: phantom, demo or synthetic data, recorded by the experiment at training time (the
    #: report then carries the phantom banner).
    synthetic: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any], *, source: str = "configuration"
                  ) -> RunConfig:
        """From a provenance ``config`` block; ``ValueError`` when class names are missing."""
        names = config.get("class_names")
        if not isinstance(names, (list, tuple)) or not names:
            raise ValueError(f"{source} has no class_names: a run must record its classes")
        return cls(
            task=str(config.get("task") or ""),
            class_names=tuple(str(n) for n in names),
            models=tuple(str(m) for m in config.get("models") or ()),
            repeats=int(config.get("repeats") or 1),
            views=tuple(str(v) for v in config.get("views") or ()),
            split_unit=str(config.get("split_unit") or "patient"),
            split_warnings=tuple(str(w) for w in config.get("split_warnings") or ()),
            threshold_rule=(str(config["threshold_rule"]) if config.get("threshold_rule")
                            else None),
            synthetic=any(bool(config.get(k)) for k in ("phantom", "demo", "synthetic")),
            extra=dict(config),
        )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class RunDir:
    """Typed paths of one run directory (see the module docstring for the layout)."""

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    def __fspath__(self) -> str:
        return str(self.root)

    # ------------------------------------------------------------------ top-level files
    @property
    def provenance(self) -> Path:
        return self.root / PROVENANCE

    @property
    def cases(self) -> Path:
        return self.root / CASES

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def slice_metrics(self) -> Path:
        return self.root / SLICE_METRICS

    @property
    def train_log(self) -> Path:
        return self.root / TRAIN_LOG

    @property
    def train_events(self) -> Path:
        return self.root / TRAIN_EVENTS

    @property
    def report(self) -> Path:
        return self.root / REPORT

    @property
    def explain(self) -> Path:
        return self.root / EXPLAIN

    @property
    def gallery_index(self) -> Path:
        return self.explain / GALLERY_INDEX

    @property
    def run_model(self) -> Path:
        """``RUN/model.pt``: the model a series run hands to ``breastlab sort --model``."""
        return self.root / MODEL

    @property
    def splits_dir(self) -> Path:
        return self.root / "splits"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def metrics_for(self, rule: str | None = None) -> Path:
        """``metrics.json`` (``rule=None``) or ``metrics_<rule>.json`` for another rule."""
        if rule is None:
            return self.metrics
        slug = re.sub(r"[^A-Za-z0-9.]+", "_", rule).strip("_")
        return self.root / f"metrics_{slug}.json"

    def split(self, repeat: int) -> Path:
        return self.splits_dir / f"repeat{repeat}.json"

    # ------------------------------------------------------------------ one model, one repeat
    def model_dir(self, model: str, repeat: int, level: str = "exam") -> Path:
        if level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
        d = self.models_dir / model / f"repeat{repeat}"
        return d / BREAST_SUBDIR if level == "breast" else d

    def predictions(self, model: str, repeat: int, level: str = "exam") -> Path:
        return self.model_dir(model, repeat, level) / PREDICTIONS

    def threshold(self, model: str, repeat: int, level: str = "exam") -> Path:
        return self.model_dir(model, repeat, level) / THRESHOLD

    def model_file(self, model: str, repeat: int, level: str = "exam") -> Path:
        return self.model_dir(model, repeat, level) / MODEL

    def history(self, model: str, repeat: int, level: str = "exam") -> Path:
        return self.model_dir(model, repeat, level) / HISTORY

    def checkpoint(self, model: str, repeat: int, level: str = "exam") -> Path:
        return self.model_dir(model, repeat, level) / CHECKPOINT

    # ------------------------------------------------------------------ what is there
    def model_names(self) -> list[str]:
        """Model folders under ``models/``, sorted."""
        if not self.models_dir.is_dir():
            return []
        return sorted(p.name for p in self.models_dir.iterdir() if p.is_dir())

    def repeats_of(self, model: str) -> list[int]:
        """Repeat numbers with a folder for ``model``, sorted."""
        d = self.models_dir / model
        if not d.is_dir():
            return []
        return sorted(int(m.group(1)) for p in d.iterdir()
                      if p.is_dir() and (m := _REPEAT.match(p.name)))

    def discover(self, level: str = "exam") -> dict[str, dict[int, Path]]:
        """``{model: {repeat: predictions.csv}}`` for every finished model and repeat."""
        out: dict[str, dict[int, Path]] = {}
        for model in self.model_names():
            reps = {r: self.predictions(model, r, level) for r in self.repeats_of(model)}
            reps = {r: p for r, p in reps.items() if p.is_file()}
            if reps:
                out[model] = reps
        return out

    def thresholds(self) -> Iterator[Path]:
        """Every exam-level ``threshold.json``, in model and repeat order."""
        for model in self.model_names():
            for r in self.repeats_of(model):
                if self.threshold(model, r).is_file():
                    yield self.threshold(model, r)

    def histories(self) -> dict[str, list[Path]]:
        """Exam-level ``history.csv`` files per model, in repeat order."""
        out: dict[str, list[Path]] = {}
        for model in self.model_names():
            paths = [self.history(model, r) for r in self.repeats_of(model)]
            paths = [p for p in paths if p.is_file()]
            if paths:
                out[model] = paths
        return out

    def slice_prediction_files(self) -> Iterator[tuple[str, int, Path]]:
        """``(model, repeat, slice_predictions.csv)`` of a series run."""
        for model in self.model_names():
            for r in self.repeats_of(model):
                p = self.model_dir(model, r) / SLICE_PREDICTIONS
                if p.is_file():
                    yield model, r, p

    # ------------------------------------------------------------------ provenance
    def read_provenance(self) -> dict[str, Any]:
        """``provenance.json`` as written (``{}`` when absent or unreadable)."""
        from .artefacts import read_provenance

        return read_provenance(self.provenance)

    def raw_config(self) -> dict[str, Any]:
        cfg = self.read_provenance().get("config")
        return dict(cfg) if isinstance(cfg, Mapping) else {}

    def config(self) -> RunConfig:
        """The typed run configuration; ``ValueError`` when it does not name its classes."""
        return RunConfig.from_dict(self.raw_config(), source=str(self.provenance))


def model_folder(predictions: str | os.PathLike) -> Path:
    """The model folder a ``predictions.csv`` sits in (its ``threshold.json``, ``model.pt``)."""
    return Path(predictions).parent


def breast_predictions(exam_predictions: str | os.PathLike) -> Path:
    """``.../repeat{r}/predictions.csv`` → ``.../repeat{r}/breast/predictions.csv``."""
    return Path(exam_predictions).parent / BREAST_SUBDIR / PREDICTIONS
