"""``breastlab.convert``: NIfTI + sidecars in bids / nnunet / odelia layouts, on the phantom exam.

The phantom (``breastlab.phantom.mri``) has Siemens (one series per DCE phase), GE (all
phases in one series) and Philips exams with T2, DWI, ADC, SUB, MIP and localizers, so
every layout path runs without the shared data. Real data: ``test_convert_realdata.py``.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")
pydicom = pytest.importorskip("pydicom")

from convert_helpers import bids_errors, sidecar, validate_bids  # noqa: E402

from breastlab.convert import convert_sorted  # noqa: E402
from breastlab.convert.geometry import check_geometry  # noqa: E402
from breastlab.convert.sidecar import IDENTITY_FIELDS, enrich, strip_identity  # noqa: E402
from breastlab.convert.staging import stage_records, write_frame_subset  # noqa: E402
from breastlab.convert.units import plan_units  # noqa: E402
from breastlab.core.publish import OutputError, verify_outputs  # noqa: E402
from breastlab.mri.sorter import sort_exam  # noqa: E402
from breastlab.phantom.mri import PATIENT_NAME, write_mri_phantom  # noqa: E402

PATIENT_ID = "PHANTOM0000"


def _tree_hash(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("phantom")
    write_mri_phantom(root, matrix=32, n_slices=8)
    return root


@pytest.fixture(scope="module")
def truth(phantom: Path) -> list[dict]:
    with open(phantom / "truth.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def sorted_phantom(phantom: Path):
    return sort_exam([phantom], progress=False, workers=1)


@pytest.fixture(scope="module")
def bids(sorted_phantom, phantom, tmp_path_factory):
    before = _tree_hash(phantom)
    dest = tmp_path_factory.mktemp("conv") / "bids"
    conv = convert_sorted(sorted_phantom, dest, layout="bids", workers=2)
    assert _tree_hash(phantom) == before, "conversion changed an input file"
    return conv


def _rows(conv) -> list[dict]:
    with open(conv.dest / "conversion.tsv", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


# --------------------------------------------------------------------------- building blocks

def _enhanced(path: Path, n_frames: int = 4, rle: bool = False) -> np.ndarray:
    """A minimal enhanced-MR-like multi-frame file whose frame i is filled with 100 + i."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

    frames = np.stack([np.full((4, 6), 100 + i, np.uint16) + np.arange(24, dtype=np.uint16).reshape(4, 6)
                       for i in range(n_frames)])
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.Rows, ds.Columns, ds.NumberOfFrames = 4, 6, n_frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    items = []
    for i in range(n_frames):
        item, pos = Dataset(), Dataset()
        pos.ImagePositionPatient = [0, 0, float(i)]
        item.PlanePositionSequence = Sequence([pos])
        items.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(items)
    ds.PixelData = frames.tobytes()
    if rle:
        ds.compress(RLELossless, frames)
    ds.save_as(path, enforce_file_format=True)
    return frames


@pytest.mark.parametrize("rle", [False, True], ids=["native", "rle"])
def test_frame_subset_copy_holds_exactly_the_chosen_frames(tmp_path: Path, rle: bool) -> None:
    src = tmp_path / "multi.dcm"
    frames = _enhanced(src, rle=rle)
    before = src.read_bytes()
    out = write_frame_subset(src, [3, 1], tmp_path / "subset.dcm")
    ds = pydicom.dcmread(out)
    assert int(ds.NumberOfFrames) == 2
    np.testing.assert_array_equal(ds.pixel_array, frames[[1, 3]])
    z = [float(it.PlanePositionSequence[0].ImagePositionPatient[2]) for it in ds.PerFrameFunctionalGroupsSequence]
    assert z == [1.0, 3.0]
    assert src.read_bytes() == before
    with pytest.raises(ValueError):
        write_frame_subset(src, [7], tmp_path / "bad.dcm")


