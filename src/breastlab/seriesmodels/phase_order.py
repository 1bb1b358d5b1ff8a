"""Header-free DCE phase ordering: label the phases of one exam from their enhancement.

Given several co-registered volumes (or slices) of one dynamic series, with no
header that says which came first, the physiology of contrast uptake orders them:

1. **Pre-contrast** has the lowest signal in the tissue that enhances. The voxels
   that change most over the phases are found without knowing which phase is the
   baseline (highest temporal standard deviation inside the tissue mask); the
   phase with the lowest upper-percentile signal in them is pre-contrast.
2. **Post-contrast phases are ordered by a "contrast clock"**: in the first minutes
   after injection the bulk of enhancing tissue (fibroglandular parenchyma) keeps
   gaining signal, while the strongest enhancers (vessels, malignant lesions) peak
   early and may wash out. The clock therefore reads the *bulk*: voxels whose peak
   enhancement lies between the 50th and 95th percentile inside the body (``clock_band``).
   For two post phases A and B, the fraction of those voxels brighter in B than in A
   is the vote that B is later; phases are ranked by their votes (Copeland score). The
   first post phase is labelled ``DCE_early``, the rest ``DCE_delayed``.
3. **Two cues are reported beside it** (not used for the label unless asked):
   *lesion peak*, the phase where the 0.1% most enhancing voxels peak (malignant
   lesions peak early, then plateau or wash out); and *heterogeneity*, the phase with
   the largest coefficient of variation of enhancement (early enhancement is patchy,
   later it evens out).

Confidence is the weakest of the pre margin and the clock margin, mapped to [0, 1].
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from breastlab.core.labels import DCE_LABELS

PRE, EARLY, DELAYED = DCE_LABELS


@dataclass
class PhaseOrder:
    """Result of :func:`order_phases` for ``n`` input volumes."""

    order: list[int]  # input indices, earliest first
    labels: list[str]  # label of each *input* volume (same order as the input)
    rank: list[int]  # 0 = pre, 1 = first post, ... for each input volume
    confidence: float  # 0..1
    details: dict[str, Any] = field(default_factory=dict)


def _tissue_mask(stack: np.ndarray) -> np.ndarray:
    """Voxels inside the body: temporal mean above 10% of its 99th percentile."""
    mean = stack.mean(axis=0)
    top = float(np.percentile(mean, 99))
    if top <= 0:
        return np.ones(mean.shape, dtype=bool)
    return mean > 0.1 * top


def _top_fraction(values: np.ndarray, mask: np.ndarray, fraction: float, minimum: int = 20) -> np.ndarray:
    """Boolean mask of the top ``fraction`` of ``values`` inside ``mask`` (at least ``minimum`` voxels)."""
    inside = values[mask]
    if inside.size == 0:
        return mask.copy()
    k = max(minimum, int(round(fraction * inside.size)))
    k = min(k, inside.size)
    threshold = np.partition(inside, inside.size - k)[inside.size - k]
    return mask & (values >= threshold)


def order_phases(
    volumes: Sequence[np.ndarray],
    *,
    variance_fraction: float = 0.05,
    pre_percentile: float = 90.0,
    lesion_fraction: float = 0.001,
    clock_band: tuple[float, float] = (50.0, 95.0),
    n_early: int = 1,
    early_by: str = "clock",
) -> PhaseOrder:
    """Order the DCE phases of one exam from pixel data alone.

    ``volumes`` are arrays of one shape (3D volumes or 2D slices at one position), one per
    phase, in any order. ``early_by`` is ``"clock"`` (default: the first post phase by the
    contrast clock is early) or ``"lesion"`` (the phase where the top-enhancing voxels peak
    is early). Returns labels for each input in the input order.
    """
    if len(volumes) < 2:
        raise ValueError("phase ordering needs at least two volumes of one exam")
    shapes = {np.shape(v) for v in volumes}
    if len(shapes) != 1:
        raise ValueError(f"volumes differ in shape: {sorted(shapes)}")
    stack = np.stack([np.asarray(v, dtype=np.float64) for v in volumes])
    n = stack.shape[0]
    tissue = _tissue_mask(stack)

    # 1. pre-contrast: lowest upper-percentile signal in the most variable voxels
    variability = stack.std(axis=0)
    changing = _top_fraction(variability, tissue, variance_fraction)
    pre_scores = np.array([np.percentile(stack[t][changing], pre_percentile) for t in range(n)])
    pre = int(np.argmin(pre_scores))
    sorted_scores = np.sort(pre_scores)
    pre_margin = float((sorted_scores[1] - sorted_scores[0]) / max(abs(sorted_scores[1]), 1e-9))

    # 2. enhancement over pre; the clock reads the bulk of enhancing tissue (clock_band percentiles)
    post = [t for t in range(n) if t != pre]
    enhancement = stack[post] - stack[pre]
    peak = enhancement.max(axis=0)
    lo, hi = np.percentile(peak[tissue], clock_band) if tissue.any() else (0.0, np.inf)
    enhancing = tissue & (peak >= lo) & (peak <= hi)
    if enhancing.sum() < 20:
        enhancing = _top_fraction(peak, tissue, variance_fraction)

    votes = np.zeros((len(post), len(post)))  # votes[i, j]: fraction where post i is later than post j
    for i in range(len(post)):
        for j in range(len(post)):
            if i != j:
                later = enhancement[i][enhancing] > enhancement[j][enhancing]
                votes[i, j] = float(later.mean())
    if len(post) > 1:
        wins = votes > votes.T
        copeland = wins.sum(axis=1) + 0.5 * ((votes == votes.T).sum(axis=1) - 1)
        soft = votes.sum(axis=1)
        post_order = [post[i] for i in sorted(range(len(post)), key=lambda i: (copeland[i], soft[i]))]
        pair_margins = [abs(votes[i, j] - votes[j, i]) / max(votes[i, j] + votes[j, i], 1e-9)
                        for i in range(len(post)) for j in range(i + 1, len(post))]
        clock_margin = float(min(pair_margins))
    else:
        post_order = post
        clock_margin = 0.0

    # 3. lesion-peak cue: where the top-enhancing voxels peak
    lesion = _top_fraction(peak, tissue, lesion_fraction)
    lesion_means = {post[i]: float(stack[post[i]][lesion].mean()) for i in range(len(post))}
    lesion_peak = max(lesion_means, key=lesion_means.get)

    # heterogeneity cue: coefficient of variation of enhancement in the upper half of enhancers
    upper = tissue & (peak >= np.percentile(peak[tissue], 50)) if tissue.any() else tissue
    cv = {post[i]: float(enhancement[i][upper].std() / max(abs(enhancement[i][upper].mean()), 1e-9))
          for i in range(len(post))}
    most_patchy = max(cv, key=cv.get)

    if early_by == "lesion" and len(post) > 1:
        rest = [t for t in post_order if t != lesion_peak]
        post_order = [lesion_peak] + rest
    elif early_by != "clock":
        raise ValueError("early_by must be 'clock' or 'lesion'")

    order = [pre] + post_order
    rank = [order.index(t) for t in range(n)]
    labels = [PRE if r == 0 else (EARLY if r <= n_early else DELAYED) for r in rank]

    pre_conf = min(1.0, pre_margin / 0.2)  # a 20% gap in enhancing-tissue signal is certain
    clock_conf = min(1.0, clock_margin / 0.2) if len(post) > 1 else 0.5
    confidence = float(min(pre_conf, clock_conf))
    details = {
        "pre_scores": [float(s) for s in pre_scores],
        "pre_margin": pre_margin,
        "clock_votes": {f"{post[i]}>{post[j]}": float(votes[i, j])
                        for i in range(len(post)) for j in range(len(post)) if i != j},
        "clock_margin": clock_margin,
        "lesion_means": {str(k): v for k, v in lesion_means.items()},
        "lesion_peak": int(lesion_peak),
        "lesion_agrees": bool(len(post) < 2 or lesion_peak == post_order[0]),
        "heterogeneity_cv": {str(k): v for k, v in cv.items()},
        "heterogeneity_agrees": bool(len(post) < 2 or most_patchy == post_order[0]),
        "n_enhancing_voxels": int(enhancing.sum()),
    }
    return PhaseOrder(order=order, labels=labels, rank=rank, confidence=confidence, details=details)


def order_by_position(volumes: Sequence[np.ndarray], **kwargs: Any) -> list[PhaseOrder]:
    """Slice-level relative ordering: order the co-located slices of each position independently.

    ``volumes`` are 3D arrays (slices first). This is the "several phases of one slice"
    baseline reported beside the exam-level result.
    """
    n_slices = np.shape(volumes[0])[0]
    return [order_phases([v[z] for v in volumes], **kwargs) for z in range(n_slices)]
