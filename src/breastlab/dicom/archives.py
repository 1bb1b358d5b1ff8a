"""Reading DICOM inside ``.zip``, ``.tar``, ``.tar.gz`` / ``.tgz`` archives without unpacking them to disk.

Each regular member is streamed (bounded: at most :data:`MAX_MEMBER` bytes) into an
anonymous in-memory file (Linux ``memfd_create``) and parsed by the same bounded
reader as any file (:func:`breastlab.dicom.headers.read_records`), so archives get
every guarantee of the hostile-input scanner. Nothing is written to disk.

**Every member is accounted for**: a regular member gives records or a skipped row;
symbolic and hard links (``link``), FIFOs, character and block devices (``special-file``)
are listed, never followed or opened; a member whose compressed data is damaged (a bad
deflate stream, a CRC mismatch, an encrypted or unknown compression method) is
``corrupt`` on its own and the next members are still read. Folders are not listed
(as in a file tree).

**Work per archive is bounded**, not only per member: zip entries whose data overlaps
another entry's (a central directory that points many names at the same compressed
bytes: a tiny file that inflates to gigabytes) are ``corrupt`` without being inflated,
and once the members read have inflated to more than :func:`archive_budget` bytes
(``max(1 GiB, 200 x archive size)``) the remaining members are ``oversized`` without
being read.

A member is named ``<archive path>/<member name>`` in instances.csv, skipped.csv and
the index (unambiguous: no real file can live under a regular file). Archives inside
archives are not opened (the member is reported ``not-dicom``). Files placed by
``--export`` or converted by ``--convert`` must exist on disk: with either option,
archives are not opened and are listed in skipped.csv (reason ``archive``).
"""
from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import IO

from breastlab.dicom.records import InstanceRecord, SkippedFile

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
#: largest member read (the same bound as the largest file the pydicom fallback reads)
MAX_MEMBER = 256 * 1024 * 1024
#: bytes inflated per archive at most: this floor, or this many times the archive's size
ARCHIVE_BUDGET_FLOOR = 1 << 30
ARCHIVE_BUDGET_RATIO = 200
BLOCK = 1 << 20
#: the fixed part of a zip local file header (before the name and extra field)
_ZIP_LOCAL_HEADER = 30


def is_archive(path: str) -> bool:
    return path.lower().endswith(ARCHIVE_SUFFIXES)


def archive_budget(size: int) -> int:
    """Bytes the members of an archive of ``size`` bytes may inflate to, all together."""
    return max(ARCHIVE_BUDGET_FLOOR, ARCHIVE_BUDGET_RATIO * size)


@dataclass
class _Member:
    """One archive member: ``open`` for regular members, else why it is not read."""

    name: str
    open: Callable[[], IO[bytes]] | None = None
    reason: str = ""
    detail: str = ""


def _zip_overlaps(infos: list[zipfile.ZipInfo]) -> dict[int, str]:
    """id(info) -> name of an entry whose data range it shares, for every entry that overlaps another.

    Both sides are marked: the same offset named many times (the full-overlap bomb) and an
    entry whose compressed data quotes the next local header (the quoted-overlap bomb) alike.
    """
    overlaps: dict[int, str] = {}
    ordered = sorted(infos, key=lambda i: (i.header_offset, i.filename))
    end, owner = -1, None
    for info in ordered:
        this_end = info.header_offset + _ZIP_LOCAL_HEADER + _name_length(info) + info.compress_size
        if owner is not None and info.header_offset < end:
            overlaps[id(info)] = owner.filename
            overlaps.setdefault(id(owner), info.filename)
        if this_end > end:
            end, owner = this_end, info
    return overlaps


def _name_length(info: zipfile.ZipInfo) -> int:
    """Bytes of the member name as stored (UTF-8 when flagged, else cp437, as zipfile decoded it)."""
    encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
    try:
        return len(info.orig_filename.encode(encoding))
    except UnicodeEncodeError:
        return 0  # an underestimate never marks a sound entry as overlapping


def _zip_members(path: str) -> Iterator[_Member]:
    with zipfile.ZipFile(path) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        overlaps = _zip_overlaps(infos)
        for info in infos:
            mode = info.external_attr >> 16
            if id(info) in overlaps:
                yield _Member(info.filename, reason="corrupt",
                              detail=f"zip entry overlaps the data of {overlaps[id(info)]!r} (zip bomb): not read")
            elif stat.S_ISLNK(mode):
                yield _Member(info.filename, reason="link", detail="symbolic link in the archive: not followed")
            elif mode and stat.S_IFMT(mode) and not stat.S_ISREG(mode):
                yield _Member(info.filename, reason="special-file",
                              detail=f"archive member of file type {stat.S_IFMT(mode):o}: not read")
            else:
                yield _Member(info.filename, open=lambda info=info: zf.open(info))


