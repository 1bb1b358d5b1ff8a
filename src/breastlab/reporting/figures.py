"""Report figures as PNG bytes (matplotlib object API + Agg canvas, no pyplot state).

* ``roc_figure``: ROC curves of every model on one axes (binary): each repeat thin, the
  pooled test predictions bold; legend with AUC mean ± sd over repeats and the pooled
  AUC with its CI. For K > 2 one panel per model with one-vs-rest curves per class.
* ``confusion_figure``: a confusion matrix with counts and row percentages.
* ``repeat_metrics_figure``: per-repeat values of the main metrics, one column per model.
"""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from breastlab.evaluation.metrics import auc_point

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _roc(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    from sklearn.metrics import roc_curve

    if len(np.unique(y)) < 2:
        return None
    fpr, tpr, _ = roc_curve(y, s)
    return fpr, tpr


def auc_legend(summary: Mapping[str, Any] | None, pooled: Mapping[str, Any] | None) -> str:
    parts = []
    if summary and summary.get("mean") is not None:
        sd = summary.get("sd")
        parts.append(f"AUC {summary['mean']:.3f}" + (f" ± {sd:.3f}" if sd is not None else ""))
    if pooled and pooled.get("value") is not None:
        ci = (f" ({pooled['ci_low']:.3f}–{pooled['ci_high']:.3f})"
              if pooled.get("ci_low") is not None else "")
        parts.append(f"pooled {pooled['value']:.3f}{ci}")
    return "; ".join(parts)


def roc_figure(curves: Mapping[str, Sequence[tuple[np.ndarray, np.ndarray]]],
               legends: Mapping[str, str] | None = None,
               class_names: Sequence[str] | None = None) -> bytes:
    """ROC curves. ``curves``: ``{model: [(y, prob[N, K]) per repeat]}``.

    Binary: one axes, P(class 1) as the score. K > 2: one panel per model with
    one-vs-rest curves (pooled over repeats) per class.
    """
    models = list(curves)
    k = next((p.shape[1] for reps in curves.values() for _, p in reps), 2)
    if k == 2:
        fig = _figure(6.2, 5.4)
        ax = fig.add_subplot(1, 1, 1)
        for i, model in enumerate(models):
            color = PALETTE[i % len(PALETTE)]
            reps = curves[model]
            for y, p in reps if len(reps) > 1 else []:
                r = _roc(y, p[:, 1])
                if r:
                    ax.plot(*r, color=color, alpha=0.25, lw=1)
            y = np.concatenate([y for y, _ in reps])
            p = np.concatenate([p[:, 1] for _, p in reps])
            r = _roc(y, p)
            if r:
                label = f"{model}: {legends.get(model, '')}" if legends else model
                ax.plot(*r, color=color, lw=2.2, label=label)
        _roc_axes(ax, "ROC, test set (thin: each repeat; bold: pooled)")
        return to_png(fig)
    names = list(class_names) if class_names else [f"class_{i}" for i in range(k)]
    fig = _figure(4.6 * len(models), 4.4)
    for j, model in enumerate(models):
        ax = fig.add_subplot(1, len(models), j + 1)
        y = np.concatenate([y for y, _ in curves[model]])
        p = np.concatenate([p for _, p in curves[model]])
        for c in range(k):
            r = _roc((y == c).astype(int), p[:, c])
            if r:
                auc = auc_point((y == c).astype(int), p[:, c])
                ax.plot(*r, color=PALETTE[c % len(PALETTE)], lw=2,
                        label=f"{names[c]} vs rest: AUC {auc:.3f}")
        _roc_axes(ax, f"{model}: one-vs-rest ROC (pooled test)")
    return to_png(fig)


def calibration_figure(curves: Mapping[str, Sequence[tuple[np.ndarray, np.ndarray]]],
                       n_bins: int = 5) -> tuple[bytes, dict[str, float]]:
    """Reliability diagram of P(class 1) on the pooled test cases, and each model's Brier score.

    ``curves`` as for :func:`roc_figure` (binary). Bins hold equal numbers of cases
    (``strategy="quantile"``), so small test sets still give readable points.
    """
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss

    fig = _figure(5.4, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], ls="--", color="#999999", lw=1, label="perfectly calibrated")
    brier: dict[str, float] = {}
    for i, (model, reps) in enumerate(curves.items()):
        y = np.concatenate([y for y, _ in reps]).astype(int)
        p = np.concatenate([p[:, 1] for _, p in reps])
        if len(np.unique(y)) < 2:
            continue
        brier[model] = float(brier_score_loss(y, p))
        frac_pos, mean_pred = calibration_curve(y, p, n_bins=n_bins, strategy="quantile")
        ax.plot(mean_pred, frac_pos, marker="o", color=PALETTE[i % len(PALETTE)], lw=2,
                label=f"{model}: Brier {brier[model]:.3f}")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("mean predicted P(positive)")
    ax.set_ylabel("observed fraction positive")
    ax.set_title(f"Calibration, pooled test set ({n_bins} equal-count bins)", fontsize=10)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=7.5)
    return to_png(fig), brier


