"""Train, save, apply and evaluate the MRI series classifiers (sequence or DCE phase).

Slices are sampled per series (``data.sample_slices``), scored one by one by a 2D CNN
(ResNet-18 by default; ImageNet weights when they are present in the torch hub cache)
and aggregated to one label per series (``aggregate``). Training and evaluation reuse
the project machinery unchanged:

* the experiment loop: ``training.experiment.run_experiment`` on a ``SeriesTask``
  (splits: ``training.splits``, patient-level, stratified; training:
  ``training.loop.train_classifier`` on slices; ``--devices`` as for four-view);
* evaluation: ``evaluation.run.evaluate_run`` on **series-level** predictions written in
  the four-view run layout (``case_id`` = series id), so ``metrics.json`` holds the
  seed's format: confusion matrix, overall and per-class accuracy, each with a 95% CI;
* report: ``reporting.html.write_report``.

Run directory (``core.rundir.RunDir``; ``slice_predictions.csv`` and ``RUN_DIR/model.pt``
are this task's)::

    RUN_DIR/provenance.json          config (task, class_names, sampling, aggregation, ...)
    RUN_DIR/cases.csv                one row per series: case_id, patient_id (pseudonym), label, ...
    RUN_DIR/splits/repeat{r}.json
    RUN_DIR/models/{model}/repeat{r}/{checkpoint.pt, model.pt, history.csv,
                                      predictions.csv, slice_predictions.csv}
    RUN_DIR/model.pt                 repeat 0's model, for ``breastlab sort --model``
    RUN_DIR/metrics.json, report.html
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from breastlab.core import atomic
from breastlab.core.artefacts import write_cases, write_predictions, write_provenance
from breastlab.core.rundir import PREDICTIONS, SLICE_PREDICTIONS, RunDir
from breastlab.training.experiment import Job

from .aggregate import aggregate_by_series
from .train_config import MRITrainConfig
from .data import Dataset, SeriesItem, SliceDataset, SliceTable, slice_table

DEMO_NOTICE = "DEMO MODEL — trained on synthetic phantom data, no clinical validity"
MODEL_KIND = "breastlab-mri-series"


def _pretrained_arg(value: str) -> bool | str:
    """``auto``, ``yes``, ``no`` or a file: ``models.weights.resolve_pretrained``."""
    from breastlab.models.weights import resolve_pretrained

    return resolve_pretrained(value)


def _preprocessing(cfg: MRITrainConfig) -> dict[str, Any]:
    return {"image_size": cfg.image_size, "normalization": str(cfg.normalization),
            "slices_per_series": cfg.slices_per_series, "central_fraction": cfg.central_fraction,
            "aggregation": str(cfg.aggregation)}


#: a series run's cases.csv: one row per series (case_id = series id)
SERIES_CASE_COLUMNS = ["case_id", "patient_id", "label", "kind", "n_files", "first_file",
                       "external_test"]


def _series_rows(items: Sequence[SeriesItem]) -> list[dict[str, Any]]:
    return [{"case_id": i.series_id, "patient_id": i.patient_id, "label": i.label, "kind": i.kind,
             "n_files": len(i.files), "first_file": i.files[0] if i.files else ""} for i in items]


def series_prediction_table(series_ids: Sequence[str], splits: dict[str, str],
                            labels: dict[str, int], probs: np.ndarray
                            ) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows and columns of a series-level ``predictions.csv``."""
    k = probs.shape[1] if len(probs) else 0
    cols = ["case_id", "split", "label"] + [f"prob_{j}" for j in range(k)]
    rows = [{"case_id": s, "split": splits[s], "label": labels[s],
             **{f"prob_{j}": round(float(p[j]), 6) for j in range(k)}} for s, p in zip(series_ids, probs)]
    return rows, cols


def write_series_predictions(path: Path, series_ids: Sequence[str], splits: dict[str, str],
                             labels: dict[str, int], probs: np.ndarray) -> None:
    write_predictions(path, *series_prediction_table(series_ids, splits, labels, probs))


