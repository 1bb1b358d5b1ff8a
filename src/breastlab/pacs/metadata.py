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
    """``item`` without what the records never read: sequences the header walker does not descend
    into (``headers.DESCEND``) and bulk data. Cuts the cost of large enhanced multi-frame headers."""
    out: dict[str, Any] = {}
    for key, elem in item.items():
        if "BulkDataURI" in elem:
            continue
        if elem.get("vr") == "SQ":
            if len(key) != 8 or int(key, 16) not in DESCEND:
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
    values = (item.get(tag) or {}).get("Value") or []
    return values[0] if values else None


def json_manufacturer(item: Mapping[str, Any]) -> str | None:
    return normalise_manufacturer(json_value(item, "00080070"))
