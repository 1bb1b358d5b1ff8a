"""What gets converted: one unit per labelled image set, plus one per DWI acquisition.

* Every labelled image set is converted on its own, from exactly its records (a DCE
  phase holds exactly its time point's slices even when the scanner wrote all time
  points into one series).
* A **DWI acquisition** (the diffusion image sets of one series with one ImageType,
  e.g. b=0 + b=800 directions + a Philips trace) is also converted whole, as one 4D
  NIfTI with ``.bval``/``.bvec``: what diffusion pipelines read. A scanner trace in it
  is dropped by dcm2niix from the 4D (as in dcm2niix's own reference output) and kept
  as its own set.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from breastlab.core.labels import DWI_LABELS
from breastlab.core.privacy import hashed_id
from breastlab.dicom.records import InstanceRecord
from breastlab.mri.classify import LabelledSet


@dataclass
class Unit:
    """One thing dcm2niix converts: an image set, or a whole DWI acquisition."""

    unit_id: str
    kind: str  # "set" | "dwi_acquisition"
    sets: list[LabelledSet]
    records: list[InstanceRecord] = field(default_factory=list)

    @property
    def first(self) -> LabelledSet:
        return self.sets[0]

    @property
    def label(self) -> str:
        return "DWI" if self.kind == "dwi_acquisition" else self.first.label

    @property
    def study(self) -> str:
        return self.first.study

    @property
    def series_uid(self) -> str:
        return self.first.image_set.series_uid

    @property
    def series_number(self) -> int | None:
        return self.first.image_set.series_number


def is_diffusion(ls: LabelledSet) -> bool:
    return ls.label in DWI_LABELS or ls.classification.rule == "dwi_b_unknown"


def is_trace(ls: LabelledSet) -> bool:
    return any(r.is_derived_trace and (r.b_value or 0) > 0 for r in ls.image_set.records)


def is_derived(ls: LabelledSet) -> bool:
    """ImageType starts with DERIVED, or a scanner-made trace."""
    itype = ls.image_set.records[0].image_type
    return bool(itype and itype[0] == "DERIVED") or is_trace(ls)


def acquisition_key(ls: LabelledSet) -> tuple:
    return (ls.image_set.series_uid, ls.image_set.records[0].image_type)


def dwi_acquisitions(sets: Sequence[LabelledSet]) -> list[list[LabelledSet]]:
    """Diffusion sets grouped by acquisition (series + ImageType) with ≥2 sets, or one non-trace set."""
    groups: dict[tuple, list[LabelledSet]] = defaultdict(list)
    for ls in sets:
        if is_diffusion(ls):
            groups[acquisition_key(ls)].append(ls)
    return [g for g in groups.values() if len(g) >= 2]


def subject_pseudonym(ls: LabelledSet) -> str:
    """BIDS-safe subject label: hex digits of SHA-256 of ``patient:`` + PatientID (else the study's)."""
    pid = next((r.patient_id for r in ls.image_set.records if r.patient_id), None)
    if pid:
        return hashed_id("patient:" + pid, "", 10)
    return ls.study.removeprefix("study-")


def plan_units(sets: Sequence[LabelledSet], *, want=lambda ls: True, acquisitions: bool = True) -> list[Unit]:
    """Units for every set ``want`` accepts, plus (``acquisitions``) one per DWI acquisition."""
    units = [Unit(ls.set_id, "set", [ls], list(ls.image_set.records)) for ls in sets if want(ls)]
    if acquisitions:
        used: dict[str, int] = defaultdict(int)
        for group in dwi_acquisitions(sets):
            first = group[0]
            sn = first.image_set.series_number if first.image_set.series_number is not None else "x"
            base = f"{first.study}_s{sn}_dwi"
            used[base] += 1
            uid = base if used[base] == 1 else f"{base}{used[base]}"
            records = [r for ls in group for r in ls.image_set.records]
            units.append(Unit(uid, "dwi_acquisition", list(group), records))
    return units
