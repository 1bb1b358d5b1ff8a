# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The header walker of :mod:`breastlab.dicom._parse`, compiled (Cython).

Hand-written rather than a field library: GDCM's Scanner (python-gdcm) reads only
top-level tags, 1.4x faster than the pure-Python reader *including* its record building
(docs/benchmarks.md), and cannot descend into the functional groups the records need.
This is the same algorithm as ``_parse._walk_py`` / ``_read_sequence_py`` /
``skip_sequence`` line by line (the same nodes, positions and exceptions, with the same
messages), with element headers read as C integers instead of ``struct`` tuples.
``tests/test_dicom_compiled.py`` checks that both give identical records on every file
of the shared data. Built by ``pip install -e .`` where a C compiler exists
(``setup.py``); without one the pure-Python walker runs.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int16_t, int32_t, int64_t, uint16_t, uint32_t, uint64_t

import struct

_U32 = struct.Struct("<I").unpack_from

cdef object Node, NeedMore, Malformed, LimitExceeded
cdef int MAX_DEPTH = 12
cdef int64_t MAX_NODES = 500000
cdef int64_t _budget = 500000
cdef int64_t UNDEF = 0xFFFFFFFF
cdef dict _vr_cache = {}
_STOPPED = (-1, -1)


def bind(node, need_more, malformed, limit_exceeded, int max_depth, int64_t max_nodes, stopped):
    """Take the Python classes and limits of ``_parse`` (one definition of each)."""
    global Node, NeedMore, Malformed, LimitExceeded, MAX_DEPTH, MAX_NODES, _STOPPED
    Node, NeedMore, Malformed, LimitExceeded = node, need_more, malformed, limit_exceeded
    MAX_DEPTH, MAX_NODES, _STOPPED = max_depth, max_nodes, stopped


cdef inline uint16_t u16(const unsigned char* p, int64_t pos) nogil:
    return p[pos] | (p[pos + 1] << 8)


cdef inline uint32_t u32(const unsigned char* p, int64_t pos) nogil:
    return p[pos] | (p[pos + 1] << 8) | (p[pos + 2] << 16) | (<uint32_t>p[pos + 3] << 24)


cdef inline bint is_upper(unsigned char c) nogil:
    return 65 <= c <= 90


cdef inline bint is_alpha(unsigned char c) nogil:
    return 65 <= c <= 90 or 97 <= c <= 122


cdef inline int vr_kind(unsigned char a, unsigned char b) nogil:
    """1: short (2-byte length), 2: long (4-byte length), 0: neither (as LONG_VRS/SHORT_VRS)."""
    cdef uint16_t code = (a << 8) | b
    # long: OB OW OF OD OL OV SQ UC UR UT UN SV UV
    if (code == 0x4F42 or code == 0x4F57 or code == 0x4F46 or code == 0x4F44 or code == 0x4F4C or code == 0x4F56
            or code == 0x5351 or code == 0x5543 or code == 0x5552 or code == 0x5554 or code == 0x554E
            or code == 0x5356 or code == 0x5556):
        return 2
    # short: AE AS AT CS DA DS DT FL FD IS LO LT PN SH SL SS ST TM UI UL US
    if (code == 0x4145 or code == 0x4153 or code == 0x4154 or code == 0x4353 or code == 0x4441 or code == 0x4453
            or code == 0x4454 or code == 0x464C or code == 0x4644 or code == 0x4953 or code == 0x4C4F
            or code == 0x4C54 or code == 0x504E or code == 0x5348 or code == 0x534C or code == 0x5353
            or code == 0x5354 or code == 0x544D or code == 0x5549 or code == 0x554C or code == 0x5553):
        return 1
    return 0


cdef inline object vr_bytes(const unsigned char* p, int64_t pos):
    cdef int key = (p[pos] << 8) | p[pos + 1]
    value = _vr_cache.get(key)
    if value is None:
        value = (<const char*>p)[pos:pos + 2]
        _vr_cache[key] = value
    return value


cdef class _Descend:
    cdef uint32_t tags[64]
    cdef int n

    cdef bint has(self, uint32_t tag):
        cdef int i
        for i in range(self.n):
            if self.tags[i] == tag:
                return True
        return False


