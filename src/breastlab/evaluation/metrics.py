"""Classification metrics, each with a 95% confidence interval.

Every figure is a small dict ``{value, ci_low, ci_high, method, n}`` (proportions
also carry ``k``, the count of successes), so tables, JSON and the HTML report all
read the same shape.

* Proportions (accuracy, sensitivity, specificity, PPV, NPV, per-class accuracy):
  Wilson score interval (default) or Clopper-Pearson exact interval, both through
  ``statsmodels.stats.proportion.proportion_confint``.
* AUC: DeLong variance (the fast algorithm of Sun & Xu 2014, implemented here) or a
  stratified percentile bootstrap.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

ALPHA = 0.05
_CI_METHODS = {"wilson": "wilson", "exact": "beta", "clopper-pearson": "beta", "beta": "beta"}


def _nan_to_none(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def figure(value: float | None, lo: float | None, hi: float | None, method: str, n: int,
           **extra: Any) -> dict[str, Any]:
    """The common metric shape (NaN becomes ``None`` so it survives JSON)."""
    out = {"value": _nan_to_none(value), "ci_low": _nan_to_none(lo),
           "ci_high": _nan_to_none(hi), "method": method, "n": int(n)}
    out.update(extra)
    return out


# --------------------------------------------------------------------------- proportions
def proportion_ci(k: int, n: int, method: str = "wilson", alpha: float = ALPHA) -> dict[str, Any]:
    """``k`` successes out of ``n`` with a (1-alpha) CI.

    ``method``: ``"wilson"`` (score interval) or ``"exact"`` (Clopper-Pearson).
    ``n == 0`` gives ``value=None`` (undefined, e.g. specificity with no negatives).
    """
    from statsmodels.stats.proportion import proportion_confint

    key = method.lower()
    if key not in _CI_METHODS:
        raise ValueError(f"unknown proportion CI method {method!r}; use 'wilson' or 'exact'")
    name = "Wilson" if _CI_METHODS[key] == "wilson" else "Clopper-Pearson exact"
    k, n = int(k), int(n)
    if n == 0:
        return figure(None, None, None, name, 0, k=0)
    lo, hi = proportion_confint(k, n, alpha=alpha, method=_CI_METHODS[key])
    lo = 0.0 if k == 0 else max(0.0, float(lo))     # exact bounds (rounding aside)
    hi = 1.0 if k == n else min(1.0, float(hi))
    return figure(k / n, lo, hi, name, n, k=k)


# --------------------------------------------------------------------------- AUC
def _midrank(x: np.ndarray) -> np.ndarray:
    """Mid-ranks (ties get the average rank), 1-based."""
    return stats.rankdata(x, method="average")


def fast_delong(y: Sequence[int], scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their DeLong covariance matrix for one or more score vectors.

    Fast DeLong (Sun X, Xu W. "Fast implementation of DeLong's algorithm for comparing
    the areas under correlated receiver operating characteristic curves." IEEE Signal
    Processing Letters 2014;21(11):1389-93), written here because no well-kept Python
    library provides DeLong (scikit-learn and statsmodels do not). Structural
    components: V10(x_i) = mean_j psi(x_i, y_j) over negatives y_j for each positive
    x_i, V01(y_j) = mean_i psi(x_i, y_j); psi = 1 if x > y, 1/2 if tied, 0 otherwise.
    Var(AUC) = S10/m + S01/n with S the sample (co)variances of the components.

    ``scores``: shape ``[N]`` or ``[k, N]``. Returns ``(aucs[k], cov[k, k])``.
    """
    y = np.asarray(y).astype(int).ravel()
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    pos, neg = y == 1, y == 0
    m, n = int(pos.sum()), int(neg.sum())
    if m == 0 or n == 0:
        raise ValueError("AUC needs at least one positive and one negative case")
    k = s.shape[0]
    x, yy = s[:, pos], s[:, neg]
    tx = np.stack([_midrank(x[r]) for r in range(k)])          # ranks within positives
    ty = np.stack([_midrank(yy[r]) for r in range(k)])         # ranks within negatives
    tz = np.stack([_midrank(np.concatenate([x[r], yy[r]])) for r in range(k)])  # joint
    aucs = (tz[:, :m].sum(axis=1) / m - (m + 1) / 2.0) / n
    v10 = (tz[:, :m] - tx) / n          # per positive: fraction of negatives below it
    v01 = 1.0 - (tz[:, m:] - ty) / m    # per negative: fraction of positives above it
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((k, k))
    s01 = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((k, k))
    return aucs, s10 / m + s01 / n