def _slice_rows(ds: SliceDataset, probs: np.ndarray, split: str) -> list[dict[str, Any]]:
    return [{"series_id": ds.series_ids[i], "split": split, "path": ds.table.refs[i].path,
             "slice_index": "" if ds.table.refs[i].index is None else ds.table.refs[i].index,
             "label": ds.labels[i], "pred": int(probs[i].argmax()),
             **{f"prob_{j}": round(float(probs[i, j]), 6) for j in range(probs.shape[1])}}
            for i in range(len(ds))]


def train_run(
    data: Dataset,
    out_dir: str | os.PathLike,
    cfg: MRITrainConfig,
    *,
    test_data: Dataset | None = None,
    progress: bool = True,
    resume: bool = True,
    evaluate: bool = True,
    report: bool = True,
) -> Path:
    """Train ``cfg.repeats`` models on ``data`` and write a run directory.

    The experiment loop (``training.experiment.run_experiment``) runs a ``SeriesTask``;
    evaluation and the report follow it (``finish_run``). Splits are patient-level and
    stratified on series labels. With ``test_data`` (e.g. a held-out site or vendor) every
    series of ``data`` goes to train/val and ``test_data`` is the test part.
    ``resume=False`` starts every model over.
    """
    import torch

    from breastlab.core.provenance import fingerprint_files
    from breastlab.training import distributed as ddp
    from breastlab.training.experiment import run_experiment

    run = RunDir(out_dir)
    progress = progress and ddp.is_main()  # one process shows bars and log lines
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    task = SeriesTask.from_data(data, cfg, test_data=test_data)
    task.fingerprint = fingerprint_files([f for i in task.all_items for f in i.files],
                                         content=False)
    if not resume and ddp.is_main():
        shutil.rmtree(run.models_dir, ignore_errors=True)
    run_experiment(task, run, models=[cfg.model], repeats=cfg.repeats, seed=cfg.seed,
                   guard=False, progress=progress)
    if evaluate and ddp.is_main():  # after training, never from inside it
        finish_run(run.root, report=report)
    return run.root


