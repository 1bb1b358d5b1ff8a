"""JSON sidecars: dcm2niix's fields, minus identity, plus what breastlab knows.

breastlab's facts go under one key, ``"Breastlab"`` (BIDS allows extra sidecar
fields), so dcm2niix's own fields keep their standard names:

``label, confidence, evidence, rule, set_id, b_value, dce_phase, dce_seconds``
(seconds after the start of the pre-contrast phase), ``source_series_uid``,
``source_sop_instance_uids`` (and ``source_frames`` for enhanced files), plus
``sets`` (one entry per labelled set) for a whole DWI acquisition.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from breastlab.convert.units import Unit
from breastlab.dicom.records import InstanceRecord
from breastlab.mri.classify import LabelledSet

# Fields dcm2niix may write (with -ba n, or in some versions even with -ba y) that carry the
# identity of the patient, the people involved, the place or the date. Dropped unless --keep-phi.
IDENTITY_FIELDS = frozenset({
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "PatientWeight", "PatientSize",
    "OtherPatientIDs", "PatientComments", "AccessionNumber", "StudyID", "ReferringPhysicianName",
    "PerformingPhysicianName", "OperatorsName", "PhysiciansOfRecord", "RequestingPhysician",
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "StationName", "DeviceSerialNumber",
    "AcquisitionDateTime", "AcquisitionDate", "StudyDate", "SeriesDate", "ContentDate", "StudyTime",
    "ImageComments", "StudyComments", "ProcedureStepDescription", "RequestedProcedureDescription",
    "PerformedProcedureStepDescription", "InstitutionCodeSequence",
})


def strip_identity(sidecar: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``sidecar`` without :data:`IDENTITY_FIELDS`."""
    return {k: v for k, v in sidecar.items() if k not in IDENTITY_FIELDS}


def _num(v: float | None, digits: int = 3) -> float | int | None:
    if v is None:
        return None
    v = round(float(v), digits)
    return int(v) if v.is_integer() else v


def _sources(records: Sequence[InstanceRecord]) -> tuple[list[str], dict[str, list[int]]]:
    uids: dict[str, None] = {}
    frames: dict[str, list[int]] = {}
    for r in records:
        if r.sop_instance_uid:
            uids.setdefault(r.sop_instance_uid, None)
            if r.frame_index is not None:
                frames.setdefault(r.sop_instance_uid, []).append(int(r.frame_index))
    return list(uids), {k: sorted(v) for k, v in frames.items()}


def set_facts(ls: LabelledSet) -> dict[str, Any]:
    """breastlab's facts about one labelled set (no patient identity)."""
    s, c = ls.summary, ls.classification
    return {
        "set_id": ls.set_id,
        "label": c.label,
        "confidence": round(c.confidence, 2),
        "evidence": c.evidence_text,
        "evidence_source": c.source,
        "rule": c.rule,
        "b_value": _num(ls.b_value),
        "dce_phase": s.dce_phase,
        "dce_n_phases": s.dce_n_phases,
        "dce_seconds": _num(s.dce_seconds, 1),
        "dce_timing": s.dce_timing,
        "series_number": ls.image_set.series_number,
        "series_description": s.series_description,
        "split": ls.image_set.split or None,
        "n_images": ls.image_set.n_images,
    }


def breastlab_block(unit: Unit, **extra: Any) -> dict[str, Any]:
    """The ``"Breastlab"`` sidecar block for one converted unit."""
    uids, frames = _sources(unit.records)
    if unit.kind == "dwi_acquisition":
        block: dict[str, Any] = {
            "label": "DWI",
            "unit": "dwi_acquisition",
            "b_values": sorted({_num(ls.b_value) for ls in unit.sets if ls.b_value is not None}),
            "sets": [set_facts(ls) for ls in unit.sets],
        }
    else:
        block = {"unit": "image_set", **set_facts(unit.first)}
    block["study"] = unit.study
    block["source_series_uid"] = unit.series_uid
    block["source_sop_instance_uids"] = uids
    if frames:
        block["source_frames"] = frames
    block.update({k: v for k, v in extra.items() if v is not None})
    return block


def enrich(sidecar: Mapping[str, Any], unit: Unit, *, keep_phi: bool = False, **extra: Any) -> dict[str, Any]:
    """dcm2niix's sidecar (identity dropped unless ``keep_phi``) plus the ``"Breastlab"`` block."""
    out = dict(sidecar) if keep_phi else strip_identity(sidecar)
    out["Breastlab"] = breastlab_block(unit, **extra)
    return out
