"""Diffusion: which image sets are DWI, and DWI_low vs DWI_high from the b-value.

* A b-value alone never makes an image set DWI: GE writes (0043,1039)=0 on T1 and
  Philips writes b=0 on BOLD. Diffusion evidence must come from something else
  (see :func:`diffusion_evidence`).
* In an acquisition (series) with several b-values the lowest is ``DWI_low`` and
  the highest is ``DWI_high``. Intermediate b-values, and a lone b-value (e.g. a
  Siemens TRACEW series at b=800, or a series exported one b-value at a time),
  use the threshold: ``b >= b_threshold`` is high (default 400 s/mm²,
  ``--b-threshold``).
"""
from __future__ import annotations

import re

from breastlab.core.labels import Label
from breastlab.mri.features import SetSummary, b_from_sequence_name

DEFAULT_B_THRESHOLD = 400.0

_DWI_NAME = re.compile(
    r"DWI|DIFFUS|\bDTI|_DTI|DTI_|\bDW\b|EP2D_DIFF|RESOLVE|READOUT.?SEGMENTED|\bIVIM|\bB\d{3,4}\b|TRACE", re.I
)
_EPI_NAME = re.compile(r"\bEPI|_EPI|EPI_|EP2D|\bEP_|FEEPI|DWISE|\bBOLD|FMRI", re.I)


def effective_b(s: SetSummary) -> float | None:
    """The set's b-value, falling back to a Siemens sequence name such as ``ep_b1000t``."""
    if s.b_value is not None:
        return s.b_value
    return b_from_sequence_name(s.sequence_name)


def is_epi(s: SetSummary) -> str | None:
    if "EP" in s.scanning_sequence:
        return "ScanningSequence has EP"
    for key in ("(2001,1020)", "(0019,109C)"):
        value = s.vendor.get(key, "")
        if re.search(r"EPI|DWI", value, re.I):
            return f"{key}={value}"
    if _EPI_NAME.search(s.names):
        return f"name '{_first_match(_EPI_NAME, s.names)}'"
    return None


def diffusion_evidence(s: SetSummary) -> str | None:
    """Why this set is diffusion-weighted, or None. Never from a b-value tag alone."""
    itype = set(s.image_type)
    if s.is_derived_trace:
        return "scanner-made isotropic trace (e.g. Philips (2001,1004)='I', Siemens TRACEW)"
    if "TRACEW" in itype:
        return "ImageType TRACEW"
    if "DIFFUSION" in itype:
        return "ImageType DIFFUSION"
    if s.vendor.get("AcquisitionContrast") == "DIFFUSION":
        return "AcquisitionContrast=DIFFUSION"
    if set(s.diffusion_directionality) & {"DIRECTIONAL", "ISOTROPIC", "BMATRIX"}:
        return "DiffusionDirectionality=" + "/".join(s.diffusion_directionality)
    positive_b = any(b > 0 for b in s.series_b_values) or (effective_b(s) or 0) > 0
    direction = s.vendor.get("(2001,1004)", "").upper()
    if positive_b and direction in {"M", "P", "S", "O", "I"}:
        return f"b>0 in series and Philips (2001,1004)='{direction}'"
    if positive_b and (epi := is_epi(s)):
        return f"b>0 in series and {epi}"
    if b_from_sequence_name(s.sequence_name) is not None:
        return f"Siemens SequenceName {s.sequence_name}"
    if _DWI_NAME.search(s.names) and (positive_b or is_epi(s)):
        return f"name '{_first_match(_DWI_NAME, s.names)}'"
    return None


def dwi_level(b: float | None, acquisition_b_values: tuple[float, ...], b_threshold: float) -> tuple[Label | None, str]:
    """``(DWI_low | DWI_high | None, reason)`` for one b-value in its acquisition."""
    if b is None:
        return None, "b-value unknown"
    bs = sorted(set(acquisition_b_values) | {b})
    if len(bs) >= 2 and b == bs[0]:
        return Label.DWI_LOW, f"lowest of b={_fmt(bs)}"
    if len(bs) >= 2 and b == bs[-1]:
        return Label.DWI_HIGH, f"highest of b={_fmt(bs)}"
    where = "lone b-value" if len(bs) < 2 else f"intermediate of b={_fmt(bs)}"
    if b >= b_threshold:
        return Label.DWI_HIGH, f"{where} {b:g} >= threshold {b_threshold:g}"
    return Label.DWI_LOW, f"{where} {b:g} < threshold {b_threshold:g}"


def _fmt(bs: list[float]) -> str:
    return ",".join(f"{b:g}" for b in bs)


def _first_match(pattern: re.Pattern, text: str) -> str:
    m = pattern.search(text)
    return m.group(0).strip() if m else ""
