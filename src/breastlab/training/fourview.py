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
from breastlab.multiview.dataset import CaseDataset, breast_dataset
from breastlab.multiview.preprocess import Augment

from . import rundir
from .loop import TrainConfig, predict_proba, train_classifier
from .runlog import RunLog
from .splits import check_split, load_split, repeat_split, save_split

#: The one set of defaults shared by ``run_fourview`` and ``breastlab train`` (seed values
#: where the seed gives them; docs/training.md).
DEFAULTS: dict[str, Any] = {
    "models": MODEL_NAMES,
    "repeats": 5,
    "split": "holdout",
    "folds": 5,
    "val_fraction": 0.2,
    "seed": 0,
    "image_size": 256,
    "pretrained": True,
    "normalization": "zscore",
    "autoencoder_pretrain_epochs": 10,
}
SPLITS = ("holdout", "kfold")
NORMALIZATIONS = ("zscore", "minmax")
FUSIONS = ("mean", "attention")


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


def check_options(*, models: list[str], split: str, normalization: str, image_size: int,
                  repeats: int, folds: int, val_fraction: float, train_config: TrainConfig,
                  model_kwargs: dict[str, dict[str, Any]]) -> None:
    """Every option checked before any image is read or folder made (ValueError)."""
    unknown = [m for m in models if m not in MODEL_NAMES]
    if unknown or not models:
        raise ValueError(f"unknown model(s) {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(MODEL_NAMES)}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, "
                         f"not {normalization!r}")
    fusion = (model_kwargs.get("viewwise") or {}).get("fusion", "mean")
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, not {fusion!r}")
    if int(image_size) < 8:
        raise ValueError(f"image_size must be at least 8, not {image_size}")
    if int(repeats) < 1 or int(folds) < 2:
        raise ValueError("repeats must be at least 1 and folds at least 2")
    if not 0 < float(val_fraction) < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, not {val_fraction}")
    train_config.validate()

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
    warnings: list[str] = field(default_factory=list)
    plan: dict[str, Any] = field(default_factory=dict)  # what was (or, dry run, would be) done


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
    models: tuple[str, ...] | list[str] = DEFAULTS["models"],
    views: tuple[str, ...] | list[str] | None = None,
    repeats: int = DEFAULTS["repeats"],
    split: str = DEFAULTS["split"],
    folds: int = DEFAULTS["folds"],
    resplit: bool = False,
    val_fraction: float = DEFAULTS["val_fraction"],
    seed: int = DEFAULTS["seed"],
    image_size: int = DEFAULTS["image_size"],
    train_config: TrainConfig | None = None,
    pretrained: bool | str | os.PathLike = DEFAULTS["pretrained"],
    flip_right: bool = True,
    normalization: str = DEFAULTS["normalization"],
    augment: bool = True,
    autoencoder_pretrain_epochs: int = DEFAULTS["autoencoder_pretrain_epochs"],
    model_kwargs: dict[str, dict[str, Any]] | None = None,
    force: bool = False,
    progress: bool = True,
    evaluate: bool = True,
    extra_config: dict[str, Any] | None = None,
    dry_run: bool = False,
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
        pretrained: ImageNet weights for resnet18/viewwise: True (the default, as in the
            CLI and the seed: hub cache or download), False, or a file path.
        model_kwargs: per-model extra build arguments, e.g. ``{"viewwise": {"fusion": "attention"}}``.
        force: discard a previous run with a different configuration.
        extra_config: more JSON-able entries for ``provenance.json`` (e.g. CLI options).
        progress: progress bars on a terminal; plain per-epoch lines on stdout otherwise.
            Either way every epoch goes to ``RUN_DIR/train.log`` and ``train_log.jsonl``.
        dry_run: read the cases and make the splits, write nothing, train nothing;
            ``result.plan`` says what would be trained.

    Where the case table has per-breast labels (``label_L``/``label_R``), every model is
    also trained per breast (its CC and MLO as channels) into
    ``models/{model}/repeat{r}/breast/``, with the same patient-level split.
    """
    run = Path(run_dir)
    train_config = train_config or TrainConfig()
    models = [m.lower() for m in models]
    model_kwargs = {k.lower(): dict(v) for k, v in (model_kwargs or {}).items()}
    check_options(models=models, split=split, normalization=normalization,
                  image_size=image_size, repeats=repeats, folds=folds,
                  val_fraction=val_fraction, train_config=train_config,
                  model_kwargs=model_kwargs)
    wants_weights = bool(pretrained) and any(m in PRETRAINABLE for m in models)
    if wants_weights and not dry_run:  # fail fast, before decoding any image
        from breastlab.models.weights import load_imagenet_state_dict

        load_imagenet_state_dict(None if pretrained is True else pretrained)
    if train_config.num_threads:
        torch.set_num_threads(int(train_config.num_threads))

    if views:
        from breastlab.multiview.dataset import case_views

        have = case_views(cases)
        unknown = [v for v in views if have and v not in have]
        if unknown:  # else those channels would silently be blank
            raise ValueError(f"view(s) {', '.join(unknown)} not in the case table "
                             f"(its views: {', '.join(have)})")
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
    missing_patient = sum(1 for r in dataset.rows if not str(r.get("patient_id") or "").strip())
    unit, warnings = split_unit(dataset.patient_ids, dataset.case_ids, len(dataset.views),
                                missing_patient)
    breasts = breast_dataset(dataset) if k == 2 else None
    view_paths = [r[v] for r in dataset.rows for v in dataset.views if r.get(v)]
    fingerprint = fingerprint_files(view_paths, content=not dry_run)

    config: dict[str, Any] = {
        "task": "fourview",
        "models": models,
        "views": list(dataset.views),
        "repeats": int(repeats),
        "split": split,
        "split_unit": unit,
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
        "levels": ["exam", "breast"] if breasts is not None else ["exam"],
        "n_breasts": len(breasts) if breasts is not None else 0,
        "data_fingerprint": fingerprint,
        "split_warnings": warnings,
        **(extra_config or {}),
    }
    if dry_run:
        return _dry_run(run, dataset, breasts, config, repeats, split, folds, seed, resplit,
                        val_fraction, bad, warnings)

    prov_path = run / rundir.PROVENANCE
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
            for f in (rundir.METRICS, "report.html"):
                (run / f).unlink(missing_ok=True)
        # a resumed run keeps the union of models and the larger repeat count
        old_models = [m for m in old.get("models", []) if m not in models]
        if not diff:
            config["models"] = old_models + models if old_models else models
            config["repeats"] = max(int(old.get("repeats", 0)), int(repeats))
            config["training_seeds"] = [int(seed) + r for r in range(config["repeats"])]
    run.mkdir(parents=True, exist_ok=True)
    write_json(prov_path, run_manifest(config, data_fingerprint=fingerprint))
    _add_manufacturers(dataset)
    extra_cols = [c for c in ("label_L", "label_R", "convention", "manufacturer")
                  if any(r.get(c) not in (None, "") for r in dataset.rows)]
    cols = ["case_id", "patient_id", "label", *extra_cols, *dataset.views]
    write_csv(run / rundir.CASES,
              ({c: r.get(c, "") for c in cols} for r in dataset.rows), cols)

    result = FourViewResult(run_dir=run, bad_cases=bad, warnings=warnings)
    groups = dict(zip(dataset.case_ids, dataset.patient_ids))
    labels = dataset.labels.numpy()
    preprocessing = config["preprocessing"]
    interactive = progress and _isatty_stdout()

    bars = None
    if progress and interactive:
        from breastlab.core.progress import make_progress

        bars = make_progress()
        bars.start()
        overall = bars.add_task("Four-view run", total=repeats * len(models))
    runlog = RunLog(run, echo=bool(progress) and not interactive)
    try:
        runlog.__enter__()
        runlog.event("start", f"training {', '.join(models)} × {repeats} repeat(s) on "
                     f"{len(dataset)} cases ({unit}-level split)"
                     + (f" and {len(breasts)} breasts" if breasts is not None else ""),
                     models=models, repeats=repeats, n_cases=len(dataset), split_unit=unit)
        for w in warnings:
            runlog.event("warning", f"warning: {w}", text=w)
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
            parts = {"train": dataset.select(sp["train"], train=augment),
                     "val": dataset.select(sp["val"], train=False),
                     "test": dataset.select(sp["test"], train=False)}
            breast_parts = _breast_parts(breasts, sp, augment) if breasts is not None else None
            for name in models:
                out = rundir.model_dir(run, name, r)
                if (out / rundir.PREDICTIONS).is_file() and (
                        breast_parts is None
                        or (rundir.breast_dir(run, name, r) / rundir.PREDICTIONS).is_file()):
                    result.skipped.append((name, r))
                    if bars is not None:
                        bars.advance(overall)
                    continue
                if bars is not None:
                    bars.update(overall, description=f"{name} repeat {r + 1}/{repeats}")
                jobs = [("exam", out, parts, len(dataset.views))]
                if breast_parts is not None:
                    jobs.append(("breast", rundir.breast_dir(run, name, r), breast_parts,
                                 breasts.in_channels))
                for level, out_dir, data, channels in jobs:
                    if (out_dir / rundir.PREDICTIONS).is_file():
                        continue
                    what = f"{name} repeat {r + 1}/{repeats}" + (" (breast)" if level == "breast" else "")
                    _train_one(name, level, out_dir, data, channels, k, r, sp, seed,
                               train_config, autoencoder_pretrain_epochs, model_kwargs,
                               image_size, pretrained, class_names, preprocessing, extra_config,
                               bars, runlog, what)
                result.trained.append((name, r))
                if bars is not None:
                    bars.advance(overall)
        runlog.event("end", f"done: trained {len(result.trained)}, already done "
                     f"{len(result.skipped)} (model, repeat) runs", trained=len(result.trained))
    finally:
        runlog.__exit__(None, None, None)
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
    result.plan = {"models": models, "repeats": repeats, "levels": config["levels"]}
    return result


def _add_manufacturers(dataset: CaseDataset) -> None:
    """``manufacturer`` per case (DICOM Manufacturer of its first view file, header only),
    for the breakdowns of the evaluation; kept in the run's ``cases.csv``."""
    from breastlab.multiview.conventions import manufacturer_of

    for row in dataset.rows:
        if not row.get("manufacturer"):
            first = next((row.get(v) for v in dataset.views if row.get(v)), None)
            name = manufacturer_of(first) if first and not str(first).lower().endswith(
                (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".npy")) else ""
            if name:
                row["manufacturer"] = name


