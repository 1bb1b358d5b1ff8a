"""Preprocessing and CaseDataset: loaders, robust normalisation, right-view flip, stacking."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from breastlab.multiview.dataset import CaseDataset, as_rows, parse_label
from breastlab.multiview.preprocess import (
    Augment,
    ImageLoadError,
    PreprocessConfig,
    load_case,
    load_image,
    normalize,
    preprocess_view,
    view_laterality,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _asym(h=40, w=30, value=1.0):
    """An image with a bright block on the left edge (to see flips)."""
    img = np.zeros((h, w), np.float32)
    img[5:35, 0:8] = 100 * value
    return img


def test_normalize_robust_to_hot_pixels():
    rng = np.random.default_rng(0)
    img = rng.normal(100, 10, (64, 64)).astype(np.float32)
    hot = img.copy()
    hot[0, :5] = 1e6  # five hot pixels
    z, zh = normalize(img), normalize(hot)
    assert abs(zh.mean()) < 1e-4 and abs(zh.std() - 1) < 1e-3
    assert np.corrcoef(z[1:].ravel(), zh[1:].ravel())[0, 1] > 0.99  # outliers do not dominate
    assert zh.max() < 5
    m = normalize(hot, "minmax")
    assert m.min() == 0 and m.max() == pytest.approx(1.0)
    assert np.median(m) > 0.3  # without the clip the median would be ~0
    assert not normalize(np.full((8, 8), 7.0)).any()  # constant → zeros
    with pytest.raises(ValueError):
        normalize(img, "bogus")


def test_laterality():
    assert view_laterality("RCC") == "R" and view_laterality("R-MLO") == "R"
    assert view_laterality("LMLO") == "L" and view_laterality("image") is None


def _write_cases(tmp_path, n=6, bad=None):
    rows = []
    for i in range(n):
        row = {"case_id": f"c{i}", "patient_id": f"p{i // 2}", "label": i % 2}
        for j, v in enumerate(("LCC", "RCC", "LMLO", "RMLO")):
            img = _asym(value=j + 1)
            path = tmp_path / f"c{i}_{v}.npy"
            np.save(path, img)
            row[v] = path.name  # relative to the CSV
        rows.append(row)
    if bad is not None:
        (tmp_path / "broken.npy").write_bytes(b"not numpy")
        rows[bad]["RMLO"] = "broken.npy"
    path = tmp_path / "cases.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_stacking_order_and_right_flip(tmp_path):
    path = _write_cases(tmp_path, n=2)
    ds = CaseDataset(path, image_size=32, normalization="minmax")
    assert ds.views == ("LCC", "RCC", "LMLO", "RMLO") and len(ds) == 2
    item = ds[1]  # a data item carries its case id (TorchIO Subject / MONAI dict style)
    x, y = item["image"], item["label"]
    assert x.shape == (4, 32, 32) and x.dtype == torch.float32 and y == 1
    assert item["case_id"] == ds.case_ids[1]
    left_half = x[:, :, :16].mean((1, 2))
    right_half = x[:, :, 16:].mean((1, 2))
    assert (left_half[[0, 2]] > right_half[[0, 2]]).all()  # L views untouched
    assert (right_half[[1, 3]] > left_half[[1, 3]]).all()  # R views flipped
    no_flip = CaseDataset(path, image_size=32, normalization="minmax", flip_right=False)
    img = no_flip[1]["image"]
    assert (img[:, :, :16].mean((1, 2)) > img[:, :, 16:].mean((1, 2))).all()


def test_channel_order_matches_view_list(tmp_path):
    # each view carries a different block height so channels are distinguishable
    rows = []
    for i in range(2):
        row = {"case_id": f"c{i}", "patient_id": f"p{i}", "label": i}
        for j, v in enumerate(("LCC", "RCC", "LMLO", "RMLO")):
            img = np.zeros((32, 32), np.float32)
            img[: 4 * (j + 1), :] = 1.0
            np.save(tmp_path / f"{i}{v}.npy", img)
            row[v] = str(tmp_path / f"{i}{v}.npy")
        rows.append(row)
    ds = CaseDataset(rows, views=["RMLO", "LCC", "LMLO"], image_size=32,
                     normalization="minmax", flip_right=False)
    x = ds[0]["image"]
    frac = x.mean((1, 2))
    assert frac.tolist() == pytest.approx([16 / 32, 4 / 32, 12 / 32], abs=0.03)


def test_bad_file_skipped_and_reported(tmp_path):
    path = _write_cases(tmp_path, n=4, bad=2)
    ds = CaseDataset(path, image_size=16)
    assert len(ds) == 3 and ds.skipped[0][0] == "c2"
    with pytest.raises(ImageLoadError):
        CaseDataset(path, image_size=16, on_error="raise")


def test_blank_view_and_subset_shares_cache(tmp_path):
    path = _write_cases(tmp_path, n=4)
    rows = as_rows(path)
    rows[0]["RMLO"] = ""
    ds = CaseDataset(rows, image_size=16)
    assert not ds[0]["image"][3].any() and ds[0]["image"][0].any()
    strict = CaseDataset(rows, image_size=16, blank_missing=False)
    assert len(strict) == 3
    sub = ds.select(["c3", "c1"], train=True)
    assert sub.case_ids == ["c3", "c1"] and sub.train and not ds.train
    assert torch.equal(sub.image(0), ds.image(3))


def test_casetable_input(tmp_path):
    from breastlab.multiview.cases import read_cases

    path = _write_cases(tmp_path, n=4)
    table = read_cases(path)
    ds = CaseDataset(table, image_size=16)
    assert len(ds) == 4 and ds.views == tuple(table.view_names)
    assert ds.labels.tolist() == [0, 1, 0, 1] and ds.patient_ids[:2] == ["p0", "p0"]


def test_labels():
    assert parse_label("malignant") == 1 and parse_label("0") == 0 and parse_label("") == -1


def _dicom(path, pixels, photometric="MONOCHROME2", slope=None, intercept=None):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_monochrome1_and_rescale(tmp_path):
    px = np.zeros((20, 20), np.uint16)
    px[5:10, 5:10] = 1000
    m2 = load_image(_dicom(tmp_path / "a.dcm", px, slope=2.0, intercept=-10.0))
    assert m2[6, 6] == pytest.approx(1990.0) and m2[0, 0] == pytest.approx(-10.0)
    m1 = load_image(_dicom(tmp_path / "b", px, photometric="MONOCHROME1"))  # no suffix
    assert m1[6, 6] < m1[0, 0]  # stored high = displayed dark → inverted: bright background
    assert m1.max() == pytest.approx(1000.0) and m1.min() == pytest.approx(0.0)


def test_png_rgb_nifti_and_errors(tmp_path):
    from PIL import Image
    import nibabel as nib

    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[..., 1] = 200
    Image.fromarray(rgb).save(tmp_path / "a.png")
    grey = load_image(tmp_path / "a.png")
    assert grey.shape == (10, 12) and grey[0, 0] == pytest.approx(200 * 0.587, abs=1)

    vol = np.zeros((8, 6, 5), np.float32)  # x, y, z
    vol[..., 2] = 7.0
    vol[..., 4] = 9.0
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "v.nii.gz")
    mid = load_image(tmp_path / "v.nii.gz")
    assert mid.shape == (6, 8) and (mid == 7.0).all()
    assert (load_image(tmp_path / "v.nii.gz", slice_index=4) == 9.0).all()

    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ImageLoadError):
        load_image(tmp_path / "x.txt")
    with pytest.raises(ImageLoadError):
        load_image(tmp_path / "missing.png")


def test_preprocess_view_resizes_and_flips():
    out = preprocess_view(_asym(), image_size=16, normalization="minmax", flip=True)
    assert out.shape == (16, 16) and out[:, -3:].mean() > out[:, :3].mean()
    case = load_case({"LCC": None}, ["LCC"], PreprocessConfig(image_size=8), blank_missing=True)
    assert case.shape == (1, 8, 8) and not case.any()


def test_augment_reproducible_and_never_flips_by_default():
    x = torch.from_numpy(np.stack([normalize(_asym()) for _ in range(4)]))
    torch.manual_seed(3)
    a = Augment()(x)
    torch.manual_seed(3)
    b = Augment()(x)
    assert torch.equal(a, b) and a.shape == x.shape and not torch.equal(a, x)
    # the bright block stays on the left for every view (±10° rotation, ±5 % shift)
    assert (a[:, :, :10].mean((1, 2)) > a[:, :, -10:].mean((1, 2))).all()
    noisy = Augment(p_affine=0, p_intensity=0, noise_peak=50)(x)
    assert noisy.shape == x.shape and not torch.equal(noisy, x)


def test_train_dataset_augments_eval_does_not(tmp_path):
    path = _write_cases(tmp_path, n=2)
    ds = CaseDataset(path, image_size=16, train=True)
    assert not torch.equal(ds[0]["image"], ds.image(0))
    ev = ds.subset([0, 1], train=False)  # the evaluation data set: a separate object
    assert torch.equal(ev[0]["image"], ev[0]["image"]) and ds.train  # training set unchanged
