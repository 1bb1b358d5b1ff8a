"""Patient-level stratified splits: disjoint, stratified, deterministic, saved as JSON."""
from __future__ import annotations

import numpy as np
import pytest

from breastlab.training.splits import (
    check_split,
    holdout_split,
    kfold_splits,
    load_split,
    repeat_split,
    save_split,
)


def _cohort(n_patients=115, seed=0):
    """~231 cases like the seed (144 benign : 87 malignant), 1-3 cases per patient."""
    rng = np.random.default_rng(seed)
    ids, labels, groups = [], [], []
    for p in range(n_patients):
        y = int(rng.random() < 87 / 231)
        for _ in range(int(rng.integers(1, 4))):
            ids.append(f"c{len(ids)}")
            labels.append(y)
            groups.append(f"p{p}")
    return ids, labels, groups


def _frac(ids, lab, part):
    return np.mean([lab[i] for i in part])


def test_holdout_is_patient_disjoint_stratified_and_deterministic(tmp_path):
    ids, labels, groups = _cohort()
    lab = dict(zip(ids, labels))
    grp = dict(zip(ids, groups))
    s = holdout_split(ids, labels, groups, seed=3)
    check_split(s, grp)
    assert sorted(s["train"] + s["val"] + s["test"]) == sorted(ids)
    assert len(s["test"]) / len(ids) == pytest.approx(0.2, abs=0.05)
    assert len(s["val"]) / len(ids) == pytest.approx(0.16, abs=0.05)
    overall = np.mean(labels)
    for part in ("train", "val", "test"):
        assert _frac(ids, lab, s[part]) == pytest.approx(overall, abs=0.08)
    assert holdout_split(ids, labels, groups, seed=3) == s
    assert holdout_split(ids, labels, groups, seed=4)["test"] != s["test"]
    save_split(tmp_path / "splits" / "repeat0.json", s)
    assert load_split(tmp_path / "splits" / "repeat0.json") == s


def test_kfold_covers_every_case_once():
    ids, labels, groups = _cohort()
    grp = dict(zip(ids, groups))
    folds = kfold_splits(ids, labels, groups, k=5, seed=0)
    tests = [c for f in folds for c in f["test"]]
    assert sorted(tests) == sorted(ids) and len(tests) == len(set(tests))
    for f in folds:
        check_split(f, grp)
    assert kfold_splits(ids, labels, groups, k=5, seed=0) == folds


def test_repeat_split_modes():
    ids, labels, groups = _cohort(40)
    same = [repeat_split(ids, labels, groups, repeat=r)["test"] for r in range(3)]
    assert same[0] == same[1] == same[2]  # the seed: one split, repeated training
    new = [repeat_split(ids, labels, groups, repeat=r, resplit=True)["test"] for r in range(2)]
    assert new[0] != new[1]
    k = [repeat_split(ids, labels, groups, repeat=r, method="kfold", folds=3) for r in range(4)]
    assert [s["fold"] for s in k] == [0, 1, 2, 0] and k[3]["seed"] == 1


def test_overlap_detected():
    with pytest.raises(ValueError, match="patients"):
        check_split({"train": ["a"], "val": [], "test": ["b"]}, {"a": "p", "b": "p"})
    with pytest.raises(ValueError):
        holdout_split(["a", "a"], [0, 1])
