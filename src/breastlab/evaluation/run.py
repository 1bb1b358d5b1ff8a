"""Evaluate a four-view run directory: thresholds, metrics with CIs, paired tests.

Reads every ``RUN_DIR/models/{model}/repeat{r}/predictions.csv`` (columns ``case_id,
split, label, prob_0..prob_{K-1}`` and, for binary, ``prob``), then for each model and
repeat:

1. binary: chooses the operating threshold on the *val* rows (``threshold.py``; default
   Youden's J) and writes ``threshold.json`` beside the predictions; K > 2: argmax.
2. computes test metrics with 95% CIs (``metrics.binary_metrics`` /
   ``metrics.multiclass_metrics``) and the confusion matrix.

Per model: mean ± sd of each figure across repeats, and the *pooled* metrics on the
concatenated test predictions of all repeats (each repeat at its own threshold).

Paired tests between every pair of models on the test cases they share, per repeat:
exact McNemar on correctness (all cases = accuracy; positives = sensitivity; negatives
= specificity) and DeLong for AUC (binary only). Across repeats the per-repeat p-values
are listed with their count below alpha and median. No test is run on the pooled
(repeat, case) pairs: repeats share test cases, and a pooled test would count each of them
once per repeat. When every repeat has the same test cases, "averaged" adds one paired
DeLong test on each case's repeat-averaged probability (each case counted once).
Pooled *figures* (concatenated repeats) are kept as description; when repeats share
cases their CIs are dropped. Levels (breast / exam / patient) are in ``levels.py``.

Everything is written atomically to ``RUN_DIR/metrics.json``.
"""
from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from breastlab.core import atomic
from breastlab.core.artefacts import Predictions, read_predictions, write_metrics
from breastlab.core.rundir import RunConfig, RunDir

from .metrics import ALPHA, auc_ci, binary_metrics, multiclass_metrics, summarise_repeats
from .paired import delong_paired, mcnemar_exact
from .threshold import DEFAULT_RULE, choose_threshold

SCHEMA = 1
SMALL_TEST = 30       # warn below this many test cases
SMALL_CLASS = 10      # warn below this many cases of one class in test


# --------------------------------------------------------------------------- reading
# predictions.csv has one reader, in core.artefacts (imported here for older callers)
__all__ = ["Predictions", "discover", "evaluate_run", "operating_rule", "read_predictions"]


def discover(run_dir: str | Path) -> dict[str, dict[int, Path]]:
    """``{model: {repeat: predictions.csv}}`` found under ``RUN_DIR/models``."""
    return RunDir(run_dir).discover()


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def operating_rule(run_dir: Path, config: RunConfig | None = None) -> str:
    """The rule behind the thresholds ``predict`` uses: the ``rule`` of the run's
    ``threshold.json`` files, else the run configuration's ``threshold_rule``, else Youden."""
    run = RunDir(run_dir)
    for tj in run.thresholds():
        rule = read_json(tj).get("rule")
        if rule:
            return str(rule)
    if config is None:
        return str(run.raw_config().get("threshold_rule") or DEFAULT_RULE)
    return str(config.threshold_rule or DEFAULT_RULE)


_rule_for = operating_rule


# --------------------------------------------------------------------------- evaluation
def _predicted(pred: Predictions, threshold: float | None) -> np.ndarray:
    if pred.k == 2 and threshold is not None:
        return (pred.prob[:, 1] >= threshold).astype(int)
    return pred.prob.argmax(axis=1).astype(int)


def _metrics(pred: Predictions, names: list[str], threshold: float | None, ci: str,
             auc_method: str, alpha: float, hard: np.ndarray | None = None) -> dict[str, Any]:
    if pred.k == 2:
        return binary_metrics(pred.label, pred.prob[:, 1], threshold if threshold is not None
                              else 0.5, ci=ci, auc_method=auc_method, alpha=alpha, pred=hard)
    # K > 2: the prediction is always the argmax, so the probabilities carry it (and AUC)
    return multiclass_metrics(pred.label, pred.prob, names, ci=ci, alpha=alpha,
                              auc_method=auc_method)


