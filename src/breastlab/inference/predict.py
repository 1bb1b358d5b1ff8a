"""Predict new cases with a saved model: probabilities, decisions and heat maps.

``predict_cases(model_file, input, out_dir)``:

* ``input``: a ``cases.csv`` (from ``breastlab cases``) or a folder, assembled with
  ``multiview.cases.assemble_cases`` (incomplete or ambiguous cases are left out and
  listed in ``OUT/problems.csv``);
* preprocessing is rebuilt from the model file's metadata (views, image size,
  normalisation, flips), so new cases are treated exactly like the training cases;
* writes ``OUT/predictions.csv``: ``case_id``, ``file_<view>`` (each input file, relative
  to the input root: the INPUT folder, or the folder of the ``cases.csv``),
  ``prob_0..prob_{K-1}, prob`` (binary: P(positive)), ``predicted`` (class name),
  ``predicted_index``, ``threshold`` and, with heat maps, ``top_view`` and the per-view
  shares; plus ``OUT/heatmaps/{case}.png``; with folder input also ``OUT/cases.csv``;
  when the inputs carry labels, ``OUT/metrics.json`` (binary metrics with 95% CIs).

The binary operating threshold is, in order: ``threshold=`` given by the caller, the
``threshold.json`` next to the model file (chosen on validation by ``evaluate_run``), the
``threshold`` stored in the model metadata, 0.5.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from breastlab.core import atomic
from breastlab.core.artefacts import write_metrics, write_predictions, write_provenance
from breastlab.core.rundir import THRESHOLD, model_folder

log = logging.getLogger(__name__)


def resolve_threshold(model_file: Path, meta: dict[str, Any], threshold: float | None
                      ) -> tuple[float, str]:
    """The binary threshold and where it came from, naming the rule that chose it."""
    if threshold is not None:
        return float(threshold), "given on the command line"
    tj = model_folder(model_file) / THRESHOLD
    if tj.is_file():
        try:
            doc = json.loads(tj.read_text(encoding="utf-8"))
            value = doc.get("threshold")
            if value is not None:
                rule = doc.get("rule") or "unknown rule"
                return float(value), f"{tj.name}: rule {rule!r}, chosen on validation"
        except ValueError:
            log.warning("unreadable %s; ignored", tj)
    if meta.get("threshold") is not None:
        return float(meta["threshold"]), "model file metadata (no threshold.json beside it)"
    return 0.5, "default 0.5"


def view_set_for(views: list[str] | None) -> Any:
    """The view set to assemble a folder with, from the model's views (``image`` = one view)."""
    if not views:
        return None
    if list(views) == ["image"]:
        return "single"
    return views


def _rows_from_input(inp: Path, views: list[str] | None, out_dir: Path) -> tuple[Any, int, Path]:
    """The case rows (or the CSV path), the number of problems written to problems.csv, and
    the input root that file names in the outputs are relative to."""
    if inp.is_file():
        return inp, 0, inp.resolve().parent           # CaseDataset reads the CSV itself
    from breastlab.multiview.cases import assemble_cases, write_cases

    table = assemble_cases([inp], view_set=view_set_for(views), missing="drop",
                           duplicates="drop", labels="auto")
    write_cases(table, out_dir / "cases.csv")       # the folder's case table, for the record
    if table.problems:
        atomic.write_csv(out_dir / "problems.csv", [p.row() for p in table.problems],
                         ["case_id", "view", "reason", "detail", "path"])
    return table.rows(), len(table.problems), inp.resolve()


def relative_to_root(path: str | None, root: Path) -> str:
    """``path`` relative to the input root (POSIX), or as given when it lies outside."""
    if not path:
        return ""
    p = Path(path).resolve()
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return str(p)


def _metrics_if_labelled(rows: list[dict[str, Any]], names: list[str], thr: float,
                         k: int) -> dict[str, Any] | None:
    """Metrics with 95% CIs on the labelled predicted cases (binary), else ``None``."""
    labelled = [r for r in rows if r.get("label") in names]
    if k != 2 or not labelled:
        return None
    from breastlab.evaluation.metrics import auc_ci, binary_metrics

    y = np.array([names.index(r["label"]) for r in labelled])
    p = np.array([float(r["prob"]) for r in labelled])
    m = binary_metrics(y, p, thr)
    m["auc_bootstrap"] = auc_ci(y, p, "bootstrap", n_boot=2000, seed=0)
    m["n_unlabelled"] = len(rows) - len(labelled)
    return m


def _write_provenance(out_dir: Path, model_file: Path, meta: dict[str, Any], input_path: str | Path,
                      ds: Any, thr: float, thr_source: str, heatmaps: bool,
                      root: Path | None = None, device: dict[str, Any] | None = None) -> None:
    """``OUT/provenance.json``: which model (by SHA-256), which inputs, which versions."""
    import hashlib

    from breastlab.core.provenance import fingerprint_files, run_manifest

    files = sorted({str(row[v]) for row in ds.rows for v in ds.views if row.get(v)})
    config = {
        "model_file": str(model_file),
        "model_sha256": hashlib.sha256(Path(model_file).read_bytes()).hexdigest(),
        "model_name": meta.get("name"),
        "demo_model": bool(meta.get("demo")),
        "input": str(input_path),
        "input_root": str(root) if root else None,
        "threshold": thr,
        "threshold_source": thr_source,
        "heatmaps": heatmaps,
        "device_info": device,
    }
    fingerprint = fingerprint_files(files, content=False) if files else None
    write_provenance(out_dir / "provenance.json", run_manifest(config, data_fingerprint=fingerprint))