def test_staging_links_classic_files_and_copies_frame_subsets(tmp_path: Path, sorted_phantom) -> None:
    from dataclasses import replace

    ls = next(s for s in sorted_phantom.sets if s.label == "DCE_early" and s.image_set.n_sets_in_series > 1)
    staged = stage_records(ls.image_set.records, tmp_path / "classic")
    assert len(staged) == ls.image_set.n_images
    assert all((tmp_path / "classic" / n).is_symlink() for n in staged)
    assert {os.path.realpath(tmp_path / "classic" / n) for n in staged} == \
        {os.path.realpath(r.path) for r in ls.image_set.records}
    src = tmp_path / "multi.dcm"
    _enhanced(src)
    recs = [replace(ls.image_set.records[0], path=str(src), frame_index=i, number_of_frames=4) for i in (0, 2)]
    staged = stage_records(recs, tmp_path / "enhanced")
    (name,) = staged
    assert not (tmp_path / "enhanced" / name).is_symlink()
    assert int(pydicom.dcmread(tmp_path / "enhanced" / name).NumberOfFrames) == 2


def test_identity_fields_dropped_unless_keep_phi(sorted_phantom) -> None:
    raw = {"PatientName": "DOE^JANE", "PatientID": "123", "PatientBirthDate": "19700101", "InstitutionName": "X",
           "AcquisitionDateTime": "2020-01-01T10:00:00", "EchoTime": 0.004, "SeriesDescription": "t1"}
    assert set(strip_identity(raw)) == {"EchoTime", "SeriesDescription"}
    assert {"PatientName", "PatientID", "AcquisitionDateTime"} <= IDENTITY_FIELDS
    unit = plan_units(sorted_phantom.sets[:1], acquisitions=False)[0]
    kept = enrich(raw, unit, keep_phi=True)
    assert kept["PatientName"] == "DOE^JANE" and "Breastlab" in kept
    dropped = enrich(raw, unit)
    assert "PatientName" not in dropped and dropped["EchoTime"] == 0.004
    assert dropped["Breastlab"]["source_series_uid"] == unit.series_uid


# --------------------------------------------------------------------------- BIDS

def test_bids_layout_names_sidecars_and_report(bids, sorted_phantom, truth) -> None:
    root = bids.dest
    assert bids.failed == [] and bids.geometry_mismatches == []
    assert verify_outputs(root) == []  # published whole, with a manifest
    for f in ("dataset_description.json", "participants.tsv", "README", ".bidsignore"):
        assert (root / f).is_file(), f
    assert json.loads((root / "dataset_description.json").read_text())["BIDSVersion"]
    # DCE phases: run-<phase+1>, ce-post after pre, sidecar phase and seconds equal to the phantom truth
    by_study: dict[str, list[Path]] = {}
    for p in root.glob("sub-*/ses-*/anat/*_acq-dyn*_T1w.nii.gz"):
        by_study.setdefault(p.parent.parent.name, []).append(p)
    assert len(by_study) == 3  # one dynamic acquisition per vendor exam
    want = sorted({float(t["dce_seconds"]) for t in truth if t["dce_seconds"]})
    for files in by_study.values():
        files.sort(key=lambda p: int(p.name.split("_run-")[1].split("_")[0]))
        blocks = [sidecar(p)["Breastlab"] for p in files]
        assert [b["dce_phase"] for b in blocks] == list(range(len(files)))
        assert [float(b["dce_seconds"]) for b in blocks] == want
        assert ("_ce-post_" in files[0].name, all("_ce-post_" in f.name for f in files[1:])) == (False, True)
        for p, b in zip(files, blocks):
            assert nib.load(p).shape == (32, 32, 8)
            assert len(b["source_sop_instance_uids"]) == 8 and b["geometry"]["status"] == "ok"
            assert b["label"].startswith("DCE") and b["confidence"] > 0 and b["evidence"].startswith("header:")
    # a fat-suppressed T2 carries acq-fs; DWI acquisitions are 4D with bval/bvec
    assert list(root.glob("sub-*/ses-*/anat/*_acq-fs_T2w.nii.gz"))
    dwi = list(root.glob("sub-*/ses-*/dwi/*_dwi.nii.gz"))
    assert len(dwi) == 3
    for p in dwi:
        assert p.with_name(p.name.replace(".nii.gz", ".bval")).is_file()
        assert p.with_name(p.name.replace(".nii.gz", ".bvec")).is_file()
    assert list(root.glob("derivatives/breastlab/sub-*/ses-*/dwi/*_desc-ADC_dwi.nii.gz"))
    # localizers and MIPs are left out, and say so
    rows = _rows(bids)
    left = {r["label"] for r in rows if r["status"] == "left out" and "not part of a BIDS" in r["message"]}
    assert {"LOCALIZER", "MIP"} <= left
    assert {r["label"] for r in rows if r["status"] == "converted"} >= {"DCE_pre", "T2WI", "DWI", "ADC", "SUB"}
    in_4d = [r for r in rows if "within the 4D DWI" in r["message"]]
    assert in_4d and all(r["outputs"].endswith("_dwi.nii.gz") and (root / r["outputs"]).is_file() for r in in_4d)