def _isatty_stdout() -> bool:
    import sys

    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


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


def _train_one(name: str, level: str, out: Path, parts: dict[str, CaseDataset], channels: int,
               k: int, r: int, sp: dict[str, Any], seed: int, train_config: TrainConfig,
               ae_epochs: int, model_kwargs: dict[str, dict[str, Any]], image_size: int,
               pretrained: Any, class_names: list[str], preprocessing: dict[str, Any],
               extra_config: dict[str, Any] | None, bars: Any, runlog: RunLog,
               what: str) -> None:
    """Train one model for one repeat at one level and write its predictions.csv."""
    cfg = TrainConfig(**{
        **train_config.to_dict(),
        "seed": int(seed) + r,
        "pretrain_epochs": ae_epochs if name == "autoencoder" else 0,
    })
    seed_everything(cfg.seed)
    torch.manual_seed(cfg.seed)
    kwargs = model_kwargs.get(name, {})
    if name in ("resnet18", "viewwise") and image_size < 64:
        kwargs = {"small_input": True, **kwargs}
    model = build_model(name, in_channels=channels, num_classes=k, image_size=image_size,
                        pretrained=pretrained if name in PRETRAINABLE else False, **kwargs)
    views = list(parts["train"].views)
    meta = {
        "views": views,
        "level": level,
        "class_names": class_names,
        "preprocessing": preprocessing | ({"views": views} if level == "breast" else {}),
        "threshold": 0.5,
        "repeat": r,
        "split": {k_: sp.get(k_) for k_ in ("method", "seed", "fold", "k")},
        "demo": bool((extra_config or {}).get("demo", False)),
    }
    runlog.event("model", f"{what}: training {name} on {len(parts['train'])} "
                 f"{'breasts' if level == 'breast' else 'cases'}, "
                 f"{len(parts['val'])} for validation", model=name, repeat=r, level=level)
    train_classifier(model, parts["train"], parts["val"], cfg, out, progress=bars or False,
                     resume=True, meta=meta, label=f"{name} r{r} ",
                     on_epoch=lambda row: runlog.epoch(what, row))
    rows = []
    for part in ("val", "test"):
        ds = parts[part]
        if len(ds):
            probs = predict_proba(model, ds, cfg.eval_batch_size, channels_last=cfg.channels_last)
            rows += _prediction_rows(ds.case_ids, part, ds.labels.numpy(), probs)
            if level == "breast":
                for row, src in zip(rows[-len(ds):], ds.rows):
                    row.update(exam_id=src["exam_id"], breast=src["breast"])
    pcols = ["case_id", "split", "label", *[f"prob_{j}" for j in range(k)]]
    if k == 2:
        pcols.append("prob")
    if level == "breast":
        pcols[1:1] = ["exam_id", "breast"]
    write_csv(out / rundir.PREDICTIONS, rows, pcols)
    del model


