"""A small, fast DICOM header walker (little-endian only) used by ``headers``.

Why not plain ``pydicom.dcmread``? For sorting we need ~70 header facts per
file, tens of thousands of files at a time. pydicom builds a full ``Dataset``
(every element, every nested sequence) before we ask for anything. This walker
instead

* reads only the first bytes of the file (growing the buffer only when the
  header is longer), and stops at Pixel Data without reading it;
* records each top-level element as ``(VR, offset, length)`` and decodes a
  value only when it is asked for;
* skips sequences it was not told to descend into (by their length, or by a
  light walk for undefined-length sequences).

It understands Explicit and Implicit VR Little Endian datasets, which covers
every uncompressed and compressed (encapsulated) transfer syntax except the
retired Explicit VR Big Endian and Deflated ones. ``headers`` hands those, and
any file this walker cannot make sense of, to pydicom and re-encodes the result
as Explicit VR Little Endian, so all extraction code reads one kind of object:
:class:`Node`.
"""
from __future__ import annotations

import math
import struct
from collections.abc import Iterable

_U16x2_S2_U16 = struct.Struct("<HH2sH").unpack_from
_U16x2_U32 = struct.Struct("<HHI").unpack_from
_U32 = struct.Struct("<I").unpack_from

#: Explicit VRs whose length field is 4 bytes (after 2 reserved bytes).
LONG_VRS = frozenset(
    {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UC", b"UR", b"UT", b"UN", b"SV", b"UV"}
)
#: Explicit VRs with a 2-byte length.
SHORT_VRS = frozenset(
    {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN",
     b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"}
)
_BINARY = {
    "US": struct.Struct("<H"),
    "SS": struct.Struct("<h"),
    "UL": struct.Struct("<I"),
    "SL": struct.Struct("<i"),
    "FL": struct.Struct("<f"),
    "FD": struct.Struct("<d"),
    "SV": struct.Struct("<q"),
    "UV": struct.Struct("<Q"),
}
_BINARY_B = {k.encode(): v for k, v in _BINARY.items()}

PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
ITEM = 0xFFFEE000
ITEM_DELIM = 0xFFFEE00D
SEQ_DELIM = 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
#: returned by a top-level walk that stopped early at ``stop_group``
STOPPED = (-1, -1)
#: deepest nesting of *descended* sequences (the functional groups need 3); deeper is
#: Malformed. Skipped sequences are walked by a loop, at any depth, without recursion.
MAX_DEPTH = 12
#: most sequence items kept as nodes for one file (bounds memory: ~11 per enhanced frame)
MAX_NODES = 500_000
_budget = [MAX_NODES]  # items left in the current top-level walk (one file per process at a time)


class NeedMore(Exception):
    """The buffer ends inside the header; ``end`` is the byte offset needed."""

    def __init__(self, end: int) -> None:
        super().__init__(end)
        self.end = end


class Malformed(ValueError):
    """The byte stream is not a valid DICOM element stream."""


class LimitExceeded(Malformed):
    """Nesting deeper than :data:`MAX_DEPTH` or more than :data:`MAX_NODES` items (not retried)."""


class Node:
    """One dataset (top level or a sequence item): lazy element access.

    ``elems`` maps a tag (``group << 16 | element``) to ``(vr, start, length)``
    for plain elements (``vr`` is ``None`` in Implicit VR data) or to
    ``("SQ", [Node, ...])`` for sequences the walker descended into.
    """

    __slots__ = ("buf", "elems", "charset", "_creators")

    def __init__(self, buf: bytes, elems: dict, charset: str | None = None) -> None:
        self.buf = buf
        self.elems = elems
        #: raw Specific Character Set (0008,0005) that decodes this node's text values
        self.charset = charset
        self._creators: dict[tuple[int, str], int] | None = None

    # -- raw access -------------------------------------------------------------
    def __contains__(self, tag: int) -> bool:
        return tag in self.elems

    def raw(self, tag: int) -> bytes | None:
        item = self.elems.get(tag)
        if item is None or item[0] == "SQ":
            return None
        _, start, length = item
        return self.buf[start : start + length]

    def vr(self, tag: int) -> str | None:
        item = self.elems.get(tag)
        if item is None:
            return None
        vr = item[0]
        if vr is None or vr == "SQ":
            return vr
        return vr.decode("ascii", "replace")

    def seq(self, tag: int) -> list[Node]:
        item = self.elems.get(tag)
        if item is None or item[0] != "SQ":
            return []
        return item[1]

    # -- typed values -----------------------------------------------------------
    def text(self, tag: int) -> str | None:
        """The whole value as text (backslashes kept); ``None`` if absent/empty.

        ASCII is decoded directly; anything else with the Specific Character Set
        (:func:`decode_text`).
        """
        data = self.raw(tag)
        if not data:
            return None
        try:
            if b"\x1b" in data:  # ISO 2022 escape sequences are ASCII bytes too
                raise UnicodeDecodeError("ascii", data, 0, 1, "escape sequence")
            value = data.decode("ascii")
        except UnicodeDecodeError:
            value = decode_text(data, self.charset, self.vr(tag))
        value = value.strip(" \x00")
        return value or None

    def str(self, tag: int) -> str | None:
        """First value of a string element, stripped."""
        value = self.text(tag)
        if value is None:
            return None
        first = value.split("\\", 1)[0].strip()
        return first or None

    def strs(self, tag: int) -> tuple[str, ...]:
        """All values, upper-case, empty values dropped."""
        value = self.text(tag)
        if value is None:
            return ()
        return tuple(v.strip().upper() for v in value.split("\\") if v.strip())

    def numbers(self, tag: int, hint: str) -> tuple[float, ...]:
        """All numeric values; ``hint`` is the VR used when the file has none."""
        item = self.elems.get(tag)
        if item is None or item[0] == "SQ":
            return ()
        vr, start, length = item
        if length == 0:
            return ()
        packer = _BINARY_B.get(vr) if vr is not None else None
        if packer is None and (vr is None or vr in (b"UN", b"OB")):
            packer = _BINARY.get(hint)
        if packer is not None:
            size = packer.size
            if length % size:
                return ()
            unpack = packer.unpack_from
            values = tuple(float(unpack(self.buf, start + i)[0]) for i in range(0, length, size))
            if packer.format[-1] in "fd" and not all(map(math.isfinite, values)):
                return tuple(filter(math.isfinite, values))  # inf/nan are no measurement
            return values
        text = self.text(tag)
        if text is None:
            return ()
        out = []
        for part in text.split("\\"):
            part = part.strip()
            if not part:
                continue
            try:
                number = float(part)
            except ValueError:
                return tuple(out)
            if math.isfinite(number):  # "inf", "nan", "1e999" are no measurement
                out.append(number)
        return tuple(out)

    def float(self, tag: int, hint: str = "DS") -> float | None:
        values = self.numbers(tag, hint)
        return values[0] if values else None

    def int(self, tag: int, hint: str = "IS") -> int | None:
        value = self.float(tag, hint)
        if value is None or value != value:  # NaN
            return None
        try:
            return int(value)
        except (OverflowError, ValueError):
            return None

    # -- private tags -----------------------------------------------------------
    def private_tag(self, group: int, creator: str, element: int) -> int | None:
        """The tag of private ``element`` (low byte) in ``creator``'s block, if any."""
        if self._creators is None:
            found: dict[tuple[int, str], int] = {}
            for tag in self.elems:
                if tag & 0x10000 and 0x10 <= (tag & 0xFFFF) <= 0xFF:
                    name = self.text(tag)
                    if name is not None:
                        found.setdefault((tag >> 16, name.strip().upper()), tag & 0xFF)
            self._creators = found
        block = self._creators.get((group, creator.strip().upper()))
        if block is None:
            return None
        return (group << 16) | (block << 8) | (element & 0xFF)

    def creators(self, group: int) -> list[str]:
        """Private creator names reserved in ``group``."""
        self.private_tag(group, "", 0)
        return sorted(name for (g, name) in (self._creators or {}) if g == group)


def walk(
    buf: bytes,
    pos: int,
    end: int,
    explicit: bool,
    descend: frozenset[int] | set[int],
    *,
    top: bool = False,
    charset: str | None = None,
    stop_group: int = 0,
    depth: int = 0,
) -> tuple[Node, int, tuple[int, int] | None]:
    """Parse elements from ``pos`` until ``end`` (or an item delimiter).

    Returns the node, the position after the last element consumed, and for the
    top level the ``(value_offset, length)`` of Pixel Data when reached.
    With ``stop_group``, the top-level walk also stops at the first element of a
    group after ``stop_group`` and before (5200): it then returns that element's
    position and :data:`STOPPED` instead of the Pixel Data location.
    ``end`` may exceed ``len(buf)``: the walker raises :class:`NeedMore` when it
    needs bytes it does not have. Descended sequences nested deeper than
    :data:`MAX_DEPTH` raise :class:`Malformed`.
    """
    if _C is not None and type(buf) is bytes:  # the compiled walker (breastlab.dicom._cwalk)
        return _C.walk(buf, pos, end, explicit, descend, top=top, charset=charset, stop_group=stop_group,
                       depth=depth)
    if depth > MAX_DEPTH:
        raise LimitExceeded(f"sequences nested deeper than {MAX_DEPTH} levels")
    if top:
        _budget[0] = MAX_NODES
    elems: dict = {}
    size = len(buf)
    pixel = None
    unpack_ex = _U16x2_S2_U16
    unpack_im = _U16x2_U32
    long_vrs = LONG_VRS
    short_vrs = SHORT_VRS
    while pos < end:
        if explicit:
            try:
                group, elem, vr, length = unpack_ex(buf, pos)
            except struct.error:
                raise NeedMore(pos + 8) from None
            if group == 0xFFFE:
                if elem == 0xE00D:
                    return Node(buf, elems, charset), pos + 8, pixel
                raise Malformed(f"unexpected delimiter (FFFE,{elem:04X}) at {pos}")
            if vr in short_vrs:
                start = pos + 8
            elif vr in long_vrs:
                if pos + 12 > size:
                    raise NeedMore(pos + 12)
                length = _U32(buf, pos + 8)[0]
                start = pos + 12
            elif vr.isalpha() and vr.isupper():
                start = pos + 8
            else:
                raise Malformed(f"bad VR {vr!r} for ({group:04X},{elem:04X}) at {pos}")
        else:
            try:
                group, elem, length = unpack_im(buf, pos)
            except struct.error:
                raise NeedMore(pos + 8) from None
            if group == 0xFFFE:
                if elem == 0xE00D:
                    return Node(buf, elems, charset), pos + 8, pixel
                raise Malformed(f"unexpected delimiter (FFFE,{elem:04X}) at {pos}")
            vr = None
            start = pos + 8
        tag = group << 16 | elem
        if top and group > stop_group:
            if stop_group and group < 0x5200:
                return Node(buf, elems, charset), pos, STOPPED
            if tag in PIXEL_TAGS:
                elems[tag] = (vr, start, 0)
                return Node(buf, elems, charset), pos, (start, length)
        if length == UNDEFINED:
            # a sequence (or an implicit-VR-encoded SQ inside a UN element)
            seq_explicit = explicit and vr != b"UN"
            if tag in descend:
                items, pos = read_sequence(buf, start, UNDEFINED, seq_explicit, descend, True, depth + 1)
                elems[tag] = ("SQ", items)
            else:
                pos = skip_sequence(buf, start, seq_explicit)
            continue
        if tag in descend and (vr == b"SQ" or vr is None or vr == b"UN"):
            if start + length > size:
                raise NeedMore(start + length)
            seq_explicit = explicit and vr == b"SQ"
            items, _ = read_sequence(buf, start, length, seq_explicit, descend, True, depth + 1)
            elems[tag] = ("SQ", items)
        else:
            elems[tag] = (vr, start, length)
        pos = start + length
    if pos > size:
        raise NeedMore(pos)
    if pos > end and end != UNDEFINED:
        raise Malformed("element runs past the end of its container")
    return Node(buf, elems, charset), pos, pixel


def read_sequence(
    buf: bytes, pos: int, length: int, explicit: bool, descend, keep: bool, depth: int = 1
) -> tuple[list[Node], int]:
    """Items of a sequence starting at ``pos``; returns (items, position after)."""
    end = pos + length if length != UNDEFINED else UNDEFINED
    items: list[Node] = []
    size = len(buf)
    while pos < end:
        if pos + 8 > size:
            raise NeedMore(pos + 8)
        group, elem, item_len = _U16x2_U32(buf, pos)
        tag = group << 16 | elem
        pos += 8
        if tag == SEQ_DELIM:
            return items, pos
        if tag != ITEM:
            raise Malformed(f"expected an item tag, found {tag:08X}")
        if item_len == UNDEFINED:
            node, pos, _ = walk(buf, pos, UNDEFINED, explicit, descend if keep else frozenset(), depth=depth)
        else:
            if not keep:
                pos += item_len
                continue
            if pos + item_len > size:
                raise NeedMore(pos + item_len)
            node, _, _ = walk(buf, pos, pos + item_len, explicit, descend, depth=depth)
            pos += item_len
        if keep:
            _budget[0] -= 1
            if _budget[0] < 0:
                raise LimitExceeded(f"more than {MAX_NODES} sequence items")
            items.append(node)
    if end != UNDEFINED and pos > size:
        raise NeedMore(pos)
    return items, pos


def skip_sequence(buf: bytes, pos: int, explicit: bool) -> int:
    """Position just after an undefined-length sequence starting at ``pos``.

    A tight loop that only follows element headers (no nodes, no values):
    nested undefined-length sequences raise the depth, sequence delimiters
    lower it.
    """
    size = len(buf)
    depth = 1
    unpack_ex = _U16x2_S2_U16
    unpack_im = _U16x2_U32
    u32 = _U32
    long_vrs = LONG_VRS
    while True:
        if pos + 8 > size:
            raise NeedMore(pos + 8)
        if explicit:
            group, elem, vr, length = unpack_ex(buf, pos)
            if group != 0xFFFE:
                if vr in long_vrs:
                    length = u32(buf, pos + 8)[0]
                    if length == UNDEFINED:
                        depth += 1
                        pos += 12
                    else:
                        pos += 12 + length
                elif vr.isalpha():
                    pos += 8 + length
                else:
                    raise Malformed(f"bad VR {vr!r} at {pos}")
                continue
            length = u32(buf, pos + 4)[0]
        else:
            group, elem, length = unpack_im(buf, pos)
            if group != 0xFFFE:
                if length == UNDEFINED:
                    depth += 1
                    pos += 8
                else:
                    pos += 8 + length
                continue
        if elem == 0xE000:  # item
            pos += 8 if length == UNDEFINED else 8 + length
        elif elem == 0xE00D:  # item delimiter
            pos += 8
        elif elem == 0xE0DD:  # sequence delimiter
            pos += 8
            depth -= 1
            if depth == 0:
                return pos
        else:
            raise Malformed(f"unexpected delimiter (FFFE,{elem:04X}) at {pos}")


def decode_text(data: bytes, charset: str | None, vr: str | None = None) -> str:
    """Non-ASCII text value -> ``str`` with the Specific Character Set, by pydicom's codecs.

    Handles single-byte sets, ISO 2022 code extensions (escape sequences), GB18030,
    GBK and UTF-8. Without a declared set, UTF-8 is tried, then Latin-1 (what most
    undeclared files hold). Never raises: undecodable bytes become U+FFFD.
    """
    if charset:
        import warnings

        from pydicom import charset as pydicom_charset

        terms = [t.strip() for t in charset.split("\\")]
        terms = [t for t in terms if t] or ["ISO_IR 6"]
        # ISO 2022 switches back to the initial set at these bytes (PS3.5 6.1.2.5.3)
        delimiters = {0x5C, 0x5E, 0x3D} if vr == "PN" else {0x5C, *pydicom_charset.TEXT_VR_DELIMS}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # unknown terms: pydicom falls back and warns
                encodings = pydicom_charset.convert_encodings(terms)
                return pydicom_charset.decode_bytes(data, encodings, delimiters)
        except Exception:  # noqa: BLE001 - a bad charset must not stop a file
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def looks_like_vr(two: bytes) -> bool:
    return len(two) == 2 and two.isalpha() and two.isupper()


def tags(values: Iterable[int]) -> frozenset[int]:
    return frozenset(values)


def _load_compiled():  # noqa: ANN202 - the _cwalk module or None
    """The compiled walker, unless absent (no C compiler at install) or ``BREASTLAB_PURE_PYTHON=1``."""
    import os

    if os.environ.get("BREASTLAB_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from breastlab.dicom import _cwalk
    except ImportError:
        return None
    _cwalk.bind_text(decode_text)
    _cwalk.bind_node(Node)
    # the compiled walker makes compiled nodes (_cwalk.CNode: Node's methods, the same values)
    _cwalk.bind(_cwalk.CNode, NeedMore, Malformed, LimitExceeded, MAX_DEPTH, MAX_NODES, STOPPED)
    return _cwalk


_C = _load_compiled()
#: the walker in use: "compiled" (Cython, breastlab.dicom._cwalk) or "python"
WALKER = "compiled" if _C is not None else "python"


def use_compiled(on: bool) -> bool:
    """Switch between the compiled and the pure-Python walker (tests, benchmarks); returns whether compiled."""
    global _C, WALKER
    _C = _load_compiled() if on else None
    WALKER = "compiled" if _C is not None else "python"
    return _C is not None
