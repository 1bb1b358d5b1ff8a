"""``CaseDataset``: four-view cases as ``(float32 tensor [N, H, W], int label)``.

The case table (``multiview.cases``; ``case_id, patient_id, label`` and one path
column per view) may be given as a CSV path, a ``CaseTable``-like object, a pandas
DataFrame or any sequence of dicts. A view's path column may be named ``LCC``,
``LCC_path`` or ``path_LCC`` (case-insensitive). Relative paths in a CSV are
resolved against the CSV's folder.

Labels are integers (1 = malignant, 0 = benign) or the words ``malignant`` /
``benign``; a missing label becomes -1 (prediction only). An empty view path is a
blank (all-zero) view (``blank_missing=True``, matching ``--missing blank`` of
``breastlab cases``).

With ``cache=True`` (the default) every case is decoded and preprocessed once, at
construction, into one in-memory tensor; epochs then only index it (and augment,
when ``train=True``). Cases that cannot be read are left out and listed in
``dataset.skipped`` (``(case_id, reason)``), so one bad file does not stop a run.
"""
from __future__ import annotations

import csv
import dataclasses
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .cases import parse_label as parse_label_word
from .preprocess import Augment, ImageLoadError, PreprocessConfig, load_case

log = logging.getLogger(__name__)

DEFAULT_VIEWS = ("LCC", "RCC", "LMLO", "RMLO")
CLASS_NAMES = ("benign", "malignant")