cdef dict _descend_cache = {}


cdef _Descend as_descend(object descend):
    cached = _descend_cache.get(id(descend))
    if cached is not None and (<tuple>cached)[0] is descend:
        return (<tuple>cached)[1]
    cdef _Descend d = _Descend()
    d.n = 0
    for tag in descend:
        if d.n >= 64:
            raise ValueError("at most 64 tags to descend into")
        d.tags[d.n] = tag
        d.n += 1
    if isinstance(descend, frozenset):
        _descend_cache[id(descend)] = (descend, d)
    return d


def walk(bytes buf, pos, end, bint explicit, descend, *, bint top=False, charset=None, stop_group=0, int depth=0):
    """``_parse._walk_py``, compiled; same arguments and results."""
    return _walk(buf, pos, end, explicit, as_descend(descend), top, charset, stop_group, depth)


cdef tuple _walk(bytes buf, int64_t pos, int64_t end, bint explicit, _Descend descend, bint top, object charset,
                 int64_t stop_group, int depth):
    global _budget
    if depth > MAX_DEPTH:
        raise LimitExceeded(f"sequences nested deeper than {MAX_DEPTH} levels")
    if top:
        _budget = MAX_NODES
    cdef dict elems = {}
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(buf)
    cdef int64_t size = PyBytes_GET_SIZE(buf)
    cdef object pixel = None
    cdef uint32_t group, elem, tag
    cdef int64_t length, start
    cdef int kind
    cdef object vr
    cdef bint vr_none, seq_explicit, is_un, is_sq
    while pos < end:
        if pos + 8 > size:
            raise NeedMore(pos + 8)
        group = u16(p, pos)
        elem = u16(p, pos + 2)
        if explicit:
            length = u16(p, pos + 6)
            if group == 0xFFFE:
                if elem == 0xE00D:
                    return Node(buf, elems, charset), pos + 8, pixel
                raise Malformed(f"unexpected delimiter (FFFE,{elem:04X}) at {pos}")
            kind = vr_kind(p[pos + 4], p[pos + 5])
            if kind == 1:
                start = pos + 8
            elif kind == 2:
                if pos + 12 > size:
                    raise NeedMore(pos + 12)
                length = u32(p, pos + 8)
                start = pos + 12
            elif is_upper(p[pos + 4]) and is_upper(p[pos + 5]):
                start = pos + 8
            else:
                raise Malformed(f"bad VR {vr_bytes(p, pos + 4)!r} for ({group:04X},{elem:04X}) at {pos}")
            vr = vr_bytes(p, pos + 4)
            vr_none = False
            is_un = p[pos + 4] == 85 and p[pos + 5] == 78  # UN
            is_sq = p[pos + 4] == 83 and p[pos + 5] == 81  # SQ
        else:
            length = u32(p, pos + 4)
            if group == 0xFFFE:
                if elem == 0xE00D:
                    return Node(buf, elems, charset), pos + 8, pixel
                raise Malformed(f"unexpected delimiter (FFFE,{elem:04X}) at {pos}")
            vr = None
            vr_none = True
            is_un = is_sq = False
            start = pos + 8
        tag = (group << 16) | elem
        if top and group > stop_group:
            if stop_group and group < 0x5200:
                return Node(buf, elems, charset), pos, _STOPPED
            if tag == 0x7FE00010 or tag == 0x7FE00008 or tag == 0x7FE00009:
                elems[tag] = (vr, start, 0)
                return Node(buf, elems, charset), pos, (start, length)
        if length == UNDEF:
            seq_explicit = explicit and not is_un
            if descend.has(tag):
                items, pos = _read_sequence(buf, start, UNDEF, seq_explicit, descend, True, depth + 1)
                elems[tag] = ("SQ", items)
            else:
                pos = _skip_sequence(buf, start, seq_explicit)
            continue
        if descend.has(tag) and (is_sq or vr_none or is_un):
            if start + length > size:
                raise NeedMore(start + length)
            seq_explicit = explicit and is_sq
            items, _ = _read_sequence(buf, start, length, seq_explicit, descend, True, depth + 1)
            elems[tag] = ("SQ", items)
        else:
            elems[tag] = (vr, start, length)
        pos = start + length
    if pos > size:
        raise NeedMore(pos)
    if pos > end and end != UNDEF:
        raise Malformed("element runs past the end of its container")
    return Node(buf, elems, charset), pos, pixel


