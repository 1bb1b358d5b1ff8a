"""Integration: `sort_exam` on the shared real data (skips when absent).

* nact-dce (GE, TCIA Breast-MRI-NACT-Pilot): one series holding three DCE time points.
* dcmqa (dcm2niix validation data): GE/Philips/Siemens diffusion with reference .bval files.
"""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import require

from breastlab.mri.sorter import sort_exam


@pytest.fixture(scope="module")
def nact(shared_data: Path, tmp_path_factory):
    root = require(shared_data / "nact-dce" / "UCSF-BR-06")
    out = tmp_path_factory.mktemp("nact")
    return sort_exam([root], out_dir=out, workers=1, progress=False), out


@pytest.fixture(scope="module")
def dcmqa(shared_data: Path):
    root = require(shared_data / "dcmqa")
    return sort_exam([root], workers=1, progress=False), root


def test_nact_three_dce_phases_in_order(nact) -> None:
    result, out = nact
    dce = [s for s in result.sets if s.label.startswith("DCE_")]
    assert [s.label for s in dce] == ["DCE_pre", "DCE_early", "DCE_delayed"]
    assert [s.image_set.n_images for s in dce] == [60, 60, 60]
    assert len({s.image_set.series_uid for s in dce}) == 1
    # instances 1-60 pre, 61-120 early, 121-180 delayed (the README's ground truth)
    for k, s in enumerate(dce):
        assert sorted(r.instance_number for r in s.image_set.records) == list(range(60 * k + 1, 60 * k + 61))
    assert [s.summary.dce_seconds for s in dce] == [0.0, 407.0, 761.0]
    assert all(s.summary.dce_timing == "ContentTime" for s in dce)


def test_nact_derived_maps_and_seg_skipped(nact) -> None:
    result, out = nact
    by_desc = {s.summary.series_description: s.label for s in result.sets}
    assert by_desc["Sagittal-IR_3DFGRE: PE1"] == "DERIVED"
    assert by_desc["Sagittal-IR_3DFGRE: SER"] == "DERIVED"
    assert len(result.sets) == 5
    skipped = list(csv.DictReader(open(out / "skipped.csv")))
    assert [Path(r["path"]).parent.name for r in skipped] == ["mask"]
    rows = list(csv.DictReader(open(out / "series.csv")))
    assert [r["label"] for r in rows if r["dce_phase"]] == ["DCE_pre", "DCE_early", "DCE_delayed"]
    assert (out / "provenance.json").is_file()


def _ref_bvals(path: Path) -> set[float]:
    return {float(x) for x in path.read_text().split()}


@pytest.mark.parametrize(
    "folder, ref",
    [("ge", "Ax_DWI_TENSOR_R2_1.bval"), ("philips", "WIP_dti_ax_601.bval"), ("siemens_xa30", "10_DWI_dir80_PA.bval")],
)
def test_dwi_b_value_sets_match_reference(dcmqa, folder: str, ref: str) -> None:
    result, root = dcmqa
    ref_path = require(root / folder / "Ref" / ref)
    dwi = [s for s in result.sets if s.label in ("DWI_low", "DWI_high")
           and s.image_set.first.path.startswith(str(root / folder / "In"))
           and "TRACEW" not in s.summary.image_type]
    series = {s.image_set.series_uid for s in dwi}
    assert len(series) == 1
    assert {s.b_value for s in dwi} == _ref_bvals(ref_path)
    low = [s for s in dwi if s.label == "DWI_low"]
    assert {s.b_value for s in low} == {min(_ref_bvals(ref_path))}


def test_siemens_xa30_maps_trace_and_t1(dcmqa) -> None:
    result, root = dcmqa
    got = {s.summary.series_description: (s.label, s.b_value) for s in result.sets
           if "siemens_xa30" in s.image_set.first.path and s.image_set.series_number != 10}
    assert got == {
        "DWI_dir80_PA_ADC": ("ADC", None),
        "DWI_dir80_PA_TRACEW": ("DWI_high", 2500.0),
        "DWI_dir80_PA_FA": ("DERIVED", None),
        "DWI_dir80_PA_ColFA": ("DERIVED", None),
        "DWI_dir80_PA_TENSOR_B0": ("DERIVED", None),
        "anat-T1w_acq-tfl": ("T1", None),
    }


def test_ge_t1_with_b0_tag_is_t1_and_bold_is_not_dwi(dcmqa) -> None:
    result, root = dcmqa
    by_desc = {}
    for s in result.sets:
        by_desc.setdefault(s.summary.series_description, set()).add(s.label)
    assert by_desc["3D Ax T1 MP-RAGE_R22"] == {"T1"}
    assert by_desc["EPI_asc"] == {"OTHER"}  # Philips BOLD fMRI carrying b=0 tags
    philips_trace = [s for s in result.sets if s.image_set.split.startswith("trace")]
    assert [(s.label, s.b_value, s.image_set.n_images) for s in philips_trace] == [("DWI_high", 2000.0, 40)]
    mosaic = {s.b_value: s.label for s in result.sets if s.summary.series_description == "CBU_DTI_64D_1A"}
    assert mosaic == {0.0: "DWI_low", 1000.0: "DWI_high"}


def test_cli_sort_export(shared_data: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from breastlab.cli.main import app

    ge = require(shared_data / "dcmqa" / "ge" / "In")
    res = CliRunner().invoke(app, ["sort", str(ge), "--out", str(tmp_path / "o"), "--export", str(tmp_path / "e"),
                                   "--copy", "--workers", "1", "--no-progress", "--b-threshold", "500"])
    assert res.exit_code == 0, res.output
    assert "DWI_high" in res.output and "image sets" in res.output
    rows = list(csv.DictReader(open(tmp_path / "o" / "series.csv")))
    assert sorted(r["label"] for r in rows) == ["DWI_high", "DWI_low", "T1"]
    (study,) = [p for p in (tmp_path / "e").iterdir() if p.is_dir()]  # beside it: manifest.json
    from breastlab.core.publish import verify_outputs

    assert verify_outputs(tmp_path / "e") == [] and verify_outputs(tmp_path / "o") == []
    assert sorted(p.name for p in study.iterdir()) == ["DWI_high_b1000", "DWI_low_b0", "T1"]
    assert len(list((study / "DWI_high_b1000").iterdir())) == 12
    bad = CliRunner().invoke(app, ["sort", str(ge), "--out", str(tmp_path / "o2"), "--export", str(ge / "x")])
    assert bad.exit_code != 0
