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

The fast path is :mod:`breastlab.dicom._parse`; anything it cannot handle
(Big Endian, Deflated, odd files) goes through pydicom and is re-encoded.
"""
from __future__ import annotations

import os
import re
import stat
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

from breastlab.dicom._parse import (
    STOPPED,
    UNDEFINED,
    Malformed,
    NeedMore,
    Node,
    LimitExceeded,
    looks_like_vr,
    walk,
)
from breastlab.dicom.bvalues import find_b_value, read_csa
from breastlab.dicom.records import InstanceRecord, SkippedFile
from breastlab.dicom.times import datetime_time, parse_time

CHUNK = 32 * 1024  # first read; grown only when the header is longer
#: most header bytes (everything before Pixel Data) ever read or held for one file
MAX_HEADER = 64 * 1024 * 1024
#: most frames (NumberOfFrames) accepted in one file
MAX_FRAMES = 100_000
#: files larger than this are not handed to pydicom (which would read whole elements)
MAX_FALLBACK = 256 * 1024 * 1024
#: element values pydicom may load in the fallback; longer ones are left unread
FALLBACK_DEFER = 1024 * 1024

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
#: the top-level walk may stop at the first group after this one (and before
#: the functional groups, 5200): nothing the records need lives there
STOP_AFTER_GROUP = 0x2001
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"

#: SOP classes (exact or prefix) that are never images for sorting purposes.
NON_IMAGE_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.66.4": "segmentation (SEG)",
    "1.2.840.10008.5.1.4.1.1.66.5": "surface segmentation",
    "1.2.840.10008.5.1.4.1.1.66.1": "spatial registration",
    "1.2.840.10008.5.1.4.1.1.66.2": "spatial fiducials",
    "1.2.840.10008.5.1.4.1.1.66.3": "deformable registration",
    "1.2.840.10008.5.1.4.1.1.66": "raw data",
    "1.2.840.10008.5.1.4.1.1.481.": "radiotherapy (RT) object",
    "1.2.840.10008.5.1.4.1.1.88.": "structured report / key object selection",
    "1.2.840.10008.5.1.4.1.1.11.": "presentation state",
    "1.2.840.10008.5.1.4.1.1.104.": "encapsulated document (PDF/CDA/STL)",
    "1.2.840.10008.5.1.4.1.1.4.2": "MR spectroscopy",
    "1.2.840.10008.5.1.4.1.1.9.": "waveform",
    "1.2.840.10008.5.1.4.1.1.67": "real world value mapping",
    "1.2.840.10008.5.1.4.1.1.90.1": "content assessment results",
}
NON_IMAGE_MODALITIES = {"SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "SR", "PR", "KO", "DOC", "REG", "FID", "RWV"}

# sequences the walker descends into (everything else is skipped by length)
SHARED_FG = 0x52009229
PER_FRAME_FG = 0x52009230
MR_DIFFUSION = 0x00189117
FRAME_CONTENT = 0x00209111
PLANE_POSITION = 0x00209113
PLANE_ORIENTATION = 0x00209116
PIXEL_MEASURES = 0x00289110
MR_FRAME_TYPE = 0x00189226
MR_TIMING = 0x00189112
MR_MODIFIER = 0x00189115
MR_ECHO = 0x00189114
FRAME_ANATOMY = 0x00209071
VIEW_CODE = 0x00540220
DESCEND = frozenset(
    {SHARED_FG, PER_FRAME_FG, MR_DIFFUSION, FRAME_CONTENT, PLANE_POSITION, PLANE_ORIENTATION,
     PIXEL_MEASURES, MR_FRAME_TYPE, MR_TIMING, MR_MODIFIER, MR_ECHO, FRAME_ANATOMY, VIEW_CODE}
)

_SIEMENS_TRACE_SEQ = re.compile(r"EP_B\d+T$")
_META_HDR = struct.Struct("<HH2sH")


# ----------------------------------------------------------------------------- values
def normalise_manufacturer(value: str | None) -> str | None:
    """SIEMENS, GE, PHILIPS, CANON (Toshiba too), UIH, or the raw value upper-cased."""
    if not value:
        return None
    upper = value.strip().upper()
    if "SIEMENS" in upper:
        return "SIEMENS"
    if upper == "GE" or upper.startswith(("GE ", "GE_", "GEMS")) or "GENERAL ELECTRIC" in upper:
        return "GE"
    if "PHILIPS" in upper:
        return "PHILIPS"
    if "CANON" in upper or "TOSHIBA" in upper:
        return "CANON"
    if upper == "UIH" or "UNITED IMAGING" in upper or upper.startswith("UIH"):
        return "UIH"
    return upper or None


def _floats(node: Node, tag: int, hint: str = "DS") -> tuple[float, ...] | None:
    values = node.numbers(tag, hint)
    return values or None


# ----------------------------------------------------------------------------- reading
class _Truncated(Exception):
    pass


class _NotDicom(Exception):
    pass


class _Fallback(Exception):
    pass


class _Oversized(Exception):
    pass


class _Special(Exception):
    pass


def special_kind(mode: int) -> str:
    """'FIFO', 'socket', 'character device', 'block device' or 'folder' for a stat mode."""
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "folder")):
        if test(mode):
            return name
    return "special file"


def _read_meta(buf: bytes, pos: int) -> tuple[dict[int, str], int]:
    """File meta group (0002): always Explicit VR Little Endian."""
    meta: dict[int, str] = {}
    size = len(buf)
    while pos + 8 <= size:
        group, elem, vr, length = _META_HDR.unpack_from(buf, pos)
        if group != 0x0002:
            break
        if not looks_like_vr(vr):
            raise Malformed("file meta information is not Explicit VR")
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC", b"UR"):
            length = struct.unpack_from("<I", buf, pos + 8)[0]
            start = pos + 12
        else:
            start = pos + 8
        if length == UNDEFINED or start + length > size:
            raise NeedMore(start + (0 if length == UNDEFINED else length))
        if vr in (b"UI", b"CS", b"SH", b"LO", b"AE"):
            meta[elem] = buf[start : start + length].decode("latin-1").strip(" \x00")
        pos = start + length
    return meta, pos


def _classify_start(buf: bytes) -> tuple[int, bool | None] | None:
    """Where the data set starts and whether it is explicit VR (None: from meta).

    ``None`` when the bytes are not DICOM at all.
    """
    if len(buf) >= 132 and buf[128:132] == b"DICM":
        return 132, None
    if len(buf) >= 8:  # a raw data set without preamble (ACR-NEMA style / stripped)
        group, elem = struct.unpack_from("<HH", buf, 0)
        if group in (0x0002, 0x0008) and elem < 0x0100:
            if buf[:2] == b"\x02\x00" and looks_like_vr(buf[4:6]):
                return 0, None
            return 0, looks_like_vr(buf[4:6])
    return None


def _pixel_data_at_end(node: Node, fh, buf: bytes, size: int, explicit: bool, ts: str):  # noqa: ANN001
    """Locate native Pixel Data as the last element of a single-frame file, cheaply.

    Its length follows from Rows x Columns x Samples x BitsAllocated, so its
    element header must sit at ``size - length - header``. If those bytes are the
    Pixel Data tag with that length, the elements in between (e.g. Philips group
    2005, overlays) need not be walked. ``None`` when this does not hold.
    """
    if 0x00280008 in node or ts not in ("", IMPLICIT_LE, EXPLICIT_LE):
        return None
    rows, cols = node.int(0x00280010, "US"), node.int(0x00280011, "US")
    bits, samples = node.int(0x00280100, "US"), node.int(0x00280002, "US") or 1
    if not rows or not cols or not bits or bits % 8:
        return None
    length = rows * cols * samples * (bits // 8)
    length += length & 1
    header = 12 if explicit else 8
    offset = size - length - header
    if offset < 0:
        return None
    if offset + header <= len(buf):
        data = buf[offset : offset + header]
    else:
        fh.seek(offset)
        data = fh.read(header)
    if len(data) != header or data[:4] != b"\xe0\x7f\x10\x00":
        return None
    if explicit:
        ok = data[4:8] in (b"OW\x00\x00", b"OB\x00\x00") and struct.unpack_from("<I", data, 8)[0] == length
    else:
        ok = struct.unpack_from("<I", data, 4)[0] == length
    return (offset + header, length) if ok else None


def _open_regular(path: str):  # noqa: ANN202 - a binary file object
    """Open ``path`` for reading only if it is a regular file (never blocks on a FIFO)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _Special(special_kind(mode))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def _inflate(fh, pos: int) -> tuple[bytes, bool]:  # noqa: ANN001
    """The Deflated data set after the file meta: at most MAX_HEADER bytes; (data, complete)."""
    fh.seek(pos)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    while len(out) < MAX_HEADER and not inflater.eof:
        block = inflater.unconsumed_tail or fh.read(1 << 20)
        if not block:
            break
        out += inflater.decompress(block, MAX_HEADER - len(out) + 1)
    return bytes(out[:MAX_HEADER]), inflater.eof and len(out) <= MAX_HEADER


