"""``dicom.pixels`` reads one frame of an enhanced multi-frame file without parsing its per-frame groups,
and gives exactly pydicom's pixels (falling back to the whole-file read when the shortcut does not hold)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from breastlab.dicom import pixels


def _multiframe(path: Path, ts, *, trailing: bool = False, signed: bool = False) -> np.ndarray:
    frames, rows, cols = 3, 4, 5
    arr = (np.arange(frames * rows * cols).reshape(frames, rows, cols) * 37 - (500 if signed else 0))
    arr = arr.astype(np.int16 if signed else np.uint16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"  # Enhanced MR
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, int(signed)
    ds.PerFrameFunctionalGroupsSequence = Sequence([Dataset() for _ in range(frames)])
    for i, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        item.FrameContentSequence = Sequence([Dataset()])
        item.FrameContentSequence[0].InStackPositionNumber = i + 1
    ds.PixelData = arr.tobytes()
    if trailing:
        ds.add_new(0xFFFCFFFC, "OB", b"\0\0")  # Data Set Trailing Padding after the pixels
    ds.save_as(path, enforce_file_format=True)
    return arr


@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("signed", [False, True])
def test_the_shortcut_gives_pydicoms_pixels(tmp_path: Path, ts, signed: bool) -> None:
    arr = _multiframe(tmp_path / "mf.dcm", ts, signed=signed)
    got = pixels._multiframe_native(tmp_path / "mf.dcm")
    assert got is not None, "the shortcut applies to an uncompressed little-endian multi-frame file"
    assert np.array_equal(got[1], pydicom.dcmread(tmp_path / "mf.dcm").pixel_array)
    assert np.array_equal(got[1], arr)
    assert np.array_equal(pixels.read_view(tmp_path / "mf.dcm", 2), arr[2].astype(np.float32))


def test_trailing_elements_fall_back_to_the_whole_file(tmp_path: Path) -> None:
    arr = _multiframe(tmp_path / "mf.dcm", ExplicitVRLittleEndian, trailing=True)
    assert pixels._multiframe_native(tmp_path / "mf.dcm") is None
    assert np.array_equal(pixels.read_view(tmp_path / "mf.dcm", 1), arr[1].astype(np.float32))


def test_single_frame_files_read_once_give_the_whole_file_pixels(shared_data, monkeypatch):
    """A single-frame file is read on from where the partial read stopped (no second header
    parse): the pixels equal the whole-file read's, under every transfer syntax and vendor."""
    import random

    from conftest import require

    folders = [require(shared_data / "dcmqa" / "transfer_syntax" / "In"), require(shared_data / "nact-dce")]
    files = sorted(p for folder in folders for p in folder.rglob("*") if p.is_file()
                   and pydicom.misc.is_dicom(p) and "mask" not in p.parts)
    files = files[:9] + random.Random(0).sample(files[9:], min(60, len(files) - 9))
    fast = {f: pixels.read_view_and_header(f)[0] for f in files}
    monkeypatch.setattr(pixels, "_multiframe_native", lambda path: None)  # the whole-file read
    compared = 0
    for f in files:
        whole = pixels.read_view_and_header(f)[0]
        assert np.array_equal(fast[f], whole), f
        compared += 1
    assert compared >= 10
