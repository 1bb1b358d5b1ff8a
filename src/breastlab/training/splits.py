"""Patient-level, stratified splits: 8:2 hold-out (as in the seed) and k-fold.

Every split is a dict ``{"train": [...], "val": [...], "test": [...]}`` of case ids
(plus ``method, seed, fold, k`` for the record). All cases of one patient fall in
the same part (``groups`` = patient ids), and each part keeps the class balance as
far as the grouping allows (``sklearn.model_selection.StratifiedGroupKFold``).
A validation part is carved out of the training part the same way (default
``val_fraction=0.2``, i.e. 64 % train, 16 % val, 20 % test); model selection uses
it only, never the test part. The same inputs and seed give the same split.
"""
from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from breastlab.core.atomic import write_json

Split = dict[str, Any]


def _folds(labels: np.ndarray, groups: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """Indices of the k test folds of a shuffled StratifiedGroupKFold."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = len(np.unique(groups))
    if n_groups < k:
        raise ValueError(f"cannot make {k} folds from {n_groups} patients")
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # "least populated class has only n members"
        warnings.simplefilter("ignore", UserWarning)
        return [test for _, test in cv.split(np.zeros(len(labels)), labels, groups)]


def _carve(idx: np.ndarray, labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int):
    """Split ``idx`` into (rest, part) with ``part`` ≈ fraction, grouped and stratified."""
    if fraction <= 0:
        return idx, idx[:0]
    k = max(2, int(round(1.0 / fraction)))
    k = min(k, len(np.unique(groups[idx])))
    if k < 2:
        return idx, idx[:0]
    part = idx[_folds(labels[idx], groups[idx], k, seed)[0]]
    rest = np.setdiff1d(idx, part, assume_unique=True)
    return rest, part


def _prepare(case_ids: Sequence, labels: Sequence, groups: Sequence | None):
    ids = np.asarray([str(c) for c in case_ids])
    if len(set(ids)) != len(ids):
        raise ValueError("case ids must be unique")
    y = np.asarray(labels)
    g = np.asarray([str(x) for x in (groups if groups is not None else case_ids)])
    if not (len(ids) == len(y) == len(g)):
        raise ValueError("case_ids, labels and groups must have the same length")
    return ids, y, g


def _as_split(ids, train, val, test, **info) -> Split:
    return {
        "train": [str(x) for x in ids[np.sort(train)]],
        "val": [str(x) for x in ids[np.sort(val)]],
        "test": [str(x) for x in ids[np.sort(test)]],
        **info,
    }


def holdout_split(
    case_ids: Sequence,
    labels: Sequence[int],
    groups: Sequence | None = None,
    *,
    test_fraction: float = 0.2,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> Split:
    """Train / val / test with ``test_fraction`` of patients held out (8:2 by default)."""
    ids, y, g = _prepare(case_ids, labels, groups)
    all_idx = np.arange(len(ids))
    rest, test = _carve(all_idx, y, g, test_fraction, seed)
    train, val = _carve(rest, y, g, val_fraction, seed + 7919)
    return _as_split(ids, train, val, test, method="holdout", seed=seed, fold=0, k=1,
                     test_fraction=test_fraction, val_fraction=val_fraction)


def kfold_splits(
    case_ids: Sequence,
    labels: Sequence[int],
    groups: Sequence | None = None,
    *,
    k: int = 5,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> list[Split]:
    """k patient-level stratified folds; each fold's training part gives a val part."""
    ids, y, g = _prepare(case_ids, labels, groups)
    out = []
    for fold, test in enumerate(_folds(y, g, k, seed)):
        rest = np.setdiff1d(np.arange(len(ids)), test, assume_unique=True)
        train, val = _carve(rest, y, g, val_fraction, seed + 7919 + fold)
        out.append(_as_split(ids, train, val, test, method="kfold", seed=seed, fold=fold, k=k,
                             val_fraction=val_fraction))
    return out


def repeat_split(
    case_ids: Sequence,
    labels: Sequence[int],
    groups: Sequence | None = None,
    *,
    repeat: int,
    method: str = "holdout",
    folds: int = 5,
    seed: int = 0,
    resplit: bool = False,
    val_fraction: float = 0.2,
) -> Split:
    """The split used by repeat ``repeat`` of a run.

    - ``holdout``: the same 8:2 split for every repeat, as in the seed (only the
      training seed changes), or a new split per repeat (seed + repeat) with ``resplit``.
    - ``kfold``: repeat r is fold ``r % folds`` of the partition seeded with
      ``seed + r // folds`` (``--repeats`` = ``--folds`` gives one full cross-validation;
      more repeats give repeated k-fold).
    """
    if method == "holdout":
        s = seed + repeat if resplit else seed
        split = holdout_split(case_ids, labels, groups, seed=s, val_fraction=val_fraction)
    elif method == "kfold":
        split = kfold_splits(case_ids, labels, groups, k=folds, seed=seed + repeat // folds,
                             val_fraction=val_fraction)[repeat % folds]
    else:
        raise ValueError("split method must be 'holdout' or 'kfold'")
    split["repeat"] = repeat
    return split


def check_split(split: Split, groups: dict[str, str] | None = None) -> None:
    """Raise ValueError if parts overlap in cases or (given ``groups``) patients."""
    parts = {k: set(split[k]) for k in ("train", "val", "test")}
    names = list(parts)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if parts[a] & parts[b]:
                raise ValueError(f"cases in both {a} and {b}")
            if groups is not None:
                pa = {groups[c] for c in parts[a]}
                pb = {groups[c] for c in parts[b]}
                if pa & pb:
                    raise ValueError(f"patients in both {a} and {b}")


def save_split(path: str | os.PathLike, split: Split) -> Path:
    return write_json(path, split)


def load_split(path: str | os.PathLike) -> Split:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