def _walk_deflated(fh, pos: int, meta: dict[int, str]):  # noqa: ANN001, ANN202
    data, complete = _inflate(fh, pos)
    try:
        node, _, pixel = walk(data, 0, len(data), True, DESCEND, top=True)
    except NeedMore:
        if complete:
            raise _Truncated("the deflated data set ends inside the header") from None
        raise _Oversized(f"inflated header is longer than {MAX_HEADER >> 20} MiB") from None
    if pixel is None and not complete:
        raise _Oversized(f"inflated header is longer than {MAX_HEADER >> 20} MiB")
    return node, meta, pixel, data


def _parse_file(path: str, size: int) -> tuple[Node, dict[int, str], tuple[int, int] | None, bytes, int | None]:
    """Walk the header of ``path``. Raises _Truncated, _Oversized, _NotDicom, Malformed, _Fallback.

    Returns the node, the file meta, the Pixel Data location, the buffer, and the
    size that location must fit in (``None``: Deflated, where pixels follow the
    inflated header and are not checked). Reads are bounded: the file is
    judged on its first bytes, and no more than :data:`MAX_HEADER` bytes are ever held.
    """
    with _open_regular(path) as fh:
        buf = fh.read(CHUNK)
        while True:
            try:
                start = _classify_start(buf)
                if start is None:  # CHUNK >= 132 bytes: the verdict needs nothing more
                    raise _NotDicom("not-dicom")
                pos, explicit = start
                meta: dict[int, str] = {}
                end = size
                if explicit is None:
                    meta, pos = _read_meta(buf, pos)
                    ts = meta.get(0x0010, "")
                    if ts == EXPLICIT_BE:
                        raise _Fallback(f"transfer syntax {ts}")
                    if ts == DEFLATED:
                        return (*_walk_deflated(fh, pos, meta), None)
                    explicit = ts != IMPLICIT_LE
                    if not ts and pos + 6 <= len(buf):  # no TS: sniff the VR
                        explicit = looks_like_vr(buf[pos + 4 : pos + 6])
                node, stop_pos, pixel = walk(
                    buf, pos, end, explicit, DESCEND, top=True, stop_group=STOP_AFTER_GROUP
                )
                if pixel == STOPPED:
                    pixel = _pixel_data_at_end(node, fh, buf, size, explicit, meta.get(0x0010, ""))
                    if pixel is None:  # walk the rest after all
                        rest, _, pixel = walk(buf, stop_pos, size, explicit, DESCEND, top=True)
                        node.elems.update(rest.elems)
                return node, meta, pixel, buf, size
            except NeedMore as need:
                if need.end > size or len(buf) >= size:
                    raise _Truncated(
                        f"header needs byte {need.end} but the file has {size} bytes"
                    ) from None
                if need.end > MAX_HEADER:
                    raise _Oversized(
                        f"header needs byte {need.end}: more than {MAX_HEADER >> 20} MiB before Pixel Data"
                    ) from None
                want = min(max(need.end - len(buf), len(buf)) + CHUNK, MAX_HEADER - len(buf))
                more = fh.read(want)
                if not more:
                    raise _Truncated("file shorter than its size on disk") from None
                buf += more