# ---------------------------------------------------------------------------- rows
def read_case_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a case-table CSV (``core.artefacts.read_cases``); relative paths stay relative
    (see ``resolve_paths``)."""
    from breastlab.core.artefacts import read_cases

    return list(read_cases(path))


def as_rows(cases: Any) -> list[dict[str, Any]]:
    """Normalise any supported case-table form to a list of plain dicts.

    A CSV path is read with ``multiview.cases.read_cases`` (relative paths resolved
    against the CSV's folder, empty cells = blank views).
    """
    if isinstance(cases, (str, os.PathLike)):
        from .cases import read_cases

        cases = read_cases(cases)
    if hasattr(cases, "to_dict") and hasattr(cases, "columns"):  # pandas DataFrame
        return [dict(r) for r in cases.to_dict("records")]
    rows_attr = getattr(cases, "rows", None)
    if callable(rows_attr):  # CaseTable.rows()
        cases = rows_attr()
    elif rows_attr is not None:
        cases = rows_attr
    rows = []
    for item in cases:
        if isinstance(item, Mapping):
            rows.append(dict(item))
        elif hasattr(item, "row") and callable(item.row):  # multiview.cases.Case
            rows.append(dict(item.row()))
        elif dataclasses.is_dataclass(item):
            rows.append(_flatten_dataclass(item))
        elif hasattr(item, "_asdict"):
            rows.append(dict(item._asdict()))
        else:
            raise TypeError(f"cannot use {type(item).__name__} as a case row")
    return rows


def case_views(cases: Any) -> tuple[str, ...] | None:
    """The view columns declared by a CaseTable (``view_names``) or a case CSV, if any."""
    names = getattr(cases, "view_names", None)
    if names:
        return tuple(names)
    if isinstance(cases, (str, os.PathLike)):
        with open(cases, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), [])
        from .cases import NON_VIEW_COLUMNS

        views = tuple(h for h in header if h not in NON_VIEW_COLUMNS)
        return views or None
    return None


def _flatten_dataclass(item: Any) -> dict[str, Any]:
    row = dataclasses.asdict(item)
    for key in ("paths", "views"):  # a dict of view -> path inside the record
        if isinstance(row.get(key), Mapping):
            row.update({k: v for k, v in row.pop(key).items()})
    return row


def view_path(row: Mapping[str, Any], view: str) -> str | None:
    """The path of ``view`` in ``row`` (columns VIEW, VIEW_path or path_VIEW)."""
    wanted = {view.lower(), f"{view}_path".lower(), f"path_{view}".lower()}
    for key, value in row.items():
        if str(key).lower() in wanted and value not in (None, ""):
            if isinstance(value, float) and np.isnan(value):
                return None
            p = Path(str(value))
            if not p.is_absolute() and row.get("_base_dir"):
                p = Path(row["_base_dir"]) / p
            return str(p)
    return None


def parse_label(value: Any) -> int:
    """Class index of a case-table label: an integer ``0..K-1`` (or its string), or a word of
    the case-table vocabulary (``multiview.cases.parse_label``: 1 = malignant, 0 = benign);
    missing or unknown (``none``, ``nan``, ``?``) → -1; any other word is a ``ValueError``."""
    if value is None or value == "":
        return -1
    if isinstance(value, float) and np.isnan(value):
        return -1
    if not isinstance(value, str):
        return int(value)
    v = value.strip()
    try:
        return int(float(v))
    except (ValueError, OverflowError):
        pass
    word = parse_label_word(v)
    if isinstance(word, int):
        return word
    if v.lower() in ("none", "nan", "unknown", "?"):
        return -1
    raise ValueError(f"label {value!r} is not a class index or a known label word")


def infer_views(rows: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The seed's views (LCC, RCC, LMLO, RMLO) present as path columns of ``rows``."""
    if not rows:
        return DEFAULT_VIEWS
    keys = {str(k).lower() for r in rows[:50] for k in r}
    found = tuple(
        v for v in DEFAULT_VIEWS
        if keys & {v.lower(), f"{v}_path".lower(), f"path_{v}".lower()}
    )
    return found or DEFAULT_VIEWS


# ------------------------------------------------------------------------- dataset
class CaseDataset(Dataset):
    """Four-view cases → data items ``{"image": tensor [N, H, W] float32, "label": int,
    "case_id": str}``. A training data set (``train=True``, augmenting) and the evaluation
    ones (``train=False``) are separate objects (``subset``/``select``) sharing one cache.

    Args:
        case_table_or_rows: CSV path, CaseTable, DataFrame or sequence of dicts.
        views: view names in channel order (default: LCC, RCC, LMLO, RMLO).
        image_size: output height and width.
        train: apply ``augment`` (default ``Augment()``) in ``__getitem__``.
        cache: decode all cases once into memory (recommended; cases are few).
        flip_right: flip right-side views horizontally (default True).
        normalization: ``"zscore"`` (default) or ``"minmax"``; see ``preprocess``.
        augment: an ``Augment`` (or any callable on ``[N, H, W]``) used when ``train``.
        on_error: ``"skip"`` (leave the case out, record it in ``skipped``) or ``"raise"``.
        blank_missing: a view with an empty path becomes an all-zero image (the
            ``--missing blank`` policy of ``breastlab cases``); False: the case is skipped.
        progress: show a progress bar while caching (default: the command's reporter,
            ``core.progress.reporter``).
        disk_cache: a ``multiview.cache.ViewCache``, a folder, True (the default folder)
            or None: preprocessed views are read from / written to it, so a second run
            (or a worker of a data set without the in-memory cache) decodes nothing.
        crop_breast: cut each view to the breast before normalising (``multiview.crop``;
            full-field mammograms).
    """

    def __init__(
        self,
        case_table_or_rows: Any,
        views: Sequence[str] | None = None,
        image_size: int = 256,
        train: bool = False,
        cache: bool = True,
        *,
        flip_right: bool = True,
        normalization: str = "zscore",
        clip_percentiles: tuple[float, float] = (0.5, 99.5),
        slice_index: int | None = None,
        augment: Any | None = None,
        on_error: str = "skip",
        blank_missing: bool = True,
        progress: bool | None = None,
        disk_cache: Any = None,
        crop_breast: bool = False,
    ) -> None:
        from .cache import as_cache

        rows = as_rows(case_table_or_rows)
        self.disk_cache = as_cache(disk_cache)
        self.views = tuple(views) if views else (case_views(case_table_or_rows) or infer_views(rows))
        self.config = PreprocessConfig(
            image_size=int(image_size),
            normalization=normalization,
            clip_percentiles=tuple(clip_percentiles),
            flip_right=flip_right,
            slice_index=slice_index,
            crop_breast=bool(crop_breast),
        )
        self.train = train
        self.augment = augment if augment is not None else (Augment() if train else None)
        self.on_error = on_error
        self.blank_missing = blank_missing
        self.skipped: list[tuple[str, str]] = []
        self.rows: list[dict[str, Any]] = []
        self._data: torch.Tensor | None = None
        arrays: list[np.ndarray] = []
        iterator: Iterable = rows
        bar = None
        if progress is None:  # the command's reporter decides (core.progress)
            from breastlab.core.progress import reporter

            progress = reporter().enabled
        if cache and progress:
            from breastlab.core.progress import make_progress

            bar = make_progress(transient=True)
            bar.start()
            task = bar.add_task("Loading cases", total=len(rows))
        try:
            for i, row in enumerate(iterator):
                case_id = str(row.get("case_id", i))
                try:
                    paths = {v: view_path(row, v) for v in self.views}
                    if cache:
                        arrays.append(load_case(paths, self.views, self.config,
                                                blank_missing=blank_missing,
                                                cache=self.disk_cache))
                    elif not blank_missing and any(p is None for p in paths.values()):
                        raise ImageLoadError("missing view(s)")
                    label = parse_label(row.get("label"))
                except (ImageLoadError, ValueError) as exc:
                    if on_error == "raise":
                        raise
                    if cache and len(arrays) > len(self.rows):
                        arrays.pop()
                    self.skipped.append((case_id, str(exc)))
                    log.warning("skipping case %s: %s", case_id, exc)
                    continue
                finally:
                    if bar is not None:
                        bar.advance(task)
                clean = {k: v for k, v in row.items() if k != "_base_dir"}
                clean.update({v: paths[v] for v in self.views})
                clean["case_id"] = case_id
                clean["label"] = label
                self.rows.append(clean)
        finally:
            if bar is not None:
                bar.stop()
        if cache:
            h = w = self.config.image_size
            self._data = (
                torch.from_numpy(np.stack(arrays)) if arrays
                else torch.zeros((0, len(self.views), h, w))
            )
        self.labels = torch.tensor([r["label"] for r in self.rows], dtype=torch.long)

    # --------------------------------------------------------------- accessors
    @property
    def case_ids(self) -> list[str]:
        return [r["case_id"] for r in self.rows]

    @property
    def patient_ids(self) -> list[str]:
        return [str(r.get("patient_id") or r["case_id"]) for r in self.rows]

    @property
    def in_channels(self) -> int:
        return len(self.views)

    @property
    def num_classes(self) -> int:
        return max(2, int(self.labels.max()) + 1) if len(self.labels) else 2

    def preprocessing(self) -> dict[str, Any]:
        """JSON-able description of the preprocessing (for model files)."""
        d = self.config.to_dict()
        d["views"] = list(self.views)
        d["augment"] = self.augment.to_dict() if hasattr(self.augment, "to_dict") else None
        return d

    def __len__(self) -> int:
        return len(self.rows)

    def image(self, index: int) -> torch.Tensor:
        """The preprocessed ``[N, H, W]`` tensor of case ``index`` (never augmented)."""
        if self._data is not None:
            return self._data[index]
        row = self.rows[index]
        return torch.from_numpy(load_case({v: row[v] for v in self.views}, self.views, self.config,
                                          blank_missing=self.blank_missing,
                                          cache=getattr(self, "disk_cache", None)))

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One data item: ``{"image": [N, H, W], "label": int, "case_id": str}`` (a breast's
        id, ``{case}:{L|R}``, in a breast data set), augmented when ``train``."""
        x = self.image(index)
        if self.train and self.augment is not None:
            x = self.augment(x)
        return {"image": x, "label": int(self.labels[index]),
                "case_id": str(self.rows[index]["case_id"])}

    def subset(self, indices: Sequence[int], *, train: bool | None = None) -> CaseDataset:
        """A dataset over ``indices`` sharing this one's cache (no re-decoding)."""
        new = object.__new__(CaseDataset)
        new.__dict__.update(self.__dict__)
        idx = list(indices)
        new.rows = [self.rows[i] for i in idx]
        new.labels = self.labels[idx] if idx else self.labels[:0]
        new._data = self._data[idx] if self._data is not None else None
        new.skipped = []
        if train is not None:
            new.train = train
            if train and new.augment is None:
                new.augment = Augment()
        return new

    def select(self, case_ids: Iterable[str], *, train: bool | None = None) -> CaseDataset:
        """``subset`` by case id (in the order given); unknown ids raise KeyError."""
        pos = {c: i for i, c in enumerate(self.case_ids)}
        return self.subset([pos[str(c)] for c in case_ids], train=train)


# ------------------------------------------------------------------- breast level
def breast_views(views: Sequence[str]) -> dict[str, list[str]] | None:
    """``{"L": ["LCC", "LMLO"], "R": ["RCC", "RMLO"]}``: each breast's views in one
    projection order, or ``None`` when the two breasts do not have the same projections
    (a breast-level model needs the same channels for every breast)."""
    sides: dict[str, dict[str, str]] = {"L": {}, "R": {}}
    for v in views:
        if len(v) >= 3 and v[0] in sides:
            sides[v[0]][v[1:]] = v
    projections = sorted(sides["L"])
    if not projections or projections != sorted(sides["R"]):
        return None
    return {s: [sides[s][p] for p in projections] for s in ("L", "R")}


def breast_dataset(exams: CaseDataset) -> CaseDataset | None:
    """One row per labelled breast of ``exams`` (``label_L`` / ``label_R`` columns).

    Each breast gets its own views as channels (``CC, MLO``; right views are already
    flipped when ``flip_right``, so every breast faces the same way). Row ids are
    ``{case_id}:{L|R}``; ``exam_id`` and ``breast`` say where a row came from, and the
    patient is the exam's patient, so splits by patient keep a woman's breasts together.
    Breasts with no image of their own are left out. ``None`` when no breast is labelled
    or the views do not pair up. Shares the exam cache (no re-decoding).
    """
    pairs = breast_views(exams.views)
    if pairs is None or exams._data is None:
        return None
    index = {v: i for i, v in enumerate(exams.views)}
    rows, tensors, labels = [], [], []
    for i, row in enumerate(exams.rows):
        for side, views in pairs.items():
            value = parse_label(row.get(f"label_{side}"))
            if value < 0 or not any(row.get(v) for v in views):
                continue
            rows.append({"case_id": f"{row['case_id']}:{side}", "exam_id": row["case_id"],
                         "breast": side, "patient_id": row.get("patient_id") or row["case_id"],
                         "label": value, **{p[1:]: row.get(v) for p, v in zip(views, views)}})
            tensors.append(exams._data[i, [index[v] for v in views]])
            labels.append(value)
    if not rows or len(set(labels)) < 2:
        return None
    new = object.__new__(CaseDataset)
    new.__dict__.update(exams.__dict__)
    new.views = tuple(v[1:] for v in pairs["L"])
    new.rows = rows
    new._data = torch.stack(tensors)
    new.labels = torch.tensor(labels, dtype=torch.long)
    new.skipped = []
    return new


def dataset_from_meta(rows: Any, meta: Mapping[str, Any], *, progress: bool = False,
                      disk_cache: Any = None):
    """A ``CaseDataset`` preprocessed exactly as the model was trained (model metadata);
    ``disk_cache`` as in ``CaseDataset``."""
    pre = dict(meta.get("preprocessing") or {})
    kwargs: dict[str, Any] = {
        "views": meta.get("views") or pre.get("views"),
        "image_size": int(pre.get("image_size") or meta.get("image_size") or 256),
        "train": False, "cache": True, "progress": progress, "disk_cache": disk_cache,
    }
    for key in ("flip_right", "normalization", "slice_index", "crop_breast"):
        if pre.get(key) is not None:
            kwargs[key] = pre[key]
    if pre.get("clip_percentiles") is not None:
        kwargs["clip_percentiles"] = tuple(pre["clip_percentiles"])
    return CaseDataset(rows, **kwargs)