def auc_point(y: Sequence[int], score: Sequence[float]) -> float:
    """Mann-Whitney AUC (equal to sklearn.metrics.roc_auc_score)."""
    y = np.asarray(y).astype(int)
    s = np.asarray(score, dtype=float)
    m, n = int((y == 1).sum()), int((y == 0).sum())
    if m == 0 or n == 0:
        return float("nan")
    r = _midrank(s)
    return float((r[y == 1].sum() - m * (m + 1) / 2.0) / (m * n))


def _bootstrap_auc(y: np.ndarray, s: np.ndarray, n_boot: int, alpha: float,
                   seed: int) -> tuple[float, float]:
    """Stratified percentile bootstrap (positives and negatives resampled separately)."""
    rng = np.random.default_rng(seed)
    pi, ni = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    m, n = len(pi), len(ni)
    vals = np.empty(n_boot)
    chunk = max(1, 2_000_000 // max(m + n, 1))  # bounded memory for large test sets
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        # the same draws, in the same order, as one replicate at a time would make
        idx = np.stack([np.r_[rng.choice(pi, m), rng.choice(ni, n)] for _ in range(b)])
        ranks = stats.rankdata(s[idx], axis=1)  # midranks: ties count one half
        vals[start:start + b] = (ranks[:, :m].sum(axis=1) - m * (m + 1) / 2.0) / (m * n)
    return float(np.quantile(vals, alpha / 2)), float(np.quantile(vals, 1 - alpha / 2))


def auc_ci(y: Sequence[int], score: Sequence[float], method: str = "delong",
           alpha: float = ALPHA, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """AUC with a CI: ``"delong"`` (normal approximation, clipped to [0, 1]) or
    ``"bootstrap"`` (stratified percentile). Undefined (``None``) with one class only."""
    y = np.asarray(y).astype(int)
    s = np.asarray(score, dtype=float)
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    extra = {"n_pos": n_pos, "n_neg": n_neg}
    if n_pos == 0 or n_neg == 0:
        return figure(None, None, None, method, len(y), **extra)
    if method == "delong":
        aucs, cov = fast_delong(y, s)
        auc, se = float(aucs[0]), math.sqrt(max(float(cov[0, 0]), 0.0))
        z = stats.norm.ppf(1 - alpha / 2)
        return figure(auc, max(0.0, auc - z * se), min(1.0, auc + z * se), "DeLong",
                      len(y), se=se, **extra)
    if method == "bootstrap":
        lo, hi = _bootstrap_auc(y, s, n_boot, alpha, seed)
        return figure(auc_point(y, s), lo, hi, f"bootstrap ({n_boot}, stratified percentile)",
                      len(y), **extra)
    raise ValueError(f"unknown AUC CI method {method!r}; use 'delong' or 'bootstrap'")


# --------------------------------------------------------------------------- confusion
def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], k: int) -> np.ndarray:
    """``[k, k]`` counts; rows = true class, columns = predicted class."""
    cm = np.zeros((k, k), dtype=int)
    for t, p in zip(np.asarray(y_true, int), np.asarray(y_pred, int)):
        cm[t, p] += 1
    return cm


