"""Paired comparisons of two models on the same cases.

* ``mcnemar_exact``: exact McNemar test (binomial test on the discordant pairs), the
  exact form of the seed paper's "χ² test of paired comparison". Applied to all cases it
  compares accuracy; restricted to positives, sensitivity; to negatives, specificity.
* ``delong_paired``: DeLong test for two correlated AUCs (same cases, two scores).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from .metrics import ALPHA, fast_delong


def mcnemar_exact(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> dict[str, Any]:
    """Exact McNemar test on paired correctness.

    ``b`` = A right and B wrong, ``c`` = A wrong and B right; p is the two-sided binomial
    probability of a split at least as uneven as (b, c) under p = 1/2 (statsmodels
    ``mcnemar(table, exact=True)``). No discordant pairs gives p = 1.
    """
    from statsmodels.stats.contingency_tables import mcnemar

    a = np.asarray(correct_a, dtype=bool)
    b_ = np.asarray(correct_b, dtype=bool)
    if a.shape != b_.shape:
        raise ValueError("correct_a and correct_b must have the same length")
    both = int((a & b_).sum())
    b = int((a & ~b_).sum())
    c = int((~a & b_).sum())
    neither = int((~a & ~b_).sum())
    out: dict[str, Any] = {
        "n": int(len(a)), "both_correct": both, "a_only": b, "b_only": c, "neither": neither,
        "n_discordant": b + c,
        "acc_a": float(a.mean()) if len(a) else None,
        "acc_b": float(b_.mean()) if len(a) else None,
        "method": "exact McNemar (two-sided binomial on discordant pairs)",
    }
    if b + c == 0:
        out.update(statistic=0.0, p_value=1.0)
        return out
    res = mcnemar([[both, b], [c, neither]], exact=True)
    out.update(statistic=float(res.statistic), p_value=float(min(1.0, res.pvalue)))
    return out


def delong_paired(y: Sequence[int], prob_a: Sequence[float], prob_b: Sequence[float],
                  alpha: float = ALPHA) -> dict[str, Any]:
    """DeLong test of AUC(A) = AUC(B) on the same cases.

    z = (AUC_A - AUC_B) / sqrt(Var_A + Var_B - 2 Cov_AB), two-sided normal p; also a
    (1-alpha) CI for the difference. Undefined (``None``) when y has one class only.
    """
    y = np.asarray(y).astype(int)
    s = np.vstack([np.asarray(prob_a, float), np.asarray(prob_b, float)])
    out: dict[str, Any] = {"n": int(len(y)), "n_pos": int((y == 1).sum()),
                           "n_neg": int((y == 0).sum()), "method": "DeLong (paired AUCs)"}
    if out["n_pos"] == 0 or out["n_neg"] == 0:
        out.update(auc_a=None, auc_b=None, difference=None, se=None, z=None, p_value=None,
                   ci_low=None, ci_high=None)
        return out
    aucs, cov = fast_delong(y, s)
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    se = math.sqrt(max(var, 0.0))
    zc = stats.norm.ppf(1 - alpha / 2)
    if se <= 1e-15:
        z, p = (0.0, 1.0) if abs(diff) < 1e-15 else (math.copysign(math.inf, diff), 0.0)
    else:
        z = diff / se
        p = float(2 * stats.norm.sf(abs(z)))
    out.update(auc_a=float(aucs[0]), auc_b=float(aucs[1]), difference=diff, se=se,
               z=float(z), p_value=p, ci_low=float(diff - zc * se),
               ci_high=float(diff + zc * se))
    return out


delong_test = delong_paired  # name used in docs/architecture.md