def _dry_run(run: Path, dataset: CaseDataset, breasts: CaseDataset | None,
             config: dict[str, Any], repeats: int, split: str, folds: int, seed: int,
             resplit: bool, val_fraction: float, bad: list[tuple[str, str]],
             warnings: list[str]) -> FourViewResult:
    """What a run would do: cases, split sizes and class balance per repeat; no file written."""
    from collections import Counter

    labels = dataset.labels.numpy()
    splits = []
    for r in range(repeats):
        path = run / "splits" / f"repeat{r}.json"
        sp = load_split(path) if path.is_file() else repeat_split(
            dataset.case_ids, labels, dataset.patient_ids, repeat=r, method=split, folds=folds,
            seed=seed, resplit=resplit, val_fraction=val_fraction)
        lab = dict(zip(dataset.case_ids, labels.tolist()))
        splits.append({part: dict(Counter(config["class_names"][lab[c]] for c in sp[part]))
                       for part in ("train", "val", "test")})
    plan = {
        "run_dir": str(run),
        "n_cases": len(dataset),
        "n_patients": len(set(dataset.patient_ids)),
        "class_balance": dict(Counter(config["class_names"][y] for y in labels.tolist())),
        "views": config["views"],
        "split": split, "split_unit": config["split_unit"],
        "splits": splits,
        "models": config["models"],
        "repeats": repeats,
        "levels": config["levels"],
        "n_breasts": config["n_breasts"],
        "train": config["train"],
        "pretrained": config["pretrained"],
        "image_size": config["image_size"],
    }
    return FourViewResult(run_dir=run, bad_cases=bad, warnings=warnings, plan=plan)