def binary_metrics(y: Sequence[int], prob: Sequence[float], threshold: float | None = 0.5, *,
                   ci: str = "wilson", auc_method: str = "delong", alpha: float = ALPHA,
                   n_boot: int = 2000, seed: int = 0,
                   pred: Sequence[int] | None = None) -> dict[str, Any]:
    """Accuracy, sensitivity, specificity, PPV, NPV and AUC with CIs.

    ``prob`` is P(class 1 = malignant); a case is called positive when
    ``prob >= threshold`` (or as given by ``pred``, e.g. pooled repeats that each had
    their own threshold; ``threshold`` is then reported as ``None``). Also returns the
    confusion matrix ``[[TN, FP], [FN, TP]]`` (rows true, columns predicted) and counts.
    """
    y = np.asarray(y).astype(int)
    p = np.asarray(prob, dtype=float)
    if y.shape != p.shape:
        raise ValueError("y and prob must have the same length")
    if not set(np.unique(y)).issubset({0, 1}):
        raise ValueError("binary labels must be 0/1")
    if pred is None:
        pred = (p >= threshold).astype(int)
    else:
        pred = np.asarray(pred).astype(int)
        threshold = None
    tp = int(((pred == 1) & (y == 1)).sum())
    tn = int(((pred == 0) & (y == 0)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    n = len(y)
    return {
        "accuracy": proportion_ci(tp + tn, n, ci, alpha),
        "sensitivity": proportion_ci(tp, tp + fn, ci, alpha),
        "specificity": proportion_ci(tn, tn + fp, ci, alpha),
        "ppv": proportion_ci(tp, tp + fp, ci, alpha),
        "npv": proportion_ci(tn, tn + fn, ci, alpha),
        "auc": auc_ci(y, p, auc_method, alpha, n_boot=n_boot, seed=seed),
        "threshold": None if threshold is None else float(threshold),
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "n": n, "n_pos": tp + fn, "n_neg": tn + fp,
    }


def _as_pred_and_prob(y: np.ndarray, prob_or_pred: Any, k: int | None
                      ) -> tuple[np.ndarray, np.ndarray | None, int]:
    arr = np.asarray(prob_or_pred)
    if arr.ndim == 2:
        k = arr.shape[1] if k is None else k
        return arr.argmax(axis=1).astype(int), arr.astype(float), k
    pred = arr.astype(int)
    k = k if k is not None else int(max(y.max(initial=0), pred.max(initial=0)) + 1)
    return pred, None, k


def multiclass_metrics(y: Sequence[int], prob_or_pred: Any,
                       class_names: Sequence[str] | None = None, *, ci: str = "wilson",
                       alpha: float = ALPHA, auc_method: str = "delong", n_boot: int = 1000,
                       seed: int = 0) -> dict[str, Any]:
    """Confusion matrix, overall accuracy and per-class accuracy (recall), each with a CI.

    ``prob_or_pred``: ``[N, K]`` probabilities (prediction = argmax) or ``[N]`` predicted
    class indices. With probabilities, one-vs-rest AUC per class (DeLong CI) and the
    macro AUC (mean of the defined per-class AUCs; stratified bootstrap CI) are added.
    This is the seed's MRI sequence-classification format: a confusion matrix, the
    overall accuracy and the accuracy of each class.
    """
    y = np.asarray(y).astype(int)
    k_hint = len(class_names) if class_names is not None else None
    pred, prob, k = _as_pred_and_prob(y, prob_or_pred, k_hint)
    names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for {k} classes")
    cm = confusion_matrix(y, pred, k)
    per_class: dict[str, Any] = {}
    for i, name in enumerate(names):
        row = {
            "accuracy": proportion_ci(cm[i, i], cm[i, :].sum(), ci, alpha),   # recall
            "precision": proportion_ci(cm[i, i], cm[:, i].sum(), ci, alpha),
            "n": int(cm[i, :].sum()),
        }
        if prob is not None:
            row["auc_ovr"] = auc_ci((y == i).astype(int), prob[:, i], auc_method, alpha,
                                    n_boot=n_boot, seed=seed)
        per_class[name] = row
    out: dict[str, Any] = {
        "class_names": names,
        "confusion_matrix": cm.tolist(),
        "accuracy": proportion_ci(int(np.trace(cm)), int(cm.sum()), ci, alpha),
        "per_class": per_class,
        "n": int(len(y)),
    }
    if prob is not None:
        out["macro_auc"] = _macro_auc_ci(y, prob, alpha, n_boot, seed)
    return out


def _macro_auc(y: np.ndarray, prob: np.ndarray) -> float:
    vals = [auc_point((y == i).astype(int), prob[:, i]) for i in range(prob.shape[1])]
    vals = [v for v in vals if not math.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


def _macro_auc_ci(y: np.ndarray, prob: np.ndarray, alpha: float, n_boot: int,
                  seed: int) -> dict[str, Any]:
    value = _macro_auc(y, prob)
    if math.isnan(value):
        return figure(None, None, None, "one-vs-rest macro", len(y))
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)]
    boots = []
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(g, len(g)) for g in groups])
        v = _macro_auc(y[idx], prob[idx])
        if not math.isnan(v):
            boots.append(v)
    lo, hi = (np.quantile(boots, [alpha / 2, 1 - alpha / 2]) if boots else (np.nan, np.nan))
    return figure(value, lo, hi, f"one-vs-rest macro; bootstrap ({n_boot}, stratified)",
                  len(y))


