"""Sorting one study at a time: per-study pipeline and streaming output writers.

``sort_studies`` takes the records of an archive as an iterator of studies (each the
records of the series assigned to one study, in path order) and, per study, groups
them into image sets, labels them (header rules, then the image models when given:
fusion happens *before* anything is written), exports them, and appends their rows to
series.csv, series.json and instances.csv, which are written once, in one pass. Memory
is bounded by the largest study, not by the archive.

Study order is (StudyInstanceUID or ""), the order the whole-archive sort used, so the
outputs are byte for byte those of sorting everything at once.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from breastlab.core import atomic
from breastlab.core.csvcells import row_cells, verbatim
from breastlab.dicom.records import InstanceRecord, SkippedFile
from breastlab.mri.classify import LabelledSet


class StreamWriter:
    """series.csv, series.json and instances.csv in a staging folder, written row by row.

    Byte-identical to :func:`breastlab.core.atomic.write_csv` / ``write_json`` of the
    whole list (same dialect, same JSON indentation).
    """

    def __init__(self, stage: Path, series_columns: Sequence[str], instance_columns: Sequence[str]) -> None:
        self._stack = contextlib.ExitStack()
        opened = {name: self._stack.enter_context(atomic.atomic_open(
            stage / name, "w", encoding="utf-8", errors="surrogateescape", newline=""))
            for name in ("series.csv", "instances.csv")}
        self._json = self._stack.enter_context(atomic.atomic_open(stage / "series.json", "w", encoding="utf-8"))
        self._series = csv.DictWriter(opened["series.csv"], fieldnames=list(series_columns), extrasaction="raise")
        self._series.writeheader()
        self._instances_file = opened["instances.csv"]
        csv.DictWriter(self._instances_file, fieldnames=list(instance_columns)).writeheader()
        self._buffer = io.StringIO(newline="")  # rows rendered here first, then written (and kept for reuse)
        self._render = csv.DictWriter(self._buffer, fieldnames=list(instance_columns), extrasaction="raise")
        self._n_json = 0
        self._safe = not verbatim()

    def series(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self._series.writerow(row_cells(row, safe=self._safe))
            text = json.dumps(row, indent=2, default=str)
            self._json.write(("[\n" if self._n_json == 0 else ",\n") + "\n".join("  " + ln for ln in text.split("\n")))
            self._n_json += 1

    def instances(self, rows: Iterable[dict[str, Any]]) -> str:
        """Append instances.csv rows; returns the text written (what a later run may reuse as is)."""
        self._buffer.seek(0)
        self._buffer.truncate()
        for row in rows:
            self._render.writerow(row_cells(row, safe=self._safe))
        text = self._buffer.getvalue()
        self._instances_file.write(text)
        return text

    def instances_text(self, text: str) -> None:
        """Append instances.csv rows rendered by :meth:`instances` (an unchanged study's, reused)."""
        self._instances_file.write(text)

    def close(self) -> None:
        """Finish the files (renamed into place); on an exception use ``abort``."""
        self._json.write("\n]\n" if self._n_json else "[]\n")
        self._stack.close()

    def abort(self, exc: BaseException) -> None:
        self._stack.__exit__(type(exc), exc, exc.__traceback__)


@dataclass
class StreamTotals:
    """What the streaming pass counted (for provenance and the command's summary)."""

    n_sets: int = 0
    labels: Counter = field(default_factory=Counter)
    export_counts: dict[str, int] = field(default_factory=dict)
    sets: list[LabelledSet] = field(default_factory=list)  # full or light (see ``keep_records``)


@dataclass(frozen=True)
class CachedSet:
    """An image set reused from the previous run (``breastlab.index.studies``): its series.csv row.

    Offers what a summary reads of a light :class:`LabelledSet` (``label``, ``study``,
    ``set_id``, ``b_value``, and ``image_set`` / ``summary`` / ``classification`` with the
    summary table's fields); it has no records.
    """

    row: dict[str, Any]

    @property
    def label(self):  # noqa: ANN201 - a Label
        from breastlab.core.labels import Label

        return Label(self.row["label"])

    @property
    def study(self) -> str:
        return self.row["study"]

    @property
    def set_id(self) -> str:
        return self.row["set_id"]

    @property
    def b_value(self) -> float | None:
        return self.row["b_value"]

    @property
    def image_set(self) -> SimpleNamespace:
        r = self.row
        return SimpleNamespace(series_number=r["series_number"], index=r["image_set"], n_images=r["n_images"],
                               series_uid=r["series_uid"], study_uid=r.get("study_uid"))

    @property
    def summary(self) -> SimpleNamespace:
        r = self.row
        return SimpleNamespace(series_description=r["series_description"], dce_phase=r["dce_phase"],
                               dce_seconds=r["dce_seconds"], manufacturer=r["manufacturer"])

    @property
    def classification(self) -> SimpleNamespace:
        r = self.row
        return SimpleNamespace(label=self.label, confidence=r["confidence"], rule=r["rule"])


def light_set(ls: LabelledSet) -> LabelledSet:
    """The set without its records (first kept; ``n_images`` unchanged): what a summary table needs."""
    st = ls.image_set
    return replace(ls, image_set=replace(st, records=st.records[:1], n_records=st.n_images))


def group_studies(records: Iterable[InstanceRecord]) -> list[list[InstanceRecord]]:
    """Split in-memory records into studies the way the streaming sort does (see module doc).

    Each series goes to the study most of its records name (ties: the first record in
    instance order), as :func:`breastlab.mri.grouping.group_image_sets` decides.
    """
    from breastlab.mri.grouping import record_sort_key, series_key

    by_series: dict[str, list[InstanceRecord]] = {}
    for r in records:
        by_series.setdefault(series_key(r), []).append(r)
    studies: dict[str, list[InstanceRecord]] = {}
    for recs in by_series.values():
        ordered = sorted(recs, key=record_sort_key)
        study = Counter(r.study_uid for r in ordered).most_common(1)[0][0]
        studies.setdefault(study or "", []).extend(recs)
    return [studies[k] for k in sorted(studies)]
