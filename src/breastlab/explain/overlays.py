"""Grad-CAM overlays as PNG: one row per case, one panel per view.

Each panel shows the preprocessed view in grey with the heat map (``jet``, alpha
scaled by the map so cold regions stay readable) and a title with the view name and
its attribution share; the row title gives the case id, the explained class, the
probability of the positive class and the true label when known. Matplotlib's
object-oriented API with the Agg canvas is used (no pyplot state, thread-safe).
"""
from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from breastlab.core import atomic

from .gradcam import Explanation


def _figure(n_rows: int, n_cols: int, size: float = 2.4):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size * n_cols, size * n_rows + 0.5 * n_rows), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _row_title(e: Explanation, class_names: Sequence[str] | None) -> str:
    names = list(class_names) if class_names else [str(i) for i in range(len(e.prob))]
    tgt = names[e.target] if e.target < len(names) else str(e.target)
    if len(e.prob) == 2:
        p = f"P({names[1]}) = {e.prob[1]:.2f}"
    else:
        p = f"P({tgt}) = {e.prob[e.target]:.2f}"
    truth = ""
    if e.label is not None and 0 <= e.label < len(names):
        ok = "correct" if int(np.argmax(e.prob)) == e.label else "wrong"
        truth = f" | truth: {names[e.label]}"
        if len(e.prob) != 2:
            truth += f" ({ok})"
    return f"case {e.case_id} | explains: {tgt} | {p}{truth}"


def overlay_png(explanations: Sequence[Explanation], class_names: Sequence[str] | None = None,
                *, alpha: float = 0.5, panel_size: float = 2.4,
                titles: Sequence[str] | None = None) -> bytes:
    """PNG bytes: one row per explanation, one column per view."""
    if not explanations:
        raise ValueError("no explanations to draw")
    n_cols = max(len(e.views) for e in explanations)
    fig = _figure(len(explanations), n_cols, panel_size)
    subfigs = fig.subfigures(len(explanations), 1, squeeze=False)[:, 0]
    for r, (e, sub) in enumerate(zip(explanations, subfigs)):
        sub.suptitle(titles[r] if titles else _row_title(e, class_names), fontsize=9)
        axes = sub.subplots(1, n_cols, squeeze=False)[0]
        top = int(np.argmax(e.shares))
        for c, ax in enumerate(axes):
            ax.set_axis_off()
            if c >= len(e.views):
                continue
            img = e.image[c]
            lo, hi = np.percentile(img, [1, 99])
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1)
            heat = np.clip(e.cam[c], 0, 1)
            rgba_alpha = alpha * heat
            ax.imshow(heat, cmap="jet", vmin=0, vmax=1, alpha=rgba_alpha)
            star = " ★" if c == top and len(e.views) > 1 else ""
            ax.set_title(f"{e.views[c]}  {100 * e.shares[c]:.0f}%{star}", fontsize=8,
                         fontweight="bold" if star else "normal")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def save_overlay(path: str | os.PathLike, explanations: Explanation | Sequence[Explanation],
                 class_names: Sequence[str] | None = None, **kwargs) -> Path:
    """Write the overlay PNG of one case (or a few, one row each) atomically."""
    if isinstance(explanations, Explanation):
        explanations = [explanations]
    return atomic.write_bytes(path, overlay_png(explanations, class_names, **kwargs))
