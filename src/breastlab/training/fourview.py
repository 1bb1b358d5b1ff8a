"""Four-view experiment: models × repeats → a run directory (see docs/architecture.md).

``run_fourview(cases, run_dir, ...)``:

1. reads the case table (``multiview.cases``) and decodes every case once into
   memory (``CaseDataset``); unreadable cases are left out with a warning;
2. writes ``RUN_DIR/cases.csv`` (the cases used) and ``RUN_DIR/provenance.json``
   (configuration, seeds, data fingerprint over the image files, library versions);
3. for each repeat r and each model: makes (or reloads) ``splits/repeat{r}.json``
   (patient-level, stratified; the same split for every model of a repeat), trains
   with ``loop.train_classifier`` (training seed = ``seed + r``) into
   ``models/{model}/repeat{r}/`` and writes ``predictions.csv`` for the val and test
   cases (``case_id, split, label, prob_0..prob_{K-1}, prob``);
4. calls ``breastlab.evaluation.run.evaluate_run(run_dir)`` when that module exists.

Resume: a repeat whose ``predictions.csv`` exists is skipped; an unfinished one
continues from its ``checkpoint.pt``. Re-running with a different configuration
(other than more repeats or more models) is refused unless ``force=True``, which
discards ``models/``, ``splits/`` and the evaluation outputs of the old run.
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from breastlab.core.atomic import write_csv, write_json
from breastlab.core.provenance import fingerprint_files, run_manifest, seed_everything
from breastlab.models.registry import MODEL_NAMES, PRETRAINABLE, build_model
from breastlab.multiview.dataset import CaseDataset
from breastlab.multiview.preprocess import Augment

from .loop import TrainConfig, predict_proba, train_classifier
from .splits import check_split, load_split, repeat_split, save_split

log = logging.getLogger(__name__)

# Config keys that may grow between invocations on the same RUN_DIR.
_EXTENDABLE = ("models", "repeats", "training_seeds")
_IGNORED = ("num_threads", "eval_batch_size", "progress")


class RunConfigError(ValueError):
    """RUN_DIR holds a run with a different configuration."""


@dataclass
class FourViewResult:
    run_dir: Path
    trained: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[tuple[str, int]] = field(default_factory=list)
    bad_cases: list[tuple[str, str]] = field(default_factory=list)
    evaluated: bool = False


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in config.items() if k not in _EXTENDABLE and k not in _IGNORED}
    if isinstance(out.get("train"), dict):
        out["train"] = {k: v for k, v in out["train"].items() if k not in _IGNORED}
    return out


def _diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = sorted(set(old) | set(new))
    out = []
    for k in keys:
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} → {b!r}")
    return out


def _prediction_rows(case_ids, split_name, labels, probs) -> list[dict[str, Any]]:
    rows = []
    k = probs.shape[1] if probs.ndim == 2 else 0
    for cid, y, p in zip(case_ids, labels, probs):
        row = {"case_id": cid, "split": split_name, "label": int(y)}
        row.update({f"prob_{j}": float(p[j]) for j in range(k)})
        if k == 2:
            row["prob"] = float(p[1])
        rows.append(row)
    return rows


def run_fourview(
    cases: Any,
    run_dir: str | os.PathLike,
    *,
    models: tuple[str, ...] | list[str] = MODEL_NAMES,
    views: tuple[str, ...] | list[str] | None = None,
    repeats: int = 5,
    split: str = "holdout",
    folds: int = 5,
    resplit: bool = False,
    val_fraction: float = 0.2,
    seed: int = 0,
    image_size: int = 256,
    train_config: TrainConfig | None = None,
    pretrained: bool | str | os.PathLike = False,
    flip_right: bool = True,
    normalization: str = "zscore",
    augment: bool = True,
    autoencoder_pretrain_epochs: int = 10,
    model_kwargs: dict[str, dict[str, Any]] | None = None,
    force: bool = False,
    progress: bool = True,
    evaluate: bool = True,
    extra_config: dict[str, Any] | None = None,
) -> FourViewResult:
    """Train and predict every model for every repeat into ``run_dir`` (module docstring).

    Args:
        cases: case table (``cases.csv`` path, ``CaseTable`` or rows).
        models: names from ``models.registry.MODEL_NAMES``.
        views: view columns in channel order (default: the table's views).
        repeats: number of repeats (seed: 5). ``split="kfold"``: repeat r = fold r % folds.
        split: ``"holdout"`` (8:2, seed) or ``"kfold"``; ``resplit`` draws a new hold-out
            split per repeat instead of the seed's single split.
        train_config: ``TrainConfig`` (seed defaults); its ``seed`` is replaced by
            ``seed + r`` per repeat, and ``pretrain_epochs`` by
            ``autoencoder_pretrain_epochs`` for the autoencoder (0 for the others).
        pretrained: ImageNet weights for resnet18/viewwise: False, True (hub cache or
            download) or a file path.
        model_kwargs: per-model extra build arguments, e.g. ``{"viewwise": {"fusion": "attention"}}``.
        force: discard a previous run with a different configuration.
        extra_config: more JSON-able entries for ``provenance.json`` (e.g. CLI options).
    """
    run = Path(run_dir)
    train_config = train_config or TrainConfig()
    models = [m.lower() for m in models]
    unknown = [m for m in models if m not in MODEL_NAMES]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {', '.join(MODEL_NAMES)}")
    model_kwargs = {k.lower(): dict(v) for k, v in (model_kwargs or {}).items()}
    wants_weights = bool(pretrained) and any(m in PRETRAINABLE for m in models)
    if wants_weights:  # fail fast, before decoding any image
        from breastlab.models.weights import load_imagenet_state_dict

        load_imagenet_state_dict(None if pretrained is True else pretrained)
    if train_config.num_threads:
        torch.set_num_threads(int(train_config.num_threads))

    dataset = CaseDataset(
        cases, views, image_size=image_size, train=False, cache=True,
        flip_right=flip_right, normalization=normalization, progress=progress,
    )
    bad = list(dataset.skipped)
    labelled = [i for i, y in enumerate(dataset.labels.tolist()) if y >= 0]
    if len(labelled) < len(dataset):
        log.warning("%d case(s) without a label are left out", len(dataset) - len(labelled))
        dataset = dataset.subset(labelled)
    if len(dataset) == 0:
        raise ValueError("no usable labelled cases")
    k = dataset.num_classes
    class_names = ["benign", "malignant"] if k == 2 else [f"class_{i}" for i in range(k)]
    view_paths = [r[v] for r in dataset.rows for v in dataset.views if r.get(v)]
    fingerprint = fingerprint_files(view_paths, content=True)

    config: dict[str, Any] = {
        "task": "fourview",
        "models": models,
        "views": list(dataset.views),
        "repeats": int(repeats),
        "split": split,
        "folds": int(folds),
        "resplit": bool(resplit),
        "val_fraction": val_fraction,
        "seed": int(seed),
        "training_seeds": [int(seed) + r for r in range(repeats)],
        "image_size": int(image_size),
        "pretrained": pretrained if isinstance(pretrained, bool) else str(pretrained),
        "preprocessing": dataset.preprocessing() | {
            "augment": Augment().to_dict() if augment else None},
        "autoencoder_pretrain_epochs": int(autoencoder_pretrain_epochs),
        "model_kwargs": model_kwargs,
        "train": train_config.to_dict(),
        "num_classes": k,
        "class_names": class_names,
        "n_cases": len(dataset),
        "data_fingerprint": fingerprint,
        **(extra_config or {}),
    }

    prov_path = run / "provenance.json"
    if prov_path.is_file():
        import json

        old = json.loads(prov_path.read_text(encoding="utf-8")).get("config", {})
        diff = _diff(_comparable(old), _comparable(config))
        if diff and not force:
            raise RunConfigError(
                f"{run} holds a run with a different configuration:\n  "
                + "\n  ".join(diff[:20])
                + "\nUse another --out folder, or --force to discard the old results."
            )
        if diff and force:
            log.warning("--force: discarding previous results in %s", run)
            for sub in ("models", "splits", "explain"):
                shutil.rmtree(run / sub, ignore_errors=True)
            for f in ("metrics.json", "report.html"):
                (run / f).unlink(missing_ok=True)
        # a resumed run keeps the union of models and the larger repeat count
        old_models = [m for m in old.get("models", []) if m not in models]
        if not diff:
            config["models"] = old_models + models if old_models else models
            config["repeats"] = max(int(old.get("repeats", 0)), int(repeats))
            config["training_seeds"] = [int(seed) + r for r in range(config["repeats"])]
    run.mkdir(parents=True, exist_ok=True)
    write_json(prov_path, run_manifest(config, data_fingerprint=fingerprint))
    cols = ["case_id", "patient_id", "label", *dataset.views]
    write_csv(run / "cases.csv",
              ({c: r.get(c, "") for c in cols} for r in dataset.rows), cols)

    result = FourViewResult(run_dir=run, bad_cases=bad)
    groups = dict(zip(dataset.case_ids, dataset.patient_ids))
    labels = dataset.labels.numpy()
    preprocessing = config["preprocessing"]

    bars = None
    if progress:
        from breastlab.core.progress import make_progress

        bars = make_progress()
        bars.start()
        overall = bars.add_task("Four-view run", total=repeats * len(models))
    try:
        for r in range(repeats):
            split_path = run / "splits" / f"repeat{r}.json"
            if split_path.is_file():
                sp = load_split(split_path)
            else:
                sp = repeat_split(dataset.case_ids, labels, dataset.patient_ids, repeat=r,
                                  method=split, folds=folds, seed=seed, resplit=resplit,
                                  val_fraction=val_fraction)
                save_split(split_path, sp)
            check_split(sp, groups)
            train_ds = dataset.select(sp["train"], train=augment)
            val_ds = dataset.select(sp["val"], train=False)
            test_ds = dataset.select(sp["test"], train=False)
            for name in models:
                out = run / "models" / name / f"repeat{r}"
                if (out / "predictions.csv").is_file():
                    result.skipped.append((name, r))
                    if bars is not None:
                        bars.advance(overall)
                    continue
                cfg = TrainConfig(**{
                    **train_config.to_dict(),
                    "seed": int(seed) + r,
                    "pretrain_epochs": autoencoder_pretrain_epochs if name == "autoencoder" else 0,
                })
                seed_everything(cfg.seed)
                torch.manual_seed(cfg.seed)
                kwargs = model_kwargs.get(name, {})
                if name in ("resnet18", "viewwise") and image_size < 64:
                    kwargs = {"small_input": True, **kwargs}
                model = build_model(
                    name, in_channels=len(dataset.views), num_classes=k, image_size=image_size,
                    pretrained=pretrained if name in PRETRAINABLE else False, **kwargs,
                )
                meta = {
                    "views": list(dataset.views),
                    "class_names": class_names,
                    "preprocessing": preprocessing,
                    "threshold": 0.5,
                    "repeat": r,
                    "split": {k_: sp.get(k_) for k_ in ("method", "seed", "fold", "k")},
                    "demo": bool((extra_config or {}).get("demo", False)),
                }
                if bars is not None:
                    bars.update(overall, description=f"{name} repeat {r + 1}/{repeats}")
                train_classifier(model, train_ds, val_ds, cfg, out, progress=bars or False,
                                 resume=True, meta=meta, label=f"{name} r{r} ")
                rows = []
                for part, ds in (("val", val_ds), ("test", test_ds)):
                    if len(ds):
                        probs = predict_proba(model, ds, cfg.eval_batch_size,
                                              channels_last=cfg.channels_last)
                        rows += _prediction_rows(ds.case_ids, part, ds.labels.numpy(), probs)
                pcols = ["case_id", "split", "label", *[f"prob_{j}" for j in range(k)]]
                if k == 2:
                    pcols.append("prob")
                write_csv(out / "predictions.csv", rows, pcols)
                result.trained.append((name, r))
                if bars is not None:
                    bars.advance(overall)
                del model
    finally:
        if bars is not None:
            bars.stop()

    if evaluate:
        try:
            from breastlab.evaluation.run import evaluate_run
        except ImportError:
            log.info("breastlab.evaluation.run not available: evaluation skipped")
        else:
            evaluate_run(run)
            result.evaluated = True
    return result
