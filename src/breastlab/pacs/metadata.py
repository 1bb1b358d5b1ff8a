"""DICOM JSON (WADO-RS metadata) -> pydicom ``Dataset`` -> ``InstanceRecord``.

The records come from :func:`breastlab.dicom.headers.records_from_dataset`, the same
extraction the file path uses, so a study sorted from its metadata gives the rows that
sorting its files gives.

Binary elements arrive as ``InlineBinary`` (decoded by pydicom) or as a ``BulkDataURI``.
Pixel data and every other bulk element are *not* fetched, except the few small private
elements the header rules read (Siemens CSA image header and vendor b-value tags when a
server sends them as bulk data). Those are found through their private creators, as in
``breastlab.dicom.bvalues``, so renamed private blocks (an Agfa PACS) still resolve.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

from breastlab.dicom.bvalues import GE_CREATOR, PHILIPS_CREATOR, SIEMENS_CREATOR, SIEMENS_CSA_CREATOR
from breastlab.dicom.headers import DESCEND, normalise_manufacturer, records_from_dataset
from breastlab.dicom.records import InstanceRecord, SkippedFile

#: (group, private creator, element low byte) of the private elements the records read
#: (``headers._vendor_hints`` and ``bvalues``); fetched when sent as bulk data
NEEDED_PRIVATE: frozenset[tuple[int, str, int]] = frozenset({
    (0x0019, SIEMENS_CREATOR.upper(), 0x0A),
    (0x0019, SIEMENS_CREATOR.upper(), 0x0C),
    (0x0051, SIEMENS_CREATOR.upper(), 0x0F),
    (0x0029, SIEMENS_CSA_CREATOR.upper(), 0x10),
    (0x0019, "GEMS_ACQU_01", 0x9C),
    (0x0043, GE_CREATOR.upper(), 0x2F),
    (0x0043, GE_CREATOR.upper(), 0x39),
    (0x2001, PHILIPS_CREATOR.upper(), 0x03),
    (0x2001, PHILIPS_CREATOR.upper(), 0x04),
    (0x2001, PHILIPS_CREATOR.upper(), 0x20),
})
#: the same elements at their usual tags, for files written without private creators
NEEDED_RAW: frozenset[int] = frozenset({
    0x0019100A, 0x0019100C, 0x0051100F, 0x00291010, 0x0019109C, 0x0043102F, 0x00431039,
    0x20011003, 0x20011004, 0x20011020, 0x00651009,
})
#: a bulk element larger than this is never fetched (a CSA image header is ~10 kB)
MAX_BULK_BYTES = 1 << 20

BulkFetcher = Callable[[str], bytes]


def _creators(item: Mapping[str, Any]) -> dict[tuple[int, int], str]:
    """(group, block) -> creator name, from the private creator elements of one JSON item."""
    found: dict[tuple[int, int], str] = {}
    for key, elem in item.items():
        if len(key) != 8:
            continue
        group, element = int(key[:4], 16), int(key[4:], 16)
        if group % 2 and 0x10 <= element <= 0xFF:
            values = elem.get("Value") or []
            if values and isinstance(values[0], str):
                found[(group, element)] = values[0].strip().upper()
    return found


def needed_bulk_tags(item: Mapping[str, Any]) -> set[int]:
    """Tags of the top-level bulk elements of ``item`` that the records need."""
    creators = _creators(item)
    needed: set[int] = set()
    for key, elem in item.items():
        if "BulkDataURI" not in elem or len(key) != 8:
            continue
        tag = int(key, 16)
        group, element = tag >> 16, tag & 0xFFFF
        if not group % 2:
            continue
        creator = creators.get((group, element >> 8))
        if (creator and (group, creator, element & 0xFF) in NEEDED_PRIVATE) or (creator is None and tag in NEEDED_RAW):
            needed.add(tag)
    return needed


def _prune(item: Mapping[str, Any]) -> dict[str, Any]:
    """``item`` without what the records never read: bulk data, sequences the header walker does not
    descend into (``headers.DESCEND``), and private elements other than their creators and
    ``NEEDED_PRIVATE``/``NEEDED_RAW``. Halves the work on GE headers (mostly private) and cuts
    large enhanced multi-frame headers; the equality test against file parsing guards the lists."""
    creators = _creators(item)
    out: dict[str, Any] = {}
    for key, elem in item.items():
        if "BulkDataURI" in elem or len(key) != 8:
            continue
        tag = int(key, 16)
        group, element = tag >> 16, tag & 0xFFFF
        if group % 2 and element > 0xFF and tag not in NEEDED_RAW:
            creator = creators.get((group, element >> 8))
            if creator is None or (group, creator, element & 0xFF) not in NEEDED_PRIVATE:
                continue
        if elem.get("vr") == "SQ":
            if tag not in DESCEND:
                continue
            elem = {"vr": "SQ", "Value": [_prune(sub) for sub in elem.get("Value") or [] if isinstance(sub, dict)]}
        out[key] = elem
    return out


def dataset_from_json(item: Mapping[str, Any], fetch: BulkFetcher | None = None, *, prune: bool = True
                      ):  # noqa: ANN201 - pydicom Dataset
    """A pydicom ``Dataset`` of one DICOM JSON instance; only the needed bulk elements are fetched.

    With ``prune`` (the default, for records), sequences the header walker ignores are left out.
    """
    import base64

    from pydicom import Dataset

    needed = needed_bulk_tags(item) if fetch is not None else set()
    clean = _prune(item) if prune else {k: v for k, v in item.items() if "BulkDataURI" not in v}
    for tag in needed:  # fetched here and given inline: no per-element bulk handler in pydicom
        data = fetch(item[f"{tag:08X}"]["BulkDataURI"])[:MAX_BULK_BYTES]  # type: ignore[misc]
        clean[f"{tag:08X}"] = {"vr": item[f"{tag:08X}"].get("vr", "UN"),
                               "InlineBinary": base64.b64encode(data).decode("ascii")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # odd server values: pydicom warns, records cope
        return Dataset.from_json(clean)


def records_from_json(item: Mapping[str, Any], path: str, fetch: BulkFetcher | None = None
                      ) -> list[InstanceRecord] | SkippedFile:
    """The records of one DICOM JSON instance (as :func:`breastlab.dicom.headers.read_records` gives)."""
    from breastlab.pacs.errors import PacsError

    try:
        ds = dataset_from_json(item, fetch)
    except PacsError:
        raise  # the server failed: the run stops, it is not this instance's fault
    except Exception as exc:  # noqa: BLE001 - one bad instance must not stop the study
        said = (str(exc).splitlines() or [""])[0][:200]
        return SkippedFile(path, "corrupt", f"DICOM JSON could not be read: {type(exc).__name__}: {said}")
    return records_from_dataset(ds, path)


def json_value(item: Mapping[str, Any], tag: str) -> Any:
    """The first value of ``tag`` (8 hex digits) in a DICOM JSON item, or ``None``."""
    elem = item.get(tag) if isinstance(item, Mapping) else None
    values = elem.get("Value") if isinstance(elem, Mapping) else None
    return values[0] if isinstance(values, list) and values else None


def json_manufacturer(item: Mapping[str, Any]) -> str | None:
    return normalise_manufacturer(json_value(item, "00080070"))


# ----------------------------------------------------------------------------- fast path
# DICOM JSON straight to Explicit VR Little Endian bytes, then the header walker of
# ``breastlab.dicom.headers`` (``records_from_encoded``): the same extraction as the file
# path and as ``records_from_dataset``. Hand-written because pydicom's ``Dataset.from_json``
# followed by ``write_dataset`` costs ~5 ms per instance (more than WADO-RS itself), which
# would make metadata sorting slower than retrieving the files. Anything this encoder does not
# handle (other character sets, odd values) raises ``_Unsupported`` and the instance goes the
# pydicom way; a test checks that both ways give equal records on the real data.
import base64 as _base64  # noqa: E402
import struct as _struct  # noqa: E402

_LONG = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
_TEXT = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UR", "UT"})
_BINARY = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
_CHARSETS = {"": "latin-1", "ISO_IR 6": "latin-1", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}


class _Unsupported(Exception):
    pass


def _number_text(value: Any, vr: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if vr == "IS" or (isinstance(value, int) and not isinstance(value, bool)):
        return str(int(value))
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _value_bytes(vr: str, elem: Mapping[str, Any], encoding: str) -> bytes:
    values = elem.get("Value")
    if "InlineBinary" in elem:
        return _base64.b64decode(elem["InlineBinary"])
    if not values:
        return b""
    if vr in _BINARY:
        return _struct.pack(f"<{len(values)}{_BINARY[vr]}", *values)
    if vr == "AT":
        return b"".join(_struct.pack("<HH", int(v[:4], 16), int(v[4:], 16)) for v in values)
    if vr == "PN":
        parts = []
        for v in values:
            if isinstance(v, dict):
                groups = [v.get("Alphabetic", ""), v.get("Ideographic", ""), v.get("Phonetic", "")]
                while groups and not groups[-1]:
                    groups.pop()
                parts.append("=".join(groups))
            else:
                parts.append("" if v is None else str(v))
        return "\\".join(parts).encode(encoding)
    if vr in _TEXT:
        if vr in ("DS", "IS"):
            return "\\".join(_number_text(v, vr) for v in values).encode("ascii")
        if vr in ("LT", "ST", "UT", "UR") and len(values) > 1:
            raise _Unsupported(vr)
        return "\\".join("" if v is None else str(v) for v in values).encode(encoding)
    raise _Unsupported(vr)


def _encode_item(item: Mapping[str, Any], encoding: str, out: bytearray) -> None:
    pack = _struct.pack
    for key in sorted(item):
        elem = item[key]
        tag = int(key, 16)
        vr = elem.get("vr") or "UN"
        group, element = tag >> 16, tag & 0xFFFF
        if vr == "SQ":
            out += pack("<HH2sHI", group, element, b"SQ", 0, 0xFFFFFFFF)
            for sub in elem.get("Value") or []:
                out += pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
                _encode_item(sub, encoding, out)
                out += pack("<HHI", 0xFFFE, 0xE00D, 0)
            out += pack("<HHI", 0xFFFE, 0xE0DD, 0)
            continue
        data = _value_bytes(vr, elem, encoding)
        if len(data) % 2:
            data += b"\x00" if vr in ("UI", "OB", "UN") else b" "
        if vr in _LONG:
            out += pack("<HH2sHI", group, element, vr.encode("ascii"), 0, len(data))
        else:
            if len(data) > 0xFFFF:
                raise _Unsupported(f"{vr} value of {len(data)} bytes")
            out += pack("<HH2sH", group, element, vr.encode("ascii"), len(data))
        out += data


def encode_json(item: Mapping[str, Any]) -> bytes:
    """A (pruned) DICOM JSON item as Explicit VR Little Endian bytes; raises ``_Unsupported``."""
    charset = item.get("00080005", {}).get("Value") or [""]
    if len(charset) != 1 or str(charset[0]).strip().upper() not in _CHARSETS:
        raise _Unsupported(f"character set {charset}")
    out = bytearray()
    _encode_item(item, _CHARSETS[str(charset[0]).strip().upper()], out)
    return bytes(out)


def fast_records_from_json(item: Mapping[str, Any], path: str, fetch: BulkFetcher | None = None
                           ) -> list[InstanceRecord] | SkippedFile:
    """:func:`records_from_json` without pydicom (falls back to it for what the encoder does not handle)."""
    from breastlab.dicom.headers import records_from_encoded
    from breastlab.pacs.errors import PacsError

    try:
        clean = _prune(item)
        for tag in needed_bulk_tags(item) if fetch is not None else ():
            data = fetch(item[f"{tag:08X}"]["BulkDataURI"])[:MAX_BULK_BYTES]
            clean[f"{tag:08X}"] = {"vr": item[f"{tag:08X}"].get("vr", "UN"),
                                   "InlineBinary": _base64.b64encode(data).decode("ascii")}
        data = encode_json(clean)
    except PacsError:
        raise
    except (_Unsupported, ValueError, TypeError, KeyError, _struct.error, UnicodeError):
        return records_from_json(item, path, fetch)
    return records_from_encoded(data, path)
