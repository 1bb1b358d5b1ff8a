"""b-values per vendor tag, on small in-memory datasets (private creators included)."""
from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from breastlab.dicom.bvalues import SOURCES, find_b_value
from breastlab.dicom.headers import node_from_dataset, normalise_manufacturer, parse_time


def _ds(manufacturer: str = "", **kwargs) -> Dataset:
    ds = Dataset()
    if manufacturer:
        ds.Manufacturer = manufacturer
    for key, value in kwargs.items():
        setattr(ds, key, value)
    return ds


def _b(ds: Dataset, manufacturer: str | None = None):
    node = node_from_dataset(ds)
    groups = []
    frames = node.seq(0x52009230)
    if frames:
        groups = [frames[0]] + node.seq(0x52009229)[:1]
    return find_b_value(node, groups, manufacturer)


def test_standard_top_level():
    assert _b(_ds(DiffusionBValue=800.0)) == (800.0, "(0018,9087)")


def test_standard_per_frame_wins_over_top_level():
    ds = _ds(DiffusionBValue=0.0)
    frame = Dataset()
    diff = Dataset()
    diff.DiffusionBValue = 1500.0
    frame.MRDiffusionSequence = [diff]
    ds.PerFrameFunctionalGroupsSequence = [frame]
    assert _b(ds) == (1500.0, "(0018,9087) per-frame")


def test_standard_in_shared_group():
    ds = _ds()
    shared = Dataset()
    diff = Dataset()
    diff.DiffusionBValue = 50.0
    shared.MRDiffusionSequence = [diff]
    ds.SharedFunctionalGroupsSequence = [shared]
    ds.PerFrameFunctionalGroupsSequence = [Dataset()]
    assert _b(ds) == (50.0, "(0018,9087) per-frame")


@pytest.mark.parametrize("raw, expected", [("1000", 1000.0), ("1000000800", 800.0), ("0", 0.0)])
def test_ge_first_value_modulo_1e9(raw, expected):
    ds = _ds("GE MEDICAL SYSTEMS")
    block = ds.private_block(0x0043, "GEMS_PARM_01", create=True)
    block.add_new(0x39, "IS", [raw, "8", "0", "0"])
    assert _b(ds, "GE") == (expected, "GE (0043,1039)")


def test_ge_block_found_by_creator_not_position():
    ds = _ds("GE MEDICAL SYSTEMS")
    ds.private_block(0x0043, "SOMEONE ELSE", create=True).add_new(0x39, "IS", ["5", "0", "0", "0"])
    ds.private_block(0x0043, "GEMS_PARM_01", create=True).add_new(0x39, "IS", ["1000", "0", "0", "0"])
    assert ds[0x00431139].value[0] == 1000  # the GE block landed in slot 0x11
    assert _b(ds, "GE") == (1000.0, "GE (0043,1039)")


def test_ge_raw_tag_fallback_only_for_ge():
    ds = _ds()
    ds.add_new(0x00430010, "LO", "")  # creator missing/blank (e.g. stripped by a PACS)
    ds.add_new(0x00431039, "IS", ["700", "0", "0", "0"])
    assert _b(ds, "GE") == (700.0, "GE (0043,1039)")
    assert _b(ds, "SIEMENS") == (None, None)


def test_philips_float():
    ds = _ds("Philips Medical Systems")
    ds.private_block(0x2001, "Philips Imaging DD 001", create=True).add_new(0x03, "FL", 2000.0)
    assert _b(ds, "PHILIPS") == (2000.0, "Philips (2001,1003)")


def test_siemens_header_tag():
    ds = _ds("SIEMENS")
    ds.private_block(0x0019, "SIEMENS MR HEADER", create=True).add_new(0x0C, "IS", "1000")
    assert _b(ds, "SIEMENS") == (1000.0, "Siemens (0019,100C)")


def test_uih_raw_tag_only_for_uih():
    ds = _ds("UIH")
    ds.add_new(0x00650010, "LO", "Image Private Header")
    ds.add_new(0x00651009, "FD", 600.0)
    assert _b(ds, "UIH") == (600.0, "UIH (0065,1009)")
    assert _b(ds, "GE") == (None, None)


def test_canon_b0_absent_gives_none():
    assert _b(_ds("TOSHIBA_MEC"), "CANON") == (None, None)


def test_b_value_tag_order_standard_first():
    ds = _ds("GE MEDICAL SYSTEMS", DiffusionBValue=1000.0)
    ds.private_block(0x0043, "GEMS_PARM_01", create=True).add_new(0x39, "IS", ["0", "0", "0", "0"])
    assert _b(ds, "GE") == (1000.0, "(0018,9087)")
    assert [s.name for s in SOURCES][:2] == ["(0018,9087) per-frame", "(0018,9087)"]


@pytest.mark.parametrize(
    "text, seconds",
    [("102551", 10 * 3600 + 25 * 60 + 51), ("102551.5", 37551.5), ("10:25:51", 37551.0),
     ("1025", 37500.0), ("10", 36000.0), ("", None), (None, None), ("ab", None), ("256100", None)],
)
def test_parse_time(text, seconds):
    assert parse_time(text) == seconds


@pytest.mark.parametrize(
    "raw, norm",
    [("SIEMENS", "SIEMENS"), ("Siemens Healthineers", "SIEMENS"), ("GE MEDICAL SYSTEMS", "GE"),
     ("Philips Medical Systems", "PHILIPS"), ("TOSHIBA_MEC", "CANON"), ("Canon Medical Systems", "CANON"),
     ("UIH", "UIH"), ("United Imaging Healthcare", "UIH"), ("Hitachi", "HITACHI"), ("", None)],
)
def test_normalise_manufacturer(raw, norm):
    assert normalise_manufacturer(raw) == norm