def _tar_members(path: str) -> Iterator[_Member]:
    with tarfile.open(path, mode="r:*") as tf:
        for m in tf:
            if m.isdir():
                continue
            if m.issym() or m.islnk():
                kind = "symbolic" if m.issym() else "hard"
                yield _Member(m.name, reason="link", detail=f"{kind} link in the archive: not followed")
            elif m.isreg():
                yield _Member(m.name, open=lambda m=m: tf.extractfile(m))
            else:
                what = "FIFO" if m.isfifo() else "character device" if m.ischr() else \
                    "block device" if m.isblk() else f"type {m.type!r}"
                yield _Member(m.name, reason="special-file", detail=f"{what} in the archive: not read")


def _members(path: str) -> Iterator[_Member]:
    """Every member but folders, in archive order."""
    return _zip_members(path) if path.lower().endswith(".zip") else _tar_members(path)


class _BudgetSpent(Exception):
    pass


def _read_member(name: str, fh: IO[bytes], budget: list[int]) -> list[InstanceRecord] | SkippedFile:
    """Records of one member; ``budget[0]`` (bytes the archive may still inflate) is charged."""
    from breastlab.dicom.headers import read_records

    fd = os.memfd_create("breastlab-member", os.MFD_CLOEXEC)
    try:
        total = 0
        while block := fh.read(BLOCK):
            total += len(block)
            budget[0] -= len(block)
            if total > MAX_MEMBER:  # a zip bomb or a huge member: never held whole
                return SkippedFile(name, "oversized", f"archive member larger than {MAX_MEMBER >> 20} MiB")
            if budget[0] < 0:
                raise _BudgetSpent
            os.write(fd, block)
        fd_path = f"/proc/self/fd/{fd}"
        result = read_records(fd_path)
    finally:
        os.close(fd)
    if isinstance(result, SkippedFile):
        return SkippedFile(name, result.reason, result.detail.replace(fd_path, name))
    return [replace(r, path=name) for r in result]


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"


def read_archive(path: str) -> list[tuple[str, list[InstanceRecord] | SkippedFile]]:
    """(member path, records or why skipped) of every member; an unreadable archive is one SkippedFile.

    Never raises for any archive content: a damaged member is that member's row, damage
    that stops the archive from being listed further is one row for the archive.
    """
    out: list[tuple[str, list[InstanceRecord] | SkippedFile]] = []
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        return [(path, SkippedFile(path, "unreadable", f"archive: {_one_line(exc)}"))]
    budget = [archive_budget(size)]
    try:
        for m in _members(path):
            member = f"{path}/{m.name.lstrip('/')}"
            if m.name.rstrip("/").rsplit("/", 1)[-1].startswith("."):
                out.append((member, SkippedFile(member, "hidden", "hidden archive member: not read")))
            elif m.open is None:
                out.append((member, SkippedFile(member, m.reason, m.detail)))
            elif budget[0] <= 0:
                out.append((member, SkippedFile(member, "oversized", "not read: the archive's members already "
                                                f"inflated to {archive_budget(size) >> 20} MiB (work bound)")))
            else:
                try:
                    with m.open() as fh:
                        out.append((member, _read_member(member, fh, budget)))
                except _BudgetSpent:
                    out.append((member, SkippedFile(member, "oversized", "not read whole: the archive's members "
                                                    f"inflated past {archive_budget(size) >> 20} MiB (work bound)")))
                except Exception as exc:  # noqa: BLE001 - zlib/lzma/CRC/encryption/... : this member only
                    out.append((member, SkippedFile(member, "corrupt", f"archive member: {_one_line(exc)}")))
    except Exception as exc:  # noqa: BLE001 - the archive cannot be listed (further)
        detail = f"unreadable archive: {_one_line(exc)}"
        if out:
            detail += f" (after {len(out)} members)"
        out.append((path, SkippedFile(path, "corrupt", detail)))
    return out


def read_many_with_archives(paths: list[str], *, open_archives: bool = True) -> list:
    """``read_many``, except that an archive gives a list of (member path, result) pairs (see module doc)."""
    from breastlab.dicom.headers import read_many

    out: list = []
    for p in paths:
        if is_archive(p):
            if open_archives:
                out.append(ArchiveMembers(read_archive(p)))
            else:
                out.append(SkippedFile(p, "archive", "archive not opened: --export and --convert need files on "
                                                     "disk; unpack it, or sort without them"))
        else:
            out.extend(read_many([p]))
    return out


class ArchiveMembers(list):
    """The members of one archive (a list of (member path, result)) in ``read_many_with_archives`` output."""


def read_open(paths: list[str]) -> list:
    return read_many_with_archives(paths, open_archives=True)


def read_closed(paths: list[str]) -> list:
    return read_many_with_archives(paths, open_archives=False)
