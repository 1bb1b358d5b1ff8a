"""Field maps and phase images: what they are, from the tags the scanner writes.

A gradient-echo field map (B0 map) is acquired at two echo times and stored as
magnitude and phase (or phase-difference) images; it has a short TE and TR, so the
T1 thresholds of the rule table would call it ``T1``. Phase, real and imaginary
images are never a weighting. Both are ``OTHER`` (:mod:`breastlab.mri.rules`).

Sources for the tags (checked against dcm2niix ``nii_dicom.cpp`` and the DICOM standard):

* ImageType (0008,0008) value tokens ``P``/``PHASE`` (Siemens ``ORIGINAL\\PRIMARY\\P\\ND``,
  Philips ``PHASE MAP`` and ``P_FFE``-style values), ``R``/``REAL``, ``I``/``IMAGINARY``:
  dcm2niix sets ``isHasPhase``/``isHasReal``/``isHasImaginary`` from the same tokens;
* ComplexImageComponent (0008,9208) ``PHASE``/``REAL``/``IMAGINARY`` (enhanced MR, top level or
  per frame in MR Image Frame Type, PS3.3 C.8.13.3);
* GE private image type (0043,102F): 0 magnitude, 1 phase, 2 real, 3 imaginary;
* Siemens field-map sequence names ``*fm2d2r``/``fm3d2``... in SequenceName (0018,0024);
* GE field-map pulse sequence names (``B0map``, ``fieldmap``) in (0019,109C) or SequenceName;
* a series holding images at two or more echo times together with phase images
  (the Philips "Field Mapping" layout: magnitude and phase at two echoes, with
  AcquisitionContrast T1 on every frame) is a field map whatever its name.

No Philips private field-map flag is documented in the conformance statements we could
check, so Philips field maps are found by the last two points.

Example:
    >>> from breastlab.mri.features import SetSummary
    >>> phase_evidence(SetSummary(image_type=("ORIGINAL", "PRIMARY", "P", "ND")))
    'ImageType ORIGINAL\\\\PRIMARY\\\\P\\\\ND (phase/real/imaginary component)'
    >>> field_map_evidence(SetSummary(sequence_name="*fm2d2r", scanning_sequence=("GR",)))
    "Siemens field-map sequence '*fm2d2r'"
    >>> field_map_evidence(SetSummary(image_type=("ORIGINAL", "PRIMARY", "M_FFE"), series_has_phase=True,
    ...                               series_echo_times=(4.6, 6.9), scanning_sequence=("GR",)))
    'two echoes (TE 4.6, 6.9 ms) with phase images in one series'
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from breastlab.mri.features import SetSummary
from breastlab.mri.imageset import ImageSet

#: ImageType tokens of a non-magnitude complex component (exact tokens)
COMPONENT_TOKENS = frozenset({"P", "PHASE", "PHASE MAP", "PHASE_MAP", "R", "REAL", "I", "IMAGINARY"})
#: Philips classic value 3: ``P_FFE``, ``R_SE``, ``I_IR`` ... (component, underscore, technique)
PHILIPS_COMPONENT_RE = re.compile(r"^(?:P|R|I|PHASE|REAL|IMAGINARY)_[A-Z]+$")
COMPLEX_NOT_MAGNITUDE = frozenset({"PHASE", "REAL", "IMAGINARY"})
GE_IMAGE_TYPE = {"1": "phase", "2": "real", "3": "imaginary"}

SIEMENS_FIELD_MAP_RE = re.compile(r"(?:^|\*)FM[23]D\d", re.I)
FIELD_MAP_NAME_RE = re.compile(r"B0.?MAP|FIELD.?MAP", re.I)
FIELD_MAP_TYPE_TOKENS = frozenset({"B0 MAP", "B0MAP", "B0_MAP", "FIELD MAP", "FIELDMAP", "FIELD_MAP"})
#: Dixon images are multi-echo gradient echoes too, but water/fat/in-phase/opposed-phase are images
DIXON_TOKENS = frozenset({"DIXON", "W", "F", "WATER", "FAT", "IN_PHASE", "OUT_PHASE", "OPP_PHASE", "IN_OPP"})


def _it(s: SetSummary) -> str:
    return "\\".join(s.image_type)


def phase_evidence(s: SetSummary) -> str | None:
    """Evidence that the set holds phase, real or imaginary images (not magnitude), else None."""
    for t in s.image_type:
        if t in COMPONENT_TOKENS or PHILIPS_COMPONENT_RE.match(t):
            return f"ImageType {_it(s)} (phase/real/imaginary component)"
    component = s.vendor.get("ComplexImageComponent", "")
    if component in COMPLEX_NOT_MAGNITUDE:
        return f"ComplexImageComponent {component}"
    ge = GE_IMAGE_TYPE.get(s.vendor.get("(0043,102F)", "").strip())
    if ge:
        return f"GE image type (0043,102F)={s.vendor['(0043,102F)']} ({ge})"
    return None


def field_map_evidence(s: SetSummary) -> str | None:
    """Evidence that the set is part of a B0 field map, else None."""
    seq = s.sequence_name or ""
    if SIEMENS_FIELD_MAP_RE.search(seq):
        return f"Siemens field-map sequence '{seq}'"
    for where, name in (("SequenceName", seq), ("GE pulse sequence (0019,109C)", s.vendor.get("(0019,109C)", ""))):
        m = FIELD_MAP_NAME_RE.search(name)
        if m:
            return f"{where} '{name}'"
    for t in s.image_type:
        if t in FIELD_MAP_TYPE_TOKENS:
            return f"ImageType {_it(s)} (field map)"
    if ("EP" not in s.scanning_sequence and s.series_has_phase and len(s.series_echo_times) >= 2
            and not DIXON_TOKENS & set(s.image_type)):
        tes = ", ".join(f"{t:g}" for t in s.series_echo_times[:4])
        n = len(s.series_echo_times)
        what = "two echoes" if n == 2 else f"{n} echoes"
        return f"{what} (TE {tes} ms) with phase images in one series"
    return None


def series_context(sets: Sequence[ImageSet], summaries: Sequence[SetSummary]) -> list[SetSummary]:
    """Fill ``series_echo_times`` and ``series_has_phase`` of each summary from every set of its series."""
    echoes: dict[str, set[float]] = {}
    phase: dict[str, bool] = {}
    for st, s in zip(sets, summaries):
        echoes.setdefault(st.series_uid, set()).update(
            round(r.echo_time, 2) for r in st.records if r.echo_time is not None)
        phase[st.series_uid] = phase.get(st.series_uid, False) or phase_evidence(s) is not None
    return [replace(s, series_echo_times=tuple(sorted(echoes.get(st.series_uid, ()))),
                    series_has_phase=phase.get(st.series_uid, False))
            for st, s in zip(sets, summaries)]
