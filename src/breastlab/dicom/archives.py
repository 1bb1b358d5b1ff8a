"""Reading DICOM inside ``.zip``, ``.tar``, ``.tar.gz`` / ``.tgz`` archives without unpacking them to disk.

Each regular member is streamed (bounded: at most :data:`MAX_MEMBER` bytes) into an
anonymous in-memory file (Linux ``memfd_create``) and parsed by the same bounded
reader as any file (:func:`breastlab.dicom.headers.read_records`), so archives get
every guarantee of the hostile-input scanner. Nothing is written to disk.

A member is named ``<archive path>/<member name>`` in instances.csv, skipped.csv and
the index (unambiguous: no real file can live under a regular file). Archives inside
archives are not opened (the member is reported ``not-dicom``). Files placed by
``--export`` or converted by ``--convert`` must exist on disk: with either option,
archives are not opened and are listed in skipped.csv (reason ``archive``).
"""
from __future__ import annotations

import os
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from typing import IO

from breastlab.dicom.records import InstanceRecord, SkippedFile

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
#: largest member read (the same bound as the largest file the pydicom fallback reads)
MAX_MEMBER = 256 * 1024 * 1024
BLOCK = 1 << 20


def is_archive(path: str) -> bool:
    return path.lower().endswith(ARCHIVE_SUFFIXES)


def _members(path: str) -> Iterator[tuple[str, int, IO[bytes] | None]]:
    """(name, declared size, open member) of every regular member, in archive order."""
    if path.lower().endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                with zf.open(info) as fh:
                    yield info.filename, info.file_size, fh
        return
    with tarfile.open(path, mode="r:*") as tf:
        for member in tf:
            if member.isreg():
                yield member.name, member.size, tf.extractfile(member)


def _read_member(name: str, fh: IO[bytes]) -> list[InstanceRecord] | SkippedFile:
    from breastlab.dicom.headers import read_records

    fd = os.memfd_create("breastlab-member", os.MFD_CLOEXEC)
    try:
        total = 0
        while block := fh.read(BLOCK):
            total += len(block)
            if total > MAX_MEMBER:  # a zip bomb or a huge member: never held whole
                return SkippedFile(name, "oversized", f"archive member larger than {MAX_MEMBER >> 20} MiB")
            os.write(fd, block)
        fd_path = f"/proc/self/fd/{fd}"
        result = read_records(fd_path)
    finally:
        os.close(fd)
    if isinstance(result, SkippedFile):
        return SkippedFile(name, result.reason, result.detail.replace(fd_path, name))
    return [replace(r, path=name) for r in result]


def read_archive(path: str) -> list[tuple[str, list[InstanceRecord] | SkippedFile]]:
    """(member path, records or why skipped) of every member; an unreadable archive is one SkippedFile."""
    out: list[tuple[str, list[InstanceRecord] | SkippedFile]] = []
    try:
        for name, _size, fh in _members(path):
            member = f"{path}/{name.lstrip('/')}"
            if name.rsplit("/", 1)[-1].startswith("."):
                out.append((member, SkippedFile(member, "hidden", "hidden archive member: not read")))
                continue
            try:
                out.append((member, _read_member(member, fh)))
            except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError, RuntimeError) as exc:
                out.append((member, SkippedFile(member, "corrupt", f"archive member: {type(exc).__name__}: {exc}")))
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError, RuntimeError, ValueError) as exc:
        out.append((path, SkippedFile(path, "corrupt", f"unreadable archive: {type(exc).__name__}: {exc}")))
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
