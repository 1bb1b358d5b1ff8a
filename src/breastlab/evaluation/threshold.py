"""Operating threshold, chosen on validation data only (never on test).

Rules (``rule`` strings, as accepted by the CLI and ``evaluate_run``):

* ``"youden"`` (default): maximise Youden's J = sensitivity + specificity - 1 on val.
  Ties go to the higher sensitivity (a missed cancer costs more than a recall).
* ``"sensitivity>=0.9"`` (any x in (0, 1]): the highest threshold whose val sensitivity
  is at least x, i.e. the best specificity under that constraint.
* ``"fixed"`` / ``"0.5"`` / ``"fixed:0.3"``: a fixed threshold, no data used.

A case is called positive when ``prob >= threshold``. A data-driven threshold is placed
half-way between the chosen val score and the next lower distinct val score: the val
classification is the same as cutting at the score itself, and a test score equal to
neither is not decided by an arbitrary tie.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_RULE = "youden"
_SENS = re.compile(r"^(?:sens|sensitivity)\s*>=?\s*([0-9.]+)$")


def _rates(y: np.ndarray, p: np.ndarray, thr: float) -> tuple[float, float]:
    pred = p >= thr
    pos, neg = y == 1, y == 0
    sens = float(pred[pos].mean()) if pos.any() else float("nan")
    spec = float((~pred[neg]).mean()) if neg.any() else float("nan")
    return sens, spec


def _candidates(p: np.ndarray) -> np.ndarray:
    """Cut points between adjacent distinct scores, plus one above the maximum
    (everything negative) and one at/below the minimum (everything positive)."""
    u = np.unique(p)[::-1]                      # descending distinct scores
    mids = (u[:-1] + u[1:]) / 2.0               # between u[i] and u[i+1]
    top = np.nextafter(u[0], np.inf)            # nothing called positive
    return np.r_[top, mids, u[-1]]              # last: everything positive


def choose_threshold(y_val: Sequence[int], prob_val: Sequence[float],
                     rule: str = DEFAULT_RULE) -> dict[str, Any]:
    """Pick the operating threshold on validation data.

    Returns ``{threshold, rule, rationale, val_sensitivity, val_specificity, val_youden,
    n_val, n_val_pos, n_val_neg}``. Falls back to 0.5 (and says so) when val has no
    cases or only one class.
    """
    y = np.asarray(y_val).astype(int)
    p = np.asarray(prob_val, dtype=float)
    rule_l = rule.strip().lower()
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    base = {"rule": rule, "n_val": int(len(y)), "n_val_pos": n_pos, "n_val_neg": n_neg}

    def done(thr: float, why: str) -> dict[str, Any]:
        sens, spec = _rates(y, p, thr) if len(y) else (float("nan"), float("nan"))
        out = dict(base, threshold=float(thr), rationale=why,
                   val_sensitivity=None if np.isnan(sens) else sens,
                   val_specificity=None if np.isnan(spec) else spec)
        out["val_youden"] = (None if out["val_sensitivity"] is None
                             or out["val_specificity"] is None
                             else out["val_sensitivity"] + out["val_specificity"] - 1)
        return out

    fixed = _parse_fixed(rule_l)
    if fixed is not None:
        return done(fixed, f"fixed threshold {fixed:g} (not tuned on data)")
    if n_pos == 0 or n_neg == 0:
        return done(0.5, "validation set lacks one of the classes; fell back to 0.5")

    cands = _candidates(p)
    pos_s, neg_s = np.sort(p[y == 1]), np.sort(p[y == 0])
    sens = 1.0 - np.searchsorted(pos_s, cands, side="left") / n_pos   # P(p >= t | pos)
    spec = np.searchsorted(neg_s, cands, side="left") / n_neg         # P(p < t | neg)
    rates = np.c_[sens, spec]
    if rule_l == "youden":
        j = rates[:, 0] + rates[:, 1] - 1
        best = np.flatnonzero(np.isclose(j, j.max()))
        i = best[np.argmax(rates[best, 0])]               # ties: higher sensitivity
        return done(cands[i], f"maximises Youden's J on validation "
                              f"(J = {j[i]:.3f}, n = {len(y)})")
    m = _SENS.match(rule_l)
    if m:
        target = float(m.group(1))
        if not 0 < target <= 1:
            raise ValueError(f"sensitivity target must be in (0, 1]: {rule!r}")
        ok = np.flatnonzero(rates[:, 0] >= target - 1e-12)
        i = ok[0]                                          # highest threshold meeting it
        return done(cands[i], f"highest threshold with validation sensitivity >= "
                              f"{target:g} (specificity {rates[i, 1]:.3f}, n = {len(y)})")
    raise ValueError(f"unknown threshold rule {rule!r}: use 'youden', "
                     "'sensitivity>=0.9' or 'fixed:0.5'")


def _parse_fixed(rule: str) -> float | None:
    if rule == "fixed":
        return 0.5
    text = rule[len("fixed:"):] if rule.startswith("fixed:") else rule
    try:
        value = float(text)
    except ValueError:
        return None
    if not 0 <= value <= 1:
        raise ValueError(f"fixed threshold must be in [0, 1]: {rule!r}")
    return value


def parse_rule(rule: str) -> str:
    """Check a threshold rule before any work; returns it normalised, raises ValueError."""
    rule_l = rule.strip().lower()
    if rule_l == "youden" or _parse_fixed(rule_l) is not None:
        return rule_l
    m = _SENS.match(rule_l)
    if m and 0 < float(m.group(1)) <= 1:
        return rule_l
    raise ValueError(f"unknown threshold rule {rule!r}: use 'youden', 'sensitivity>=0.9', "
                     "'fixed:0.5' or a number in [0, 1]")
