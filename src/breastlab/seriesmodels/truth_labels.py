"""Training labels from a truth table: ``breastlab mri train SORT --truth TRUTH.csv``.

The truth table (exported from ``review.html``, :mod:`breastlab.review.truth`) names
image sets, not files; the sort it refers to (its ``--out`` folder, or the series.csv in
it) supplies each set's files and frames from instances.csv. Rows are matched to sets
as ``breastlab sort --truth`` matches them (:func:`breastlab.review.truth.match_truth`),
so a table made on an older sort of the same data still finds its sets. The patient of
a set, for patient-level splits, is its study pseudonym.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from breastlab.review.page import read_sort, set_images
from breastlab.review.truth import match_truth, read_truth
from breastlab.seriesmodels.data import Dataset, SeriesItem, canonical_label, pseudonym


def read_truth_data(sort: str | os.PathLike, truth: str | os.PathLike, classes: Sequence[str]) -> Dataset:
    """The labelled series of ``sort`` (folder or its series.csv) with the labels of ``truth``."""
    folder = Path(sort)
    folder = folder if folder.is_dir() else folder.parent
    if not (folder / "instances.csv").is_file():
        raise FileNotFoundError(f"{folder}: no instances.csv; with --truth, DATA is the --out folder of "
                                "breastlab sort (or its series.csv)")
    series, instances = read_sort(folder)
    match = match_truth(read_truth(truth), series, set_images(instances))
    files: dict[str, list[tuple[str, int | None]]] = {}
    for r in instances:
        frame = r.get("frame_index")
        files.setdefault(r.get("set_id", ""), []).append((r["path"], int(float(frame)) if frame else None))
    study = {str(s.get("set_id")): str(s.get("study") or s.get("set_id")) for s in series}
    items, dropped = [], {}
    for set_id, label, _ in match.pairs:
        name = canonical_label(str(label), classes)
        if name is None:
            key = f"label {str(label)!r} is not a class"
            dropped[key] = dropped.get(key, 0) + 1
            continue
        entries = files.get(set_id, [])
        items.append(SeriesItem(series_id=set_id, patient_id=pseudonym(study.get(set_id, set_id)), label=name,
                                files=[p for p, _ in entries], frames=[f for _, f in entries], kind="dicom"))
    for _, why in match.unmatched:
        key = f"truth row: {why}"
        dropped[key] = dropped.get(key, 0) + 1
    return Dataset(items=items, classes=list(classes), source="truth table", dropped=dropped, path=str(truth))