def node_from_dataset(ds) -> Node:  # noqa: ANN001 - pydicom Dataset
    """Re-encode a pydicom ``Dataset`` as Explicit VR Little Endian and walk it.

    Used for transfer syntaxes the fast walker does not read, by the tests to run
    in-memory datasets through the same extraction code, and for datasets from other
    sources (e.g. DICOM JSON via ``Dataset.from_json``). Pixel data and top-level
    values pydicom left unread (``defer_size``) are dropped.
    """
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import correct_ambiguous_vr_element, write_data_element, write_dataset

    def new_buffer() -> DicomBytesIO:
        buffer = DicomBytesIO()
        buffer.is_little_endian = True
        buffer.is_implicit_VR = False
        return buffer

    clean = ds.copy()
    for tag in list(clean.keys()):
        raw = clean.get_item(tag)
        if tag in (0x7FE00010, 0x7FE00008, 0x7FE00009) or (
            getattr(raw, "value", b"") is None and (getattr(raw, "length", 0) or 0) > FALLBACK_DEFER
        ):
            del clean[tag]  # pixels, or a deferred (huge) value: never load it
    fp = new_buffer()
    try:
        write_dataset(fp, clean)
        data = fp.getvalue()
        node, _, _ = walk(data, 0, len(data), True, DESCEND, top=True)
        return node
    except Exception:  # noqa: BLE001 - some value pydicom cannot convert: go element by element
        fp = new_buffer()
    try:
        charset = clean.get("SpecificCharacterSet")
    except Exception:  # noqa: BLE001
        charset = None
    encodings = list(charset) if charset is not None and not isinstance(charset, str) else charset
    for tag in sorted(clean.keys()):
        if tag & 0xFFFF == 0 and tag >> 16 > 6:
            continue  # retired group lengths are not written (PS3.5 7.2)
        piece = new_buffer()
        try:  # element by element: one value pydicom cannot convert loses that element only
            elem = correct_ambiguous_vr_element(clean[tag], clean, True)
            write_data_element(piece, elem, encodings)
        except Exception:  # noqa: BLE001
            continue
        fp.write(piece.getvalue())
    data = fp.getvalue()
    node, _, _ = walk(data, 0, len(data), True, DESCEND, top=True)
    return node


