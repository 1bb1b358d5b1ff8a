"""Breast-region crop of a full-field mammogram (``--crop-breast``).

A full-field view (CBIS-DDSM: 4736 x 2624) is mostly background; the breast covers a
third to a half of it. ``breast_box`` finds the bounding box of the breast on a
downsampled copy (about 256 px on the long side, so it costs a few milliseconds):
threshold by Otsu's method, keep the largest connected region (labels, markers and
scanner text are small, separate regions), add a margin. Cropping before the percentile
clip and the resize keeps the breast's full resolution in the model's input and makes
the full-resolution preprocessing cheaper (fewer pixels to sort and resample).

Otsu's threshold is written out here (a 256-bin histogram, a few lines of numpy) rather
than taken from scikit-image, which the toolkit does not otherwise need.
"""
from __future__ import annotations

import numpy as np

#: A region smaller than this share of the image is not trusted: the image is kept whole.
MIN_AREA_FRACTION = 0.02


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """The threshold that maximises the between-class variance of ``values``."""
    v = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return lo
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    s0 = np.cumsum(hist * centers)
    m0 = s0 / np.maximum(w0, 1)
    m1 = (s0[-1] - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(centers[int(np.argmax(between))])


def breast_box(image: np.ndarray, *, margin: float = 0.02, target: int = 256
               ) -> tuple[int, int, int, int]:
    """``(row0, row1, col0, col1)`` of the breast in ``image`` (2-D); the whole image when
    no region of at least ``MIN_AREA_FRACTION`` stands out."""
    from scipy import ndimage

    rows, cols = image.shape
    step = max(1, int(np.ceil(max(rows, cols) / target)))
    small = np.asarray(image[::step, ::step], dtype=np.float32)
    whole = (0, rows, 0, cols)
    if small.size < 4 or float(small.max()) <= float(small.min()):
        return whole
    mask = small > otsu_threshold(small)
    labels, n = ndimage.label(mask)
    if n == 0:
        return whole
    sizes = np.bincount(labels.ravel())[1:]
    biggest = int(np.argmax(sizes)) + 1
    if sizes[biggest - 1] < MIN_AREA_FRACTION * small.size:
        return whole
    rr, cc = np.nonzero(labels == biggest)
    pad_r, pad_c = int(margin * rows), int(margin * cols)
    r0 = max(0, int(rr.min()) * step - pad_r)
    r1 = min(rows, (int(rr.max()) + 1) * step + pad_r)
    c0 = max(0, int(cc.min()) * step - pad_c)
    c1 = min(cols, (int(cc.max()) + 1) * step + pad_c)
    if r1 - r0 < 2 or c1 - c0 < 2:
        return whole
    return r0, r1, c0, c1


def crop_breast(image: np.ndarray) -> np.ndarray:
    """``image`` cut to ``breast_box`` (a view, no copy)."""
    r0, r1, c0, c1 = breast_box(image)
    return image[r0:r1, c0:c1]
