"""Grad-CAM gallery of a run: a few test cases of each class, right and wrong.

``generate_gallery(run_dir)`` picks the stacked model (``resnet18``; else the first model
with a ``model.pt``), repeat 0, and up to ``n_cases`` test cases spread over the four
outcomes (true/false positive/negative; for K > 2, right and wrong per class), most
confident first. It writes one overlay PNG per case to ``RUN_DIR/explain/`` and an
``explain/index.json`` describing each (case id, model, repeat, label, probability,
per-view shares, the view that drove the decision). Only case ids from
``predictions.csv`` are used; ``patient_id`` is never read.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from breastlab.core import atomic
from breastlab.core.rundir import RunDir

log = logging.getLogger(__name__)
STACKED_PREFERENCE = ("resnet18", "viewwise")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    return _SAFE.sub("_", str(text))[:80] or "case"


def _pick_cases(label: np.ndarray, prob: np.ndarray, threshold: float | None,
                n_cases: int) -> list[int]:
    """Indices spread over outcome groups, most confident first within each."""
    k = prob.shape[1]
    if k == 2 and threshold is not None:
        pred = (prob[:, 1] >= threshold).astype(int)
    else:
        pred = prob.argmax(1)
    conf = prob[np.arange(len(prob)), pred]
    groups: list[list[int]] = []
    for c in range(k):                                   # right then wrong, per class
        for right in (True, False):
            idx = np.flatnonzero((label == c) & ((pred == label) == right))
            groups.append(list(idx[np.argsort(-conf[idx], kind="stable")]))
    chosen: list[int] = []
    while len(chosen) < n_cases and any(groups):
        for g in groups:
            if g and len(chosen) < n_cases:
                chosen.append(int(g.pop(0)))
    return chosen


def _choose_model(run: RunDir, model: str | None, repeat: int | None
                  ) -> tuple[str, int, Path] | None:
    present = run.model_names()
    names = [model] if model else (
        [m for m in STACKED_PREFERENCE if m in present]
        + [m for m in present if m not in STACKED_PREFERENCE])
    for name in names:
        reps = [repeat] if repeat is not None else run.repeats_of(name)
        for r in reps:
            mp = run.model_file(name, r)
            if mp.is_file() and run.predictions(name, r).is_file():
                return name, r, mp
    return None


def _probabilities(net: Any, x: Any) -> np.ndarray:
    import torch

    from .gradcam import _model_output, logits_to_prob

    with torch.no_grad():
        return logits_to_prob(_model_output(net.eval(), x)).cpu().numpy()


def generate_gallery(run_dir: str | Path, *, n_cases: int = 6, model: str | None = None,
                     repeat: int | None = None, attribution: str = "grad_x_input",
                     device: str = "auto") -> list[dict[str, Any]]:
    """Write overlays for a few test cases to ``RUN_DIR/explain``; returns the index
    entries (empty when no model file or no case images are available). Grad-CAM runs on
    ``device`` (``core.device``)."""
    run = RunDir(run_dir)
    pick = _choose_model(run, model, repeat)
    cases_csv = run.cases
    if pick is None or not cases_csv.is_file():
        return []
    from breastlab.core.artefacts import read_cases, read_predictions
    from breastlab.models.files import load_model

    from .gradcam import explain
    from .overlays import raw_views, save_overlay
    name, r, model_path = pick
    from breastlab.core.device import resolve_device

    dev = resolve_device(device)
    net, meta = load_model(model_path, map_location=dev)
    names = list(meta.get("class_names") or [])
    preds = read_predictions(run.predictions(name, r), names).subset("test")
    if not len(preds.label):
        return []
    if not names or len(names) != preds.k:
        names = (["benign", "malignant"] if preds.k == 2
                 else [f"class_{i}" for i in range(preds.k)])
    thr_doc = json.loads(run.threshold(name, r).read_text()) if (
        run.threshold(name, r).is_file()) else {}
    threshold = thr_doc.get("threshold", meta.get("threshold"))
    chosen = _pick_cases(preds.label, preds.prob, threshold, n_cases)
    wanted = {preds.case_id[i] for i in chosen}
    from breastlab.multiview.dataset import dataset_from_meta

    rows = [row for row in read_cases(cases_csv) if str(row.get("case_id")) in wanted]
    for row in rows:
        row["_base_dir"] = str(cases_csv.resolve().parent)
        row.pop("patient_id", None)
    ds = dataset_from_meta(rows, meta)  # preprocessed as the model was trained
    if not len(ds):
        log.warning("gallery: no case images could be read (%s)", ds.skipped[:3])
        return []
    order = {c: i for i, c in enumerate(ds.case_ids)}
    root = _input_root(cases_csv)
    index: list[dict[str, Any]] = []
    out_dir = run.explain
    for i in chosen:
        cid = preds.case_id[i]
        if cid not in order:
            continue
        x = ds.image(order[cid])[None].float().to(dev)
        p_now = _probabilities(net, x)[0]
        pred = (int(p_now[1] >= threshold) if preds.k == 2 and threshold is not None
                else int(np.argmax(p_now)))
        e = explain(net, x, list(ds.views), [cid], [int(preds.label[i])],
                    attribution=attribution, class_idx=pred)[0]
        title = (f"case {cid} | {name} repeat {r} | P({names[-1] if preds.k == 2 else names[pred]})"
                 f" = {e.prob[1] if preds.k == 2 else e.prob[pred]:.2f} | predicted "
                 f"{names[pred]}, truth {names[e.label]} "
                 f"({'correct' if pred == e.label else 'wrong'}) | drove: {e.top_view}")
        fname = f"{safe_name(name)}_repeat{r}_{safe_name(cid)}.png"
        row = ds.rows[order[cid]]
        pre = meta.get("preprocessing") or {}
        raws, flips = raw_views([row.get(v) for v in ds.views], list(ds.views),
                                flip_right=bool(pre.get("flip_right", True)),
                                slice_index=pre.get("slice_index"))
        save_overlay(out_dir / fname, e, names, titles=[title], raw=[raws], flipped=[flips])
        index.append({
            "files": {v: _relative(row.get(v), root) for v in ds.views},
            "flipped": [v for v, f in zip(ds.views, flips) if f],
            "file": fname, "case_id": cid, "model": name, "repeat": r,
            "label": names[e.label], "predicted": names[pred], "correct": pred == e.label,
            "prob": [float(p) for p in e.prob], "threshold": threshold,
            "views": e.views, "shares": [float(s) for s in e.shares],
            "top_view": e.top_view, "attribution": e.method, "cam": e.extra.get("cam"),
        })
    if index:
        atomic.write_json(run.gallery_index, {"model": name, "repeat": r,
                                                   "class_names": names, "cases": index})
    return index


def _input_root(cases_csv: Path) -> Path | None:
    """The folder all of a run's case files share (file names are shown relative to it)."""
    import os

    from breastlab.core.artefacts import read_cases

    paths = [str(Path(v).resolve()) for row in read_cases(cases_csv)
             for k, v in row.items() if k not in ("case_id", "patient_id", "label") and v
             and ("/" in str(v) or "\\" in str(v))]
    if not paths:
        return None
    try:
        common = Path(os.path.commonpath(paths))
    except ValueError:
        return None
    return common if common.is_dir() else common.parent


def _relative(path: str | None, root: Path | None) -> str:
    if not path:
        return ""
    p = Path(path).resolve()
    if root is not None:
        try:
            return p.relative_to(root).as_posix()
        except ValueError:
            pass
    return p.name


def gallery_entries(run_dir: str | Path) -> list[dict[str, Any]]:
    """The gallery of ``RUN_DIR/explain``: index entries if present, else every PNG."""
    run = RunDir(run_dir)
    d = run.explain
    if not d.is_dir():
        return []
    idx = run.gallery_index
    if idx.is_file():
        try:
            cases = json.loads(idx.read_text(encoding="utf-8")).get("cases", [])
            return [c for c in cases if (d / c.get("file", "")).is_file()]
        except ValueError:
            pass
    return [{"file": p.name} for p in sorted(d.glob("*.png"))]
