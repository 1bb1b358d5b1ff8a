"""One reader and one writer per artefact of a run: ``cases.csv``, ``predictions.csv``,
``metrics.json``, ``provenance.json``.

Training, evaluation, levels, the gallery, the report, series models, ``predict`` and the
PACS write-back all read and write these files here, so a column or key changes in one
place. Writers are atomic (``core.atomic``); readers never modify their input.

``predictions.csv`` (one row per case and split; ``core.rundir.PREDICTIONS``)::

    case_id, [exam_id, breast,] split, label, prob_0 .. prob_{K-1}[, prob]

``prob`` is P(class 1) of a binary model and wins over ``prob_1`` when both are there;
``label`` may be an index or a class name; extra columns are kept in ``rows``.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "predictions.csv"
>>> rows = prediction_rows(["a", "b"], "test", [0, 1], [[0.8, 0.2], [0.3, 0.7]])
>>> _ = write_predictions(path, rows, prediction_columns(2))
>>> p = read_predictions(path)
>>> p.case_id, p.label.tolist(), p.prob[:, 1].round(2).tolist(), p.k
(['a', 'b'], [0, 1], [0.2, 0.7], 2)
"""
from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import atomic

__all__ = ["CaseRows", "Predictions", "read_table", "prediction_columns", "prediction_rows", "read_cases",
           "read_metrics", "read_predictions", "read_provenance", "write_cases",
           "write_metrics", "write_predictions", "write_provenance"]

_PROB = re.compile(r"^prob_(\d+)$")


def _read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [dict(r) for r in csv.DictReader(fh)]


# --------------------------------------------------------------------------- cases.csv
class CaseRows(list):  # type: ignore[type-arg]
    """The rows of a case table (one dict per case) and its ``columns`` in file order."""

    columns: list[str]


def read_table(path: str | os.PathLike) -> CaseRows:
    """A CSV table as the user may have edited it in a spreadsheet (comma, semicolon or
    tab, with or without a byte-order mark): one dict per row, and the columns."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        sample = fh.read(4096)
        fh.seek(0)
        try:
            dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        reader = csv.DictReader(fh, dialect=dialect)
        out = CaseRows(dict(r) for r in reader)
        out.columns = list(reader.fieldnames or [])
    return out


def read_cases(path: str | os.PathLike) -> CaseRows:
    """A case table (``breastlab cases`` output or a run's ``cases.csv``): one dict per
    case; relative view paths stay relative (``multiview.dataset.resolve_paths``)."""
    return read_table(path)


def write_cases(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]],
                columns: Sequence[str]) -> Path:
    """Write a case table (missing values as empty cells)."""
    return atomic.write_csv(Path(path), ({c: r.get(c, "") for c in columns} for r in rows),
                            list(columns))


# --------------------------------------------------------------------------- predictions.csv
class Predictions:
    """One ``predictions.csv``: case ids, split, integer labels (-1: none), ``[N, K]`` probs
    and the rows as read (their other columns: ``exam_id``, ``breast``, ``file_<view>``...)."""

    def __init__(self, case_id: list[str], split: np.ndarray, label: np.ndarray,
                 prob: np.ndarray, rows: list[dict[str, str]] | None = None) -> None:
        self.case_id, self.split, self.label, self.prob = case_id, split, label, prob
        self.rows = rows if rows is not None else [{} for _ in case_id]

    @property
    def k(self) -> int:
        return int(self.prob.shape[1])

    def __len__(self) -> int:
        return len(self.case_id)

    def subset(self, split: str) -> Predictions:
        m = self.split == split
        return Predictions([c for c, keep in zip(self.case_id, m) if keep], self.split[m],
                           self.label[m], self.prob[m],
                           [r for r, keep in zip(self.rows, m) if keep])


def prediction_columns(k: int, *, level: str = "exam") -> list[str]:
    """The columns of a run's ``predictions.csv`` for ``k`` classes at ``level``."""
    cols = ["case_id", "split", "label", *[f"prob_{j}" for j in range(k)]]
    if k == 2:
        cols.append("prob")
    if level == "breast":
        cols[1:1] = ["exam_id", "breast"]
    return cols


def prediction_rows(case_ids: Sequence[str], split: str, labels: Sequence[int],
                    probs: Any, extra: Sequence[Mapping[str, Any]] | None = None
                    ) -> list[dict[str, Any]]:
    """Rows for ``write_predictions``: one per case, ``prob`` added for two classes."""
    probs = np.asarray(probs, dtype=float)
    k = probs.shape[1] if probs.ndim == 2 else 0
    rows = []
    for i, (cid, y, p) in enumerate(zip(case_ids, labels, probs)):
        row: dict[str, Any] = {"case_id": cid, "split": split, "label": int(y)}
        row.update({f"prob_{j}": float(p[j]) for j in range(k)})
        if k == 2:
            row["prob"] = float(p[1])
        if extra is not None:
            row.update(extra[i])
        rows.append(row)
    return rows


def write_predictions(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]],
                      columns: Sequence[str]) -> Path:
    """Write a ``predictions.csv`` (atomic: its presence marks a model as done)."""
    return atomic.write_csv(Path(path), rows, list(columns))


