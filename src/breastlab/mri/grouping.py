"""Records → series → image sets.

A *series* is every record with one SeriesInstanceUID. A series is split into
*image sets* when it holds several things, in this order:

1. **kind**: a scanner-made isotropic trace (``is_derived_trace`` at b>0, e.g.
   Philips (2001,1004)='I') and images with a different ImageType are kept apart;
2. **b-value**: a series with two or more distinct b-values gets one set per
   b-value (directions of one b-value stay together). A b-value alone does not
   make a series diffusion; it only separates images that differ;
3. **time point**: a series that may be dynamic (``temporal_split`` decides; by
   default a T1-weighted gradient echo or a series named dynamic, see
   :func:`breastlab.mri.dce.may_be_dynamic`) is split by the first header key that
   partitions it into complete volumes: TemporalPositionIdentifier,
   TemporalPositionIndex, TriggerTime, AcquisitionNumber,
   FrameAcquisitionDateTime, ContentTime, AcquisitionTime; failing all of them,
   by repeated slice positions ordered in time.

Before splitting, Canon/Toshiba images without a b-value tag in a series whose other
images have b>0 are given b=0 (:func:`canon_b0`, from the ``canon_b_absent`` hint).

A key *partitions* the series when it has ≥2 values, no slice position repeats
inside one value, and every value holds the same number of images.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from breastlab.dicom.records import InstanceRecord

DAY = 86400.0


@dataclass(frozen=True)
class ImageSet:
    """One labelled unit: a whole series, or one part of it."""

    study_uid: str | None
    series_uid: str
    series_number: int | None
    index: int  # 0-based position of this set inside its series
    n_sets_in_series: int
    split: str  # how it was separated from its series ("" when the series is one set)
    records: tuple[InstanceRecord, ...]
    series_b_values: tuple[float, ...] = ()  # distinct b-values of the whole series (the acquisition)
    time_order: int | None = None  # 0-based time point inside the series, when split by time
    n_series_timepoints: int = 1
    series_index_in_input: int = 0  # for stable ordering
    extra: dict = field(default_factory=dict, compare=False)
    n_records: int | None = None  # set on a light copy whose records were dropped (streaming sort)

    @property
    def n_images(self) -> int:
        return self.n_records if self.n_records is not None else len(self.records)

    @property
    def first(self) -> InstanceRecord:
        return self.records[0]


# --------------------------------------------------------------------------- helpers

def record_sort_key(r: InstanceRecord) -> tuple:
    return (
        r.instance_number if r.instance_number is not None else 1 << 30,
        r.frame_index if r.frame_index is not None else -1,
        r.path,
    )


def position_key(r: InstanceRecord) -> tuple | None:
    """Where the slice is (ImagePositionPatient to 0.01 mm, else SliceLocation)."""
    if r.image_position is not None and len(r.image_position) == 3:
        return tuple(round(float(v), 2) for v in r.image_position)
    if r.slice_location is not None:
        return (round(float(r.slice_location), 2),)
    return None


def b_key(b: float | None) -> float | None:
    return None if b is None else float(round(b))


def parse_dicom_datetime(value: str | None) -> float | None:
    """DICOM DT (YYYYMMDDHHMMSS[.ffffff][&ZZXX]) → POSIX-like seconds, or None."""
    if not value:
        return None
    text = value.strip().split("+")[0].split("-")[0] if len(value) > 8 else value.strip()
    digits, _, frac = text.partition(".")
    try:
        fmt = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}[len(digits)]
        base = datetime.strptime(digits, fmt).timestamp()
    except (KeyError, ValueError):
        return None
    return base + (float("0." + frac) if frac.isdigit() else 0.0)


def unwrap_midnight(times: Sequence[float]) -> list[float]:
    """Times of day (s) → a monotone-comparable scale across midnight.

    The acquisition is assumed shorter than 12 h: the largest circular gap
    between the sorted times marks the start; times before the start are moved
    to the next day (+86400 s).
    """
    if not times:
        return []
    uniq = sorted(set(t % DAY for t in times))
    if len(uniq) < 2:
        return [t % DAY for t in times]
    gaps = [(uniq[(i + 1) % len(uniq)] - uniq[i]) % DAY for i in range(len(uniq))]
    biggest = max(range(len(gaps)), key=gaps.__getitem__)
    start = uniq[(biggest + 1) % len(uniq)]
    return [(t % DAY) + (DAY if (t % DAY) < start else 0.0) for t in times]


def format_tod(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = round(seconds % DAY, 3)
    sec = s % 60
    text = f"{sec:06.3f}".rstrip("0").rstrip(".") if sec != int(sec) else f"{int(sec):02d}"
    return f"{int(s // 3600):02d}:{int(s % 3600 // 60):02d}:{text}"


# --------------------------------------------------------------------------- temporal split

_TIME_OF_DAY = {"ContentTime", "AcquisitionTime"}

TEMPORAL_KEYS: tuple[tuple[str, Callable[[InstanceRecord], object]], ...] = (
    ("TemporalPositionIdentifier", lambda r: r.temporal_position_identifier),
    ("TemporalPositionIndex", lambda r: r.temporal_position_index),
    ("TriggerTime", lambda r: None if r.trigger_time is None else round(r.trigger_time, 1)),
    ("AcquisitionNumber", lambda r: r.acquisition_number),
    ("FrameAcquisitionDateTime", lambda r: parse_dicom_datetime(r.acquisition_datetime)),
    ("ContentTime", lambda r: None if r.content_time is None else round(r.content_time, 3)),
    ("AcquisitionTime", lambda r: None if r.acquisition_time is None else round(r.acquisition_time, 3)),
)


def _partitions(groups: dict, positions: dict[int, tuple | None], n: int) -> bool:
    if len(groups) < 2:
        return False
    sizes = {len(v) for v in groups.values()}
    if len(sizes) != 1 or sizes.pop() * len(groups) != n:
        return False
    known = all(p is not None for p in positions.values())
    if known:
        covered = None
        for members in groups.values():
            pos = [positions[id(r)] for r in members]
            if len(set(pos)) != len(pos):
                return False
            if covered is None:
                covered = set(pos)
            elif set(pos) != covered:  # every time point covers the same slices
                return False
    else:
        if len(next(iter(groups.values()))) < 2:
            return False
    return True


def split_by_time(records: Sequence[InstanceRecord]) -> tuple[str, list[tuple[object, list[InstanceRecord]]]] | None:
    """Split one series' records into time points; None when it holds only one."""
    n = len(records)
    if n < 2:
        return None
    positions = {id(r): position_key(r) for r in records}
    for name, fn in TEMPORAL_KEYS:
        values = [fn(r) for r in records]
        if any(v is None for v in values):
            continue
        groups: dict[object, list[InstanceRecord]] = defaultdict(list)
        for r, v in zip(records, values):
            groups[v].append(r)
        if not _partitions(groups, positions, n):
            continue
        keys = list(groups)
        if name in _TIME_OF_DAY:
            unwrapped = dict(zip(keys, unwrap_midnight([float(k) for k in keys])))
            keys.sort(key=unwrapped.__getitem__)
        else:
            keys.sort()
        return name, [(k, sorted(groups[k], key=record_sort_key)) for k in keys]
    # fallback: every slice position repeats the same number of times
    if all(p is not None for p in positions.values()):
        per_pos: dict[tuple, list[InstanceRecord]] = defaultdict(list)
        for r in records:
            per_pos[positions[id(r)]].append(r)
        counts = {len(v) for v in per_pos.values()}
        if len(counts) == 1 and (k := counts.pop()) >= 2:
            def when(r: InstanceRecord) -> tuple:
                t = r.acquisition_time if r.acquisition_time is not None else r.content_time
                return (0 if t is not None else 1, t or 0.0, *record_sort_key(r))
            buckets: list[list[InstanceRecord]] = [[] for _ in range(k)]
            for members in per_pos.values():
                for i, r in enumerate(sorted(members, key=when)):
                    buckets[i].append(r)
            return "repeated slice positions", [(i + 1, sorted(b, key=record_sort_key)) for i, b in enumerate(buckets)]
    return None


