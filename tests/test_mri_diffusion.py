"""Unit tests: DWI_low / DWI_high from b-values (breastlab.mri.diffusion)."""
from __future__ import annotations

import pytest
from mri_helpers import volume

from breastlab.mri.diffusion import DEFAULT_B_THRESHOLD, dwi_level
from breastlab.mri.features import b_from_sequence_name
from breastlab.mri.sorter import sort_records


@pytest.mark.parametrize(
    "b, acq, thr, want",
    [
        (0.0, (0.0, 1000.0), 400, "DWI_low"),
        (1000.0, (0.0, 1000.0), 400, "DWI_high"),
        (50.0, (50.0, 800.0), 10, "DWI_low"),  # lowest is low whatever the threshold
        (800.0, (50.0, 400.0, 800.0), 5000, "DWI_high"),  # highest is high whatever the threshold
        (400.0, (50.0, 400.0, 800.0), 400, "DWI_high"),  # intermediate: threshold (>=)
        (400.0, (50.0, 400.0, 800.0), 401, "DWI_low"),
        (800.0, (800.0,), 400, "DWI_high"),  # lone b-value: threshold
        (100.0, (100.0,), 400, "DWI_low"),
        (None, (), 400, None),
    ],
)
def test_dwi_level(b, acq, thr, want) -> None:
    assert dwi_level(b, acq, thr)[0] == want


def test_default_threshold_documented_value() -> None:
    assert DEFAULT_B_THRESHOLD == 400.0


@pytest.mark.parametrize("name, b", [("ep_b0", 0.0), ("ep_b1000#1", 1000.0), ("*ep_b50t", 50.0),
                                     ("*tfl3d1", None), (None, None), ("epfid2d1_64", None)])
def test_siemens_b_from_sequence_name(name, b) -> None:
    assert b_from_sequence_name(name) == b


def test_siemens_tracew_is_dwi_at_its_b() -> None:
    recs = volume(3, image_type=("DERIVED", "PRIMARY", "DIFFUSION", "TRACEW"), b_value=50.0, is_derived_trace=True,
                  series_description="ep2d_diff_TRACEW")
    recs += volume(3, image_type=("DERIVED", "PRIMARY", "DIFFUSION", "TRACEW"), b_value=800.0, is_derived_trace=True,
                   series_description="ep2d_diff_TRACEW")
    sets = sort_records(recs)
    assert [(s.label, s.b_value) for s in sets] == [("DWI_low", 50.0), ("DWI_high", 800.0)]


def test_lone_b_series_uses_threshold_from_caller() -> None:
    recs = volume(3, image_type=("ORIGINAL", "PRIMARY", "DIFFUSION"), b_value=600.0, scanning_sequence=("EP",))
    assert sort_records(recs)[0].label == "DWI_high"
    assert sort_records(recs, b_threshold=1000)[0].label == "DWI_low"