def _stamp(path: str | os.PathLike) -> tuple[str, int, int]:
    st = os.stat(path)
    return os.fspath(Path(path).resolve()), st.st_mtime_ns, st.st_size


_PARSED: dict[tuple[Any, ...], Predictions] = {}


def read_predictions(path: str | os.PathLike,
                     class_names: Sequence[str] | None = None) -> Predictions:
    """Read a ``predictions.csv`` (labels may be indices or class names).

    Parsed once per process while the file is unchanged (same path, size and mtime):
    evaluation, levels, the gallery and the report of one command share the result, so
    treat it as read-only.
    """
    key = (*_stamp(path), tuple(class_names or ()))
    if key not in _PARSED:
        if len(_PARSED) > 512:
            _PARSED.clear()
        _PARSED[key] = _parse_predictions(path, class_names)
    return _PARSED[key]


def _parse_predictions(path: str | os.PathLike,
                       class_names: Sequence[str] | None) -> Predictions:
    rows = _read_csv(path)
    if not rows:
        return Predictions([], np.array([], str), np.array([], int), np.zeros((0, 2)), [])
    cols = rows[0].keys()
    idx = sorted(int(m.group(1)) for c in cols if (m := _PROB.match(c)))
    if idx:
        prob = np.array([[float(r[f"prob_{i}"]) for i in idx] for r in rows], dtype=float)
    elif "prob" in cols:
        p1 = np.array([float(r["prob"]) for r in rows])
        prob = np.c_[1 - p1, p1]
    else:
        raise ValueError(f"{path}: no prob_0..prob_K-1 or prob column")
    if prob.shape[1] == 2 and "prob" in cols:   # binary: 'prob' is authoritative P(1)
        prob[:, 1] = [float(r["prob"]) for r in rows]
        prob[:, 0] = 1 - prob[:, 1]
    lookup = {n.lower(): i for i, n in enumerate(class_names or [])}
    labels = []
    for r in rows:
        v = str(r.get("label", "")).strip()
        if not v:
            labels.append(-1)
            continue
        try:
            labels.append(int(float(v)))
        except ValueError:
            if v.lower() not in lookup:
                raise ValueError(f"{path}: label {v!r} is not an index or class name") from None
            labels.append(lookup[v.lower()])
    split = np.array([str(r.get("split") or "test").strip().lower() for r in rows])
    ids = [str(r.get("case_id") or r.get("series_id") or "") for r in rows]  # slices: series
    return Predictions(ids, split, np.array(labels, int), prob, rows)


# --------------------------------------------------------------------------- metrics.json
def read_metrics(path: str | os.PathLike) -> dict[str, Any]:
    """``metrics.json`` as evaluation wrote it; ``FileNotFoundError`` / ``ValueError``
    when it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a metrics object")
    return data


def write_metrics(path: str | os.PathLike, metrics: Mapping[str, Any]) -> Path:
    return atomic.write_json(Path(path), dict(metrics))


# --------------------------------------------------------------------------- provenance.json
def read_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """``provenance.json`` as written (``{}`` when absent or unreadable)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_provenance(path: str | os.PathLike, manifest: Mapping[str, Any]) -> Path:
    """Write a provenance manifest (``core.provenance.run_manifest``)."""
    return atomic.write_json(Path(path), dict(manifest))
