"""Diffusion b-values for every vendor, one small function per source.

:data:`SOURCES` is tried in order; the first source that yields a number wins and
its name becomes ``InstanceRecord.b_value_source``. Private tags are located by
their private creator (the block reservation in ``(gggg,0010-00FF)``); the raw
tag is used as a fallback only when the manufacturer matches, so that one
vendor's private group is never read as another's.

A b-value alone never makes an image DWI: GE writes ``(0043,1039)=0`` and Philips
``(2001,1003)=0`` on T1 and BOLD series. That decision belongs to the rules.

Canon/Toshiba write the standard ``(0018,9087)`` only on b>0 images, and have no
private b-value. A Canon image without it gets ``b_value=None``; the header
parser adds the vendor hint ``"canon_b_absent"``, and the rules may treat it as
b=0 when the series is otherwise diffusion (e.g. its other images carry b>0).

References (checked against): dcm2niix ``nii_dicom.cpp`` tag table
(``kDiffusion_bValueUIH 0x0065,0x1009 FD``, GE ``0043,1039`` "slop_int_6",
Philips ``2001,1003`` "Diffusion B-Factor" FL, Siemens ``0019,100C`` IS),
nibabel ``nicom.csareader`` (CSA ``B_value``), dcm_qa_ge / dcm_qa_philips.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from breastlab.dicom._parse import Node

#: standard Diffusion b-value (FD), top level or in MRDiffusionSequence
TAG_B_VALUE = 0x00189087
TAG_DIFFUSION_SEQ = 0x00189117

GE_CREATOR = "GEMS_PARM_01"
PHILIPS_CREATOR = "Philips Imaging DD 001"
SIEMENS_CREATOR = "SIEMENS MR HEADER"
SIEMENS_CSA_CREATOR = "SIEMENS CSA HEADER"

GE_MODULO = 1_000_000_000
#: larger b-values (s/mm²) are no measurement (clinical <= ~5000, preclinical <= ~30000)
MAX_B_VALUE = 100_000.0


def _private(ds: Node, group: int, creator: str, element: int, raw_tag: int, vendor: str,
             manufacturer: str | None) -> int | None:
    """Tag of a private element: by creator, else the raw tag for that vendor."""
    tag = ds.private_tag(group, creator, element)
    if tag is not None and tag in ds:
        return tag
    if manufacturer == vendor and raw_tag in ds:
        return raw_tag
    return None


def standard_per_frame(ds: Node, groups: Sequence[Node], manufacturer: str | None) -> float | None:
    """(0018,9087) inside MRDiffusionSequence (0018,9117) of the frame's functional
    groups (per-frame first, then shared): enhanced multi-frame MR."""
    for group in groups:
        for item in group.seq(TAG_DIFFUSION_SEQ):
            value = item.float(TAG_B_VALUE, "FD")
            if value is not None:
                return value
    return None


def standard_top(ds: Node, groups: Sequence[Node], manufacturer: str | None) -> float | None:
    """(0018,9087) Diffusion b-value (FD) at the top level: classic images of recent
    Siemens, GE (b>0 only), Philips and Canon (b>0 only)."""
    return ds.float(TAG_B_VALUE, "FD")


def siemens_header(ds: Node, groups: Sequence[Node], manufacturer: str | None) -> float | None:
    """Siemens (0019,xx0C) B_value (IS) in block "SIEMENS MR HEADER" (classic, incl. mosaic)."""
    tag = _private(ds, 0x0019, SIEMENS_CREATOR, 0x0C, 0x0019100C, "SIEMENS", manufacturer)
    return ds.float(tag, "IS") if tag is not None else None


def siemens_csa(ds: Node, groups: Sequence[Node], manufacturer: str | None) -> float | None:
    """Siemens CSA image header (0029,xx10) "SIEMENS CSA HEADER", element ``B_value``."""
    tag = _private(ds, 0x0029, SIEMENS_CSA_CREATOR, 0x10, 0x00291010, "SIEMENS", manufacturer)
    if tag is None:
        return None
    csa = read_csa(ds.raw(tag))
    if not csa:
        return None
    try:
        item = csa["tags"]["B_value"]["items"]
    except (KeyError, TypeError):
        return None
    return float(item[0]) if item else None


def ge(ds: Node, groups: Sequence[Node], manufacturer: str | None) -> float | None:
    """GE (0043,xx39) "slop_int_6..9" (IS) in block "GEMS_PARM_01": the first value,
    modulo 1e9 (some software versions add 1,000,000,000 to flag the b-value)."""
    tag = _private(ds, 0x0043, GE_CREATOR, 0x39, 0x00431039, "GE", manufacturer)
    if tag is None:
        return None
    value = ds.float(tag, "IS")
    if value is None:
        return None
    return float(value % GE_MODULO)


def philips(ds: Node, groups: Sequence[Node], manufacturer: str | None) -> float | None:
    """Philips (2001,xx03) "Diffusion B-Factor" (FL) in block "Philips Imaging DD 001"."""
    tag = _private(ds, 0x2001, PHILIPS_CREATOR, 0x03, 0x20011003, "PHILIPS", manufacturer)
    return ds.float(tag, "FL") if tag is not None else None


def uih(ds: Node, groups: Sequence[Node], manufacturer: str | None) -> float | None:
    """United Imaging (0065,1009) Diffusion b-value (FD). The creator string is not
    documented publicly, so the raw tag is read, for UIH files only."""
    if manufacturer != "UIH":
        return None
    return ds.float(0x00651009, "FD")


@dataclass(frozen=True)
class BValueSource:
    name: str  # becomes InstanceRecord.b_value_source
    read: Callable[[Node, Sequence[Node], str | None], float | None]


#: Sources in the order they are tried.
SOURCES: tuple[BValueSource, ...] = (
    BValueSource("(0018,9087) per-frame", standard_per_frame),
    BValueSource("(0018,9087)", standard_top),
    BValueSource("Siemens (0019,100C)", siemens_header),
    BValueSource("Siemens CSA B_value", siemens_csa),
    BValueSource("GE (0043,1039)", ge),
    BValueSource("Philips (2001,1003)", philips),
    BValueSource("UIH (0065,1009)", uih),
)


def find_b_value(
    ds: Node, groups: Sequence[Node] = (), manufacturer: str | None = None
) -> tuple[float | None, str | None]:
    """``(b_value, source name)`` from the first source that has one, else ``(None, None)``.

    A value counts only if it is finite and within 0..MAX_B_VALUE; otherwise the next
    source is tried.
    """
    for source in SOURCES:
        try:
            value = source.read(ds, groups, manufacturer)
        except (ValueError, TypeError, OverflowError):
            value = None
        if value is not None and math.isfinite(value) and 0 <= value <= MAX_B_VALUE:
            return float(value), source.name
    return None, None


def read_csa(data: bytes | None) -> dict | None:
    """Parse a Siemens CSA header with nibabel; ``None`` if absent or unreadable."""
    if not data:
        return None
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nibabel.nicom warns that it is experimental
            from nibabel.nicom import csareader

            return csareader.read(data)
    except Exception:  # noqa: BLE001 - any CSA damage just means "no value"
        return None
