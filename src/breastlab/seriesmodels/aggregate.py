"""Slice probabilities → one label per series.

The default is the normalised geometric mean of the slice probabilities (mean of
log-probabilities, then softmax): one confidently wrong slice cannot outvote the rest
unless it is near-certain, and the result stays a probability vector that the
evaluation code reads like any other ``prob_0..prob_{K-1}``. ``"mean"`` (arithmetic
mean) and ``"vote"`` (majority of argmax, ties broken by the mean) are the alternatives.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METHODS = ("logmean", "mean", "vote")
_EPS = 1e-6


def aggregate_probs(probs: np.ndarray, method: str = "logmean") -> np.ndarray:
    """Combine ``[n_slices, K]`` probabilities of one series into one ``[K]`` vector."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"expected [n_slices, K] probabilities, got shape {p.shape}")
    if method == "logmean":
        logp = np.log(np.clip(p, _EPS, 1.0)).mean(axis=0)
        e = np.exp(logp - logp.max())
        return e / e.sum()
    if method == "mean":
        m = p.mean(axis=0)
        return m / m.sum()
    if method == "vote":
        k = p.shape[1]
        counts = np.bincount(p.argmax(axis=1), minlength=k).astype(np.float64)
        mean = p.mean(axis=0)
        winner = int(np.lexsort((mean, counts))[-1])  # most votes, then highest mean
        out = counts / counts.sum()
        # make the winner the argmax even with tied counts
        out[winner] += 1e-9
        return out / out.sum()
    raise ValueError(f"method must be one of {METHODS}, not {method!r}")


def aggregate_by_series(
    probs: np.ndarray,
    series_ids: Sequence[str],
    method: str = "logmean",
) -> tuple[list[str], np.ndarray]:
    """Group ``[N, K]`` slice probabilities by series; returns (series ids in first-seen order, ``[S, K]``)."""
    p = np.asarray(probs)
    if len(series_ids) != len(p):
        raise ValueError("one series id per slice is required")
    order: list[str] = []
    rows: dict[str, list[int]] = {}
    for i, sid in enumerate(series_ids):
        if sid not in rows:
            rows[sid] = []
            order.append(sid)
        rows[sid].append(i)
    out = np.stack([aggregate_probs(p[rows[s]], method) for s in order]) if order else np.zeros((0, p.shape[-1]))
    return order, out