@dataclass
class SeriesTask:
    """MRI series classification (sequence or DCE phase) as a task of the experiment loop:
    slices are the training samples, series the predicted cases."""

    cfg: MRITrainConfig
    items: list[SeriesItem]
    test_items: list[SeriesItem]
    config: dict[str, Any]
    full: SliceDataset
    fingerprint: str | None = None
    title: str = "MRI series run"

    @classmethod
    def from_data(cls, data: Dataset, cfg: MRITrainConfig, *,
                  test_data: Dataset | None = None) -> SeriesTask:
        classes = list(cfg.classes)
        items = [i for i in data.items if i.label in classes]
        test_items = [i for i in (test_data.items if test_data else []) if i.label in classes]
        if len(items) < 2:
            raise ValueError(f"need at least 2 labelled series, found {len(items)}")
        ids = [i.series_id for i in items + test_items]
        if len(set(ids)) != len(ids):
            raise ValueError("series ids must be unique across DATA and the test data")
        config = cfg.to_dict() | {
            "class_names": classes, "data_source": data.source, "data": data.path,
            "test_data": test_data.path if test_data else None,
            "test_source": test_data.source if test_data else None,
            "dropped": data.dropped, "n_series": len(items), "n_test_series": len(test_items)}
        if cfg.demo:
            config["notice"] = DEMO_NOTICE
        # slices (read once, cached in memory)
        table = slice_table(items + test_items, classes, slices_per_series=cfg.slices_per_series,
                            central_fraction=cfg.central_fraction)
        full = SliceDataset(table, image_size=cfg.image_size, normalization=str(cfg.normalization),
                            seed=cfg.seed)
        return cls(cfg=cfg, items=items, test_items=test_items, config=config, full=full)

    @property
    def all_items(self) -> list[SeriesItem]:
        return self.items + self.test_items

    @property
    def case_ids(self) -> list[str]:
        return [i.series_id for i in self.all_items]

    @property
    def labels(self) -> list[int]:
        return [self.cfg.classes.index(i.label) for i in self.all_items]

    @property
    def patient_ids(self) -> list[str]:
        return [i.patient_id for i in self.all_items]

    def write_cases(self, run: RunDir) -> None:
        rows = _series_rows(self.items) + [r | {"external_test": 1}
                                           for r in _series_rows(self.test_items)]
        write_cases(run.cases, rows, SERIES_CASE_COLUMNS)

    def make_split(self, repeat: int) -> dict[str, Any]:
        from breastlab.training.splits import holdout_split, repeat_split

        ids = [i.series_id for i in self.items]
        label_of = dict(zip(self.case_ids, self.labels))
        patient_of = dict(zip(self.case_ids, self.patient_ids))
        labels, patients = [label_of[s] for s in ids], [patient_of[s] for s in ids]
        if self.test_items:
            split = holdout_split(ids, labels, patients, test_fraction=0.0,
                                  seed=self.cfg.seed + repeat)
            split["test"] = [i.series_id for i in self.test_items]
            split["repeat"], split["external_test"] = repeat, True
            return split
        return repeat_split(ids, labels, patients, repeat=repeat, method=str(self.cfg.split),
                            folds=self.cfg.folds, seed=self.cfg.seed)

    def jobs(self, repeat: int, split: dict[str, Any]) -> list[Job]:
        part_of = {s: part for part in ("train", "val", "test") for s in split[part]}
        idx = {part: [j for j, s in enumerate(self.full.series_ids) if part_of.get(s) == part]
               for part in ("train", "val", "test")}
        return [Job("exam", self.full.subset(idx["train"], augment=True),
                    self.full.subset(idx["val"], augment=False),
                    {p: self.full.subset(idx[p], augment=False) for p in ("train", "val", "test")},
                    1, size=len(idx["train"]), unit="slices")]

    def build_model(self, name: str, job: Job, repeat: int) -> Any:
        from breastlab.models.registry import build_model

        return build_model(name, in_channels=1, num_classes=len(self.cfg.classes),
                           image_size=self.cfg.image_size,
                           pretrained=_pretrained_arg(self.cfg.pretrained))

    def train_config(self, name: str, repeat: int) -> Any:
        from breastlab.training.loop import TrainConfig

        c = self.cfg
        return TrainConfig(epochs=c.epochs, batch_size=c.batch_size, lr=c.lr,
                           optimizer=str(c.optimizer), seed=c.seed + repeat,
                           select_metric="accuracy", num_threads=c.num_threads,
                           device=c.device, precision=c.precision)

    def model_meta(self, name: str, job: Job, repeat: int, split: dict[str, Any]
                   ) -> dict[str, Any]:
        c = self.cfg
        return {"kind": MODEL_KIND, "task": str(c.task), "class_names": list(c.classes),
                "preprocessing": _preprocessing(c), "demo": bool(c.demo),
                "notice": DEMO_NOTICE if c.demo else
                "trained by breastlab mri train; validate on your own site's data before use"}

    def predict(self, net: Any, job: Job) -> dict[str, tuple[list[dict[str, Any]], list[str]]]:
        from breastlab.training.predict import predict_items, softmax

        label_of = dict(zip(self.case_ids, self.labels))
        series_ids, series_probs, slice_rows, part_of = [], [], [], {}
        for part, ds in job.predict.items():
            if not len(ds):
                continue
            logits, _, ids = predict_items(net, ds)  # each slice item carries its series id
            probs = softmax(logits)
            sids, agg = aggregate_by_series(probs, ids, str(self.cfg.aggregation))
            part_of.update((s, part) for s in sids)
            series_ids += sids
            series_probs.append(agg)
            slice_rows += _slice_rows(ds, probs, part)
        return {PREDICTIONS: series_prediction_table(series_ids, part_of, label_of,
                                                     np.concatenate(series_probs)),
                SLICE_PREDICTIONS: (slice_rows, list(slice_rows[0]) if slice_rows else [])}

    def after_model(self, run: RunDir, name: str, repeat: int, job: Job) -> None:
        if repeat == 0:  # repeat 0's model, for ``breastlab sort --model``
            shutil.copyfile(run.model_file(name, 0), run.run_model)


