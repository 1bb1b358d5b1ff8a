"""Conversion on real data (skips when ``BREASTLAB_DATA`` is absent).

* nact-dce: the GE exam keeps its three DCE time points in ONE series; each layout gets
  three phase volumes of 60 slices, in time order, with sidecars giving 0 / 407 / 761 s.
  The BIDS tree passes the BIDS validator.
* dcmqa: every DWI acquisition that has a dcm2niix reference ``Ref/*.bval`` (folders
  discovered, not listed) converts with a ``.bval`` equal to it value for value.
* Canon enhanced multi-frame DWI: one b-value set is 40 of the 520 frames of one file;
  converted on its own (from a frame-subset copy) it equals that volume of the whole.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import require
from convert_helpers import bids_errors, sidecar, validate_bids

nib = pytest.importorskip("nibabel")

from breastlab.convert import convert_sorted  # noqa: E402
from breastlab.convert.pipeline import convert_unit  # noqa: E402
from breastlab.convert.units import plan_units  # noqa: E402
from breastlab.mri.sorter import sort_exam  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def nact(shared_data: Path, tmp_path_factory):
    out = tmp_path_factory.mktemp("nact-sorted")
    return sort_exam([require(shared_data / "nact-dce")], out_dir=out, progress=False, workers=2)


@pytest.fixture(scope="module")
def nact_converted(nact, tmp_path_factory):
    root = tmp_path_factory.mktemp("nact")
    return {layout: convert_sorted(nact, root / layout, layout=layout) for layout in ("bids", "nnunet", "odelia")}


def _phase_files(conv) -> list[Path]:
    root = conv.dest
    if conv.layout == "bids":
        files = sorted(root.glob("sub-*/ses-*/anat/*_acq-dynfs*_T1w.nii.gz"),
                       key=lambda p: int(p.name.split("_run-")[1].split("_")[0]))
    elif conv.layout == "nnunet":
        files = sorted(p for p in root.glob("study-*/*_????.nii.gz"))
    else:
        case = next((root / "data").iterdir())
        files = [case / "Pre.nii.gz"] + sorted(case.glob("Post_*.nii.gz"))
    return files


@pytest.mark.parametrize("layout", ["bids", "nnunet", "odelia"])
def test_nact_three_dce_phases_of_60_slices_in_time_order(nact_converted, nact, layout: str) -> None:
    conv = nact_converted[layout]
    assert conv.failed == [] and conv.geometry_mismatches == []
    files = _phase_files(conv)
    assert len(files) == 3
    blocks = [sidecar(p)["Breastlab"] for p in files]
    assert [b["dce_seconds"] for b in blocks] == [0, 407, 761]
    assert [b["dce_phase"] for b in blocks] == [0, 1, 2]
    assert [b["label"] for b in blocks] == ["DCE_pre", "DCE_early", "DCE_delayed"]
    dce = [s for s in nact.sets if s.label.startswith("DCE")]
    with open(nact.out_dir / "instances.csv", newline="") as fh:
        assigned: dict[str, set[str]] = {}
        for row in csv.DictReader(fh):
            assigned.setdefault(row["set_id"], set()).add(row["sop_instance_uid"])
    for p, b, ls in zip(files, blocks, dce):
        assert set(b["source_sop_instance_uids"]) == assigned[b["set_id"]]  # exactly what instances.csv assigns
        img = nib.load(p)
        assert img.shape == (256, 256, 60)
        # exactly its phase's slices: the 60 SOP instances of that time point, checked voxel for voxel
        assert set(b["source_sop_instance_uids"]) == {r.sop_instance_uid for r in ls.image_set.records}
        assert b["geometry"]["status"] == "ok" and b["geometry"]["n_slices"] == 60
        assert "PatientName" not in sidecar(p) and "PatientID" not in sidecar(p)
    # the three volumes differ (enhancement): not one phase written three times
    means = [float(np.asanyarray(nib.load(p).dataobj).mean()) for p in files]
    assert len(set(means)) == 3


def test_nact_bids_passes_the_validator(nact_converted) -> None:
    report = validate_bids(nact_converted["bids"].dest)
    assert bids_errors(report) == []


def _dwi_folders(root: Path) -> list[Path]:
    """Vendor folders holding DICOM (In/) and at least one dcm2niix reference .bval (Ref/)."""
    return sorted(p for p in root.iterdir() if (p / "In").is_dir() and list((p / "Ref").glob("*.bval")))


def _refs(folder: Path) -> dict[int, list[list[float]]]:
    """SeriesNumber → reference b-values (from the .json of the same name)."""
    out: dict[int, list[list[float]]] = {}
    for bval in sorted((folder / "Ref").glob("*.bval")):
        meta = json.loads(bval.with_suffix(".json").read_text())
        out.setdefault(int(meta["SeriesNumber"]), []).append([float(v) for v in bval.read_text().split()])
    return out


def test_dcmqa_every_dwi_acquisition_matches_its_reference_bval(shared_data: Path, tmp_path: Path) -> None:
    root = require(shared_data / "dcmqa")
    folders = _dwi_folders(root)
    if not folders:
        pytest.skip("no dcmqa folder with In/ and Ref/*.bval")
    result = sort_exam([f / "In" for f in folders], progress=False, workers=2)
    conv = convert_sorted(result, tmp_path / "bids", layout="bids")
    rows = {r["unit_id"]: r for r in csv.DictReader(open(conv.dest / "conversion.tsv"), delimiter="\t")}
    checked = 0
    for folder in folders:
        refs = _refs(folder)
        acqs = [r.unit for r in conv.results if r.unit.kind == "dwi_acquisition"
                and Path(r.unit.records[0].path).resolve().is_relative_to((folder / "In").resolve())]
        present = {s.image_set.series_number for s in result.sets
                   if Path(s.image_set.first.path).resolve().is_relative_to((folder / "In").resolve())}
        for number in refs:
            if number in present:  # a reference for a series we have: it must be converted
                assert any(u.series_number == number for u in acqs), (folder.name, number)
        for unit in acqs:
            if unit.series_number not in refs:
                continue
            assert rows[unit.unit_id]["status"] == "converted", rows[unit.unit_id]
            nii = conv.dest / rows[unit.unit_id]["outputs"].split(";")[0]
            got = [float(v) for v in Path(str(nii).replace(".nii.gz", ".bval")).read_text().split()]
            assert got in refs[unit.series_number], (folder.name, unit.unit_id, got)
            assert nib.load(nii).shape[3] == len(got)
            checked += 1
    assert checked >= len(folders)
    assert bids_errors(validate_bids(conv.dest)) == []


def test_canon_enhanced_frame_subset_equals_its_volume_of_the_whole(shared_data: Path, tmp_path: Path) -> None:
    enh = require(shared_data / "dcmqa/canon/In/enh/3000.dcm")
    result = sort_exam([enh], progress=False, workers=1)
    low = next(s for s in result.sets if s.label == "DWI_low")
    assert {r.path for r in low.image_set.records} == {str(enh)} and low.image_set.n_images < 520
    (set_unit,) = plan_units([low], acquisitions=False)
    (whole,) = [u for u in plan_units(result.sets, want=lambda s: False) if u.kind == "dwi_acquisition"]
    one = convert_unit(set_unit, tmp_path / "w")
    both = convert_unit(whole, tmp_path / "w")
    assert one.ok and both.ok, (one.error, both.error)
    assert one.main.geometry.status == "ok", one.main.geometry.message
    a = np.asanyarray(nib.load(one.main.nifti).dataobj)
    b = np.asanyarray(nib.load(both.main.nifti).dataobj)
    assert a.shape == b.shape[:3] == (80, 80, 40)
    bvals = [float(v) for v in both.main.bval.read_text().split()]
    vol = bvals.index(low.b_value)
    np.testing.assert_array_equal(a, b[..., vol])
    assert one.main.sidecar["Breastlab"]["source_frames"]  # the frames it came from are recorded