def test_bids_layout_has_no_patient_identity(bids) -> None:
    needles = [PATIENT_NAME.encode(), PATIENT_ID.encode(), b"PHANTOM^"]
    for p in bids.dest.rglob("*"):
        assert PATIENT_ID not in str(p) and "PHANTOM" not in p.name
        if p.is_file() and p.suffix in (".json", ".tsv", ".csv") or p.name == "README":
            data = p.read_bytes()
            assert not any(n in data for n in needles), p
    block = sidecar(next(bids.dest.glob("sub-*/ses-*/anat/*_T2w.nii.gz")))
    assert not set(block) & IDENTITY_FIELDS


def test_bids_layout_passes_the_validator(bids) -> None:
    report = validate_bids(bids.dest)
    assert bids_errors(report) == []


# --------------------------------------------------------------------------- nnU-Net, ODELIA

def test_nnunet_layout_channels_share_one_grid(sorted_phantom, tmp_path: Path) -> None:
    conv = convert_sorted(sorted_phantom, tmp_path / "nn", layout="nnunet", channels="dce,t2,dwi_high")
    root = conv.dest
    spec = json.loads((root / "dataset.json").read_text())
    names = list(spec["channel_names"].values())
    assert names == ["DCE_pre", "DCE_post1", "DCE_post2", "DCE_post3", "DCE_post4", "T2", "DWI_high"]
    assert spec["file_ending"] == ".nii.gz"
    cases = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("study-"))
    assert len(cases) == 3
    for case in cases:
        imgs = [nib.load(case / f"{case.name}_{i:04d}.nii.gz") for i in range(len(names))]
        assert {im.shape for im in imgs} == {imgs[0].shape} and len(imgs[0].shape) == 3
        for im in imgs[1:]:
            np.testing.assert_allclose(im.affine, imgs[0].affine, atol=1e-4)
        seconds = [sidecar(case / f"{case.name}_{i:04d}.nii.gz")["Breastlab"]["dce_seconds"] for i in range(5)]
        assert seconds == sorted(seconds) and seconds[0] == 0
        for i in range(len(names)):  # imagesTs holds the same files, flat, for nnUNetv2_predict
            assert os.path.samefile(root / "imagesTs" / f"{case.name}_{i:04d}.nii.gz",
                                    case / f"{case.name}_{i:04d}.nii.gz")
    # T2 first: the DCE channels are resampled onto the T2 grid
    t2_first = convert_sorted(sorted_phantom, tmp_path / "nn2", layout="nnunet", channels="t2,dce:2").dest
    assert list(json.loads((t2_first / "dataset.json").read_text())["channel_names"].values()) == \
        ["T2", "DCE_pre", "DCE_post1"]
    for case in (p for p in t2_first.iterdir() if p.name.startswith("study-")):
        imgs = [nib.load(case / f"{case.name}_{i:04d}.nii.gz") for i in range(3)]
        assert {im.shape for im in imgs} == {imgs[0].shape}
    with pytest.raises(ValueError, match="unknown channel"):
        convert_sorted(sorted_phantom, tmp_path / "bad", layout="nnunet", channels="dce,flair")
    assert not (tmp_path / "bad").exists()


