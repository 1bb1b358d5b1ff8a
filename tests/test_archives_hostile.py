"""Every archive member is accounted for; damage stays with its member; work per archive is bounded."""
from __future__ import annotations

import tarfile
import zipfile

import pytest
from conftest import require
from fuzz_archives import corrupt_deflate_zip, good_members, link_tar, nested_zip, overlapping_zip

from breastlab.dicom import archives
from breastlab.dicom.archives import read_archive
from breastlab.dicom.records import SkippedFile


@pytest.fixture
def good(shared_data):
    return good_members(require(shared_data / "dcmqa" / "ge" / "In" / "01_Ax_DWI_TENSOR_R2"))


def by_member(results, archive):
    return {m.removeprefix(f"{archive}/"): r for m, r in results}


def test_a_corrupt_deflate_member_is_skipped_alone(good, tmp_path):
    path = tmp_path / "a.zip"
    bad = corrupt_deflate_zip(path, good)
    got = by_member(read_archive(str(path)), path)
    assert set(got) == set(good) | {bad}
    assert isinstance(got[bad], SkippedFile) and got[bad].reason == "corrupt"
    assert all(isinstance(got[name], list) and got[name] for name in good)  # the others still read


def test_link_fifo_and_device_members_are_listed_with_a_reason(good, tmp_path):
    path = tmp_path / "l.tar"
    expected = link_tar(path, good)
    got = by_member(read_archive(str(path)), path)
    assert set(got) == set(good) | set(expected)
    for name, reason in expected.items():
        assert isinstance(got[name], SkippedFile) and got[name].reason == reason, (name, got[name])
    assert all(isinstance(got[name], list) for name in good)


def test_zip_symlink_member_is_not_read(good, tmp_path):
    path = tmp_path / "s.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("link.dcm")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    (result,) = read_archive(str(path))
    assert result[1].reason == "link"


def test_overlapping_zip_entries_are_not_inflated_again(tmp_path, monkeypatch):
    path = tmp_path / "bomb.zip"
    overlapping_zip(path, n=200, size=8 << 20)
    inflated = []
    real = archives._read_member
    monkeypatch.setattr(archives, "_read_member", lambda name, fh, budget: inflated.append(name) or real(name, fh, budget))
    got = read_archive(str(path))
    assert len(got) == 200  # every entry accounted for...
    assert not inflated  # ...and the shared data never inflated
    assert sum(isinstance(r, SkippedFile) and "overlaps" in r.detail for _, r in got) == 200


def test_work_per_archive_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(archives, "ARCHIVE_BUDGET_FLOOR", 3 << 20)
    monkeypatch.setattr(archives, "ARCHIVE_BUDGET_RATIO", 1)
    path = tmp_path / "many.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for i in range(6):
            info = tarfile.TarInfo(f"m{i}.dcm")
            info.size = 1 << 20
            tf.addfile(info, __import__("io").BytesIO(bytes(1 << 20)))
    got = read_archive(str(path))
    assert len(got) == 6
    reasons = [r.reason for _, r in got]
    assert reasons[:3] == ["not-dicom"] * 3 and set(reasons[3:]) == {"oversized"}
    assert "work bound" in got[-1][1].detail


def test_nested_archives_are_listed_not_opened(good, tmp_path):
    path = tmp_path / "n.zip"
    nested_zip(path, good)
    got = by_member(read_archive(str(path)), path)
    assert set(got) == {"inner.zip", "inner.tar.gz"}
    assert all(r.reason == "not-dicom" for r in got.values())


def test_a_truncated_tar_gz_keeps_the_members_read_and_names_the_archive(good, tmp_path):
    path = tmp_path / "t.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name, data in good.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, __import__("io").BytesIO(data))
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    got = read_archive(str(path))
    assert got[-1][0] == str(path) and got[-1][1].reason == "corrupt"
    assert all(not isinstance(r, SkippedFile) or r.reason == "corrupt" for _, r in got)


def test_sound_zips_have_no_overlap(good, tmp_path):
    """Entries packed back to back (ASCII and UTF-8 names, stored and deflated) are never taken for a bomb."""
    path = tmp_path / "ok.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i, (name, data) in enumerate(good.items()):
            zf.writestr(("série-é/" if i % 2 else "") + name, data,
                        compress_type=zipfile.ZIP_STORED if i % 2 else zipfile.ZIP_DEFLATED)
        zf.writestr("empty", b"")
    got = read_archive(str(path))
    assert len(got) == len(good) + 1
    assert not any(isinstance(r, SkippedFile) and "overlaps" in r.detail for _, r in got)


def test_quoted_overlap_is_caught(good, tmp_path):
    """An entry whose compressed size reaches into the next local header (the quoted-overlap bomb)."""
    import struct

    path = tmp_path / "q.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in list(good.items())[:3]:
            zf.writestr(name, data)
    raw = bytearray(path.read_bytes())
    cd = raw.index(b"PK\x01\x02")  # the first central directory entry: its compressed size grows
    (size,) = struct.unpack_from("<I", raw, cd + 20)
    struct.pack_into("<I", raw, cd + 20, size + 40)
    path.write_bytes(bytes(raw))
    got = by_member(read_archive(str(path)), path)
    flagged = sorted(n for n, r in got.items() if isinstance(r, SkippedFile) and "overlaps" in r.detail)
    assert flagged == sorted(list(good)[:2])  # the quoting entry and the quoted one; the third is read
    assert isinstance(got[list(good)[2]], list)