def predict_cases(model_file: str | Path, input_path: str | Path, out_dir: str | Path, *,
                  heatmaps: bool = True, threshold: float | None = None,
                  batch_size: int = 16, progress: bool = True,
                  attribution: str = "grad_x_input", device: str = "auto",
                  disk_cache: Any = None) -> dict[str, Any]:
    """Predict every case of ``input_path``; returns a summary dict (see module doc).

    The model, the batches of ``batch_size`` cases and Grad-CAM run on ``device``
    (``core.device``); ``disk_cache`` as in ``CaseDataset`` (preprocessed views on disk).
    """
    import torch

    from breastlab.core.device import resolve_device

    from breastlab.explain.gallery import safe_name
    from breastlab.explain.gradcam import explain, logits_to_prob
    from breastlab.explain.overlays import raw_views, save_overlay
    from breastlab.models.files import load_model
    from breastlab.multiview.dataset import dataset_from_meta

    model_file, out_dir = Path(model_file), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    net, meta = load_model(model_file, map_location=dev)
    thr, thr_source = resolve_threshold(model_file, meta, threshold)
    k = int(meta.get("num_classes") or 2)
    names = list(meta.get("class_names") or [])
    if len(names) != k:
        names = ["benign", "malignant"] if k == 2 else [f"class_{i}" for i in range(k)]
    rows, n_problems, root = _rows_from_input(Path(input_path), meta.get("views"), out_dir)
    ds = dataset_from_meta(rows, meta, progress=progress, disk_cache=disk_cache)
    if not len(ds):
        raise ValueError(f"no case to predict in {input_path}"
                         + (f" ({n_problems} problem(s): see {out_dir / 'problems.csv'})"
                            if n_problems else ""))
    files = {cid: {v: relative_to_root(r.get(v), root) for v in ds.views}
             for cid, r in zip(ds.case_ids, ds.rows)}
    if ds.skipped:
        atomic.write_csv(out_dir / "skipped.csv",
                         [{"case_id": c, "reason": r} for c, r in ds.skipped],
                         ["case_id", "reason"])
    views = list(ds.views)
    out_rows: list[dict[str, Any]] = []
    bar = None
    if progress:
        from breastlab.core.progress import make_progress

        bar = make_progress()
        bar.start()
        task = bar.add_task("Predicting", total=len(ds))
    try:
        for start in range(0, len(ds), batch_size):
            idx = list(range(start, min(start + batch_size, len(ds))))
            x = torch.stack([ds.image(i) for i in idx]).float().to(dev, non_blocking=True)
            ids = [ds.case_ids[i] for i in idx]
            labels = [int(ds.labels[i]) for i in idx]
            with torch.no_grad():
                probs = logits_to_prob(net(x)).cpu().numpy()
            preds = [int(p[1] >= thr) if k == 2 else int(np.argmax(p)) for p in probs]
            if heatmaps:   # explain the decision actually made (threshold, not argmax)
                exps = explain(net, x, views, ids, labels, attribution=attribution,
                               class_idx=preds)
            else:
                exps = [None] * len(idx)
            for j, (cid, p, e, pred) in enumerate(zip(ids, probs, exps, preds)):
                row: dict[str, Any] = {"case_id": cid,
                                       **{f"file_{v}": files[cid][v] for v in views},
                                       **{f"prob_{c}": float(p[c]) for c in range(k)}}
                if k == 2:
                    row["prob"] = float(p[1])
                row.update(predicted=names[pred], predicted_index=pred,
                           threshold=thr if k == 2 else "",
                           label=names[labels[j]] if 0 <= labels[j] < k else "")
                if e is not None:
                    fname = f"{safe_name(cid)}.png"
                    title = (f"case {cid} | predicted {names[pred]} | "
                             + (f"P({names[1]}) = {p[1]:.2f} (threshold {thr:.3f})"
                                if k == 2 else f"P = {p[pred]:.2f}")
                             + f" | drove: {e.top_view}")
                    raws, flips = raw_views(
                        [ds.rows[idx[j]].get(v) for v in views], views,
                        flip_right=bool((meta.get("preprocessing") or {}).get("flip_right", True)),
                        slice_index=(meta.get("preprocessing") or {}).get("slice_index"))
                    save_overlay(out_dir / "heatmaps" / fname, e, names, titles=[title],
                                 raw=[raws], flipped=[flips])
                    row.update(top_view=e.top_view, heatmap=f"heatmaps/{fname}",
                               **{f"share_{v}": round(float(s), 4)
                                  for v, s in zip(views, e.shares)})
                out_rows.append(row)
            if bar is not None:
                bar.advance(task, len(idx))
    finally:
        if bar is not None:
            bar.stop()
    cols = ["case_id", *[f"file_{v}" for v in views],
            *[f"prob_{c}" for c in range(k)], *(["prob"] if k == 2 else []),
            "predicted", "predicted_index", "threshold", "label"]
    if heatmaps:
        cols += ["top_view", *[f"share_{v}" for v in views], "heatmap"]
    write_predictions(out_dir / "predictions.csv", out_rows, cols)
    metrics = _metrics_if_labelled(out_rows, names, thr, k)
    if metrics is not None:
        write_metrics(out_dir / "metrics.json", metrics)
    from breastlab.core.device import device_info

    _write_provenance(out_dir, model_file, meta, input_path, ds, thr, thr_source, heatmaps,
                      root, device_info(dev))
    return {"n_cases": len(out_rows), "n_skipped": len(ds.skipped), "n_problems": n_problems,
            "metrics": metrics, "input_root": str(root),
            "threshold": thr,
            "threshold_source": thr_source, "class_names": names, "views": views,
            "predictions": out_dir / "predictions.csv",
            "counts": {n: sum(r["predicted"] == n for r in out_rows) for n in names}}