def _counts(pred: Predictions, names: list[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for split in ("train", "val", "test"):
        lab = pred.label[pred.split == split]
        if len(lab):
            c = Counter(int(v) for v in lab)
            out[split] = {names[i] if 0 <= i < len(names) else str(i): c.get(i, 0)
                          for i in range(len(names))}
    return out


def _paired(y: np.ndarray, prob_a: np.ndarray, prob_b: np.ndarray, hard_a: np.ndarray,
            hard_b: np.ndarray, alpha: float) -> dict[str, Any]:
    ok_a, ok_b = hard_a == y, hard_b == y
    out: dict[str, Any] = {"n": int(len(y)), "mcnemar": {"accuracy": mcnemar_exact(ok_a, ok_b)}}
    if prob_a.shape[1] == 2:
        pos, neg = y == 1, y == 0
        out["mcnemar"]["sensitivity"] = mcnemar_exact(ok_a[pos], ok_b[pos])
        out["mcnemar"]["specificity"] = mcnemar_exact(ok_a[neg], ok_b[neg])
        out["delong"] = delong_paired(y, prob_a[:, 1], prob_b[:, 1], alpha)
    return out


def _p_summary(values: list[float | None], alpha: float) -> dict[str, Any]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return {"p_values": values, "n_below_alpha": sum(v < alpha for v in vals),
            "n_repeats": len(vals), "median_p": float(np.median(vals)) if vals else None}


def metrics_path(run_dir: Path, rule: str, operating: str) -> Path:
    """``metrics.json`` for the operating rule; ``metrics_<rule>.json`` for any other, so an
    evaluation under another rule never replaces the figures that match predict's threshold."""
    return RunDir(run_dir).metrics_for(None if rule == operating else rule)


def evaluate_run(run_dir: str | Path, *, threshold_rule: str | None = None,
                 ci: str = "wilson", auc_method: str = "delong", alpha: float = ALPHA,
                 write: bool = True, set_threshold: bool = False) -> dict[str, Any]:
    """Evaluate every model/repeat under ``run_dir``; write ``metrics.json`` (unless
    ``write=False``). Returns the metrics dict (``result["written_to"]``: the file).

    ``threshold_rule``: see :mod:`breastlab.evaluation.threshold`; default: the run's
    operating rule (:func:`operating_rule`). A different rule is evaluated into
    ``metrics_<rule>.json`` and leaves ``threshold.json`` (what ``breastlab predict`` uses)
    alone, unless ``set_threshold=True`` makes it the new operating rule.
    """
    run = RunDir(run_dir)
    run_dir = run.root
    found = run.discover()
    if not found:
        raise FileNotFoundError(f"no models/*/repeat*/predictions.csv under {run_dir}")
    config = run.config()  # provenance.json, read once
    operating = operating_rule(run_dir, config)
    rule = threshold_rule or operating
    has_thresholds = any(run.thresholds())
    if set_threshold or not has_thresholds:  # the first evaluation sets the operating rule
        operating = rule
    write_thresholds = write and rule == operating
    names = list(config.class_names)
    loaded: dict[str, dict[int, Predictions]] = {  # every predictions.csv, read once
        m: {r: read_predictions(p, names) for r, p in reps.items()} for m, reps in found.items()}
    first = next(iter(next(iter(loaded.values())).values()))
    if len(names) != first.k:
        raise ValueError(f"{run_dir}: the run records {len(names)} class names "
                         f"({', '.join(names)}) but its predictions have {first.k} classes")
    task = "binary" if first.k == 2 else "multiclass"
    warnings: list[str] = []
    hard: dict[tuple[str, int], np.ndarray] = {}
    models_out: dict[str, Any] = {}
    data: dict[str, Any] = {}

    for model, reps in loaded.items():
        per_rep: dict[str, Any] = {}
        pooled_parts: list[tuple[Predictions, np.ndarray]] = []
        for r, pred in reps.items():
            if pred.k != first.k:
                raise ValueError(f"{model}/repeat{r}: {pred.k} classes, expected {first.k}")
            val, test = pred.subset("val"), pred.subset("test")
            if task == "binary":
                thr = choose_threshold(val.label, val.prob[:, 1], rule)
                if not len(val.label):
                    warnings.append(f"{model}/repeat{r}: no validation rows; threshold 0.5")
            else:
                thr = {"threshold": None, "rule": "argmax",
                       "rationale": f"{first.k} classes: predicted class = highest probability"}
            if write_thresholds:
                atomic.write_json(run.threshold(model, r), thr)
            entry: dict[str, Any] = {"threshold": thr, "n_test": len(test.label),
                                     "n_val": len(val.label)}
            if len(test.label):
                entry["test"] = _metrics(test, names, thr["threshold"], ci, auc_method, alpha)
                if task == "binary":
                    entry["test"]["auc_bootstrap"] = auc_ci(test.label, test.prob[:, 1],
                                                            "bootstrap", alpha, n_boot=2000, seed=r)
                h = _predicted(test, thr["threshold"])
                hard[(model, r)] = h
                pooled_parts.append((test, h))
            else:
                warnings.append(f"{model}/repeat{r}: no test rows")
            if len(val.label):
                entry["val"] = _metrics(val, names, thr["threshold"], ci, auc_method, alpha)
            per_rep[f"repeat{r}"] = entry
            data.setdefault(f"repeat{r}", _counts(pred, names))
        summary = summarise_repeats([e["test"] for e in per_rep.values() if "test" in e])
        out: dict[str, Any] = {"repeats": per_rep, "summary": summary}
        if pooled_parts:
            y = np.concatenate([p.label for p, _ in pooled_parts])
            prob = np.concatenate([p.prob for p, _ in pooled_parts])
            hp = np.concatenate([h for _, h in pooled_parts])
            out["pooled"] = _metrics(Predictions([], np.array([]), y, prob), names, None, ci,
                                     auc_method, alpha, hard=hp)
            out["pooled"]["confusion_matrix_sum"] = out["pooled"]["confusion_matrix"]
            ids = [c for p, _ in pooled_parts for c in p.case_id]
            if len(set(ids)) < len(ids):
                _drop_cis(out["pooled"])
                out["pooled"]["note"] = (
                    f"{len(ids)} test predictions of {len(set(ids))} distinct cases: repeats "
                    "share test cases, so pooled figures are descriptive only (no CI)")
        models_out[model] = out

    paired = _paired_all(loaded, hard, alpha, warnings)
    _sample_warnings(models_out, task, warnings)
    split_info = {"unit": config.split_unit, "warnings": list(config.split_warnings)}
    warnings[:0] = [w for w in split_info["warnings"] if w not in warnings]
    levels: dict[str, Any] = {}
    if task == "binary":
        from .levels import evaluate_levels

        n_views = len(config.views) or None
        levels = evaluate_levels(run_dir, loaded, found, rule, ci, alpha, n_views=n_views)
        for model, lv in levels.items():
            models_out.setdefault(model, {})["levels"] = lv
    result = {
        "schema": SCHEMA,
        "task": task,
        "class_names": names,
        "positive_class": names[1] if task == "binary" else None,
        "settings": {"threshold_rule": rule if task == "binary" else "argmax",
                     "operating_threshold_rule": operating if task == "binary" else "argmax",
                     "proportion_ci": ci, "auc_ci": auc_method,
                     "auc_ci_also": "bootstrap (2000 stratified replicates, seed = repeat)",
                     "alpha": alpha,
                     "sd": "sample standard deviation across repeats (ddof=1)",
                     "paired_tests": PAIRED_METHOD},
        "split": split_info,
        "data": data,
        "models": models_out,
        "paired": paired,
        "warnings": warnings,
    }
    target = metrics_path(run_dir, rule, operating)
    result["written_to"] = target.name
    if write:
        write_metrics(target, result)
    return result


PAIRED_METHOD = (
    "per repeat: exact McNemar and paired DeLong on that repeat's test cases; across "
    "repeats: the per-repeat p-values are listed, never pooled (repeats share test cases, "
    "so a pooled test would count a case once per repeat). When every repeat has the same "
    "test cases, 'averaged' adds one paired DeLong test on each case's probability averaged "
    "over repeats: every case counted once.")


def _drop_cis(figures: dict[str, Any]) -> None:
    for value in figures.values():
        if isinstance(value, dict) and "ci_low" in value:
            value["ci_low"] = value["ci_high"] = None
            value["method"] = "not computed: repeats share test cases"
        elif isinstance(value, dict):
            _drop_cis(value)


def _paired_all(loaded: dict[str, dict[int, Predictions]],
                hard: dict[tuple[str, int], np.ndarray], alpha: float,
                warnings: list[str]) -> list[dict[str, Any]]:
    out = []
    for a, b in itertools.combinations(loaded, 2):
        per_rep: dict[str, Any] = {}
        for r in sorted(set(loaded[a]) & set(loaded[b])):
            if (a, r) not in hard or (b, r) not in hard:
                continue
            ta, tb = loaded[a][r].subset("test"), loaded[b][r].subset("test")
            ia = {c: i for i, c in enumerate(ta.case_id)}
            ib = {c: i for i, c in enumerate(tb.case_id)}
            common = [c for c in ta.case_id if c in ib]
            if not common:
                continue
            xa = np.array([ia[c] for c in common])
            xb = np.array([ib[c] for c in common])
            y = ta.label[xa]
            if not np.array_equal(y, tb.label[xb]):
                warnings.append(f"{a} vs {b} repeat{r}: labels differ on shared cases; "
                                "pair skipped")
                continue
            if len(common) < max(len(ta.case_id), len(tb.case_id)):
                warnings.append(f"{a} vs {b} repeat{r}: compared on the {len(common)} "
                                "shared test cases only")
            parts = (y, ta.prob[xa], tb.prob[xb], hard[(a, r)][xa], hard[(b, r)][xb])
            per_rep[f"repeat{r}"] = _paired(*parts, alpha)
        if not per_rep:
            continue
        entry: dict[str, Any] = {"model_a": a, "model_b": b, "repeats": per_rep}
        first = next(iter(per_rep.values()))
        summ: dict[str, Any] = {}
        for test_name in first["mcnemar"]:
            summ[f"mcnemar_{test_name}"] = _p_summary(
                [v["mcnemar"][test_name]["p_value"] for v in per_rep.values()], alpha)
        if "delong" in first:
            summ["delong_auc"] = _p_summary(
                [v["delong"]["p_value"] for v in per_rep.values()], alpha)
        entry["across_repeats"] = summ
        averaged = _averaged_delong(loaded, a, b, sorted(int(k[6:]) for k in per_rep), alpha)
        if averaged is not None:
            entry["averaged"] = averaged
        out.append(entry)
    return out


def _averaged_delong(loaded: dict[str, dict[int, Predictions]], a: str, b: str,
                     repeats: list[int], alpha: float) -> dict[str, Any] | None:
    """Paired DeLong on repeat-averaged probabilities, when all repeats share one test set."""
    if len(repeats) < 2:
        return None
    tests_a = [loaded[a][r].subset("test") for r in repeats]
    tests_b = [loaded[b][r].subset("test") for r in repeats]
    ids = sorted(tests_a[0].case_id)
    if any(sorted(t.case_id) != ids for t in tests_a + tests_b) or tests_a[0].k != 2:
        return None

    def mean_prob(tests: list[Predictions]) -> tuple[np.ndarray, np.ndarray]:
        rows = [{c: i for i, c in enumerate(t.case_id)} for t in tests]
        p = np.mean([[t.prob[ix[c], 1] for c in ids] for t, ix in zip(tests, rows)], axis=0)
        y = np.array([tests[0].label[rows[0][c]] for c in ids])
        return y, p

    y, pa = mean_prob(tests_a)
    _, pb = mean_prob(tests_b)
    res = delong_paired(y, pa, pb, alpha)
    return {"n_cases": len(ids), "n_repeats": len(repeats),
            "method": "paired DeLong on each test case's probability averaged over repeats",
            "delong": res}


def _zero_width_auc(what: str, value: float) -> str:
    """Why an AUC interval has zero width, said truthfully: perfect (or perfectly inverted)
    ranking only at 1 (or 0); otherwise too few test cases for the interval to vary."""
    if value in (0.0, 1.0):
        why = "perfect separation" if value == 1.0 else "a perfectly inverted ranking"
        return (f"{what}: AUC {value:.3f} with a zero-width CI ({why}); the interval "
                "understates the uncertainty")
    return (f"{what}: AUC {value:.3f} with a zero-width CI: too few test cases per class for "
            "the interval to vary; it understates the uncertainty")


def _sample_warnings(models: dict[str, Any], task: str, warnings: list[str]) -> None:
    seen: set[Any] = set()
    for model, m in models.items():
        for rep, e in m["repeats"].items():
            t = e.get("test")
            if not t:
                continue
            auc = t.get("auc") or t.get("macro_auc") or {}
            if (auc.get("value") is not None and auc.get("ci_low") == auc.get("ci_high")
                    and model not in seen):
                seen.add(model)
                warnings.append(_zero_width_auc(f"{model} {rep}", float(auc["value"])))
            key = (rep, t["n"])
            if key in seen:
                continue
            seen.add(key)
            if t["n"] < SMALL_TEST:
                warnings.append(f"{rep}: only {t['n']} test cases; CIs are wide and "
                                "differences between models are hard to establish")
            if task == "binary" and min(t["n_pos"], t["n_neg"]) < SMALL_CLASS:
                warnings.append(f"{rep}: {t['n_pos']} positive / {t['n_neg']} negative test "
                                "cases; sensitivity or specificity rests on very few cases")
        if len(m["repeats"]) < 2:
            warnings.append(f"{model}: a single repeat; no spread across repeats")