def _pydicom_node(path: str) -> tuple[Node, dict[int, str]]:
    import warnings

    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about every oddity of a bad file
        with _open_regular(path) as fh:  # never a FIFO swapped in since the first look
            ds = pydicom.dcmread(fh, stop_before_pixels=True, force=True, defer_size=FALLBACK_DEFER)
            for tag in list(ds.keys()):  # deferred values cannot be read once the file is closed
                raw = ds.get_item(tag)
                if getattr(raw, "value", b"") is None and (getattr(raw, "length", 0) or 0) > FALLBACK_DEFER:
                    del ds[tag]
        meta = {}
        fm = getattr(ds, "file_meta", None)
        if fm is not None:
            for elem, keyword in ((0x0002, "MediaStorageSOPClassUID"), (0x0010, "TransferSyntaxUID")):
                value = fm.get(keyword)
                if value:
                    meta[elem] = str(value)
        if len(ds) == 0:
            raise ValueError("pydicom found no data elements")
        return node_from_dataset(ds), meta


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
        node, meta, pixel, buf, limit = _parse_file(spath, size)
    except OSError as exc:
        return _skip_os_error(spath, exc)
    except _Special as exc:
        return SkippedFile(spath, "special-file", f"{exc}: not read")
    except _Truncated as exc:
        return SkippedFile(spath, "truncated", str(exc))
    except _Oversized as exc:
        return SkippedFile(spath, "oversized", str(exc))
    except _NotDicom:
        return SkippedFile(spath, "not-dicom", "no DICM magic at byte 128 and no DICOM data set at byte 0")
    except LimitExceeded as exc:
        return SkippedFile(spath, "corrupt", str(exc))
    except (_Fallback, Malformed, ValueError, struct.error) as first:
        if size > MAX_FALLBACK:
            return SkippedFile(spath, "corrupt", f"{first}; too large ({size >> 20} MiB) to retry with pydicom")
        try:
            node, meta = _pydicom_node(spath)
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
        elif not _encapsulated_complete(spath, size, buf, start):
            return SkippedFile(spath, "truncated", "encapsulated Pixel Data has no sequence delimiter")
    try:
        return _build_records(spath, node, meta)
    except Exception as exc:  # noqa: BLE001 - a bad value must not stop the batch
        return SkippedFile(spath, "corrupt", f"header values could not be read: {type(exc).__name__}: {exc}")


