"""Integration: sorting the synthetic Siemens/GE/Philips exam gives the phantom's ground truth.

The phantom (``breastlab.phantom.mri``) writes ``truth_instances.csv``: the label,
b-value and DCE phase each file should get. GE and Philips write the DCE as one
multi-phase series, Siemens as one series per phase.
"""
from __future__ import annotations

import csv

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sorted_phantom(tmp_path_factory):
    phantom = pytest.importorskip("breastlab.phantom.mri")
    root = tmp_path_factory.mktemp("phantom")
    phantom.write_mri_phantom(root / "in", n_slices=4, matrix=32, seed=3)
    from breastlab.mri.sorter import sort_exam

    sort_exam([root / "in"], out_dir=root / "out", workers=1, progress=False)
    truth = {str(root / "in" / r["path"]): r for r in csv.DictReader(open(root / "in" / "truth_instances.csv"))}
    ours = {r["path"]: r for r in csv.DictReader(open(root / "out" / "instances.csv"))}
    return truth, ours


@pytest.mark.parametrize("vendor", ["SIEMENS", "GE", "PHILIPS"])
def test_phantom_labels_per_vendor(sorted_phantom, vendor: str) -> None:
    truth, ours = sorted_phantom
    rows = [t for t in truth.values() if t["vendor"] == vendor]
    assert rows
    labels = {t["label"] for t in rows}
    assert {"T2WI", "T2WI_FS", "DWI_low", "DWI_high", "ADC", "T1", "DCE_pre", "DCE_early", "DCE_delayed",
            "SUB", "MIP", "LOCALIZER"} <= labels
    wrong = []
    for t in rows:
        path = next(p for p in truth if truth[p] is t)
        o = ours.get(path)
        got = None if o is None else (o["label"], o["dce_phase"], float(o["b_value"]) if t["b_value"] else "")
        want = (t["label"], t["dce_phase"], float(t["b_value"]) if t["b_value"] else "")
        if got != want:
            wrong.append((t["series_number"], want, got))
    assert not wrong, wrong[:10]
