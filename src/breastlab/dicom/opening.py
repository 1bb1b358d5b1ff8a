"""Opening one DICOM file and walking its header (the fast path of :mod:`breastlab.dicom.headers`).

``parse_file`` opens a regular file (never a FIFO), classifies its start (preamble and
``DICM``, or a raw data set), reads the file meta group, and walks the data set with
:func:`breastlab.dicom._parse.walk` in bounded reads (at most :data:`MAX_HEADER` bytes).
Deflated data sets are inflated (bounded); Big Endian raises :class:`Fallback` for
:mod:`breastlab.dicom.fallback`.
"""
from __future__ import annotations

import os
import stat
import struct
import zlib

from breastlab.dicom import _parse
from breastlab.dicom._parse import STOPPED, UNDEFINED, Malformed, NeedMore, Node, looks_like_vr, walk
from breastlab.dicom.tags import DESCEND

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
_META_HDR = struct.Struct("<HH2sH")


class Truncated(Exception):
    """The header (or the file) ends early."""


class NotDicom(Exception):
    """Neither ``DICM`` at byte 128 nor a raw data set at byte 0."""


class Fallback(Exception):
    """A transfer syntax the fast walker does not read (pydicom's turn)."""


class Oversized(Exception):
    """More than :data:`MAX_HEADER` header bytes."""


class Special(Exception):
    """Not a regular file (FIFO, socket, device, folder)."""


def special_kind(mode: int) -> str:
    """'FIFO', 'socket', 'character device', 'block device' or 'folder' for a stat mode."""
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "folder")):
        if test(mode):
            return name
    return "special file"


def _read_meta(buf: bytes, pos: int) -> tuple[dict[int, str], int]:
    """File meta group (0002): always Explicit VR Little Endian."""
    if _parse._C is not None and type(buf) is bytes:  # the compiled reader (breastlab.dicom._cwalk)
        return _parse._C.read_meta(buf, pos)
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


def open_regular(path: str):  # noqa: ANN202 - a binary file object
    """Open ``path`` for reading only if it is a regular file (never blocks on a FIFO)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise Special(special_kind(mode))
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
            raise Truncated("the deflated data set ends inside the header") from None
        raise Oversized(f"inflated header is longer than {MAX_HEADER >> 20} MiB") from None
    if pixel is None and not complete:
        raise Oversized(f"inflated header is longer than {MAX_HEADER >> 20} MiB")
    return node, meta, pixel, data


def parse_file(path: str, size: int) -> tuple[Node, dict[int, str], tuple[int, int] | None, bytes, int | None]:
    """Walk the header of ``path``. Raises Truncated, Oversized, NotDicom, Malformed, Fallback.

    Returns the node, the file meta, the Pixel Data location, the buffer, and the
    size that location must fit in (``None``: Deflated, where pixels follow the
    inflated header and are not checked). Reads are bounded: the file is
    judged on its first bytes, and no more than :data:`MAX_HEADER` bytes are ever held.
    """
    with open_regular(path) as fh:
        buf = fh.read(CHUNK)
        while True:
            try:
                start = _classify_start(buf)
                if start is None:  # CHUNK >= 132 bytes: the verdict needs nothing more
                    raise NotDicom("not-dicom")
                pos, explicit = start
                meta: dict[int, str] = {}
                end = size
                if explicit is None:
                    meta, pos = _read_meta(buf, pos)
                    ts = meta.get(0x0010, "")
                    if ts == EXPLICIT_BE:
                        raise Fallback(f"transfer syntax {ts}")
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
                    raise Truncated(
                        f"header needs byte {need.end} but the file has {size} bytes"
                    ) from None
                if need.end > MAX_HEADER:
                    raise Oversized(
                        f"header needs byte {need.end}: more than {MAX_HEADER >> 20} MiB before Pixel Data"
                    ) from None
                want = min(max(need.end - len(buf), len(buf)) + CHUNK, MAX_HEADER - len(buf))
                more = fh.read(want)
                if not more:
                    raise Truncated("file shorter than its size on disk") from None
                buf += more


def encapsulated_complete(path: str, size: int, buf: bytes, start: int) -> bool:
    """Encapsulated pixel data ends with the (FFFE,E0DD) sequence delimiter near the end."""
    tail_len = min(size - start, 1024)
    if size <= len(buf):
        tail = buf[size - tail_len : size]
    else:
        with open_regular(path) as fh:
            fh.seek(size - tail_len)
            tail = fh.read(tail_len)
    return b"\xfe\xff\xdd\xe0\x00\x00\x00\x00" in tail
