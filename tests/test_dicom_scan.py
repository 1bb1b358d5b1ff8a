"""Scanning robustness: bad files are skipped with a reason, the rest is parsed, inputs unchanged."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

from breastlab.dicom.headers import read_records
from breastlab.dicom.scan import expand_inputs, scan_paths
from conftest import require


def _tree_hash(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def _synthetic_mr(path: Path, *, rows: int = 8, tsyntax=ExplicitVRLittleEndian, big_endian: bool = False) -> Path:
    import numpy as np

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRBigEndian if big_endian else ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.PatientID = "anon"
    ds.PatientName = "anon"
    ds.StudyInstanceUID = generate_uid()
    ds.StudyDate = "20240101"
    ds.StudyTime = "101010"
    ds.StudyID = "1"
    ds.InstanceNumber = 1
    ds.Manufacturer = "Canon_MEC"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 3
    ds.SeriesDescription = "Ax DWI b0"
    ds.ImageLaterality = "L"
    ds.ViewPosition = "CC"
    view = pydicom.Dataset()
    view.CodeMeaning = "cranio-caudal"
    ds.ViewCodeSequence = [view]
    ds.Rows = ds.Columns = rows
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = (np.arange(rows * rows, dtype=np.uint16) % 50).tobytes()
    if tsyntax != ExplicitVRLittleEndian:
        ds.compress(tsyntax)
    pydicom.dcmwrite(path, ds, enforce_file_format=True, little_endian=not big_endian, implicit_vr=False)
    return path


@pytest.fixture()
def messy_tree(tmp_path: Path, shared_data: Path) -> Path:
    root = tmp_path / "in"
    (root / "sub" / ".hidden").mkdir(parents=True)
    real = require(shared_data / "dcmqa/ge/In/01_Ax_DWI_TENSOR_R2/i22.MRDC.1")
    shutil.copyfile(real, root / "good.dcm")
    data = real.read_bytes()
    (root / "truncated_pixels.dcm").write_bytes(data[: len(data) - 1000])
    (root / "truncated_header.dcm").write_bytes(data[:3000])
    (root / "zero.dcm").write_bytes(b"")
    (root / "notes.dcm").write_text("not a dicom file at all\n" * 20)
    corrupt = bytearray(data)
    corrupt[1000:1060] = b"\xff" * 60  # garbage inside the element stream
    (root / "corrupt.dcm").write_bytes(bytes(corrupt))
    seg = require(shared_data / "nact-dce/UCSF-BR-06/mask")
    shutil.copyfile(next(seg.glob("*.dcm")), root / "sub" / "seg.dcm")
    shutil.copyfile(real, root / "sub" / ".hidden" / "ignored.dcm")
    # a DICOMDIR written by pydicom
    from pydicom.fileset import FileSet

    fs_dir = root / "media"
    fs_dir.mkdir()
    fs = FileSet()
    fs.add(pydicom.dcmread(_synthetic_mr(tmp_path / "for_fs.dcm")))
    fs.write(fs_dir)
    _synthetic_mr(root / "rle.dcm", tsyntax=RLELossless)
    return root


def test_messy_tree_reasons_and_inputs_unchanged(messy_tree: Path):
    before = _tree_hash(messy_tree)
    result = scan_paths([messy_tree], workers=2, progress=False, chunk_size=2)
    assert _tree_hash(messy_tree) == before

    reasons = {Path(s.path).name: s.reason for s in result.skipped}
    assert reasons["zero.dcm"] == "zero-byte"
    assert reasons["notes.dcm"] == "not-dicom"
    assert reasons["truncated_pixels.dcm"] == "truncated"
    assert reasons["truncated_header.dcm"] == "truncated"
    assert reasons["corrupt.dcm"] in {"corrupt", "truncated"}
    assert reasons["seg.dcm"] == "non-image"
    assert reasons["DICOMDIR"] == "dicomdir"
    assert "ignored.dcm" not in reasons
    assert all(s.detail for s in result.skipped)

    parsed = {Path(r.path).name for r in result.records}
    assert "good.dcm" in parsed and "rle.dcm" in parsed
    assert "ignored.dcm" not in parsed  # hidden folder skipped
    assert len([p for p in parsed if p not in {"good.dcm", "rle.dcm"}]) == 1  # the file inside the file set
    paths = [r.path for r in result.records]
    assert paths == sorted(paths)


def test_compressed_and_view_fields(tmp_path: Path):
    (rec,) = read_records(_synthetic_mr(tmp_path / "x.dcm", tsyntax=RLELossless))
    assert rec.transfer_syntax_uid == RLELossless
    assert rec.manufacturer == "CANON" and rec.b_value is None
    assert rec.vendor.get("canon_b_absent") == "1"
    assert (rec.laterality, rec.view_position, rec.view_code) == ("L", "CC", "cranio-caudal")
    assert rec.rows == 8 and rec.series_number == 3


def test_jpeg2000_file_parses(tmp_path: Path):
    pytest.importorskip("openjpeg")
    from pydicom.uid import JPEG2000Lossless

    (rec,) = read_records(_synthetic_mr(tmp_path / "j2k.dcm", rows=64, tsyntax=JPEG2000Lossless))
    assert rec.transfer_syntax_uid == JPEG2000Lossless and rec.rows == 64


def test_big_endian_goes_through_pydicom(tmp_path: Path):
    path = _synthetic_mr(tmp_path / "be.dcm", big_endian=True)
    assert path.read_bytes()[132 + 200 :].find(b"\x00\x28\x00\x10") >= 0  # (0028,0010) big endian
    (rec,) = read_records(path)
    assert rec.rows == 8 and rec.series_description == "Ax DWI b0"
    assert rec.transfer_syntax_uid == pydicom.uid.ExplicitVRBigEndian


def test_path_lists(tmp_path: Path):
    a = _synthetic_mr(tmp_path / "a.dcm")
    b = _synthetic_mr(tmp_path / "b.dcm")
    listing = tmp_path / "files.lst"
    listing.write_text(f"# my files\n{a.name}\n\n{b}\nmissing.dcm\n")
    files, missing = expand_inputs([f"@{listing}"])
    assert files == sorted([str(a), str(b)])
    assert [m.reason for m in missing] == ["missing"]
    txt = tmp_path / "files.txt"
    txt.write_text(f"{a}\n")
    assert expand_inputs([txt])[0] == [str(a)]
    result = scan_paths([f"@{listing}"], workers=1, progress=False)
    assert len(result.records) == 2