def _describe_value(name: str, value: object) -> str:
    if name in _TIME_OF_DAY and isinstance(value, float):
        return f"{name}={format_tod(value)}"
    if name == "FrameAcquisitionDateTime" and isinstance(value, float):
        return f"{name}={datetime.fromtimestamp(value).strftime('%H:%M:%S')}"
    return f"{name}={value}"


# --------------------------------------------------------------------------- grouping

def series_key(r: InstanceRecord) -> str:
    if r.series_uid:
        return r.series_uid
    return f"nouid:{r.study_uid}:{r.series_number}:{r.series_description}"


CANON_B0_SOURCE = "Canon: no b-value tag in a b>0 series (b=0)"


def canon_b0(recs: list[InstanceRecord]) -> list[InstanceRecord]:
    """Canon/Toshiba write (0018,9087) only on b>0 images: in a series whose other images
    carry b>0, an image with the ``canon_b_absent`` hint is the b=0 image.

    Returns the records with those images given ``b_value=0`` (source
    :data:`CANON_B0_SOURCE`); other series are returned unchanged.
    """
    if not any(r.vendor.get("canon_b_absent") and r.b_value is None for r in recs):
        return recs
    if not any(r.b_value is not None and r.b_value > 0 for r in recs):
        return recs
    return [
        replace(r, b_value=0.0, b_value_source=CANON_B0_SOURCE)
        if r.vendor.get("canon_b_absent") and r.b_value is None else r
        for r in recs
    ]


