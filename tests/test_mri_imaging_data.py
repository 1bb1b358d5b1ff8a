"""Training inputs of the MRI image models: each DATA form, slice sampling, aggregation."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from breastlab.seriesmodels.aggregate import aggregate_by_series, aggregate_probs
from breastlab.seriesmodels.data import (
    TASK_CLASSES, SliceDataset, SliceRef, canonical_label, read_data, sample_slices, slice_table,
)

SEQ = TASK_CLASSES["sequence"]


def write_dicom_series(folder: Path, *, patient: str, n: int = 5, size: int = 16, value: float = 10.0,
                       series_uid: str | None = None) -> list[Path]:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    out = []
    for z in range(n):
        ds = Dataset()
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        ds.SOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID = series_uid
        ds.StudyInstanceUID = "1.2.3"
        ds.PatientID = patient
        ds.Modality = "MR"
        ds.InstanceNumber = n - z  # reversed on purpose: order must come from position
        ds.ImagePositionPatient = [0, 0, 3.0 * z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        arr = (np.arange(size * size).reshape(size, size) % 7 + value + 100 * z).astype(np.uint16)
        ds.PixelData = arr.tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        p = folder / f"im{z:03d}"  # no .dcm suffix: found by the DICM preamble
        ds.save_as(p, enforce_file_format=True)
        out.append(p)
    return out


def write_png(path: Path, value: int, size: int = 16) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.random.default_rng(value).random((size, size)) * 50 + value).astype(np.uint8)).save(path)
    return path


def write_nifti(path: Path, n: int = 6, size: int = 16) -> Path:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.stack([np.full((size, size), 10.0 * z) + np.eye(size) for z in range(n)], axis=-1)
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.eye(4)), str(path))
    return path


def test_canonical_label_aliases():
    assert canonical_label("fs-t2wi", SEQ) == "T2WI_FS"
    assert canonical_label("T2WI", SEQ) == "T2WI"
    assert canonical_label("CEearly", TASK_CLASSES["phase"]) == "DCE_early"
    assert canonical_label("NoC", TASK_CLASSES["phase"]) == "DCE_pre"
    assert canonical_label("DWI", SEQ) is None
    assert canonical_label("DWI", SEQ + ["DWI"]) == "DWI"


def test_class_folders_with_dicom_png_and_nifti(tmp_path):
    root = tmp_path / "data"
    write_dicom_series(root / "T2WI" / "any", patient="A")
    write_dicom_series(root / "T2WI" / "any2", patient="B")
    write_png(root / "T2WI_FS" / "patC" / "s1" / "a.png", 20)
    write_png(root / "T2WI_FS" / "patC" / "s1" / "b.png", 30)
    write_png(root / "T2WI_FS" / "loose.png", 40)
    write_nifti(root / "ADC" / "patD" / "adc.nii.gz")
    write_png(root / "notes" / "x.png", 1)
    ds = read_data(root, SEQ)
    by_label = {}
    for item in ds.items:
        by_label.setdefault(item.label, []).append(item)
    assert len(by_label["T2WI"]) == 2 and all(i.kind == "dicom" and len(i.files) == 5 for i in by_label["T2WI"])
    assert sorted(len(i.files) for i in by_label["T2WI_FS"]) == [1, 2]
    assert by_label["ADC"][0].kind == "nifti"
    assert ds.dropped == {"folder 'notes' is not a class": 1}
    # patients are pseudonymised, never the raw id
    assert all(i.patient_id.startswith("p-") for i in ds.items)
    assert "A" not in {i.patient_id for i in ds.items}
    assert len({i.patient_id for i in by_label["T2WI"]}) == 2

    table = slice_table(ds.items, SEQ, slices_per_series=3)
    assert set(table.labels) == {0, 1, 2}
    data = SliceDataset(table, image_size=32)
    item = data[0]  # a dict item carrying its series id (as TorchIO's Subject)
    x, y = item["image"], item["label"]
    assert tuple(x.shape) == (1, 32, 32) and isinstance(y, int)
    assert item["series_id"] == data.series_ids[0] and item["series_id"] in {i.series_id for i in ds.items}
    assert len(data) == len(table.refs)
    nifti_refs = [r for r in table.refs if r.path.endswith(".nii.gz")]
    assert len(nifti_refs) == 3 and len({r.index for r in nifti_refs}) == 3


def test_dicom_slices_are_ordered_by_position(tmp_path):
    files = write_dicom_series(tmp_path / "s", patient="A", n=9)
    from breastlab.seriesmodels.data import SeriesItem, all_slices

    item = SeriesItem(series_id="s", patient_id="p", label="T2WI", files=[str(f) for f in files[::-1]])
    ordered = all_slices(item)
    assert [Path(r.path).name for r in ordered] == [f.name for f in files]


def test_manifest_csv(tmp_path):
    pngs = [write_png(tmp_path / "img" / f"{i}.png", 10 * i) for i in range(4)]
    nii = write_nifti(tmp_path / "img" / "v.nii")
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "patient_id", "series_id"])
        w.writerow([f"img/{pngs[0].name}", "T2WI", "P1", "s1"])
        w.writerow([f"img/{pngs[1].name}", "T2WI", "P1", "s1"])
        w.writerow([str(pngs[2]), "FS-T2WI", "P2", "s2"])
        w.writerow([f"img/{nii.name}", "adc", "P3", ""])
        w.writerow([str(pngs[3]), "DWI", "P3", "s4"])
    ds = read_data(manifest, SEQ)
    assert ds.source == "manifest"
    assert sorted((i.label, len(i.files)) for i in ds.items) == [("ADC", 1), ("T2WI", 2), ("T2WI_FS", 1)]
    assert sum(ds.dropped.values()) == 1
    table = slice_table(ds.items, SEQ, slices_per_series=2)
    assert len(table.refs) == 2 + 1 + 2


def test_corrected_sort_series_csv(tmp_path):
    a = write_dicom_series(tmp_path / "in" / "a", patient="A", n=4)
    b = write_dicom_series(tmp_path / "in" / "b", patient="A", n=4)
    out = tmp_path / "sorted"
    out.mkdir()
    with open(out / "series.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["series_uid", "series_number", "label", "confidence", "evidence"])
        w.writerow(["1.1", "3", "T2WI", "0.9", "header"])
        w.writerow(["1.2", "4", "UNKNOWN", "0.1", "header"])  # not corrected: left out
    with open(out / "instances.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "frame_index", "series_uid"])
        for f in a:
            w.writerow([str(f), "", "1.1"])
        for f in b:
            w.writerow([str(f), "", "1.2"])
    ds = read_data(out / "series.csv", SEQ)
    assert ds.source == "sort-series"
    assert [(i.series_id, i.label, len(i.files)) for i in ds.items] == [("1.1", "T2WI", 4)]
    assert ds.dropped == {"label 'UNKNOWN' is not a class": 1}
    refs = sample_slices([SliceRef(str(i)) for i in range(20)], 4)
    assert len(refs) == 4 and all(4 <= int(r.path) <= 15 for r in refs)


def test_bad_data_argument(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_data(tmp_path / "missing", SEQ)
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError):
        read_data(bad, SEQ)


def test_aggregate_logmean_resists_one_wrong_slice():
    probs = np.array([[0.7, 0.2, 0.1]] * 4 + [[0.01, 0.98, 0.01]])
    agg = aggregate_probs(probs)
    assert agg.argmax() == 0 and abs(agg.sum() - 1) < 1e-9
    assert aggregate_probs(probs, "mean").argmax() == 0
    assert aggregate_probs(np.array([[0.6, 0.4], [0.6, 0.4], [0.1, 0.9]]), "vote").argmax() == 0
    ids, out = aggregate_by_series(np.r_[probs, [[0.1, 0.1, 0.8]]], ["a"] * 5 + ["b"])
    assert ids == ["a", "b"] and out.shape == (2, 3) and out[1].argmax() == 2
    with pytest.raises(ValueError):
        aggregate_probs(probs, "median")
