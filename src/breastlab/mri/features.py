"""Image set → :class:`SetSummary`: the facts the rule table reads.

A summary holds the typical (most common or median) header values of one image
set, plus its series' b-values and, once :mod:`breastlab.mri.dce` has run, its
place in a dynamic acquisition. Rules are pure functions of a summary.
"""
from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from breastlab.dicom.records import InstanceRecord
from breastlab.mri.imageset import ImageSet


@dataclass(frozen=True)
class SetSummary:
    """Typical header facts of one image set (hand-buildable in tests)."""

    manufacturer: str | None = None
    modality: str | None = "MR"
    series_description: str | None = None
    protocol_name: str | None = None
    sequence_name: str | None = None
    image_type: tuple[str, ...] = ()
    scanning_sequence: tuple[str, ...] = ()
    sequence_variant: tuple[str, ...] = ()
    scan_options: tuple[str, ...] = ()
    repetition_time: float | None = None
    echo_time: float | None = None
    inversion_time: float | None = None
    flip_angle: float | None = None
    spectrally_selected_suppression: str | None = None
    diffusion_directionality: tuple[str, ...] = ()
    is_derived_trace: bool = False
    b_value: float | None = None  # this set's b-value (None when absent or mixed)
    series_b_values: tuple[float, ...] = ()  # distinct b-values of the acquisition (series)
    n_images: int = 1
    n_series_timepoints: int = 1
    contrast_agent: str | None = None
    sop_class_uid: str | None = None
    vendor: dict[str, str] = field(default_factory=dict)
    # filled by breastlab.mri.classify (series context)
    series_echo_times: tuple[float, ...] = ()  # distinct echo times of the whole series
    series_has_phase: bool = False  # some image set of the series is a phase/real/imaginary image
    # filled by breastlab.mri.dce (study context)
    dce_phase: int | None = None
    dce_n_phases: int | None = None
    dce_seconds: float | None = None
    dce_timing: str | None = None  # which header ordered the phases
    dce_partial: str | None = None  # why a candidate is not a phase (single image, partial copy beside a run)

    @property
    def names(self) -> str:
        """SeriesDescription, ProtocolName and SequenceName, upper case, joined by ' | '."""
        return " | ".join(x for x in (self.series_description, self.protocol_name, self.sequence_name) if x).upper()

    @property
    def description_names(self) -> str:
        """SeriesDescription and ProtocolName only (the words a person typed)."""
        return " | ".join(x for x in (self.series_description, self.protocol_name) if x).upper()


def _common(values: Iterable):
    vals = [v for v in values if v is not None and v != () and v != ""]
    if not vals:
        return None
    return Counter(vals).most_common(1)[0][0]


def _median(values: Iterable[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return statistics.median(vals) if vals else None


def _tokens(values: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for tup in values:
        for t in tup:
            t = str(t).strip().upper()
            if t:
                seen.setdefault(t, None)
    return tuple(seen)


def summarize(image_set: ImageSet) -> SetSummary:
    """The summary of one image set (with its series' b-values and time points).

    Example:
        >>> from breastlab.dicom.records import InstanceRecord
        >>> recs = tuple(InstanceRecord(path=f"{i}.dcm", echo_time=te, repetition_time=4500.0)
        ...              for i, te in enumerate((88.0, 90.0, 92.0)))
        >>> s = summarize(ImageSet("1.2", "1.2.3", 2, 0, 1, "", recs))
        >>> s.echo_time, s.n_images
        (90.0, 3)
    """
    return summarize_records(image_set.records, series_b_values=image_set.series_b_values,
                             n_series_timepoints=image_set.n_series_timepoints)


def summarize_records(
    recs: Sequence[InstanceRecord],
    *,
    series_b_values: Iterable[float] = (),
    n_series_timepoints: int = 1,
) -> SetSummary:
    """The summary of some records (a whole series before it is split, or one image set)."""
    bs = {round(r.b_value) for r in recs if r.b_value is not None}
    vendor: dict[str, str] = {}
    for r in recs[:1]:
        vendor.update(r.vendor)
    return SetSummary(
        manufacturer=_common(r.manufacturer for r in recs),
        modality=_common(r.modality for r in recs),
        series_description=_common(r.series_description for r in recs),
        protocol_name=_common(r.protocol_name for r in recs),
        sequence_name=_common(r.sequence_name for r in recs),
        image_type=_common(r.image_type for r in recs) or (),
        scanning_sequence=_tokens(r.scanning_sequence for r in recs),
        sequence_variant=_tokens(r.sequence_variant for r in recs),
        scan_options=_tokens(r.scan_options for r in recs),
        repetition_time=_median(r.repetition_time for r in recs),
        echo_time=_median(r.echo_time for r in recs),
        inversion_time=_median(r.inversion_time for r in recs),
        flip_angle=_median(r.flip_angle for r in recs),
        spectrally_selected_suppression=_common(r.spectrally_selected_suppression for r in recs),
        diffusion_directionality=_tokens((r.diffusion_directionality,) for r in recs if r.diffusion_directionality),
        is_derived_trace=any(r.is_derived_trace and (r.b_value or 0) > 0 for r in recs),
        b_value=float(bs.pop()) if len(bs) == 1 else None,
        series_b_values=tuple(series_b_values),
        n_images=len(recs),
        n_series_timepoints=n_series_timepoints,
        contrast_agent=_common(r.contrast_agent for r in recs),
        sop_class_uid=_common(r.sop_class_uid for r in recs),
        vendor=vendor,
    )


SIEMENS_B_IN_NAME = re.compile(r"(?:^|[^A-Z])EP_?B(\d{1,5})", re.I)


def b_from_sequence_name(name: str | None) -> float | None:
    """Siemens sequence names carry the b-value: ``ep_b1000#1``, ``*ep_b50t``, ``ep_b0``."""
    if not name:
        return None
    m = SIEMENS_B_IN_NAME.search(name)
    return float(m.group(1)) if m else None
