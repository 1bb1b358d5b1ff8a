"""Breast-region crop of full-field mammograms (multiview/crop.py, ``--crop-breast``)."""
from __future__ import annotations

import numpy as np

from breastlab.multiview.crop import breast_box, crop_breast, otsu_threshold
from breastlab.multiview.preprocess import PreprocessConfig, load_view, preprocess_view


def _mammogram(rows=600, cols=400, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols]
    img = rng.normal(30, 5, (rows, cols))                              # background
    breast = ((y - 300) / 220.0) ** 2 + (x / 250.0) ** 2 <= 1          # rows 80-520, cols 0-250
    img[breast] = rng.normal(2000, 300, breast.sum())
    img[20:40, 340:380] = 4000                                         # a small bright marker
    return img.astype(np.float32)


def test_the_box_holds_the_breast_and_leaves_out_background_and_markers():
    img = _mammogram()
    r0, r1, c0, c1 = breast_box(img, margin=0.0)
    assert 60 <= r0 <= 85 and 515 <= r1 <= 540 and c0 == 0 and 245 <= c1 <= 265
    m0, m1, n0, n1 = breast_box(img)                                   # default 2 % margin
    assert crop_breast(img).shape == (m1 - m0, n1 - n0) and m0 < r0 and m1 > r1
    assert 30 < otsu_threshold(img) < 2000


def test_a_flat_or_empty_image_is_kept_whole():
    assert breast_box(np.zeros((50, 40), np.float32)) == (0, 50, 0, 40)
    noise = np.random.default_rng(0).normal(0, 1, (64, 64)).astype(np.float32)
    r0, r1, c0, c1 = breast_box(noise)
    assert r1 - r0 >= 2 and c1 - c0 >= 2


def test_crop_changes_the_model_input_and_its_cache_key(tmp_path):
    img = _mammogram()
    plain = preprocess_view(img, image_size=64)
    cropped = preprocess_view(img, image_size=64, crop_breast=True)
    assert plain.shape == cropped.shape == (64, 64) and not np.allclose(plain, cropped)
    assert "crop_breast" not in PreprocessConfig().to_dict()           # records as before
    assert PreprocessConfig(crop_breast=True).to_dict()["crop_breast"] is True
    from breastlab.multiview.cache import ViewCache

    np.save(tmp_path / "v.npy", img)
    cache = ViewCache(tmp_path / "cache")
    a = load_view(tmp_path / "v.npy", "LCC", PreprocessConfig(image_size=64), cache)
    b = load_view(tmp_path / "v.npy", "LCC", PreprocessConfig(image_size=64, crop_breast=True), cache)
    assert cache.misses == 2 and np.array_equal(b, cropped) and np.array_equal(a, plain)