def _roc_axes(ax, title: str) -> None:
    ax.plot([0, 1], [0, 1], ls="--", color="#999999", lw=1)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("1 − specificity (false-positive rate)")
    ax.set_ylabel("sensitivity (true-positive rate)")
    ax.set_title(title, fontsize=10)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=7.5)


def confusion_figure(cm: Sequence[Sequence[int]], class_names: Sequence[str],
                     title: str = "") -> bytes:
    """Counts with row percentages; rows = true class, columns = predicted class."""
    cm = np.asarray(cm, dtype=int)
    k = cm.shape[0]
    side = 1.2 + 1.0 * k
    fig = _figure(side + 0.8, side)
    ax = fig.add_subplot(1, 1, 1)
    rows = cm.sum(1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{cm[i, j]}\n{100 * frac[i, j]:.0f}%", ha="center", va="center",
                    fontsize=9, color="white" if frac[i, j] > 0.6 else "black")
    ax.set_xticks(range(k), labels=list(class_names), rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(k), labels=list(class_names), fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    return to_png(fig)


def repeat_metrics_figure(values: Mapping[str, Mapping[str, Sequence[float | None]]]) -> bytes:
    """``{metric: {model: [value per repeat]}}`` → dot plot with the mean as a bar."""
    metrics = list(values)
    models = sorted({m for v in values.values() for m in v})
    fig = _figure(max(5.0, 1.6 * len(metrics)), 3.4)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(len(models), 1)
    rng = np.random.default_rng(0)
    for j, model in enumerate(models):
        color = PALETTE[j % len(PALETTE)]
        for i, metric in enumerate(metrics):
            vals = [v for v in values[metric].get(model, []) if v is not None]
            if not vals:
                continue
            x0 = i - 0.4 + width * (j + 0.5)
            ax.scatter(x0 + rng.uniform(-width / 5, width / 5, len(vals)), vals, s=14,
                       color=color, alpha=0.8, label=model if i == 0 else None, zorder=3)
            ax.hlines(np.mean(vals), x0 - width / 2.5, x0 + width / 2.5, color=color, lw=2)
    ax.set_xticks(range(len(metrics)), labels=metrics, fontsize=8)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("test value per repeat")
    ax.grid(axis="y", alpha=0.3)
    if models:
        ax.legend(fontsize=7.5, loc="lower left")
    return to_png(fig)


def learning_curves_figure(histories: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]]) -> bytes:
    """Per model: training and validation loss (left) and validation AUC (right) per epoch,
    one line per repeat (``history.csv`` rows)."""
    n = len(histories)
    fig = _figure(9.5, 2.6 * n)
    for row, (model, runs) in enumerate(histories.items()):
        ax_loss = fig.add_subplot(n, 2, 2 * row + 1)
        ax_auc = fig.add_subplot(n, 2, 2 * row + 2)
        for r, hist in enumerate(runs):
            ep = [int(h["epoch"]) + 1 for h in hist]

            def col(key: str) -> list[float]:
                out = []
                for h in hist:
                    try:
                        out.append(float(h.get(key)))
                    except (TypeError, ValueError):
                        out.append(float("nan"))
                return out
            alpha = 0.9 if r == 0 else 0.45
            ax_loss.plot(ep, col("train_loss"), color=PALETTE[0], alpha=alpha, lw=1.2,
                         label="train" if r == 0 else None)
            ax_loss.plot(ep, col("val_loss"), color=PALETTE[1], alpha=alpha, lw=1.2,
                         label="validation" if r == 0 else None)
            ax_auc.plot(ep, col("val_auc"), color=PALETTE[2], alpha=alpha, lw=1.2)
            best = [e for e, h in zip(ep, hist) if str(h.get("best")) in ("1", "True")]
            if best:
                ax_auc.axvline(best[-1], color="#999", lw=0.8, ls=":")
        ax_loss.set_title(f"{model}: loss", fontsize=9)
        ax_auc.set_title(f"{model}: validation AUC (dotted: selected epoch)", fontsize=9)
        ax_auc.set_ylim(0, 1.02)
        for ax in (ax_loss, ax_auc):
            ax.set_xlabel("epoch", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
        ax_loss.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return to_png(fig)