def read_sequence(bytes buf, pos, length, bint explicit, descend, bint keep, int depth=1):
    """``_parse._read_sequence_py``, compiled."""
    return _read_sequence(buf, pos, length, explicit, as_descend(descend), keep, depth)


cdef _Descend _EMPTY = _Descend()
_EMPTY.n = 0


cdef tuple _read_sequence(bytes buf, int64_t pos, int64_t length, bint explicit, _Descend descend, bint keep,
                          int depth):
    global _budget
    cdef int64_t end = pos + length if length != UNDEF else UNDEF
    cdef list items = []
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(buf)
    cdef int64_t size = PyBytes_GET_SIZE(buf)
    cdef uint32_t tag
    cdef int64_t item_len
    while pos < end:
        if pos + 8 > size:
            raise NeedMore(pos + 8)
        tag = (<uint32_t>u16(p, pos) << 16) | u16(p, pos + 2)
        item_len = u32(p, pos + 4)
        pos += 8
        if tag == 0xFFFEE0DD:
            return items, pos
        if tag != 0xFFFEE000:
            raise Malformed(f"expected an item tag, found {tag:08X}")
        if item_len == UNDEF:
            node, pos, _ = _walk(buf, pos, UNDEF, explicit, descend if keep else _EMPTY, False, None, 0, depth)
        else:
            if not keep:
                pos += item_len
                continue
            if pos + item_len > size:
                raise NeedMore(pos + item_len)
            node, _, _ = _walk(buf, pos, pos + item_len, explicit, descend, False, None, 0, depth)
            pos += item_len
        if keep:
            _budget -= 1
            if _budget < 0:
                raise LimitExceeded(f"more than {MAX_NODES} sequence items")
            items.append(node)
    if end != UNDEF and pos > size:
        raise NeedMore(pos)
    return items, pos


def skip_sequence(bytes buf, pos, bint explicit):
    """``_parse._skip_sequence_py``, compiled."""
    return _skip_sequence(buf, pos, explicit)


cdef int64_t _skip_sequence(bytes buf, int64_t pos, bint explicit) except -1:
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(buf)
    cdef int64_t size = PyBytes_GET_SIZE(buf)
    cdef int64_t depth = 1
    cdef uint32_t group, elem
    cdef int64_t length
    cdef int kind
    while True:
        if pos + 8 > size:
            raise NeedMore(pos + 8)
        group = u16(p, pos)
        elem = u16(p, pos + 2)
        if explicit:
            if group != 0xFFFE:
                kind = vr_kind(p[pos + 4], p[pos + 5])
                if kind == 2:
                    if pos + 12 > size:
                        _U32(buf, pos + 8)  # the pure walker's struct.error, message included
                    length = u32(p, pos + 8)
                    if length == UNDEF:
                        depth += 1
                        pos += 12
                    else:
                        pos += 12 + length
                elif is_alpha(p[pos + 4]) and is_alpha(p[pos + 5]):
                    pos += 8 + u16(p, pos + 6)
                else:
                    raise Malformed(f"bad VR {vr_bytes(p, pos + 4)!r} at {pos}")
                continue
            length = u32(p, pos + 4)
        else:
            length = u32(p, pos + 4)
            if group != 0xFFFE:
                if length == UNDEF:
                    depth += 1
                    pos += 8
                else:
                    pos += 8 + length
                continue
        if elem == 0xE000:  # item
            pos += 8 if length == UNDEF else 8 + length
        elif elem == 0xE00D:  # item delimiter
            pos += 8
        elif elem == 0xE0DD:  # sequence delimiter
            pos += 8
            depth -= 1
            if depth == 0:
                return pos
        else:
            raise Malformed(f"unexpected delimiter (FFFE,{elem:04X}) at {pos}")


# ----------------------------------------------------------------------------- Node, compiled
from libc.math cimport isfinite
from libc.string cimport memchr, memcpy

cdef object decode_text = None