def _frame_problem(node: Node, pixel: tuple[int, int] | None) -> str | None:
    """Why the frame count cannot be trusted, or None.

    NumberOfFrames must be 1..MAX_FRAMES; an enhanced file needs one Per-Frame
    Functional Groups item per frame; native Pixel Data must hold every frame.
    """
    frames = node.seq(PER_FRAME_FG)
    declared = node.int(0x00280008)
    if declared is None and 0x00280008 in node:
        return "NumberOfFrames (0028,0008) is not a number"
    if declared is not None and not 1 <= declared <= MAX_FRAMES:
        return f"NumberOfFrames (0028,0008) = {declared} is outside 1..{MAX_FRAMES}"
    if frames and declared is None:
        return f"{len(frames)} Per-Frame Functional Groups items but no NumberOfFrames"
    if frames and len(frames) != declared:
        return f"{len(frames)} Per-Frame Functional Groups items but NumberOfFrames = {declared}"
    if pixel is not None and pixel[1] != UNDEFINED:
        rows, cols = node.int(0x00280010, "US") or 0, node.int(0x00280011, "US") or 0
        bits, samples = node.int(0x00280100, "US") or 0, node.int(0x00280002, "US") or 1
        if rows and cols and bits:
            need = (rows * cols * samples * bits * (declared or 1) + 7) // 8
            if pixel[1] < need:
                return (f"Pixel Data holds {pixel[1]} bytes; {declared or 1} frame(s) of "
                        f"{rows}x{cols}x{samples} at {bits} bits need {need}")
    return None


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


def _records_from_node(node: Node, path: str, meta: dict[int, str]) -> list[InstanceRecord] | SkippedFile:
    sop_class = node.str(0x00080016) or meta.get(0x0002)
    reason = _non_image_reason(node, sop_class)
    if reason:
        return SkippedFile(path, "non-image", reason)
    if node.int(0x00280010, "US") is None:
        return SkippedFile(path, "non-image", "no Rows (0028,0010): not an image")
    problem = _frame_problem(node, None)
    if problem:
        return SkippedFile(path, "corrupt", problem)
    try:
        return _build_records(path, node, meta)
    except Exception as exc:  # noqa: BLE001 - a bad value must not stop the batch
        return SkippedFile(path, "corrupt", f"header values could not be read: {type(exc).__name__}: {exc}")


def _encapsulated_complete(path: str, size: int, buf: bytes, start: int) -> bool:
    """Encapsulated pixel data ends with the (FFFE,E0DD) sequence delimiter near the end."""
    tail_len = min(size - start, 1024)
    if size <= len(buf):
        tail = buf[size - tail_len : size]
    else:
        with _open_regular(path) as fh:
            fh.seek(size - tail_len)
            tail = fh.read(tail_len)
    return b"\xfe\xff\xdd\xe0\x00\x00\x00\x00" in tail


def _non_image_reason(node: Node, sop_class: str | None) -> str | None:
    if sop_class:
        for prefix, what in NON_IMAGE_CLASSES.items():
            if sop_class == prefix or (prefix.endswith(".") and sop_class.startswith(prefix)):
                return f"{what}, SOP class {sop_class}"
        if not sop_class.startswith("1.2.840.10008."):
            return f"private SOP class {sop_class}"
    modality = (node.str(0x00080060) or "").upper()
    if modality in NON_IMAGE_MODALITIES:
        return f"modality {modality} is not an image"
    return None


