"""Four-view experiment: models × repeats → a run directory (see docs/architecture.md).

``run_fourview(cases, run_dir, config)`` (``config``: ``training.config.FourViewConfig``):

1. reads the case table (``multiview.cases``) and decodes every case once into
   memory (``CaseDataset``); unreadable cases are left out with a warning;
2. writes ``RUN_DIR/cases.csv`` (the cases used) and ``RUN_DIR/provenance.json``
   (configuration, seeds, data fingerprint over the image files, library versions);
3. runs the experiment loop (``training.experiment.run_experiment``) on a
   ``FourViewTask``: for each repeat r and each model it makes (or reloads)
   ``splits/repeat{r}.json`` (patient-level, stratified; the same split for every model of
   a repeat), trains with ``loop.train_classifier`` (training seed = ``seed + r``) into
   ``models/{model}/repeat{r}/`` and writes ``predictions.csv`` for the val and test
   cases (``case_id, split, label, prob_0..prob_{K-1}, prob``);
4. after training (``evaluate=True``), ``breastlab.evaluation.run.evaluate_run(run_dir)``.

Resume: a repeat whose ``predictions.csv`` exists is skipped; an unfinished one
continues from its ``checkpoint.pt``. Re-running with a different configuration
(other than more repeats or more models) is refused unless ``config.run.force``, which
discards ``models/``, ``splits/`` and the evaluation outputs of the old run.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from breastlab.core.artefacts import prediction_columns, prediction_rows, write_cases
from breastlab.core.device import device_info, resolve_device
from breastlab.core.errors import UsageError
from breastlab.core.provenance import fingerprint_files
from breastlab.core.rundir import PREDICTIONS, RunDir
from breastlab.models.registry import PRETRAINABLE, build_model
from breastlab.multiview.dataset import CaseDataset, breast_dataset
from breastlab.multiview.preprocess import Augment

from . import distributed as ddp

from .config import FourViewConfig, TrainConfig
from .defaults import DEFAULTS
from .experiment import Job, RunConfigError, run_experiment
from .predict import predict_items, softmax
from .splits import load_split, repeat_split



def split_unit(patient_ids: list[str], case_ids: list[str], n_views: int,
               missing_patient: int) -> tuple[str, list[str]]:
    """What a split by ``patient_id`` actually separates, and the warnings to show.

    ``"patient"`` when every case has a patient id that can group several images;
    ``"image"`` when ids are missing (the case id stands in) or, for one-image cases,
    when every patient has exactly one image, so one patient's images can land in
    training and test.
    """
    warnings: list[str] = []
    n = len(case_ids)
    if missing_patient:
        warnings.append(f"{missing_patient} of {n} cases have no patient id; each is its own "
                        "'patient', so the split is by image for those cases and one "
                        "patient's images may sit in training and test")
        return "image", warnings
    if n_views == 1 and n and len(set(patient_ids)) == n:
        warnings.append(f"image-level split: all {n} cases (one image each) have their own "
                        "patient id, which usually means patient ids are missing (class "
                        "folders); images of one patient may sit in training and test, so "
                        "test figures can be optimistic")
        return "image", warnings
    return "patient", warnings


log = logging.getLogger(__name__)

__all__ = ["DEFAULTS", "FourViewConfig", "FourViewResult", "FourViewTask", "RunConfigError",
           "run_fourview", "split_unit"]


@dataclass
class FourViewResult:
    run_dir: Path
    trained: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[tuple[str, int]] = field(default_factory=list)
    bad_cases: list[tuple[str, str]] = field(default_factory=list)
    evaluated: bool = False
    warnings: list[str] = field(default_factory=list)
    plan: dict[str, Any] = field(default_factory=dict)  # what was (or, dry run, would be) done


def run_fourview(cases: Any, run_dir: str | os.PathLike,
                 config: FourViewConfig | None = None) -> FourViewResult:
    """Train and predict every model for every repeat into ``run_dir`` (module docstring).

    Args:
        cases: case table (``cases.csv`` path, ``CaseTable`` or rows).
        run_dir: the run folder (created; resumed when it holds this configuration).
        config: the whole run (``training.config.FourViewConfig``; default: its defaults,
            the CLI's: ImageNet initialisation, seed hyperparameters, 5 repeats).
            ``config.run.dry_run`` reads the cases and makes the splits, writes nothing,
            trains nothing; ``result.plan`` says what would be trained.

    Where the case table has per-breast labels (``label_L``/``label_R``), every model is
    also trained per breast (its CC and MLO as channels) into
    ``models/{model}/repeat{r}/breast/``, with the same patient-level split.
    """
    from breastlab.core.progress import reporting

    cfg = config or FourViewConfig()
    with reporting(cfg.run.progress and ddp.is_main()):  # one process shows bars and lines
        return _run_fourview(cases, Path(run_dir), cfg)


def _run_fourview(cases: Any, run: Path, cfg: FourViewConfig) -> FourViewResult:
    pre, settings = cfg.preprocessing, cfg.run
    pretrained: bool | str = False
    if cfg.wants_imagenet:  # fail fast (dry run too), before decoding any image
        from breastlab.models.weights import resolve_pretrained

        pretrained = resolve_pretrained(cfg.pretrained)
    if cfg.train.num_threads:
        torch.set_num_threads(int(cfg.train.num_threads))

    if pre.views:
        from breastlab.multiview.dataset import case_views

        have = case_views(cases)
        unknown = [v for v in pre.views if have and v not in have]
        if unknown:  # else those channels would silently be blank
            raise UsageError(f"view(s) {', '.join(unknown)} not in the case table "
                             f"(its views: {', '.join(have)})")
    dataset = CaseDataset(
        cases, list(pre.views) if pre.views else None, image_size=pre.image_size, train=False,
        cache=True, flip_right=pre.flip_right, normalization=str(pre.normalization),
        disk_cache=(settings.cache_dir or True) if settings.cache else None,
        crop_breast=pre.crop_breast,
    )
    bad = list(dataset.skipped)
    labelled = [i for i, y in enumerate(dataset.labels.tolist()) if y >= 0]
    if len(labelled) < len(dataset):
        log.warning("%d case(s) without a label are left out", len(dataset) - len(labelled))
        dataset = dataset.subset(labelled)
    if len(dataset) == 0:
        raise UsageError("no usable labelled cases")
    k = dataset.num_classes
    class_names = ["benign", "malignant"] if k == 2 else [f"class_{i}" for i in range(k)]
    missing_patient = sum(1 for r in dataset.rows if not str(r.get("patient_id") or "").strip())
    unit, warnings = split_unit(dataset.patient_ids, dataset.case_ids, len(dataset.views),
                                missing_patient)
    breasts = breast_dataset(dataset) if k == 2 else None
    view_paths = [r[v] for r in dataset.rows for v in dataset.views if r.get(v)]
    fingerprint = fingerprint_files(view_paths, content=not settings.dry_run)

    # provenance ``config``: the settings (read back by FourViewConfig.from_dict) and what
    # the run found in the data; models/repeats at the top grow when a run is extended
    record: dict[str, Any] = {
        "task": "fourview",
        "settings": cfg.to_dict(),
        "models": list(cfg.models),
        "repeats": int(cfg.repeats),
        "training_seeds": [int(cfg.seed) + r for r in range(cfg.repeats)],
        "threshold_rule": cfg.threshold_rule,
        "views": list(dataset.views),
        "split_unit": unit,
        "preprocessing": dataset.preprocessing() | {
            "augment": Augment().to_dict() if pre.augment else None},
        "num_classes": k,
        "class_names": class_names,
        "n_cases": len(dataset),
        "levels": ["exam", "breast"] if breasts is not None else ["exam"],
        "n_breasts": len(breasts) if breasts is not None else 0,
        "data_fingerprint": fingerprint,
        "split_warnings": warnings,
        # where it ran: device name, CUDA and cuDNN versions, precision (not compared on resume)
        "device_info": device_info(resolve_device(cfg.train.device), cfg.train.precision),
    }
    if phantom_data(view_paths):  # recorded now, so the report never guesses
        record["phantom"] = True
    if cfg.demo:
        record["demo"] = True
    if settings.dry_run:
        return _dry_run(run, dataset, cfg, record, bad, warnings, pretrained)

    task = FourViewTask(
        dataset=dataset, breasts=breasts, config=record, fingerprint=fingerprint, settings=cfg,
        pretrained=pretrained,
        start_message=(f"training {', '.join(cfg.models)} × {cfg.repeats} repeat(s) on "
                       f"{len(dataset)} cases ({unit}-level split)"
                       + (f" and {len(breasts)} breasts" if breasts is not None else "")))
    done = run_experiment(task, RunDir(run), models=list(cfg.models), repeats=int(cfg.repeats),
                          seed=int(cfg.seed), force=settings.force)
    result = FourViewResult(run_dir=run, bad_cases=bad, warnings=warnings,
                            trained=done.trained, skipped=done.skipped)
    if settings.evaluate and ddp.is_main():  # after training, never from inside it
        from breastlab.evaluation.run import evaluate_run

        evaluate_run(run)
        result.evaluated = True
    result.plan = {"models": list(cfg.models), "repeats": cfg.repeats, "levels": record["levels"]}
    return result


def phantom_data(paths: list[str]) -> bool:
    """True when the first view file sits under a folder with ``phantom.json`` (written by
    ``breastlab phantom``): synthetic data, recorded in the run configuration."""
    for value in paths[:1]:
        for parent in list(Path(value).resolve().parents)[:4]:
            if (parent / "phantom.json").is_file():
                return True
    return False


@dataclass
class FourViewTask:
    """Four-view (or one-view) diagnosis as a task of the experiment loop."""

    dataset: CaseDataset
    breasts: CaseDataset | None
    config: dict[str, Any]          # the provenance record
    fingerprint: str | None
    settings: FourViewConfig
    pretrained: bool | str = False  # resolved (models.weights.resolve_pretrained)
    start_message: str = ""
    title: str = "Four-view run"

    @property
    def case_ids(self) -> list[str]:
        return self.dataset.case_ids

    @property
    def labels(self) -> Any:
        return self.dataset.labels.numpy()

    @property
    def patient_ids(self) -> list[str]:
        return self.dataset.patient_ids

    def write_cases(self, run: RunDir) -> None:
        """The cases used, with the table's breast labels, convention and manufacturer
        (written at case assembly; never re-read from the images here)."""
        dataset = self.dataset
        extra_cols = [c for c in ("label_L", "label_R", "convention", "manufacturer")
                      if any(r.get(c) not in (None, "") for r in dataset.rows)]
        write_cases(run.cases, dataset.rows,
                    ["case_id", "patient_id", "label", *extra_cols, *dataset.views])

    def make_split(self, repeat: int) -> dict[str, Any]:
        return _split(self.settings, self.case_ids, self.labels, self.patient_ids, repeat)

    def jobs(self, repeat: int, split: dict[str, Any]) -> list[Job]:
        ds = self.dataset
        augment = self.settings.preprocessing.augment
        parts = {"train": ds.select(split["train"], train=augment),
                 "val": ds.select(split["val"], train=False),
                 "test": ds.select(split["test"], train=False)}
        out = [Job("exam", parts["train"], parts["val"],
                   {"val": parts["val"], "test": parts["test"]}, len(ds.views))]
        bp = _breast_parts(self.breasts, split, augment) if self.breasts is not None else None
        if bp is not None:
            out.append(Job("breast", bp["train"], bp["val"], {"val": bp["val"], "test": bp["test"]},
                           self.breasts.in_channels, unit="breasts"))
        return out

    def train_config(self, name: str, repeat: int) -> TrainConfig:
        return self.settings.train_config(name, repeat)

    def build_model(self, name: str, job: Job, repeat: int) -> Any:
        cfg = self.settings
        size = cfg.preprocessing.image_size
        kwargs = cfg.model_kwargs.get(name, {})
        if name in ("resnet18", "viewwise") and size < 64:
            kwargs = {"small_input": True, **kwargs}
        return build_model(name, in_channels=job.in_channels,
                           num_classes=int(self.config["num_classes"]), image_size=size,
                           pretrained=self.pretrained if name in PRETRAINABLE else False,
                           **kwargs)

    def model_meta(self, name: str, job: Job, repeat: int, split: dict[str, Any]
                   ) -> dict[str, Any]:
        views = list(job.train.views)
        return {
            "views": views,
            "level": job.level,
            "class_names": self.config["class_names"],
            "preprocessing": self.config["preprocessing"]
            | ({"views": views} if job.level == "breast" else {}),
            "threshold": 0.5,
            "repeat": repeat,
            "split": {k_: split.get(k_) for k_ in ("method", "seed", "fold", "k")},
            "demo": bool(self.config.get("demo", False)),
        }

    def predict(self, net: Any, job: Job) -> dict[str, tuple[list[dict[str, Any]], list[str]]]:
        cfg = self.settings.train
        rows: list[dict[str, Any]] = []
        for part, ds in job.predict.items():
            if len(ds):  # the data items carry their ids: no re-joining by position
                logits, labels, ids = predict_items(net, ds, cfg.eval_batch_size,
                                                    channels_last=cfg.channels_last,
                                                    precision=cfg.precision)
                extra = None
                if job.level == "breast":
                    src = {r["case_id"]: r for r in ds.rows}
                    extra = [{"exam_id": src[i]["exam_id"], "breast": src[i]["breast"]}
                             for i in ids]
                rows += prediction_rows(ids, part, labels, softmax(logits), extra)
        return {PREDICTIONS: (rows, prediction_columns(int(self.config["num_classes"]),
                                                      level=job.level))}


def _breast_parts(breasts: CaseDataset, sp: dict[str, Any], augment: bool
                  ) -> dict[str, CaseDataset] | None:
    """The breast rows of each part of an exam split (a woman's breasts stay together)."""
    where = {cid: part for part in ("train", "val", "test") for cid in sp[part]}
    idx: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for i, row in enumerate(breasts.rows):
        part = where.get(row["exam_id"])
        if part is not None:
            idx[part].append(i)
    if not idx["train"] or len(set(breasts.labels[idx["train"]].tolist())) < 2:
        return None
    return {p: breasts.subset(ix, train=(augment if p == "train" else False))
            for p, ix in idx.items()}


def _split(cfg: FourViewConfig, case_ids: list[str], labels: Any, patient_ids: list[str],
           repeat: int) -> dict[str, Any]:
    sp = cfg.split
    return repeat_split(case_ids, labels, patient_ids, repeat=repeat, method=str(sp.method),
                        folds=sp.folds, seed=cfg.seed, resplit=sp.resplit,
                        val_fraction=sp.val_fraction)


def _dry_run(run: Path, dataset: CaseDataset, cfg: FourViewConfig, record: dict[str, Any],
             bad: list[tuple[str, str]], warnings: list[str],
             pretrained: bool | str) -> FourViewResult:
    """What a run would do: cases, split sizes and class balance per repeat; no file written."""
    from collections import Counter

    labels = dataset.labels.numpy()
    names = record["class_names"]
    splits = []
    for r in range(cfg.repeats):
        path = RunDir(run).split(r)
        sp = load_split(path) if path.is_file() else _split(
            cfg, dataset.case_ids, labels, dataset.patient_ids, r)
        lab = dict(zip(dataset.case_ids, labels.tolist()))
        splits.append({part: dict(Counter(names[lab[c]] for c in sp[part]))
                       for part in ("train", "val", "test")})
    plan = {
        "run_dir": str(run),
        "n_cases": len(dataset),
        "n_patients": len(set(dataset.patient_ids)),
        "class_balance": dict(Counter(names[y] for y in labels.tolist())),
        "views": record["views"],
        "split": str(cfg.split.method), "split_unit": record["split_unit"],
        "splits": splits,
        "models": list(cfg.models),
        "repeats": cfg.repeats,
        "levels": record["levels"],
        "n_breasts": record["n_breasts"],
        "train": cfg.train.to_dict(),
        "pretrained": ("no pretrainable model" if not cfg.wants_imagenet else
                       f"yes ({pretrained})" if isinstance(pretrained, str) else
                       "yes (found)" if pretrained else "no (random initialisation)"),
        "image_size": cfg.preprocessing.image_size,
    }
    return FourViewResult(run_dir=run, bad_cases=bad, warnings=warnings, plan=plan)