def bind_text(decoder):
    """Take ``_parse.decode_text`` (non-ASCII text with the Specific Character Set)."""
    global decode_text
    decode_text = decoder


cdef inline int binary_code(object vr):
    """1 US, 2 SS, 3 UL, 4 SL, 5 FL, 6 FD, 7 SV, 8 UV; 0 otherwise (vr: bytes or str)."""
    cdef const char* s
    if isinstance(vr, bytes):
        if PyBytes_GET_SIZE(vr) != 2:
            return 0
        s = PyBytes_AS_STRING(vr)
    else:
        b = (<str>vr).encode("latin-1", "replace")
        if len(b) != 2:
            return 0
        return binary_code(b)
    cdef uint16_t code = (<unsigned char>s[0] << 8) | <unsigned char>s[1]
    if code == 0x5553: return 1  # US
    if code == 0x5353: return 2  # SS
    if code == 0x554C: return 3  # UL
    if code == 0x534C: return 4  # SL
    if code == 0x464C: return 5  # FL
    if code == 0x4644: return 6  # FD
    if code == 0x5356: return 7  # SV
    if code == 0x5556: return 8  # UV
    return 0


cdef int _SIZES[9]
_SIZES[:] = [0, 2, 2, 4, 4, 4, 8, 8, 8]


cdef inline double read_binary(const unsigned char* p, int code):
    cdef uint16_t h
    cdef uint32_t w
    cdef uint64_t q
    cdef float f
    cdef double d
    if code == 1:
        return p[0] | (p[1] << 8)
    if code == 2:
        h = p[0] | (p[1] << 8)
        return <int16_t>h
    if code == 3 or code == 4 or code == 5:
        memcpy(&w, p, 4)
        if code == 3:
            return w
        if code == 4:
            return <int32_t>w
        memcpy(&f, p, 4)
        return f
    memcpy(&q, p, 8)
    if code == 6:
        memcpy(&d, p, 8)
        return d
    if code == 7:
        return <int64_t>q
    return q


cdef class CNode:
    """``_parse.Node``, compiled: the same attributes and methods, the same values."""

    cdef public object buf
    cdef public dict elems
    cdef public object charset
    cdef public object _creators

    def __init__(self, buf, dict elems, charset=None):
        self.buf = buf
        self.elems = elems
        self.charset = charset
        self._creators = None

    def __contains__(self, tag):
        return tag in self.elems

    cpdef object raw(self, tag):
        item = self.elems.get(tag)
        if item is None or (<tuple>item)[0] == "SQ":
            return None
        cdef int64_t start = (<tuple>item)[1], length = (<tuple>item)[2]
        return self.buf[start:start + length]

    cpdef object vr(self, tag):
        item = self.elems.get(tag)
        if item is None:
            return None
        vr = (<tuple>item)[0]
        if vr is None or vr == "SQ":
            return vr
        return (<bytes>vr).decode("ascii", "replace")

    cpdef list seq(self, tag):
        item = self.elems.get(tag)
        if item is None or (<tuple>item)[0] != "SQ":
            return []
        return (<tuple>item)[1]

    cpdef object text(self, tag):
        data = self.raw(tag)
        if not data:
            return None
        cdef bytes b = <bytes>data
        cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(b)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(b), i
        cdef bint ascii = memchr(p, 0x1B, n) == NULL
        if ascii:
            for i in range(n):
                if p[i] >= 128:
                    ascii = False
                    break
        if ascii:
            value = b.decode("ascii")
        else:
            value = decode_text(b, self.charset, self.vr(tag))
        value = value.strip(" \x00")
        return value or None

    cpdef object str(self, tag):
        value = self.text(tag)
        if value is None:
            return None
        first = (<str>value).split("\\", 1)[0].strip()
        return first or None

    cpdef tuple strs(self, tag):
        value = self.text(tag)
        if value is None:
            return ()
        return tuple([v.strip().upper() for v in (<str>value).split("\\") if v.strip()])

    cpdef tuple numbers(self, tag, hint):
        item = self.elems.get(tag)
        if item is None or (<tuple>item)[0] == "SQ":
            return ()
        vr = (<tuple>item)[0]
        cdef int64_t start = (<tuple>item)[1], length = (<tuple>item)[2], i
        if length == 0:
            return ()
        cdef int code = binary_code(vr) if vr is not None else 0
        if code == 0 and (vr is None or vr == b"UN" or vr == b"OB"):
            code = binary_code(hint)
        cdef int size
        cdef double value
        cdef bytes buf
        cdef const unsigned char* p
        cdef list out
        if code:
            size = _SIZES[code]
            if length % size:
                return ()
            buf = <bytes>self.buf
            if start + length > PyBytes_GET_SIZE(buf):  # as struct would: the pure Node raises too
                return _PyNode_numbers(self, tag, hint)
            p = <const unsigned char*>PyBytes_AS_STRING(buf) + start
            out = []
            for i in range(0, length, size):
                value = read_binary(p + i, code)
                if (code == 5 or code == 6) and not isfinite(value):
                    continue  # inf/nan are no measurement
                out.append(value)
            return tuple(out)
        text = self.text(tag)
        if text is None:
            return ()
        out = []
        for part in (<str>text).split("\\"):
            part = part.strip()
            if not part:
                continue
            try:
                number = float(part)
            except ValueError:
                return tuple(out)
            if isfinite(number):
                out.append(number)
        return tuple(out)

    cpdef object float(self, tag, hint="DS"):
        values = self.numbers(tag, hint)
        return values[0] if values else None

    cpdef object int(self, tag, hint="IS"):
        value = self.float(tag, hint)
        if value is None or value != value:
            return None
        try:
            return int(value)
        except (OverflowError, ValueError):
            return None

    cpdef object private_tag(self, int group, str creator, int element):
        cdef dict found
        cdef uint32_t tag
        if self._creators is None:
            found = {}
            for key in self.elems:
                tag = key
                if tag & 0x10000 and 0x10 <= (tag & 0xFFFF) <= 0xFF:
                    name = self.text(key)
                    if name is not None:
                        found.setdefault((tag >> 16, (<str>name).strip().upper()), tag & 0xFF)
            self._creators = found
        block = (<dict>self._creators).get((group, creator.strip().upper()))
        if block is None:
            return None
        return (group << 16) | (<int>block << 8) | (element & 0xFF)

    def creators(self, group):
        return _PyNode_creators(self, group)