def _is_trace(r: InstanceRecord) -> bool:
    return bool(r.is_derived_trace) and (r.b_value or 0) > 0


def group_image_sets(
    records: Iterable[InstanceRecord],
    *,
    temporal_split: Callable[[Sequence[InstanceRecord]], bool] | None = None,
) -> list[ImageSet]:
    """Group records into series and split each series into image sets.

    ``temporal_split(records)`` says whether a series may be split by time point
    (default :func:`breastlab.mri.dce.may_be_dynamic`).
    """
    if temporal_split is None:
        from breastlab.mri.dce import may_be_dynamic

        temporal_split = may_be_dynamic
    by_series: dict[str, list[InstanceRecord]] = defaultdict(list)
    for r in records:
        by_series[series_key(r)].append(r)

    out: list[ImageSet] = []
    for s_idx, (uid, recs) in enumerate(by_series.items()):
        recs = canon_b0(recs)
        recs.sort(key=record_sort_key)
        b_values = tuple(sorted({b_key(r.b_value) for r in recs if r.b_value is not None}))
        parts: list[tuple[str, list[InstanceRecord], int | None, int]] = []
        # 1. kind
        kinds: dict[tuple, list[InstanceRecord]] = defaultdict(list)
        for r in recs:
            kinds[(_is_trace(r), r.image_type)].append(r)
        multi_type = len({itype for _, itype in kinds}) > 1
        for (trace, itype), krecs in sorted(kinds.items(), key=lambda kv: (kv[0][0], record_sort_key(kv[1][0]))):
            kind_label = _join("trace" if trace else "", "ImageType=" + "\\".join(itype) if multi_type else "")
            # 2. b-value
            bgroups: dict[float | None, list[InstanceRecord]] = defaultdict(list)
            for r in krecs:
                bgroups[b_key(r.b_value)].append(r)
            if len(bgroups) > 1:
                for b in sorted(bgroups, key=lambda x: (x is None, x or 0.0)):
                    label = f"b={b:g}" if b is not None else "b=none"
                    parts.append((_join(kind_label, label), bgroups[b], None, 1))
                continue
            # 3. time points
            split = split_by_time(krecs) if temporal_split(krecs) else None
            if split is None:
                parts.append((kind_label, krecs, None, 1))
            else:
                name, tgroups = split
                for t_idx, (value, trecs) in enumerate(tgroups):
                    parts.append((_join(kind_label, _describe_value(name, value)), trecs, t_idx, len(tgroups)))
        study = Counter(r.study_uid for r in recs).most_common(1)[0][0]
        for i, (split_label, precs, t_idx, n_tp) in enumerate(parts):
            out.append(
                ImageSet(
                    study_uid=study,
                    series_uid=uid,
                    series_number=recs[0].series_number,
                    index=i,
                    n_sets_in_series=len(parts),
                    split=split_label if len(parts) > 1 else "",
                    records=tuple(precs),
                    series_b_values=b_values,
                    time_order=t_idx,
                    n_series_timepoints=n_tp,
                    series_index_in_input=s_idx,
                )
            )
    out.sort(key=lambda s: (s.study_uid or "", s.series_number if s.series_number is not None else 1 << 30,
                            s.series_uid, s.index))
    return out


def _join(a: str, b: str) -> str:
    return f"{a}/{b}" if a and b else (a or b)
