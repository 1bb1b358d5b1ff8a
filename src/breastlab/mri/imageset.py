"""``ImageSet``: the unit the sorter labels (a whole series, or one part of it).

:mod:`breastlab.mri.grouping` makes image sets from records; everything after it
(:mod:`~breastlab.mri.features`, :mod:`~breastlab.mri.dce`, the rules, the outputs)
reads them. Kept in its own module so that those steps depend on the type, not on
the grouping code.
"""
from __future__ import annotations

from dataclasses import dataclass

from breastlab.dicom.records import InstanceRecord


@dataclass(frozen=True)
class ImageSet:
    """One labelled unit: a whole series, or one part of it.

    Attributes:
        study_uid: StudyInstanceUID (the most common one of the series).
        series_uid: SeriesInstanceUID (or a stand-in when the files have none).
        series_number: SeriesNumber, when present.
        index: 0-based position of this set inside its series.
        n_sets_in_series: how many sets its series was split into.
        split: how it was separated from its series (``""`` when the series is one set).
        records: its images (frames), in instance order.
        series_b_values: distinct b-values of the whole series (the acquisition).
        time_order: 0-based time point inside the series, when split by time.
        n_series_timepoints: time points of its series (1 unless split by time).
        n_records: its number of images on a light copy whose records were dropped
            (the streaming sort); ``None`` when ``records`` holds them all.
    """

    study_uid: str | None
    series_uid: str
    series_number: int | None
    index: int
    n_sets_in_series: int
    split: str
    records: tuple[InstanceRecord, ...]
    series_b_values: tuple[float, ...] = ()
    time_order: int | None = None
    n_series_timepoints: int = 1
    n_records: int | None = None

    @property
    def n_images(self) -> int:
        return self.n_records if self.n_records is not None else len(self.records)

    @property
    def first(self) -> InstanceRecord:
        return self.records[0]