cdef object _PyNode_numbers = None
cdef object _PyNode_private_tag = None
cdef object _PyNode_creators = None


def bind_node(py_node):
    """Private-tag lookups and the rare out-of-buffer number: the pure ``Node``'s code."""
    global _PyNode_numbers, _PyNode_private_tag, _PyNode_creators
    _PyNode_numbers = py_node.numbers
    _PyNode_private_tag = py_node.private_tag
    _PyNode_creators = py_node.creators


def read_meta(bytes buf, int64_t pos):
    """``opening._read_meta_py``, compiled: the file meta group (Explicit VR Little Endian)."""
    cdef dict meta = {}
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(buf)
    cdef int64_t size = PyBytes_GET_SIZE(buf), length, start
    cdef uint16_t group, elem, code
    while pos + 8 <= size:
        group = u16(p, pos)
        elem = u16(p, pos + 2)
        length = u16(p, pos + 6)
        if group != 0x0002:
            break
        if not (is_upper(p[pos + 4]) and is_upper(p[pos + 5])):
            raise Malformed("file meta information is not Explicit VR")
        code = (p[pos + 4] << 8) | p[pos + 5]
        # OB OW UN SQ UT UC UR: 4-byte length
        if (code == 0x4F42 or code == 0x4F57 or code == 0x554E or code == 0x5351 or code == 0x5554
                or code == 0x5543 or code == 0x5552):
            if pos + 12 > size:
                _U32(buf, pos + 8)  # the pure reader's struct.error, message included
            length = u32(p, pos + 8)
            start = pos + 12
        else:
            start = pos + 8
        if length == UNDEF or start + length > size:
            raise NeedMore(start + (0 if length == UNDEF else length))
        # UI CS SH LO AE: kept as text
        if code == 0x5549 or code == 0x4353 or code == 0x5348 or code == 0x4C4F or code == 0x4145:
            meta[elem] = buf[start:start + length].decode("latin-1").strip(" \x00")
        pos = start + length
    return meta, pos
