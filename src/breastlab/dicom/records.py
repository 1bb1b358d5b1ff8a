"""Typed header records: the single contract between DICOM parsing and the rules.

Parsing (``breastlab.dicom.headers``) turns one DICOM file, or one frame of an
enhanced multi-frame file, into an :class:`InstanceRecord`. Everything downstream
(grouping, sequence rules, DCE phases, b-values, case assembly) reads only these
records, never a ``pydicom.Dataset``. This mirrors HeuDiConv's ``SeqInfo``: the
rules stay testable without DICOM files, and parsing stays replaceable.

Conventions
-----------
* Missing values are ``None`` (never ``""`` or ``0``), so a rule can tell
  "absent" from "zero". Multi-valued strings are tuples of upper-case strings.
* Times are seconds since midnight (``float``); dates stay ``YYYYMMDD`` strings.
* ``b_value`` is the diffusion b-value in s/mm² from the first vendor source that
  has one; ``b_value_source`` names it (e.g. ``"(0018,9087)"``, ``"GE (0043,1039)"``).
  A b-value alone never makes an image DWI (GE and Philips write b=0 on T1/BOLD).
* Patient identity (``patient_id``, ``patient_name``) is carried so that studies
  can be grouped, but outputs drop it unless the user passes ``--keep-phi``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """Header facts of one image (one file, or one frame of an enhanced file)."""

    path: str
    frame_index: int | None = None  # 0-based frame in an enhanced multi-frame file

    # identity
    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None
    transfer_syntax_uid: str | None = None
    modality: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    series_number: int | None = None
    instance_number: int | None = None
    acquisition_number: int | None = None
    patient_id: str | None = None  # PHI: never written unless --keep-phi
    patient_name: str | None = None  # PHI: never written unless --keep-phi
    study_date: str | None = None

    # description
    manufacturer: str | None = None  # normalised: SIEMENS, GE, PHILIPS, CANON, UIH, or raw upper-case
    manufacturer_model: str | None = None
    series_description: str | None = None
    protocol_name: str | None = None
    sequence_name: str | None = None  # (0018,0024) or (0018,9005) PulseSequenceName
    image_type: tuple[str, ...] = ()
    body_part: str | None = None

    # acquisition physics
    scanning_sequence: tuple[str, ...] = ()  # SE, GR, IR, EP, RM
    sequence_variant: tuple[str, ...] = ()
    scan_options: tuple[str, ...] = ()  # FS, SFS, FAST_GEMS, ...
    repetition_time: float | None = None
    echo_time: float | None = None
    inversion_time: float | None = None
    flip_angle: float | None = None
    echo_train_length: int | None = None
    spectrally_selected_suppression: str | None = None  # (0018,9025): FAT, WATER, FAT_AND_WATER...
    magnetic_field_strength: float | None = None

    # timing (seconds since midnight) and temporal indices
    series_time: float | None = None
    acquisition_time: float | None = None
    content_time: float | None = None
    acquisition_datetime: str | None = None  # FrameAcquisitionDateTime / AcquisitionDateTime
    trigger_time: float | None = None  # ms
    temporal_position_identifier: int | None = None
    temporal_position_index: int | None = None  # per-frame FrameContentSequence
    number_of_temporal_positions: int | None = None
    contrast_agent: str | None = None  # raw ContrastBolusAgent: unreliable (GE writes NONE post-contrast)
    contrast_start_time: float | None = None

    # diffusion
    b_value: float | None = None
    b_value_source: str | None = None
    diffusion_directionality: str | None = None  # ISOTROPIC, DIRECTIONAL, NONE, BMATRIX
    is_derived_trace: bool = False  # e.g. Philips (2001,1004)='I', Siemens TRACEW

    # geometry
    rows: int | None = None
    columns: int | None = None
    number_of_frames: int | None = None
    image_position: tuple[float, ...] | None = None
    image_orientation: tuple[float, ...] | None = None
    slice_location: float | None = None
    pixel_spacing: tuple[float, ...] | None = None
    slice_thickness: float | None = None
    is_mosaic: bool = False

    # projection views (mammography / BSGI)
    laterality: str | None = None  # ImageLaterality or Laterality: L, R, B
    view_position: str | None = None  # CC, MLO, ML, LM, ...
    view_code: str | None = None  # ViewCodeSequence CodeMeaning

    # vendor-specific facts the rules may use, as "tag or name" -> string value
    vendor: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def to_row(self, *, keep_phi: bool = False) -> dict[str, Any]:
        """A flat dict for CSV/JSON; patient identity dropped unless ``keep_phi``."""
        row = asdict(self)
        if not keep_phi:
            row.pop("patient_id")
            row.pop("patient_name")
        for key, value in row.items():
            if isinstance(value, tuple):
                row[key] = "\\".join(str(v) for v in value)
            elif isinstance(value, dict):
                row[key] = ";".join(f"{k}={v}" for k, v in sorted(value.items()))
        return row

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def series_key(r: InstanceRecord) -> str:
    """The series a record belongs to: its SeriesInstanceUID, or a stand-in when it has none."""
    if r.series_uid:
        return r.series_uid
    return f"nouid:{r.study_uid}:{r.series_number}:{r.series_description}"


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A file that was not used, and why (written to ``skipped.csv``)."""

    path: str
    reason: str  # short machine-friendly category, e.g. "not-dicom", "zero-byte", "truncated"
    detail: str = ""  # human-readable explanation