# --------------------------------------------------------------------------- repeats
def _leaves(d: Mapping[str, Any], prefix: str = "") -> dict[str, float | None]:
    """Flatten nested metric dicts to ``{"sensitivity": v, "per_class.ADC.accuracy": v}``."""
    out: dict[str, float | None] = {}
    for key, val in d.items():
        if not isinstance(val, Mapping):
            continue
        path = f"{prefix}{key}"
        if "value" in val and "method" in val:
            out[path] = val["value"]
        else:
            out.update(_leaves(val, path + "."))
    return out


def summarise_repeats(metric_dicts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean ± sd (sample sd, ddof=1) of every figure across repeats.

    Returns ``{path: {mean, sd, n_repeats, values}}``; undefined values (``None``) are
    left out of the mean and the sd (``n_repeats`` counts the defined ones). The sd is
    ``None`` with fewer than two defined values.
    """
    flat = [_leaves(d) for d in metric_dicts]
    keys: list[str] = []
    for f in flat:
        keys.extend(k for k in f if k not in keys)
    out: dict[str, Any] = {}
    for key in keys:
        values = [f.get(key) for f in flat]
        defined = [float(v) for v in values if v is not None]
        out[key] = {
            "mean": float(np.mean(defined)) if defined else None,
            "sd": float(np.std(defined, ddof=1)) if len(defined) > 1 else None,
            "n_repeats": len(defined),
            "values": values,
        }
    return out


def format_figure(fig: Mapping[str, Any] | None, digits: int = 3, percent: bool = False) -> str:
    """``0.800 (0.490–0.943)``; ``n/a`` when undefined."""
    if not fig or fig.get("value") is None:
        return "n/a"
    scale, suffix = (100.0, "%") if percent else (1.0, "")
    d = max(digits - 2, 1) if percent else digits
    v = f"{fig['value'] * scale:.{d}f}{suffix}"
    if fig.get("ci_low") is None:
        return v
    return f"{v} ({fig['ci_low'] * scale:.{d}f}–{fig['ci_high'] * scale:.{d}f})"


def format_mean_sd(summary: Mapping[str, Any] | None, digits: int = 3) -> str:
    if not summary or summary.get("mean") is None:
        return "n/a"
    sd = summary.get("sd")
    return f"{summary['mean']:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")
