"""The synthetic breast MRI phantom: valid DICOM, vendor dialects, ground truth, contrast."""
from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest
from scipy import ndimage

from breastlab.phantom.anatomy import TISSUES, build_breast_model, enhancement_curve
from breastlab.phantom.mri import (
    LABELS,
    PATIENT_NAME,
    dce_post_injection_seconds,
    read_truth,
    render_exam,
    render_volumes,
    write_mri_phantom,
)

REQUIRED = {"LOCALIZER", "T2WI", "T2WI_FS", "DWI_low", "DWI_high", "ADC", "T1",
            "DCE_pre", "DCE_early", "DCE_delayed", "SUB", "MIP"}
SLICES, MATRIX = 8, 64  # the written exam (headers, truth)
C_SLICES, C_MATRIX = 12, 96  # the in-memory volumes for contrast checks


@pytest.fixture(scope="module")
def exam(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    return write_mri_phantom(out, n_slices=SLICES, matrix=MATRIX, seed=3)


@pytest.fixture(scope="module")
def headers(exam):
    """Every written file's header (no pixels), keyed by its path."""
    return {p: pydicom.dcmread(p, stop_before_pixels=True) for p in exam.files}


def _private(ds, group: int, creator: str, elem: int):
    """Value of a private element, or None (also checks the creator is the one given)."""
    try:
        return ds.private_block(group, creator)[elem].value
    except KeyError:
        return None


def test_files_are_valid_mr_dicom(exam, headers):
    assert len(exam.files) == sum(t.n_images for t in exam.truth)
    for path, ds in headers.items():
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.Modality == "MR"
        assert ds.PatientName == PATIENT_NAME and ds.PatientID  # fake identity, for privacy tests
    for path in exam.files[:: max(1, len(exam.files) // 25)]:  # pixels of a sample
        ds = pydicom.dcmread(path)
        assert ds.pixel_array.shape == (ds.Rows, ds.Columns)
        assert ds.pixel_array.max() > 0


def test_truth_csv_matches_written_series(exam, headers):
    rows = read_truth(exam.out_dir)
    assert len(rows) == len(exam.truth)
    assert {r["label"] for r in rows} <= set(LABELS)
    per_uid = Counter(ds.SeriesInstanceUID for ds in headers.values())
    truth_per_uid = Counter()
    for r in rows:
        truth_per_uid[r["series_uid"]] += int(r["n_images"])
    assert per_uid == truth_per_uid
    by_uid = {ds.SeriesInstanceUID: ds for ds in headers.values()}
    for r in rows:
        ds = by_uid[r["series_uid"]]
        assert int(ds.SeriesNumber) == int(r["series_number"])
        assert ds.SeriesDescription == r["series_description"]
        assert r["folder"].startswith(r["vendor"] + "/")
    for vendor in ("SIEMENS", "GE", "PHILIPS"):
        assert {r["label"] for r in rows if r["vendor"] == vendor} >= REQUIRED, vendor
    # every file is listed, with a label that agrees with its series' truth rows
    with open(exam.instances_csv, newline="") as fh:
        inst = list(csv.DictReader(fh))
    assert len(inst) == len(exam.files)
    labels_of_uid = defaultdict(set)
    for r in rows:
        labels_of_uid[r["series_uid"]].add(r["label"])
    for r in inst:
        assert (exam.out_dir / r["path"]).is_file()
        assert r["label"] in labels_of_uid[r["series_uid"]]


def test_dce_written_both_as_one_series_and_as_separate_series(exam):
    layouts = {}
    for vendor in exam.vendors:
        dce = [t for t in exam.truth if t.vendor == vendor and t.dce_phase is not None]
        assert sorted(t.dce_phase for t in dce) == [0, 1, 2, 3, 4]
        layouts[vendor] = len({t.series_uid for t in dce})
    assert set(layouts.values()) == {1, 5}, layouts


def test_dce_timing_headers(exam, headers):
    inst = {str(p): ds for p, ds in headers.items()}
    # GE: one series; phases by TemporalPositionIdentifier, TriggerTime and ContentTime
    ge = [ds for p, ds in inst.items() if "/GE/" in p and ds.SeriesDescription == "Ax VIBRANT MPh"]
    assert len(ge) == 5 * SLICES
    by_phase = defaultdict(list)
    for ds in ge:
        by_phase[int(ds.TemporalPositionIdentifier)].append(ds)
        assert ds.ContrastBolusAgent == "NONE"  # deliberately unreliable, as on real GE data
    assert sorted(by_phase) == [1, 2, 3, 4, 5]

    def secs(tm: str) -> float:
        return int(tm[:2]) * 3600 + int(tm[2:4]) * 60 + float(tm[4:])

    content = [secs(by_phase[k][0].ContentTime) for k in range(1, 6)]
    trigger = [float(by_phase[k][0].TriggerTime) for k in range(1, 6)]
    assert all(60 <= b - a <= 150 for a, b in zip(content, content[1:]))
    assert trigger[0] == 0 and all(b > a for a, b in zip(trigger, trigger[1:]))
    # Siemens: one series per phase, increasing acquisition times and numbers
    sie = defaultdict(set)
    for p, ds in inst.items():
        if "/SIEMENS/" in p and ds.SeriesDescription == "fl3d_vibe_dyn":
            sie[int(ds.SeriesNumber)].add((secs(ds.AcquisitionTime), int(ds.AcquisitionNumber)))
    assert len(sie) == 5 and all(len(v) == 1 for v in sie.values())
    times = [next(iter(sie[k])) for k in sorted(sie)]
    assert [n for _, n in times] == [1, 2, 3, 4, 5]
    assert all(60 <= b[0] - a[0] <= 150 for a, b in zip(times, times[1:]))


def test_vendor_private_tags(exam, headers):
    truth_b = {}
    for t in exam.truth:
        if t.b_value is not None:
            truth_b.setdefault(t.series_uid, set()).add(t.b_value)
    seen = Counter()
    for path, ds in headers.items():
        vendor = Path(path).parts[-3]
        uid = ds.SeriesInstanceUID
        if vendor == "SIEMENS":
            assert ds.Manufacturer == "SIEMENS"
            b = _private(ds, 0x0019, "SIEMENS MR HEADER", 0x0C)
            if uid in truth_b:
                assert int(b) in truth_b[uid]
                assert ds.SequenceName == f"*ep_b{int(b)}t"
                assert list(ds.ImageType)[:4] == ["ORIGINAL", "PRIMARY", "DIFFUSION", "TRACEW"]
                assert ds[0x0019, 0x100C].value == b and ds[0x0019, 0x0010].value == "SIEMENS MR HEADER"
                seen["siemens_b"] += 1
        elif vendor == "GE":
            assert ds.Manufacturer == "GE MEDICAL SYSTEMS"
            assert _private(ds, 0x0019, "GEMS_ACQU_01", 0x9C)  # pulse sequence name
            slop = _private(ds, 0x0043, "GEMS_PARM_01", 0x39)
            assert slop is not None and len(slop) == 4
            if uid in truth_b:
                assert int(slop[0]) - 1_000_000_000 in truth_b[uid]
                assert ds[0x0043, 0x1039].value[0] == slop[0]
                seen["ge_b"] += 1
            elif ds.SeriesDescription.startswith("Ax"):
                assert int(slop[0]) == 0  # GE writes b=0 on non-diffusion series too
        else:
            assert ds.Manufacturer == "Philips Medical Systems"
            assert _private(ds, 0x2001, "Philips Imaging DD 001", 0x20)  # scanning technique
            b = _private(ds, 0x2001, "Philips Imaging DD 001", 0x03)
            if uid in truth_b:
                assert float(b) in truth_b[uid]
                direction = _private(ds, 0x2001, "Philips Imaging DD 001", 0x04)
                seen[f"philips_{int(b)}_{direction}"] += 1
    assert seen["siemens_b"] == 2 * SLICES and seen["ge_b"] == 2 * SLICES
    # Philips: an isotropic trace volume ('I') inside the DWI series, next to directional ones
    assert seen["philips_800_I"] == SLICES and seen["philips_800_M"] == SLICES
    assert seen["philips_50_I"] == SLICES


def _core(mask: np.ndarray) -> np.ndarray:
    """Mask eroded in-plane, away from partial-volume edges."""
    s = np.zeros((3, 3, 3), bool)
    s[1] = ndimage.generate_binary_structure(2, 1)
    core = ndimage.binary_erosion(mask, structure=s)
    return core if core.sum() >= 5 else mask


@pytest.mark.parametrize("vendor", ["SIEMENS", "GE", "PHILIPS"])
def test_lesion_and_tissue_contrast_per_sequence(vendor):
    seed = 5
    model = build_breast_model(C_SLICES, C_MATRIX, seed=seed)
    les, fgt = _core(model.lesion_mask), _core(model.mask("fibroglandular"))
    fat = _core(model.mask("fat") & (np.arange(C_MATRIX)[None, :, None] < C_MATRIX * 0.5))  # breast fat
    v = render_volumes(model, vendor, seed)

    def mean(key, mask, phase=None):
        a = v[key] if phase is None else v[key][phase]
        return float(a[mask].mean())

    assert mean("DWI_b800", les) > 1.5 * mean("DWI_b800", fgt)  # restricted diffusion
    assert mean("ADC", les) < 0.75 * mean("ADC", fgt)
    assert 600 < mean("ADC", les) < 1300 and 1400 < mean("ADC", fgt) < 2300  # 10^-6 mm^2/s
    assert mean("T2WI", fat) > mean("T2WI", fgt)  # fat bright on T2WI ...
    assert mean("T2WI_FS", fat) < 0.5 * mean("T2WI_FS", fgt)  # ... and dark with fat saturation
    assert mean("T1", fat) > mean("T1", fgt)  # fat bright on T1 without fat saturation
    assert mean("T2WI", _core(model.cyst_mask)) > mean("T2WI", fgt)  # fluid bright
    lesion_curve = [mean("DCE", les, p) for p in range(5)]
    gland_curve = [mean("DCE", fgt, p) for p in range(5)]
    assert int(np.argmax(lesion_curve)) == 1  # peak at the first post-contrast phase ...
    assert all(b < a for a, b in zip(lesion_curve[1:], lesion_curve[2:]))  # ... then wash-out
    assert lesion_curve[1] > 1.8 * lesion_curve[0]
    assert all(b > a for a, b in zip(gland_curve, gland_curve[1:]))  # persistent enhancement
    assert mean("SUB", les) > 3 * mean("SUB", fgt)
    assert v["MIP"].max() >= v["SUB"].max() * 0.99


def test_enhancement_curves_shape():
    t = np.array(dce_post_injection_seconds()[1:])
    assert 60 <= t[0] <= 120
    washout = enhancement_curve("washout", t)
    assert np.argmax(washout) == 0 and np.all(np.diff(washout) < 0)
    assert np.all(np.diff(enhancement_curve("persistent", t)) > 0)
    assert np.all(enhancement_curve(TISSUES["fat"].curve, t) == 0)


def test_render_exam_keys_and_benign_variant():
    vols = render_exam("GE", seed=1, n_slices=6, matrix=48)
    assert set(vols) == REQUIRED
    assert vols["T2WI"].shape == (6, 48, 48) and vols["T2WI"].dtype == np.uint16
    benign = build_breast_model(6, 48, seed=1, lesion_kind="benign")
    v = render_volumes(benign, "GE", 1)
    curve = [float(v["DCE"][p][benign.lesion_mask].mean()) for p in range(5)]
    assert curve[-1] > curve[1]  # persistent, no wash-out


def test_deterministic_with_seed(tmp_path):
    kw = dict(vendors=("philips",), n_slices=4, matrix=32)
    a = write_mri_phantom(tmp_path / "a", seed=7, **kw)
    b = write_mri_phantom(tmp_path / "b", seed=7, **kw)
    c = write_mri_phantom(tmp_path / "c", seed=8, **kw)
    assert [p.relative_to(a.out_dir) for p in a.files] == [p.relative_to(b.out_dir) for p in b.files]
    assert all(p.read_bytes() == q.read_bytes() for p, q in zip(a.files, b.files))
    assert (a.out_dir / "truth.csv").read_text() == (b.out_dir / "truth.csv").read_text()
    pa = pydicom.dcmread(a.files[20]).pixel_array
    pc = pydicom.dcmread(c.files[20]).pixel_array
    assert not np.array_equal(pa, pc)


def test_strip_headers_keeps_only_pixels_geometry_and_uids(tmp_path):
    kw = dict(vendors=("ge", "siemens"), n_slices=4, matrix=32, seed=2)
    full = write_mri_phantom(tmp_path / "full", **kw)
    bare = write_mri_phantom(tmp_path / "bare", strip_headers=True, **kw)
    assert bare.strip_headers and len(bare.files) == len(full.files)
    assert read_truth(bare.out_dir) == read_truth(full.out_dir)
    gone = ("SeriesDescription", "ProtocolName", "ImageType", "Manufacturer", "SequenceName", "ScanOptions",
            "SeriesTime", "AcquisitionTime", "ContentTime", "TriggerTime", "TemporalPositionIdentifier",
            "ContrastBolusAgent", "EchoTime", "RepetitionTime", "PatientName", "PatientID", "SeriesNumber")
    for p, q in zip(full.files, bare.files):
        f, s = pydicom.dcmread(p), pydicom.dcmread(q)
        for key in gone:
            assert key not in s, key
        assert not any(el.tag.is_private for el in s)
        for key in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "ImagePositionPatient",
                    "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns"):
            assert s[key].value == f[key].value, key
        assert np.array_equal(s.pixel_array, f.pixel_array)
    assert any(el.tag.is_private for el in pydicom.dcmread(full.files[0]))


def test_cli_phantom_mri(tmp_path):
    from typer.testing import CliRunner

    from breastlab.cli.main import app

    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(app, ["phantom", "mri", str(out), "--vendor", "siemens", "--slices", "3",
                                 "--matrix", "32", "--dce-layout", "single", "--seed", "4"])
    assert result.exit_code == 0, result.output
    rows = read_truth(out)
    assert {r["vendor"] for r in rows} == {"SIEMENS"}
    assert len({r["series_uid"] for r in rows if r["dce_phase"] != ""}) == 1  # --dce-layout single
    assert (out / "provenance.json").is_file()
    bad = runner.invoke(app, ["phantom", "mri", str(tmp_path / "x"), "--vendor", "canon"])
    assert bad.exit_code != 0