def test_odelia_layout_names(sorted_phantom, tmp_path: Path) -> None:
    conv = convert_sorted(sorted_phantom, tmp_path / "od", layout="odelia")
    cases = sorted((conv.dest / "data").iterdir())
    assert len(cases) == 3
    for case in cases:
        names = sorted(p.name for p in case.glob("*.nii.gz"))
        assert names == ["Post_1.nii.gz", "Post_2.nii.gz", "Post_3.nii.gz", "Post_4.nii.gz", "Pre.nii.gz",
                         "T2.nii.gz"]
        assert sidecar(case / "T2.nii.gz")["Breastlab"]["label"] == "T2WI"
        phases = [sidecar(case / n)["Breastlab"]["dce_phase"] for n in ("Pre.nii.gz", "Post_1.nii.gz",
                                                                       "Post_4.nii.gz")]
        assert phases == [0, 1, 4]
    assert (conv.dest / "metadata" / "cases.csv").is_file()


# --------------------------------------------------------------------------- failures and checks

def test_a_failing_set_is_reported_and_the_rest_go_on(phantom: Path, tmp_path: Path) -> None:
    exam = tmp_path / "exam"
    shutil.copytree(phantom / "GE", exam)
    result = sort_exam([exam], progress=False, workers=1)
    t2 = next(s for s in result.sets if s.label == "T2WI")
    for r in t2.image_set.records:  # break the T2 files after sorting: dcm2niix must fail on them
        Path(r.path).write_bytes(b"not dicom any more")
    conv = convert_sorted(result, tmp_path / "out", layout="bids")
    failed = {r.unit.unit_id: r.error for r in conv.failed}
    assert list(failed) == [t2.set_id] and failed[t2.set_id]
    rows = {r["unit_id"]: r for r in _rows(conv)}
    assert rows[t2.set_id]["status"] == "failed" and rows[t2.set_id]["message"]
    assert conv.n_converted >= 6
    assert list(conv.dest.glob("sub-*/ses-*/anat/*_run-1_T1w.nii.gz"))


def test_geometry_check_catches_the_wrong_phase_and_a_wrong_affine(bids, sorted_phantom, tmp_path: Path) -> None:
    ge = [s for s in sorted_phantom.sets if s.label.startswith("DCE") and s.image_set.n_sets_in_series > 1]
    pre = next(s for s in ge if s.summary.dce_phase == 0)
    post = next(s for s in ge if s.summary.dce_phase == 1)
    ses = pre.study.removeprefix("study-")
    nii = next(bids.dest.glob(f"sub-*/ses-{ses}/anat/*_run-1_T1w.nii.gz"))
    assert check_geometry(nii, pre.image_set.records).status == "ok"
    wrong = check_geometry(nii, post.image_set.records)
    assert wrong.status == "mismatch" and "not in the NIfTI" in wrong.message
    img = nib.load(nii)
    shifted = img.affine.copy()
    shifted[:3, 3] += 5.0
    moved = tmp_path / "moved.nii.gz"
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), shifted), moved)
    assert check_geometry(moved, pre.image_set.records).status == "mismatch"
    half = tmp_path / "half.nii.gz"
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj)[..., :4], img.affine), half)
    assert "grid" in check_geometry(half, pre.image_set.records).message


def test_republishing_replaces_the_tree_and_a_foreign_folder_is_refused(sorted_phantom, tmp_path: Path) -> None:
    dest = tmp_path / "conv"
    convert_sorted(sorted_phantom, dest, layout="odelia")
    convert_sorted(sorted_phantom, dest, layout="nnunet")
    assert (dest / "dataset.json").is_file() and not (dest / "data").exists()
    assert verify_outputs(dest) == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".conv.staging")]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError):
        convert_sorted(sorted_phantom, foreign, layout="bids")
    assert (foreign / "notes.txt").read_text() == "keep me"


# --------------------------------------------------------------------------- command line

