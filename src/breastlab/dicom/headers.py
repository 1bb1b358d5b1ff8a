"""Header parsing: one DICOM file -> ``InstanceRecord``s, or a ``SkippedFile``.

``read_records(path)`` returns one record per classic image file (Siemens mosaic
included) and one record *per frame* of an enhanced multi-frame file (Shared and
Per-Frame Functional Groups merged, per-frame winning). It never reads pixel
data and never opens a file for writing.

Files that cannot be used come back as ``SkippedFile(path, reason, detail)``:

=============  ==============================================================
reason         meaning
=============  ==============================================================
zero-byte      empty file
unreadable     the operating system refused to open/read it
not-dicom      no ``DICM`` magic and not a raw (preamble-less) DICOM dataset
truncated      the header ends early, or Pixel Data is shorter than declared
corrupt        the element stream makes no sense (and pydicom agrees)
dicomdir       a DICOMDIR media directory
non-image      SEG, RT, SR, KO, presentation state, encapsulated document,
               raw data, spectroscopy, private SOP classes, or no image
=============  ==============================================================

Seams: :mod:`breastlab.dicom.opening` opens a file and walks its header (the walker is
:mod:`breastlab.dicom._parse`); :mod:`breastlab.dicom.fallback` hands what the walker
cannot read (Big Endian, odd files) to pydicom and re-encodes it; :mod:`breastlab.dicom.extract`
builds the records. This module is the public API and the skip reasons.
"""
from __future__ import annotations

import os
import stat
import struct
from collections.abc import Sequence
from pathlib import Path

from breastlab.dicom._parse import UNDEFINED, LimitExceeded, Malformed, NeedMore, walk
from breastlab.dicom.bvalues import read_csa
from breastlab.dicom.extract import (
    MAX_FRAMES,  # noqa: F401 - re-exported (as the private names below, for the tests)
    _build_records,
    _common,
    _frame_problem,
    _group_fields,
    _non_image_reason,
    _records_from_node,
    _vendor_hints,
    normalise_manufacturer,
)
from breastlab.dicom.fallback import FALLBACK_DEFER, MAX_FALLBACK, node_from_dataset, pydicom_node
from breastlab.dicom.opening import (
    CHUNK,
    DICOMDIR_CLASS,
    MAX_HEADER,
    Fallback,
    NotDicom,
    Oversized,
    Special,
    Truncated,
    encapsulated_complete,
    parse_file,
    special_kind,
)
from breastlab.dicom.records import InstanceRecord, SkippedFile
from breastlab.dicom.tags import DESCEND
from breastlab.dicom.times import datetime_time, parse_time

_pydicom_node = pydicom_node  # the tests compare the fast path against it
#: re-exported for callers and tests of the former single module (now split at its seams)
_REEXPORTED = (MAX_FRAMES, _common, _group_fields, _vendor_hints, FALLBACK_DEFER, CHUNK, MAX_HEADER)


def _skip_os_error(path: str, exc: OSError) -> SkippedFile:
    return SkippedFile(path, "unreadable", f"{type(exc).__name__}: {exc.strerror or exc}")


# ----------------------------------------------------------------------------- public API
def read_records(path: str | os.PathLike[str]) -> list[InstanceRecord] | SkippedFile:
    """Header records of one file (one per frame for enhanced multi-frame), or why it was skipped.

    Never raises for any file content: every failure is a :class:`SkippedFile`.
    """
    spath = os.fspath(path)
    try:
        st = os.stat(spath)
    except OSError as exc:
        return _skip_os_error(spath, exc)
    if not stat.S_ISREG(st.st_mode):
        return SkippedFile(spath, "special-file", f"{special_kind(st.st_mode)}: not read")
    size = st.st_size
    if size == 0:
        return SkippedFile(spath, "zero-byte", "empty file")

    pixel: tuple[int, int] | None = None
    buf = b""
    try:
        node, meta, pixel, buf, limit = parse_file(spath, size)
    except OSError as exc:
        return _skip_os_error(spath, exc)
    except Special as exc:
        return SkippedFile(spath, "special-file", f"{exc}: not read")
    except Truncated as exc:
        return SkippedFile(spath, "truncated", str(exc))
    except Oversized as exc:
        return SkippedFile(spath, "oversized", str(exc))
    except NotDicom:
        return SkippedFile(spath, "not-dicom", "no DICM magic at byte 128 and no DICOM data set at byte 0")
    except LimitExceeded as exc:
        return SkippedFile(spath, "corrupt", str(exc))
    except (Fallback, Malformed, ValueError, struct.error) as first:
        if size > MAX_FALLBACK:
            return SkippedFile(spath, "corrupt", f"{first}; too large ({size >> 20} MiB) to retry with pydicom")
        try:
            node, meta = pydicom_node(spath)
            limit = None
        except Exception as exc:  # noqa: BLE001 - any failure means unusable
            said = (str(exc).splitlines() or [""])[0][:200]
            if isinstance(exc, EOFError) or "end of file" in said.lower():
                return SkippedFile(spath, "truncated", f"{first}; pydicom: {said}")
            return SkippedFile(spath, "corrupt", f"{first}; pydicom: {type(exc).__name__}: {said}")

    sop_class = node.str(0x00080016) or meta.get(0x0002)
    if sop_class == DICOMDIR_CLASS or meta.get(0x0002) == DICOMDIR_CLASS or 0x00041220 in node:
        return SkippedFile(spath, "dicomdir", "DICOMDIR media directory")
    reason = _non_image_reason(node, sop_class)
    if reason:
        return SkippedFile(spath, "non-image", reason)
    rows = node.int(0x00280010, "US")
    if rows is None:
        return SkippedFile(spath, "non-image", "no Rows (0028,0010): not an image")
    problem = _frame_problem(node, pixel if limit is not None else None)
    if problem:
        return SkippedFile(spath, "corrupt", problem)
    if limit is not None:
        if pixel is None:
            return SkippedFile(spath, "truncated", "no Pixel Data: the file ends after the header")
        start, length = pixel
        if length != UNDEFINED:
            if start + length > limit:
                return SkippedFile(
                    spath, "truncated",
                    f"Pixel Data declares {length} bytes at offset {start}, file has {limit - start}",
                )
        elif not encapsulated_complete(spath, size, buf, start):
            return SkippedFile(spath, "truncated", "encapsulated Pixel Data has no sequence delimiter")
    try:
        return _build_records(spath, node, meta)
    except Exception as exc:  # noqa: BLE001 - a bad value must not stop the batch
        return SkippedFile(spath, "corrupt", f"header values could not be read: {type(exc).__name__}: {exc}")