# ----------------------------------------------------------------------------- extraction
def _common(node: Node, path: str, meta: dict[int, str]) -> dict:
    """Fields read from the top level of the data set."""
    s, st, f, i = node.str, node.strs, node.float, node.int
    manufacturer = normalise_manufacturer(s(0x00080070))
    image_type = st(0x00080008)
    sequence_name = s(0x00180024) or s(0x00189005)
    acq_dt = s(0x0008002A)
    view_code = None
    for item in node.seq(VIEW_CODE):
        view_code = item.str(0x00080104)
        if view_code:
            break
    laterality = s(0x00200062) or s(0x00200060)
    fields = {
        "path": path,
        "sop_class_uid": s(0x00080016) or meta.get(0x0002),
        "sop_instance_uid": s(0x00080018),
        "transfer_syntax_uid": meta.get(0x0010),
        "modality": (s(0x00080060) or "").upper() or None,
        "study_uid": s(0x0020000D),
        "series_uid": s(0x0020000E),
        "series_number": i(0x00200011),
        "instance_number": i(0x00200013),
        "acquisition_number": i(0x00200012),
        "patient_id": s(0x00100020),
        "patient_name": node.text(0x00100010),
        "study_date": s(0x00080020),
        "manufacturer": manufacturer,
        "manufacturer_model": s(0x00081090),
        "series_description": node.text(0x0008103E),
        "protocol_name": node.text(0x00181030),
        "sequence_name": sequence_name,
        "image_type": image_type,
        "body_part": (s(0x00180015) or "").upper() or None,
        "scanning_sequence": st(0x00180020),
        "sequence_variant": st(0x00180021),
        "scan_options": st(0x00180022),
        "repetition_time": f(0x00180080),
        "echo_time": f(0x00180081),
        "inversion_time": f(0x00180082),
        "flip_angle": f(0x00181314),
        "echo_train_length": i(0x00180091),
        "spectrally_selected_suppression": (s(0x00189025) or "").upper() or None,
        "magnetic_field_strength": f(0x00180087),
        "series_time": parse_time(s(0x00080031)),
        "acquisition_time": parse_time(s(0x00080032)) if 0x00080032 in node else datetime_time(acq_dt),
        "content_time": parse_time(s(0x00080033)),
        "acquisition_datetime": acq_dt,
        "trigger_time": f(0x00181060),
        "temporal_position_identifier": i(0x00200100),
        "number_of_temporal_positions": i(0x00200105),
        "contrast_agent": s(0x00180010),
        "contrast_start_time": parse_time(s(0x00181042)),
        "diffusion_directionality": (s(0x00189075) or "").upper() or None,
        "rows": i(0x00280010, "US"),
        "columns": i(0x00280011, "US"),
        "number_of_frames": i(0x00280008),
        "image_position": _floats(node, 0x00200032),
        "image_orientation": _floats(node, 0x00200037),
        "slice_location": f(0x00201041),
        "pixel_spacing": _floats(node, 0x00280030),
        "slice_thickness": f(0x00180050),
        "is_mosaic": "MOSAIC" in image_type,
        "laterality": laterality.upper() if laterality else None,
        "view_position": (s(0x00185101) or "").upper() or None,
        "view_code": view_code,
    }
    return fields


def _group_fields(group: Node, out: dict, vendor: dict[str, str]) -> None:
    """Fields of one functional-groups item (shared or per-frame), merged into ``out``."""
    for item in group.seq(PIXEL_MEASURES):
        if 0x00280030 in item:
            out["pixel_spacing"] = _floats(item, 0x00280030)
        if 0x00180050 in item:
            out["slice_thickness"] = item.float(0x00180050)
    for item in group.seq(PLANE_POSITION):
        if 0x00200032 in item:
            out["image_position"] = _floats(item, 0x00200032)
    for item in group.seq(PLANE_ORIENTATION):
        if 0x00200037 in item:
            out["image_orientation"] = _floats(item, 0x00200037)
    for item in group.seq(FRAME_CONTENT):
        if 0x00209128 in item:
            out["temporal_position_index"] = item.int(0x00209128, "UL")
        dt = item.str(0x00189074)
        if dt:
            out["acquisition_datetime"] = dt
            out["acquisition_time"] = datetime_time(dt)
    for item in group.seq(MR_FRAME_TYPE):
        frame_type = item.strs(0x00089007)
        if frame_type:
            out["image_type"] = frame_type
        contrast = item.str(0x00089209)
        if contrast:
            vendor["AcquisitionContrast"] = contrast.upper()
        component = item.str(0x00089208)  # ComplexImageComponent: MAGNITUDE, PHASE, REAL, IMAGINARY, MIXED
        if component:
            vendor["ComplexImageComponent"] = component.upper()
    for item in group.seq(MR_TIMING):
        if 0x00180080 in item:
            out["repetition_time"] = item.float(0x00180080)
        if 0x00181314 in item:
            out["flip_angle"] = item.float(0x00181314)
        if 0x00180091 in item:
            out["echo_train_length"] = item.int(0x00180091)
    for item in group.seq(MR_ECHO):
        if 0x00189082 in item:
            out["echo_time"] = item.float(0x00189082, "FD")
    for item in group.seq(MR_MODIFIER):
        inversion = item.str(0x00189009)
        if inversion:
            vendor["InversionRecovery"] = inversion.upper()
        times = item.numbers(0x00189079, "FD")
        if times:
            out["inversion_time"] = times[0]
        excitation = item.str(0x00189026)
        if excitation:
            vendor["SpectrallySelectedExcitation"] = excitation.upper()
    for item in group.seq(MR_DIFFUSION):
        directionality = item.str(0x00189075)
        if directionality:
            out["diffusion_directionality"] = directionality.upper()
    for item in group.seq(FRAME_ANATOMY):
        lat = item.str(0x00209072)
        if lat and not out.get("laterality"):
            out["laterality"] = lat.upper()