def _invoke(args: list) -> object:
    from typer.testing import CliRunner

    from breastlab.cli.main import app

    res = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"}).invoke(app, [str(a) for a in args])
    assert "Traceback" not in res.output, res.output
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise AssertionError(f"{args} raised {res.exception!r}\n{res.output}")
    return res


def test_cli_sort_convert_end_to_end_and_keep_phi(phantom: Path, tmp_path: Path) -> None:
    exam = phantom / "GE"
    res = _invoke(["sort", exam, "--out", tmp_path / "sorted", "--convert", tmp_path / "od", "--layout", "odelia",
                   "--no-progress", "-j", "1"])
    assert res.exit_code == 0, res.output
    assert "converted" in res.output and (tmp_path / "od" / "conversion.tsv").is_file()
    case = next((tmp_path / "od" / "data").iterdir())
    assert (case / "Pre.nii.gz").is_file() and "PatientName" not in sidecar(case / "Pre.nii.gz")
    res = _invoke(["sort", exam, "--out", tmp_path / "sorted2", "--convert", tmp_path / "phi", "--layout", "odelia",
                   "--keep-phi", "--no-progress", "-j", "1"])
    assert res.exit_code == 0, res.output
    kept = sidecar(next((tmp_path / "phi" / "data").iterdir()) / "Pre.nii.gz")
    assert kept.get("PatientID") == PATIENT_ID  # dcm2niix's own field, kept only on request
    assert PATIENT_ID not in str(next((tmp_path / "phi" / "data").iterdir()))  # names stay pseudonyms


@pytest.mark.parametrize("extra, message", [
    (["--layout", "nnunet"], "need --convert"),
    (["--convert", "{tmp}/c", "--layout", "nifti"], "is not one of 'bids', 'nnunet', 'odelia'"),
    (["--convert", "{tmp}/c", "--channels", "t2"], "nnunet only"),
    (["--convert", "{tmp}/c", "--layout", "nnunet", "--channels", "dce:x"], "only dce takes a count"),
    (["--convert", "{exam}/inside"], "inside an input"),
])
def test_cli_convert_option_errors(phantom: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    exam = phantom / "GE"
    args = [a.replace("{tmp}", str(tmp_path)).replace("{exam}", str(exam)) for a in extra]
    res = _invoke(["sort", exam, "--out", tmp_path / "sorted", *args, "--no-progress"])
    assert res.exit_code == 2 and message in " ".join(res.output.split()), res.output
    assert not (tmp_path / "sorted").exists()  # refused before the scan


def test_cli_convert_with_nothing_to_convert_exits_nonzero(tmp_path: Path) -> None:
    empty = tmp_path / "in"
    empty.mkdir()
    (empty / "notes.txt").write_text("not dicom")
    res = _invoke(["sort", empty, "--out", tmp_path / "sorted", "--convert", tmp_path / "c", "--no-progress"])
    assert res.exit_code == 1 and "nothing to convert" in res.output
    assert not (tmp_path / "c").exists()


def test_a_killed_conversion_leaves_the_target_untouched_and_the_next_run_cleans_up(phantom: Path,
                                                                                     tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    dest = tmp_path / "conv"
    exe = Path(sys.executable).parent / "breastlab"
    if not exe.exists():
        pytest.skip("breastlab entry point not installed")
    exam = phantom / "GE"
    cmd = [str(exe), "sort", str(exam), "--out", str(tmp_path / "s"), "--convert", str(dest), "--no-progress",
           "-j", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            work = list(tmp_path.glob(".conv.staging-*/.work/*"))
            if len(work) >= 3:  # a few sets converted: kill it mid-run
                break
            time.sleep(0.02)
        if proc.poll() is not None:
            pytest.skip("the conversion finished before it could be killed")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not dest.exists()  # nothing half-published
    assert list(tmp_path.glob(".conv.staging-*"))  # the killed run's stage is still there ...
    res = _invoke(["sort", exam, "--out", tmp_path / "s", "--convert", dest, "--no-progress", "-j", "1"])
    assert res.exit_code == 0, res.output
    assert not list(tmp_path.glob(".conv.staging-*"))  # ... and the next run removed it
    assert verify_outputs(dest) == []
