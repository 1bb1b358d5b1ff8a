"""Header reading and scanning against hostile input: bounded, never raising, nothing lost."""
from __future__ import annotations

import csv
import dataclasses
import os
import struct
from pathlib import Path

import pydicom
import pytest

from breastlab.core import atomic
from breastlab.core.progress import terminal_safe
from breastlab.dicom import headers
from breastlab.dicom.bvalues import find_b_value
from breastlab.dicom.headers import node_from_dataset, read_records, records_from_dataset
from breastlab.dicom.records import SkippedFile
from breastlab.dicom.scan import deduplicate, expand_inputs, scan_paths
from conftest import require
from test_dicom_scan import _synthetic_mr


def _bytes_read() -> int:
    with open("/proc/self/io") as fh:
        return int(next(line.split()[1] for line in fh if line.startswith("rchar:")))


def _skip(result) -> SkippedFile:  # noqa: ANN001
    assert isinstance(result, SkippedFile), result
    return result


def test_large_non_dicom_file_is_judged_on_its_first_bytes(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    with open(path, "wb") as fh:
        fh.write(b"not dicom at all" * 1000)
    os.truncate(path, 2 << 30)  # 2 GiB, sparse
    before = _bytes_read()
    assert _skip(read_records(path)).reason == "not-dicom"
    assert _bytes_read() - before < 1 << 20


def test_huge_element_is_oversized_and_reads_are_capped(tmp_path: Path) -> None:
    data = _synthetic_mr(tmp_path / "a.dcm").read_bytes()
    at = data.find(b"\xe0\x7f\x10\x00")
    path = tmp_path / "huge.dcm"
    path.write_bytes(data[:at] + struct.pack("<HH2sHI", 0x0029, 0x1077, b"OB", 0, (2 << 30) - at - 12))
    os.truncate(path, 2 << 30)
    before = _bytes_read()
    skipped = _skip(read_records(path))
    assert skipped.reason == "oversized" and "MiB" in skipped.detail
    assert _bytes_read() - before <= headers.MAX_HEADER + (1 << 20)


def _nested(depth: int, tag: tuple[int, int]) -> bytes:
    group, elem = tag
    opening = struct.pack("<HH2sHI", group, elem, b"SQ", 0, 0xFFFFFFFF) + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    closing = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return opening * depth + closing * depth


@pytest.mark.parametrize("tag, usable", [((0x5200, 0x9230), False), ((0x0029, 0x1099), True)])
def test_deep_nesting_never_recurses(tmp_path: Path, tag: tuple[int, int], usable: bool) -> None:
    data = _synthetic_mr(tmp_path / "a.dcm").read_bytes()
    at = data.find(b"\xe0\x7f\x10\x00")
    path = tmp_path / "deep.dcm"
    path.write_bytes(data[:at] + _nested(5000, tag) + data[at:])
    result = read_records(path)
    if usable:  # a sequence nobody reads is skipped by a loop, at any depth
        assert not isinstance(result, SkippedFile), result
    else:
        assert _skip(result).reason == "corrupt" and "nested deeper" in result.detail


def test_non_finite_and_absurd_values_are_dropped() -> None:
    ds = pydicom.Dataset()
    ds.add_new(0x00189087, "FD", float("inf"))
    ds.add_new(0x00180050, "DS", "1")
    node = node_from_dataset(ds)
    assert find_b_value(node) == (None, None)
    ds.add_new(0x00189087, "FD", 1e9)
    assert find_b_value(node_from_dataset(ds)) == (None, None)
    ds.add_new(0x00189087, "FD", 800.0)
    assert find_b_value(node_from_dataset(ds)) == (800.0, "(0018,9087)")


def test_frame_count_must_match_the_per_frame_items(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_synthetic_mr(tmp_path / "a.dcm"))
    ds.NumberOfFrames = 2
    ds.PerFrameFunctionalGroupsSequence = [pydicom.Dataset() for _ in range(500)]
    ds.save_as(tmp_path / "b.dcm", enforce_file_format=False)
    skipped = _skip(read_records(tmp_path / "b.dcm"))
    assert skipped.reason == "corrupt" and "500 Per-Frame" in skipped.detail
    ds = pydicom.dcmread(_synthetic_mr(tmp_path / "c.dcm"))
    ds.NumberOfFrames = 4  # one frame of pixels
    ds.save_as(tmp_path / "d.dcm", enforce_file_format=False)
    assert "need" in _skip(read_records(tmp_path / "d.dcm")).detail


def test_special_files_are_never_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")  # opening it for reading would block forever
    assert _skip(read_records(tmp_path / "fifo")).reason == "special-file"
    files, skipped = expand_inputs([tmp_path / "fifo"])
    assert files == [] and [s.reason for s in skipped] == ["special-file"]


def test_every_entry_is_accounted_for(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    good = _synthetic_mr(root / "good.dcm")
    os.mkfifo(root / "fifo")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    os.symlink("gone.dcm", root / "dangling")
    (root / "sub").mkdir()
    os.symlink("sub", root / "link-to-folder")
    os.symlink("good.dcm", root / "link-to-good")
    (root / ".hidden").write_bytes(b"x")
    weird = os.fsdecode(b"caf\xe9-\xff.dcm")  # not UTF-8: kept as surrogate escapes
    (root / weird).write_bytes(good.read_bytes())
    result = scan_paths([root], workers=1, progress=False, drop_duplicates=True)
    reasons = {os.path.basename(s.path): s.reason for s in result.skipped}
    assert reasons["fifo"] == "special-file" and reasons["loop1"] == reasons["loop2"] == "link-loop"
    assert reasons["dangling"] == "broken-link" and reasons["link-to-folder"] == "link-to-folder"
    assert reasons[".hidden"] == "hidden"
    # three paths, one SOP Instance UID: the first path in sorted order is kept
    kept = {r.path for r in result.records}
    assert len(kept) == 1 and os.path.basename(kept.pop()) == weird
    assert reasons["good.dcm"] == reasons["link-to-good"] == "duplicate"
    assert all(weird in s.detail for s in result.skipped if s.reason == "duplicate")
    # written and read back losslessly
    out = atomic.write_csv(tmp_path / "s.csv", [{"path": r.path} for r in result.records], ["path"])
    with open(out, encoding="utf-8", errors="surrogateescape", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert os.fsencode(row["path"]) == os.fsencode(root / weird)
    assert terminal_safe(row["path"]).endswith("caf\\xe9-\\xff.dcm")


def test_deduplicate_keeps_first_path(tmp_path: Path) -> None:
    (rec,) = read_records(_synthetic_mr(tmp_path / "a.dcm"))
    copies = [dataclasses.replace(rec, path=p) for p in ("/x/b.dcm", "/x/a.dcm", "/y/a.dcm")]
    skipped: list[SkippedFile] = []
    assert [r.path for r in deduplicate(copies, skipped)] == ["/x/a.dcm"]
    assert sorted(s.path for s in skipped) == ["/x/b.dcm", "/y/a.dcm"]
    assert {s.reason for s in skipped} == {"duplicate"} and all("/x/a.dcm" in s.detail for s in skipped)


def test_dicomdir_is_recognised_by_content_not_name(tmp_path: Path) -> None:
    image = _synthetic_mr(tmp_path / "DICOMDIR")
    assert not isinstance(read_records(image), SkippedFile)
    ds = pydicom.dcmread(_synthetic_mr(tmp_path / "media.dcm"))
    ds.file_meta.MediaStorageSOPClassUID = headers.DICOMDIR_CLASS
    ds.save_as(tmp_path / "media.dcm", enforce_file_format=False)
    assert _skip(read_records(tmp_path / "media.dcm")).reason == "dicomdir"


@pytest.mark.parametrize("charset, raw, text", [
    ("GB18030", "乳腺动态增强".encode("gb18030"), "乳腺动态增强"),
    ("\\ISO 2022 IR 87", b"\x1b$B;3ED\x1b(B DWI", "山田 DWI"),
    ("ISO_IR 100", "Müller".encode("latin-1"), "Müller"),
    ("ISO_IR 192", "Ø T2".encode("utf-8"), "Ø T2"),
])
def test_specific_character_set_is_honoured(tmp_path: Path, charset: str, raw: bytes, text: str) -> None:
    path = _synthetic_mr(tmp_path / "a.dcm")
    data = path.read_bytes()
    head = struct.pack("<HH2s", 0x0008, 0x103E, b"LO")
    at = data.find(head)
    old = struct.unpack_from("<H", data, at + 6)[0]
    raw += b" " * (len(raw) % 2)
    data = data[:at] + head + struct.pack("<H", len(raw)) + raw + data[at + 8 + old :]
    cs = charset.encode() + b" " * (len(charset) % 2)
    at = data.find(struct.pack("<HH2s", 0x0008, 0x0016, b"UI"))  # (0008,0005) goes before (0008,0016)
    data = data[:at] + struct.pack("<HH2sH", 0x0008, 0x0005, b"CS", len(cs)) + cs + data[at:]
    path.write_bytes(data)
    (rec,) = read_records(path)
    assert rec.series_description == text


def test_terminal_safe_strips_control_characters() -> None:
    assert terminal_safe("\x1b]0;title\x07Desc\r\n\u202e") == "?]0;title?Desc???"
    assert terminal_safe("fine [bold]") == "fine [bold]"


def test_records_from_dataset_matches_the_file_reader(shared_data: Path) -> None:
    """DICOM JSON (as a PACS gives it) -> Dataset.from_json -> the same records as the file."""
    path = require(shared_data / "dcmqa/ge/In/01_Ax_DWI_TENSOR_R2/i22.MRDC.1")
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    from_json = pydicom.Dataset.from_json(ds.to_json_dict(suppress_invalid_tags=True))
    (expected,) = read_records(path)
    (rec,) = records_from_dataset(from_json, path=str(path), meta={0x0010: expected.transfer_syntax_uid})
    assert rec == expected and rec.vendor == expected.vendor


def test_canon_b0_without_b_value_tag(shared_data: Path) -> None:
    """Canon writes (0018,9087) only on b>0: the hint makes the other images b=0."""
    from breastlab.mri.grouping import CANON_B0_SOURCE
    from breastlab.mri.sorter import sort_records

    folder = require(shared_data / "dcmqa/canon/In/cl")
    recs = scan_paths([folder], workers=1, progress=False).records
    reference = sort_records(recs)
    stripped = [dataclasses.replace(r, b_value=None, b_value_source=None, vendor={**r.vendor, "canon_b_absent": "1"})
                if r.b_value == 0 else r for r in recs]
    assert sum(r.b_value is None for r in stripped) > 0
    sets = sort_records(stripped)
    assert [(s.label, s.b_value, s.image_set.n_images) for s in sets] == \
        [(s.label, s.b_value, s.image_set.n_images) for s in reference]
    assert {r.b_value_source for s in sets if s.b_value == 0 for r in s.image_set.records} == {CANON_B0_SOURCE}
    # without b>0 images in the series the hint alone changes nothing
    lone = [r for r in stripped if r.b_value is None]
    assert all(r.b_value is None for s in sort_records(lone) for r in s.image_set.records)


def test_one_unconvertible_value_loses_only_that_element() -> None:
    import warnings

    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    ds = pydicom.Dataset()
    ds.SeriesDescription = "kept"
    ds[0x00200011] = RawDataElement(Tag(0x00200011), "IS", 6, b"1e999 ", 0, False, True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        node = node_from_dataset(ds)
    assert node.text(0x0008103E) == "kept" and 0x00200011 not in node


def test_unreadable_folder_is_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As root every folder is readable, so the refusal is simulated."""
    from breastlab.dicom import scan

    (tmp_path / "in" / "locked").mkdir(parents=True)
    _synthetic_mr(tmp_path / "in" / "a.dcm")
    real_scandir = os.scandir

    def scandir(path):  # noqa: ANN001, ANN202
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(scan.os, "scandir", scandir)
    files, skipped = expand_inputs([tmp_path / "in"])
    assert [os.path.basename(f) for f in files] == ["a.dcm"]
    assert [(os.path.basename(s.path), s.reason) for s in skipped] == [("locked", "unreadable")]
    assert "Permission denied" in skipped[0].detail


def test_an_extra_copy_does_not_wreck_the_dce_series(shared_data: Path, tmp_path: Path) -> None:
    """Issue 7: one duplicate in the real GE DCE series turned 3 x 60 into one T1 set of 181."""
    import shutil

    from breastlab.mri.sorter import sort_exam

    dce = require(shared_data / "nact-dce/UCSF-BR-06/image_dce_3dfgre_orig")
    shutil.copytree(dce, tmp_path / "dce")
    first = sorted((tmp_path / "dce").iterdir())[0]
    shutil.copy(first, tmp_path / "dce" / "zz-extra-copy.dcm")
    result = sort_exam([tmp_path / "dce"], workers=1, progress=False)
    assert [(s.label, s.image_set.n_images) for s in result.sets] == \
        [("DCE_pre", 60), ("DCE_early", 60), ("DCE_delayed", 60)]
    (dup,) = [s for s in result.skipped if s.reason == "duplicate"]
    assert dup.path.endswith("zz-extra-copy.dcm") and first.name in dup.detail
