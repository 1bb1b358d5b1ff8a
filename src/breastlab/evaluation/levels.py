"""Results at every level the data allow: breast, exam and patient, side by side.

Mammography studies report breast-level and exam- (or patient-) level AUC together; they
can differ by more than any backbone does. From a run directory:

* **exam**: the model's own unit (a four-view exam; one image for one-view runs);
* **breast**: the breast-level models (``models/{m}/repeat{r}/breast/predictions.csv``,
  trained when labels are per breast). For one-view runs (ultrasound: one image of one
  breast) the image is the breast, so the exam rows are the breast rows;
* **exam (from breasts)**: an exam is as suspicious as its worse breast (max of the two
  breast probabilities; label = max of the breast labels);
* **patient**: a patient is as suspicious as her most suspicious exam (max), from the
  pseudonymous ``patient_id`` of ``RUN_DIR/cases.csv``.

Every level gets its own operating threshold, chosen on *its* validation rows with the
run's rule, and AUC with both a DeLong and a seeded stratified bootstrap CI (2,000
replicates), sensitivity and specificity with Wilson CIs. Breakdowns by manufacturer
(exam level, from ``cases.csv``) and by breast side (breast level) where the data carry
them.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from breastlab.core.artefacts import Predictions, read_cases, read_predictions
from breastlab.core.rundir import RunDir, breast_predictions

from .metrics import ALPHA, auc_ci, binary_metrics, summarise_repeats
from .threshold import choose_threshold

N_BOOT = 2000
MIN_GROUP = 5  # breakdown groups smaller than this are listed with counts only


def read_case_info(run_dir: Path) -> dict[str, dict[str, str]]:
    """``case_id → {patient_id, manufacturer}`` from ``RUN_DIR/cases.csv`` (if present)."""
    path = RunDir(run_dir).cases
    if not path.is_file():
        return {}
    return {r["case_id"]: {"patient_id": r.get("patient_id") or r["case_id"],
                           "manufacturer": (r.get("manufacturer") or "").strip()}
            for r in read_cases(path)}


def _score(y: np.ndarray, p: np.ndarray, thr: float, ci: str, alpha: float,
           seed: int) -> dict[str, Any]:
    m = binary_metrics(y, p, thr, ci=ci, auc_method="delong", alpha=alpha)
    m["auc_bootstrap"] = auc_ci(y, p, "bootstrap", alpha, n_boot=N_BOOT, seed=seed)
    m.pop("ppv", None)
    m.pop("npv", None)
    return m


def _aggregate(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Max probability and max label over the rows sharing ``key`` (per split)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["split"], r[key])].append(r)
    return [{"case_id": k, "split": split, "label": max(int(r["label"]) for r in g),
             "prob": max(float(r["prob"]) for r in g), "n": len(g), **{
                 f: g[0].get(f, "") for f in ("manufacturer",)}}
            for (split, k), g in groups.items()]


def _level(rows: list[dict[str, Any]], rule: str, ci: str, alpha: float, seed: int,
           by: tuple[str, ...] = ()) -> dict[str, Any] | None:
    val = [r for r in rows if r["split"] == "val"]
    test = [r for r in rows if r["split"] == "test"]
    if not test:
        return None
    yv = np.array([int(r["label"]) for r in val], int)
    pv = np.array([float(r["prob"]) for r in val])
    thr = choose_threshold(yv, pv, rule)
    yt = np.array([int(r["label"]) for r in test], int)
    pt = np.array([float(r["prob"]) for r in test])
    out: dict[str, Any] = {"threshold": thr["threshold"], "rule": thr.get("rule", rule),
                           "test": _score(yt, pt, thr["threshold"], ci, alpha, seed)}
    for field in by:
        values = sorted({str(r.get(field) or "") for r in test} - {""})
        if len(values) < 2:
            continue
        groups = {}
        for v in values:
            sel = [i for i, r in enumerate(test) if str(r.get(field) or "") == v]
            ys, ps = yt[sel], pt[sel]
            if len(sel) >= MIN_GROUP and len(set(ys.tolist())) == 2:
                groups[v] = _score(ys, ps, thr["threshold"], ci, alpha, seed)
            else:
                groups[v] = {"n": len(sel), "n_pos": int(ys.sum()), "n_neg": int(len(ys) - ys.sum()),
                             "note": "too few cases (or one class only) for figures"}
        out.setdefault("by", {})[field] = groups
    return out


def evaluate_levels(run_dir: Path, loaded: dict[str, dict[int, Predictions]],
                    found: dict[str, dict[int, Path]], rule: str, ci: str,
                    alpha: float = ALPHA, n_views: int | None = None) -> dict[str, Any]:
    """``{model: {level: {unit, note, repeats: {repeatR: {...}}, summary}}}`` (binary runs).

    ``loaded``: the exam-level predictions ``evaluate_run`` has read (``found``: their files,
    beside which the breast-level ones sit)."""
    info = read_case_info(run_dir)
    patients_per_case = {c: i["patient_id"] for c, i in info.items()}
    multi_exam = len(set(patients_per_case.values())) < len(patients_per_case)
    out: dict[str, Any] = {}
    for model, reps in found.items():
        levels: dict[str, dict[str, Any]] = {}

        def put(level: str, r: int, res: dict[str, Any] | None, unit: str, note: str) -> None:
            if res is None:
                return
            entry = levels.setdefault(level, {"unit": unit, "note": note, "repeats": {}})
            entry["repeats"][f"repeat{r}"] = res

        for r, path in reps.items():
            exam = [dict(row) for row in loaded[model][r].rows]
            if not exam or "prob" not in exam[0]:  # not a binary run
                continue
            for row in exam:
                row.update(patient_id=info.get(row["case_id"], {}).get("patient_id", row["case_id"]),
                           manufacturer=info.get(row["case_id"], {}).get("manufacturer", ""))
            one_view = n_views == 1
            put("exam", r, _level(exam, rule, ci, alpha, r, by=("manufacturer",)),
                "image" if one_view else "exam",
                "one image per case: the exam is the image" if one_view
                else "the model's own unit: all views of one exam")
            if one_view:
                put("breast", r, _level(exam, rule, ci, alpha, r, by=("manufacturer",)), "image",
                    "one-view run: each image shows one breast, so breast level = image level")
            patient_rows = _aggregate(exam, "patient_id")
            put("patient", r, _level(patient_rows, rule, ci, alpha, r), "patient",
                "max over a patient's exams" if multi_exam else
                "every patient has one case here, so patient level = exam level")
            bpath = breast_predictions(path)
            if bpath.is_file():
                breast = read_predictions(bpath).rows
                put("breast", r, _level(breast, rule, ci, alpha, r, by=("breast",)), "breast",
                    "breast-level models (CC + MLO of one breast)")
                put("exam_from_breasts", r, _level(_aggregate(breast, "exam_id"), rule, ci, alpha, r),
                    "exam", "breast-level models; exam = max of its breasts")
        for level in levels.values():
            level["summary"] = summarise_repeats([e["test"] for e in level["repeats"].values()])
        out[model] = levels
    return out