def records_from_dataset(ds, path: str = "", meta: dict[int, str] | None = None, *,  # noqa: ANN001 - pydicom Dataset
                         transfer_syntax: str | None = None) -> list[InstanceRecord] | SkippedFile:
    """Records of an in-memory pydicom ``Dataset``, by the same extraction as the file path.

    For headers that never were a file here: DICOMweb metadata (DICOM JSON through
    ``Dataset.from_json``) and instances received over DIMSE. ``path`` names where the
    instance lives (a URL, or the file it will be written to). ``meta`` may give the SOP
    class (0002,0002) and transfer syntax (0002,0010). Pixel data is not needed.
    """
    meta = dict(meta or {})
    fm = getattr(ds, "file_meta", None)
    ts = transfer_syntax or (str(fm.get("TransferSyntaxUID")) if fm is not None and fm.get("TransferSyntaxUID")
                             else None)
    if ts and 0x0010 not in meta:
        meta[0x0010] = ts
    if fm is not None and fm.get("MediaStorageSOPClassUID") and 0x0002 not in meta:
        meta[0x0002] = str(fm.MediaStorageSOPClassUID)
    try:
        node = node_from_dataset(ds)
    except Exception as exc:  # noqa: BLE001 - a bad value must not stop the batch
        said = (str(exc).splitlines() or [""])[0][:200]
        return SkippedFile(path, "corrupt", f"pydicom could not encode the header: {type(exc).__name__}: {said}")
    return _records_from_node(node, path, meta)


def records_from_encoded(data: bytes, path: str, *, transfer_syntax: str | None = None
                         ) -> list[InstanceRecord] | SkippedFile:
    """Records of a data set already encoded as Explicit VR Little Endian (no preamble, no meta).

    What :func:`records_from_dataset` does after pydicom has encoded the data set; for callers
    that encode headers themselves (``breastlab.pacs.metadata`` turns DICOM JSON into these bytes).
    """
    try:
        node, _, _ = walk(data, 0, len(data), True, DESCEND, top=True)
    except (Malformed, NeedMore, LimitExceeded, ValueError, struct.error) as exc:
        return SkippedFile(path, "corrupt", f"header could not be walked: {type(exc).__name__}: {exc}")
    return _records_from_node(node, path, {0x0010: transfer_syntax} if transfer_syntax else {})



def read_many(paths: Sequence[str | Path]) -> list[list[InstanceRecord] | SkippedFile]:
    """``read_records`` over several paths (the unit of work of one scan worker).

    A failure of any kind on one file (a bug, ``RecursionError``, ``MemoryError``)
    becomes that file's ``SkippedFile`` (reason ``error``); the others are still read.
    """
    out: list[list[InstanceRecord] | SkippedFile] = []
    for p in paths:
        try:
            out.append(read_records(p))
        except Exception as exc:  # noqa: BLE001 - one file must never stop a batch
            said = (str(exc).splitlines() or [""])[0][:200]
            out.append(SkippedFile(os.fspath(p), "error", f"{type(exc).__name__}: {said}"))
    return out


__all__ = [
    "read_records",
    "read_many",
    "records_from_dataset",
    "records_from_encoded",
    "parse_time",
    "datetime_time",
    "normalise_manufacturer",
    "node_from_dataset",
    "records_from_dataset",
    "read_csa",
]
