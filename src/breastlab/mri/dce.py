"""DCE: which image sets are time points of one dynamic acquisition, and their order.

A *dynamic acquisition* is every candidate image set of one study with the same
acquisition key (sequence, TR, TE, flip angle, matrix, scan options, ImageType,
orientation and slab centre): one series with several time points, several separate series,
or both (a separate pre-contrast series followed by a multi-phase series).

* A candidate is a T1-weighted gradient echo (:func:`t1_gre_evidence`) or a set
  whose name says dynamic (:data:`DYNAMIC_NAME`), that the rule table did not
  already call localizer, MIP, subtraction, derived map or diffusion.
* It is DCE only with **≥2 time points** that look like phases of one run (same slice
  count and coverage within a tolerance, :class:`Geometry`; same orientation, in the key).
  A single time point stays ``T1``; a single image is never a phase; a single image or
  partial set beside a run of the same protocol is marked ``dce_partial`` (``OTHER``).
* Phase 0 (``DCE_pre``) is the earliest, 1 is ``DCE_early``, ≥2 ``DCE_delayed``.
* Order and seconds come from the first header that is present on every time
  point and differs between them: FrameAcquisitionDateTime, AcquisitionTime,
  ContentTime, TriggerTime (one series only), SeriesTime (separate series
  only). Times of day are unwrapped across midnight. Without any, the order is
  series number then position in the series, and ``dce_seconds`` is empty.
* Contrast wording is **not** used: ContrastBolusAgent is unreliable (the GE
  exam in the shared data says 'NONE' on post-contrast phases), and names such
  as "+C"/"post" are often copied between series.
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

from breastlab.dicom.records import InstanceRecord
from breastlab.dicom.times import DAY, parse_dicom_datetime, unwrap_midnight
from breastlab.mri import fieldmap
from breastlab.mri.features import SetSummary, summarize_records
from breastlab.mri.imageset import ImageSet
from breastlab.mri.names import LOCALIZER_NAME_RE, without_bids_entities

GRE_NAME = re.compile(
    r"FL3D|FL2D|\*?FL\d|TFL|VIBE|FLASH|MPRAGE|MP-RAGE|FGRE|FSPGR|SPGR|BRAVO|LAVA|VIBRANT|DISCO|"
    r"THRIVE|T1.?FFE|T1.?TFE|TWIST|QUICK3D|DYNAVIEW|\bGRE\b|_GRE|GRE_|\bFFE\b",
    re.I,
)
DYNAMIC_NAME = re.compile(
    r"DYN|DCE|VIBRANT|THRIVE|TWIST|DISCO|KINETIC|MULTI.?PHASE|PERFUSION|\bPH(?:ASE)?\s?\d\b|DYNAVIEW",
    re.I,
)


def t1_gre_evidence(s: SetSummary) -> str | None:
    """A T1-weighted (spoiled) gradient echo, from physics first, then the sequence name."""
    if "EP" in s.scanning_sequence:
        return None
    te, tr, flip = s.echo_time, s.repetition_time, s.flip_angle
    if te is None or te >= 10:
        return None
    if tr is not None and tr < 50 and (flip is None or flip <= 45):
        return f"TR {tr:g} ms < 50, TE {te:g} ms < 10" + (f", flip {flip:g}" if flip is not None else "")
    gre = "GR" in s.scanning_sequence or s.vendor.get("(0019,109C)", "") and GRE_NAME.search(s.vendor["(0019,109C)"])
    name = GRE_NAME.search(s.names)
    if name or gre:
        why = f"gradient-echo name '{name.group(0)}'" if name else "ScanningSequence GR"
        if s.inversion_time and s.inversion_time > 300:
            return f"{why}, TE {te:g} ms, inversion-prepared (TI {s.inversion_time:g} ms)"
        if tr is None or tr < 100:
            return f"{why}, TE {te:g} ms" + (f", TR {tr:g} ms" if tr is not None else "")
    return None


def dynamic_name_evidence(s: SetSummary) -> str | None:
    m = DYNAMIC_NAME.search(without_bids_entities(s.description_names))
    return f"name '{m.group(0)}'" if m else None


def may_be_dynamic(records: Sequence[InstanceRecord]) -> bool:
    """Whether a series may hold several DCE time points (used to split it by time)."""
    if not records:
        return False
    s = summarize_records(records)
    if "LOCALIZER" in s.image_type or LOCALIZER_NAME_RE.search(s.names):  # ImageType value, not the label
        return False
    if "EP" in s.scanning_sequence or "DIFFUSION" in s.image_type:
        return False
    if fieldmap.phase_evidence(s) or fieldmap.field_map_evidence(s):  # echoes of a field map are not time points
        return False
    return bool(t1_gre_evidence(s) or dynamic_name_evidence(s))


def acquisition_key(image_set: ImageSet, s: SetSummary) -> str:
    """What must match for two image sets to be time points of one acquisition."""
    r = image_set.first
    orient = ",".join(f"{v:.1f}" for v in r.image_orientation) if r.image_orientation else ""
    centre = ""
    pos = [x.image_position for x in image_set.records if x.image_position is not None and len(x.image_position) == 3]
    if pos:
        centre = ",".join(f"{sum(p[i] for p in pos) / len(pos):.0f}" for i in range(3))
    num = lambda v: "" if v is None else f"{v:.1f}"  # noqa: E731
    return "|".join(
        [
            (s.sequence_name or "").upper(),
            f"TR{num(s.repetition_time)}",
            f"TE{num(s.echo_time)}",
            f"FA{num(s.flip_angle)}",
            f"{r.rows}x{r.columns}",
            "\\".join(sorted(s.scan_options)),
            "\\".join(s.image_type),
            f"O{orient}",
            f"C{centre}",
        ]
    )


@dataclass(frozen=True)
class _Times:
    datetime: float | None
    acquisition: float | None
    content: float | None
    trigger: float | None
    series: float | None


def _set_times(image_set: ImageSet) -> _Times:
    def first(values):
        vals = [v for v in values if v is not None]
        return min(vals) if vals else None

    recs = image_set.records
    # times of day: the earliest image after unwrapping inside the set
    def tod(values):
        vals = [v for v in values if v is not None]
        if not vals:
            return None
        return min(unwrap_midnight(vals)) % DAY

    return _Times(
        datetime=first(parse_dicom_datetime(r.acquisition_datetime) for r in recs),
        acquisition=tod(r.acquisition_time for r in recs),
        content=tod(r.content_time for r in recs),
        trigger=first(None if r.trigger_time is None else r.trigger_time / 1000.0 for r in recs),
        series=first(r.series_time for r in recs),
    )


def order_time_points(sets: Sequence[ImageSet]) -> tuple[list[int], list[float | None], str]:
    """Order the time points of one acquisition.

    Returns:
        ``(indices earliest first, seconds after the first, the header that ordered them)``.
    """
    times = [_set_times(s) for s in sets]
    one_series = len({s.series_uid for s in sets}) == 1
    separate = len({s.series_uid for s in sets}) == len(sets)
    sources = [
        ("FrameAcquisitionDateTime", "datetime", False, True),
        ("AcquisitionTime", "acquisition", True, True),
        ("ContentTime", "content", True, True),
        ("TriggerTime", "trigger", False, one_series),
        ("SeriesTime", "series", True, separate),
    ]
    for name, attr, time_of_day, allowed in sources:
        if not allowed:
            continue
        values = [getattr(t, attr) for t in times]
        if any(v is None for v in values) or len(set(values)) != len(values):
            continue
        scale = unwrap_midnight(values) if time_of_day else list(values)
        order = sorted(range(len(sets)), key=lambda i: scale[i])
        t0 = scale[order[0]]
        return order, [scale[i] - t0 for i in order], name
    order = sorted(
        range(len(sets)),
        key=lambda i: (sets[i].series_number if sets[i].series_number is not None else 1 << 30,
                       sets[i].time_order or 0, sets[i].index),
    )
    return order, [None] * len(sets), "series order (no usable timing)"


#: a DCE phase is a volume: a set of fewer images is never a phase
MIN_PHASE_IMAGES = 2
#: phases of one run hold the same number of slices and cover the same length, within these
SLICE_COUNT_TOLERANCE = 0.1  # fraction of the reference phase's images (at least 1 image)
COVERAGE_TOLERANCE_MM = 5.0  # or 10 % of the reference coverage, whichever is larger


@dataclass(frozen=True)
class Geometry:
    """What a phase must share with the other phases of its run (orientation is in the key)."""

    n_images: int
    coverage: float | None  # mm between the outermost slices along the slice normal

    def consistent_with(self, ref: Geometry) -> str | None:
        """None when consistent with ``ref``, else why not (one line)."""
        if abs(self.n_images - ref.n_images) > max(1.0, SLICE_COUNT_TOLERANCE * ref.n_images):
            return f"{self.n_images} images against {ref.n_images} in the other phases"
        if self.coverage is not None and ref.coverage is not None:
            if abs(self.coverage - ref.coverage) > max(COVERAGE_TOLERANCE_MM, 0.1 * ref.coverage):
                return f"covers {self.coverage:.0f} mm against {ref.coverage:.0f} mm in the other phases"
        return None


def geometry(image_set: ImageSet) -> Geometry:
    """Slice count and coverage (along the normal of the first image's orientation) of a set."""
    coverage = None
    o = image_set.first.image_orientation
    if o is not None and len(o) == 6:
        normal = (o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3])
        along = [sum(p[i] * normal[i] for i in range(3)) for p in (r.image_position for r in image_set.records)
                 if p is not None and len(p) == 3]
        if along:
            coverage = max(along) - min(along)
    return Geometry(image_set.n_images, coverage)