def finish_run(run_dir: str | os.PathLike, *, report: bool = True) -> dict[str, Any]:
    """Evaluate (``evaluate_run``) and, if available, write the HTML report."""
    from breastlab.evaluation.run import evaluate_run

    metrics = evaluate_run(run_dir)
    slice_level = slice_metrics(run_dir)
    if slice_level:
        atomic.write_json(RunDir(run_dir).slice_metrics, slice_level)
    if report:
        from breastlab.reporting.html import write_report

        write_report(run_dir)  # no Grad-CAM gallery: it reads four-view case tables
    return metrics


def slice_metrics(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Single-slice test metrics (before aggregation), for the side-by-side with series level."""
    from breastlab.evaluation.metrics import multiclass_metrics

    from breastlab.core.artefacts import read_predictions

    run = RunDir(run_dir)
    names = run.raw_config().get("class_names")
    out: dict[str, Any] = {}
    for _model, _repeat, path in run.slice_prediction_files():
        rows = [r for r in read_predictions(path).rows if r["split"] == "test"]
        if not rows or not names:
            continue
        k = len(names)
        y = [int(r["label"]) for r in rows]
        prob = np.array([[float(r[f"prob_{j}"]) for j in range(k)] for r in rows])
        out[f"{path.parent.parent.name}/{path.parent.name}"] = multiclass_metrics(y, prob, names)
    return out


# --------------------------------------------------------------------------- applying a model
class SeriesModel:
    """A trained series classifier loaded from a model file (``weights_only`` loading) onto
    ``device`` (``core.device``: ``auto`` takes a GPU when present). The slices of all the
    series given to ``predict_items`` go through the model in batches of ``batch_size``."""

    def __init__(self, path: str | os.PathLike, device: str = "auto", batch_size: int = 128) -> None:
        from breastlab.core.device import resolve_device
        from breastlab.models.files import load_model

        self.path = Path(path)
        self.model, self.meta = load_model(path, map_location=resolve_device(device))
        self.batch_size = int(batch_size)
        if self.meta.get("kind") != MODEL_KIND:
            raise ValueError(f"{path} is not an MRI series model (kind={self.meta.get('kind')!r})")
        self.class_names: list[str] = list(self.meta["class_names"])
        self.task: str = self.meta.get("task", "")
        self.demo: bool = bool(self.meta.get("demo"))
        self.pre: dict[str, Any] = dict(self.meta.get("preprocessing") or {})

    @property
    def description(self) -> str:
        tag = f" [{DEMO_NOTICE}]" if self.demo else ""
        return f"{self.path.name} ({self.task}: {', '.join(self.class_names)}){tag}"

    def _dataset(self, items: Sequence[SeriesItem]) -> SliceDataset:
        table = slice_table(items, self.class_names, slices_per_series=int(self.pre.get("slices_per_series", 8)),
                            central_fraction=float(self.pre.get("central_fraction", 0.6)))
        return SliceDataset(table, image_size=int(self.pre.get("image_size", 128)),
                            normalization=self.pre.get("normalization", "zscore"))

    def predict_items(self, items: Sequence[SeriesItem]) -> dict[str, np.ndarray]:
        """Series id → class probabilities (aggregated over sampled slices).

        A series whose images cannot be read gets no prediction; the reason is kept in
        ``self.errors[series_id]`` and the other series go on.
        """
        from .data import load_slice
        from breastlab.training.predict import predict_proba

        size = int(self.pre.get("image_size", 128))
        norm = self.pre.get("normalization", "zscore")
        arrays, sids = [], []
        self.errors: dict[str, str] = {}
        for item in items:
            try:
                table = slice_table([item], self.class_names,
                                    slices_per_series=int(self.pre.get("slices_per_series", 8)),
                                    central_fraction=float(self.pre.get("central_fraction", 0.6)))
                if not table.refs:
                    raise ValueError("no slices")
                stack = np.stack([load_slice(r, image_size=size, normalization=norm) for r in table.refs])
            except Exception as exc:  # noqa: BLE001 - one unreadable series must not stop the batch
                self.errors[item.series_id] = f"{type(exc).__name__}: {exc}"
                continue
            arrays.append(stack)
            sids += [item.series_id] * len(stack)
        if not arrays:
            return {}
        table = SliceTable([], [0] * len(sids), sids, [""] * len(sids))
        ds = SliceDataset(table, image_size=size, arrays=np.concatenate(arrays))
        probs = predict_proba(self.model, ds, self.batch_size)
        order, agg = aggregate_by_series(probs, sids, self.pre.get("aggregation", "logmean"))
        return dict(zip(order, agg))

    def predict_slices(self, slices: Sequence[np.ndarray]) -> np.ndarray:
        """Aggregated probabilities for raw 2D arrays of one series (preprocessed here)."""
        from breastlab.multiview.preprocess import preprocess_view
        from breastlab.training.predict import predict_proba

        size = int(self.pre.get("image_size", 128))
        arrays = np.stack([preprocess_view(s, image_size=size, normalization=self.pre.get("normalization", "zscore"))
                           for s in slices])
        table = SliceTable([], [0] * len(arrays), ["s"] * len(arrays), [""] * len(arrays))
        ds = SliceDataset(table, image_size=size, arrays=arrays)
        return aggregate_by_series(predict_proba(self.model, ds, self.batch_size), ds.series_ids,
                                   self.pre.get("aggregation", "logmean"))[1][0]


def evaluate_model_on(model_path: str | os.PathLike, data: Dataset, out_dir: str | os.PathLike, *,
                      report: bool = True) -> Path:
    """External validation: apply a saved model to labelled DATA and write an evaluated run dir."""
    from breastlab.core.provenance import fingerprint_files, run_manifest

    sm = SeriesModel(model_path)
    run = RunDir(out_dir)
    run.root.mkdir(parents=True, exist_ok=True)
    items = [i for i in data.items if i.label in sm.class_names]
    if not items:
        raise ValueError("no series with a label among the model's classes")
    files = [f for i in items for f in i.files]
    config = {"task": sm.task, "class_names": sm.class_names, "model_file": str(model_path),
              "external_validation": True, "demo": sm.demo, "data_source": data.source, "data": data.path,
              "dropped": data.dropped}
    if sm.demo:
        config["notice"] = DEMO_NOTICE
    write_provenance(run.provenance, run_manifest(config, data_fingerprint=fingerprint_files(files, content=False)))
    write_cases(run.cases, _series_rows(items), SERIES_CASE_COLUMNS[:-1])
    atomic.write_json(run.split(0), {"train": [], "val": [], "test": [i.series_id for i in items]})
    from breastlab.training.predict import predict_proba

    ds = sm._dataset(items)
    probs = predict_proba(sm.model, ds)
    sids, agg = aggregate_by_series(probs, ds.series_ids, sm.pre.get("aggregation", "logmean"))
    mdir = run.model_dir(str(sm.meta.get("name", "model")), 0)
    label_of = {i.series_id: sm.class_names.index(i.label) for i in items}
    write_series_predictions(mdir / PREDICTIONS, sids, {s: "test" for s in sids}, label_of, agg)
    rows = _slice_rows(ds, probs, "test")
    atomic.write_csv(mdir / SLICE_PREDICTIONS, rows, list(rows[0]))
    finish_run(run.root, report=report)
    return run.root
