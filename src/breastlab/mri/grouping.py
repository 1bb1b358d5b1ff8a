"""Records → series → image sets.

A *series* is every record with one SeriesInstanceUID. A series is split into
*image sets* when it holds several things, in this order:

1. **kind**: a scanner-made isotropic trace (``is_derived_trace`` at b>0, e.g.
   Philips (2001,1004)='I') and images with a different ImageType or complex component
   (ComplexImageComponent, GE (0043,102F): magnitude/phase/real/imaginary) are kept apart;
2. **b-value**: a series with two or more distinct b-values gets one set per
   b-value (directions of one b-value stay together). A b-value alone does not
   make a series diffusion; it only separates images that differ;
3. **time point**: a series that may be dynamic (``temporal_split`` decides; by
   default a T1-weighted gradient echo or a series named dynamic, see
   :func:`breastlab.mri.dce.may_be_dynamic`) is split by the first header key that
   partitions it into complete volumes (never a series that holds magnitude and
   phase images: a field map's echoes are not time points): TemporalPositionIdentifier,
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
from dataclasses import replace
from datetime import datetime

from breastlab.dicom.records import InstanceRecord, series_key
from breastlab.dicom.times import format_tod, parse_dicom_datetime, unwrap_midnight
from breastlab.mri.dce import may_be_dynamic
from breastlab.mri.imageset import ImageSet


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
    """Split one series' records into time points.

    Returns:
        ``(the key that split it, [(value, records), ...])`` in time order, or ``None``
        when the series holds one time point.
    """
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

CANON_B0_SOURCE = "Canon: no b-value tag in a b>0 series (b=0)"


def canon_b0(recs: list[InstanceRecord]) -> list[InstanceRecord]:
    """Canon/Toshiba write (0018,9087) only on b>0 images: in a series whose other images
    carry b>0, an image with the ``canon_b_absent`` hint is the b=0 image.

    Returns:
        The records, those images given ``b_value=0`` (source :data:`CANON_B0_SOURCE`);
        other series unchanged.
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


_NOT_MAGNITUDE = {"PHASE": "PHASE", "REAL": "REAL", "IMAGINARY": "IMAGINARY", "1": "PHASE", "2": "REAL", "3": "IMAGINARY"}


def _component(r: InstanceRecord) -> str:
    """``PHASE``, ``REAL`` or ``IMAGINARY`` where the frame says so (enhanced ComplexImageComponent,
    GE (0043,102F)); ``""`` for magnitude or unsaid."""
    return _NOT_MAGNITUDE.get(r.vendor.get("ComplexImageComponent") or r.vendor.get("(0043,102F)", "").strip(), "")


def _is_trace(r: InstanceRecord) -> bool:
    return bool(r.is_derived_trace) and (r.b_value or 0) > 0


def group_image_sets(
    records: Iterable[InstanceRecord],
    *,
    temporal_split: Callable[[Sequence[InstanceRecord]], bool] | None = None,
) -> list[ImageSet]:
    """Group records into series and split each series into image sets (module docstring).

    Args:
        records: the records of one input (several studies may mix).
        temporal_split: says whether a series may be split by time point
            (default :func:`breastlab.mri.dce.may_be_dynamic`).

    Returns:
        The image sets, ordered by study, series number, series and position in the series.
    """
    if temporal_split is None:
        temporal_split = may_be_dynamic
    by_series: dict[str, list[InstanceRecord]] = defaultdict(list)
    for r in records:
        by_series[series_key(r)].append(r)

    out: list[ImageSet] = []
    for uid, recs in by_series.items():
        recs = canon_b0(recs)
        recs.sort(key=record_sort_key)
        b_values = tuple(sorted({b_key(r.b_value) for r in recs if r.b_value is not None}))
        parts: list[tuple[str, list[InstanceRecord], int | None, int]] = []
        # 1. kind
        kinds: dict[tuple, list[InstanceRecord]] = defaultdict(list)
        for r in recs:
            kinds[(_is_trace(r), r.image_type, _component(r))].append(r)
        multi_type = len({itype for _, itype, _ in kinds}) > 1
        multi_component = len({comp for _, _, comp in kinds}) > 1
        for (trace, itype, comp), krecs in sorted(kinds.items(),
                                                  key=lambda kv: (kv[0][0], record_sort_key(kv[1][0]))):
            kind_label = _join(_join("trace" if trace else "", "ImageType=" + "\\".join(itype) if multi_type else ""),
                               f"component={comp or 'MAGNITUDE'}" if multi_component else "")
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
            # a series holding magnitude and phase (a field map) has echoes, not time points
            split = split_by_time(krecs) if not multi_component and temporal_split(krecs) else None
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
                )
            )
    out.sort(key=lambda s: (s.study_uid or "", s.series_number if s.series_number is not None else 1 << 30,
                            s.series_uid, s.index))
    return out


def _join(a: str, b: str) -> str:
    return f"{a}/{b}" if a and b else (a or b)