def _protocol(key: str) -> str:
    """The acquisition key without the slab centre: what a partial copy shares with its run."""
    return key.rsplit("|C", 1)[0]


def _consistent_members(members: list[int], geo: list[Geometry]) -> tuple[list[int], dict[int, str]]:
    """The members that look like phases of one run, and why each other member does not."""
    why: dict[int, str] = {}
    volumes = []
    for i in members:
        if geo[i].n_images < MIN_PHASE_IMAGES:
            why[i] = f"a single image ({geo[i].n_images} image), not a volume"
        else:
            volumes.append(i)
    if not volumes:
        return [], why
    counts: dict[int, int] = defaultdict(int)
    for i in volumes:
        counts[geo[i].n_images] += 1
    ref_n = max(counts, key=lambda n: (counts[n], n))
    ref = geo[next(i for i in volumes if geo[i].n_images == ref_n)]
    kept = []
    for i in volumes:
        problem = geo[i].consistent_with(ref)
        if problem:
            why[i] = f"a partial set ({problem})"
        else:
            kept.append(i)
    return kept, why


def assign_dce(
    sets: Sequence[ImageSet],
    summaries: Sequence[SetSummary],
    candidate: Sequence[bool],
) -> tuple[list[SetSummary], list[str]]:
    """Fill the ``dce_*`` fields of candidate summaries that form dynamic acquisitions.

    A group of candidates with one acquisition key becomes a run when at least two of
    its sets are geometrically consistent (:class:`Geometry`: slice count and coverage;
    orientation is part of the key); single images are never phases. A candidate that
    is not a phase but shares the protocol (the key without its slab centre) of a run in
    its study (a saved key image, an edited re-export of one slice, a partial copy) gets
    ``dce_partial``: the reason, which the rule table turns into ``OTHER``/``DERIVED``.

    Args:
        sets: every image set of the input.
        summaries: their summaries, in the same order.
        candidate: whether each set may be a DCE time point (the first rule pass said
            ``T1``, or ``UNKNOWN`` with a dynamic name).

    Returns:
        The updated summaries and each set's acquisition key.
    """
    keys = [acquisition_key(st, sm) for st, sm in zip(sets, summaries)]
    geo = [geometry(st) if ok else Geometry(st.n_images, None) for st, ok in zip(sets, candidate)]
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, (st, ok) in enumerate(zip(sets, candidate)):
        if ok:
            groups[(st.study_uid, keys[i])].append(i)
    out = list(summaries)
    runs: dict[tuple, tuple[int, Geometry]] = {}  # (study, protocol) -> (phases, geometry of a phase)
    not_phase: dict[int, str] = {}
    for (study, key), members in groups.items():
        kept, why = _consistent_members(members, geo)
        not_phase.update(why)
        if len(kept) < 2:
            continue
        order, seconds, source = order_time_points([sets[i] for i in kept])
        for phase, (pos, sec) in enumerate(zip(order, seconds)):
            i = kept[pos]
            out[i] = replace(out[i], dce_phase=phase, dce_n_phases=len(kept), dce_seconds=sec, dce_timing=source)
        runs[(study, _protocol(key))] = (len(kept), geo[kept[0]])
    for i, ok in enumerate(candidate):
        if not ok or out[i].dce_phase is not None:
            continue
        run = runs.get((sets[i].study_uid, _protocol(keys[i])))
        if run is None:
            continue
        n_phases, ref = run
        problem = geo[i].consistent_with(ref) if geo[i].n_images >= MIN_PHASE_IMAGES else "a single image"
        if problem is None:  # a whole volume elsewhere (a repeat after repositioning): stays what it is
            continue
        reason = not_phase.get(i) or (problem if problem == "a single image" else f"a partial set ({problem})")
        out[i] = replace(out[i], dce_partial=f"{reason}, beside a dynamic acquisition of {n_phases} phases x "
                                             f"{ref.n_images} images with the same sequence, TR, TE, flip and "
                                             "orientation")
    return out, keys
