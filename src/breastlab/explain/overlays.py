"""Grad-CAM overlays as PNG: one row per case, one or two panels per view.

Without the raw images each panel shows the network input (resized, flipped) in grey with
the heat map. With them (``raw=``, from :func:`raw_views`), each view gets two panels side
by side: the image **as stored**, at its own aspect ratio, and the same image with the
heat map mapped back onto it (un-flipped, resized from the network grid); views that were
flipped for the network are marked. The heat map uses ``inferno`` with its own colour bar
(alpha scaled by the map so cold regions stay readable); titles give the view name and its
attribution share; the row title gives the case id, the explained class, the probability
of the positive class and the true label when known. Matplotlib's object-oriented API with
the Agg canvas is used (no pyplot state, thread-safe).
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


MAX_DISPLAY = 512  # raw images are shown at most this many pixels high or wide


def raw_views(paths: Sequence[str | None], views: Sequence[str], *, flip_right: bool = True,
              slice_index: int | None = None) -> tuple[list[np.ndarray | None], list[bool]]:
    """The stored images of a case's views (display-sized) and which were flipped for the
    network (right views when ``flip_right``). Unreadable or blank views are ``None``."""
    from breastlab.multiview.preprocess import load_image, view_laterality

    raws: list[np.ndarray | None] = []
    for path in paths:
        try:
            img = load_image(path, slice_index=slice_index) if path else None
        except ValueError:
            img = None
        if img is not None:
            step = max(1, int(np.ceil(max(img.shape) / MAX_DISPLAY)))
            img = img[::step, ::step]
        raws.append(img)
    flipped = [bool(flip_right) and view_laterality(v) == "R" for v in views]
    return raws, flipped


def _cam_on_raw(cam: np.ndarray, raw: np.ndarray, flipped: bool) -> np.ndarray:
    """The network-grid heat map mapped back onto the stored image (un-flip, resize)."""
    from PIL import Image

    heat = cam[:, ::-1] if flipped else cam
    im = Image.fromarray(np.asarray(heat, dtype=np.float32), mode="F")
    return np.asarray(im.resize((raw.shape[1], raw.shape[0]), Image.BILINEAR))


def _grey(ax, img: np.ndarray) -> None:
    lo, hi = np.percentile(img, [1, 99])
    ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, aspect="equal")


def overlay_png(explanations: Sequence[Explanation], class_names: Sequence[str] | None = None,
                *, alpha: float = 0.5, panel_size: float = 2.4,
                titles: Sequence[str] | None = None,
                raw: Sequence[Sequence[np.ndarray | None]] | None = None,
                flipped: Sequence[Sequence[bool]] | None = None) -> bytes:
    """PNG bytes: one row per explanation; one column per view, or two (stored image,
    overlay on it) when ``raw`` holds the stored images (see module docstring)."""
    if not explanations:
        raise ValueError("no explanations to draw")
    if raw is not None:
        return _raw_overlay_png(explanations, class_names, alpha, panel_size, titles, raw,
                                flipped)
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


def _raw_overlay_png(explanations: Sequence[Explanation], class_names: Sequence[str] | None,
                     alpha: float, panel_size: float, titles: Sequence[str] | None,
                     raw: Sequence[Sequence[np.ndarray | None]],
                     flipped: Sequence[Sequence[bool]] | None) -> bytes:
    n_cols = 2 * max(len(e.views) for e in explanations)
    fig = _figure(len(explanations), n_cols, panel_size)
    subfigs = fig.subfigures(len(explanations), 1, squeeze=False)[:, 0]
    for r, (e, sub) in enumerate(zip(explanations, subfigs)):
        sub.suptitle(titles[r] if titles else _row_title(e, class_names), fontsize=9)
        axes = sub.subplots(1, n_cols, squeeze=False)[0]
        for ax in axes:
            ax.set_axis_off()
        top = int(np.argmax(e.shares))
        has_cam = bool(np.asarray(e.cam).max() > 0)
        mappable = None
        for c, view in enumerate(e.views):
            img = raw[r][c] if c < len(raw[r]) else None
            flip = bool(flipped[r][c]) if flipped else False
            ax_raw, ax_cam = axes[2 * c], axes[2 * c + 1]
            star = " ★" if c == top and len(e.views) > 1 else ""
            if img is None:  # blank or unreadable: fall back to the network input
                img, flip_note = (e.image[c][:, ::-1] if flip else e.image[c]), " (network input)"
            else:
                flip_note = ""
            _grey(ax_raw, img)
            ax_raw.set_title(f"{view} as stored{flip_note}", fontsize=8)
            _grey(ax_cam, img)
            if has_cam:
                heat = np.clip(_cam_on_raw(e.cam[c], img, flip), 0, 1)
                mappable = ax_cam.imshow(heat, cmap="inferno", vmin=0, vmax=1, alpha=alpha * heat,
                                         aspect="equal")
            note = "\n(flipped for the network; shown as stored)" if flip else ""
            ax_cam.set_title(f"{view} Grad-CAM {100 * e.shares[c]:.0f}%{star}{note}", fontsize=7,
                             fontweight="bold" if star else "normal")
        if mappable is not None:
            cbar = sub.colorbar(mappable, ax=list(axes), shrink=0.7, pad=0.01)
            cbar.set_label("Grad-CAM (0 = none, 1 = strongest)", fontsize=7)
            cbar.ax.tick_params(labelsize=6)
        elif not has_cam:
            sub.text(0.5, 0.01, "this model has no convolutional map (attribution shares only)",
                     ha="center", fontsize=7)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def save_overlay(path: str | os.PathLike, explanations: Explanation | Sequence[Explanation],
                 class_names: Sequence[str] | None = None, **kwargs) -> Path:
    """Write the overlay PNG of one case (or a few, one row each) atomically."""
    if isinstance(explanations, Explanation):
        explanations = [explanations]
    return atomic.write_bytes(path, overlay_png(explanations, class_names, **kwargs))