def _vendor_hints(node: Node, manufacturer: str | None) -> dict[str, str]:
    """Cheap vendor-specific facts the rules read (all values strings).

    Only what the rules or the DCE pass read is kept here (and the Siemens mosaic
    count, see below); b-values come from :mod:`breastlab.dicom.bvalues`, which reads
    its tags itself.
    """
    hints: dict[str, str] = {}

    def put(key: str, group: int, creator: str, element: int, raw_tag: int, vendor: str,
            hint: str | None = None) -> None:
        tag = node.private_tag(group, creator, element)
        if tag is None and manufacturer == vendor and raw_tag in node:
            tag = raw_tag
        if tag is None or tag not in node:
            return
        vr = node.vr(tag)
        if hint is not None and vr in (None, "UN", "OB") or vr in ("SS", "US", "SL", "UL", "FL", "FD"):
            numbers = node.numbers(tag, hint or "SS")
            value = "\\".join(f"{v:g}" for v in numbers) if numbers else None
        else:
            value = node.text(tag)
        if value is not None:
            hints[key] = value

    component = node.str(0x00089208)  # ComplexImageComponent at the top level (enhanced MR)
    if component:
        hints["ComplexImageComponent"] = component.upper()
    if manufacturer == "PHILIPS" or 0x20010010 in node:
        put("(2001,1004)", 0x2001, "Philips Imaging DD 001", 0x04, 0x20011004, "PHILIPS")
        put("(2001,1020)", 0x2001, "Philips Imaging DD 001", 0x20, 0x20011020, "PHILIPS")
    if manufacturer == "GE" or 0x00430010 in node:
        put("(0019,109C)", 0x0019, "GEMS_ACQU_01", 0x9C, 0x0019109C, "GE")  # pulse sequence name
        put("(0043,102F)", 0x0043, "GEMS_PARM_01", 0x2F, 0x0043102F, "GE", "SS")  # 0 mag, 1 phase, 2 real, 3 imag
    if manufacturer == "SIEMENS":
        put("(0019,100A)", 0x0019, "SIEMENS MR HEADER", 0x0A, 0x0019100A, "SIEMENS", "US")
        # NumberOfImagesInMosaic: read by no rule; it checks that an implicit-VR private
        # US value decodes (tests/test_dicom_realdata.py)
    return hints


def _build_records(path: str, node: Node, meta: dict[int, str]) -> list[InstanceRecord]:
    node.charset = node.text(0x00080005)
    common = _common(node, path, meta)
    manufacturer = common["manufacturer"]
    vendor = _vendor_hints(node, manufacturer)
    shared = node.seq(SHARED_FG)
    frames = node.seq(PER_FRAME_FG)
    if not frames:
        groups: list[tuple[int | None, list[Node]]] = [(None, shared[:1])]
    else:
        groups = [(index, [frame] + shared[:1]) for index, frame in enumerate(frames)]

    records = []
    for frame_index, group_nodes in groups:
        fields = dict(common)
        hints = dict(vendor)
        for group in reversed(group_nodes):  # shared first, per-frame wins
            _group_fields(group, fields, hints)
        fields["frame_index"] = frame_index
        b_value, b_source = find_b_value(node, group_nodes, manufacturer)
        fields["b_value"] = b_value
        fields["b_value_source"] = b_source
        fields["is_derived_trace"] = _is_trace(fields, hints, b_value)
        if manufacturer == "CANON" and b_value is None:
            hints["canon_b_absent"] = "1"
        fields["vendor"] = hints
        records.append(InstanceRecord(**fields))
    return records


def _is_trace(fields: dict, hints: dict[str, str], b_value: float | None) -> bool:
    """Isotropic / trace-weighted (derived) diffusion image."""
    if fields.get("diffusion_directionality") == "ISOTROPIC":
        return True
    manufacturer = fields.get("manufacturer")
    if manufacturer == "PHILIPS":
        # 'I' marks the isotropic trace only on b>0 images (Philips also writes 'I' on b=0)
        return hints.get("(2001,1004)", "").upper() == "I" and bool(b_value)
    if manufacturer == "SIEMENS":
        if "TRACEW" in fields.get("image_type", ()):
            return True
        name = (fields.get("sequence_name") or "").upper()
        return bool(_SIEMENS_TRACE_SEQ.search(name))
    return False


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
