"""InstanceRecord / SkippedFile ⇄ index rows (one Parquet row per image record or skipped file).

The exact record travels as JSON in the ``record`` column (``json`` round-trips every
float, int of any size, NaN/inf and surrogate-escaped path exactly; Arrow's typed
columns cannot hold an out-of-range IS value or a path that is not UTF-8). The typed
columns beside it exist for users' queries (docs/scale.md); the sorter reads ``record``.
"""
from __future__ import annotations

import json
import os
from dataclasses import fields
from typing import Any

import pyarrow as pa

from breastlab.dicom.records import InstanceRecord, SkippedFile, series_key

_TUPLE_FIELDS = {f.name for f in fields(InstanceRecord) if str(f.type).startswith("tuple")}
_INT64 = (-(1 << 63), (1 << 63) - 1)

#: columns of every index part, in order (documented in docs/scale.md)
SCHEMA = pa.schema([
    ("path", pa.string()),          # display path (bytes that are not UTF-8 shown as U+FFFD)
    ("path_bytes", pa.binary()),    # exact path (os.fsencode); the key of the index
    ("size", pa.int64()),           # st_size when read
    ("mtime_ns", pa.int64()),       # st_mtime_ns when read
    ("ctime_ns", pa.int64()),       # st_ctime_ns when read (an edit that restores size and mtime changes it)
    ("inode", pa.int64()),          # st_ino when read (a file replaced by another)
    ("frame_index", pa.int64()),
    ("status", pa.string()),        # "record", "skipped", or "archive" (an archive whose members follow)
    ("archive_bytes", pa.binary()), # the archive a member was read from (null: a plain file)
    ("skip_reason", pa.string()),
    ("skip_detail", pa.string()),
    ("study_uid", pa.string()),
    ("series_uid", pa.string()),
    ("sop_instance_uid", pa.string()),
    ("series_number", pa.int64()),
    ("instance_number", pa.int64()),
    ("modality", pa.string()),
    ("manufacturer", pa.string()),
    ("series_description", pa.string()),
    ("b_value", pa.float64()),
    ("series_key", pa.string()),    # SeriesInstanceUID, or a stand-in when it is missing
    ("record", pa.string()),        # the whole InstanceRecord as JSON (exact)
])


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    return value.encode("utf-8", "replace").decode("utf-8") if not value.isascii() else value


def _int(value: int | None) -> int | None:
    return value if value is not None and _INT64[0] <= value <= _INT64[1] else None


def record_row(r: InstanceRecord, st: tuple[int, int, int, int]) -> dict[str, Any]:
    payload = {f.name: getattr(r, f.name) for f in fields(InstanceRecord)}
    return {
        "path": _text(r.path), "path_bytes": os.fsencode(r.path), "size": st[0], "mtime_ns": st[1],
        "ctime_ns": st[2], "inode": _int(st[3]),
        "frame_index": _int(r.frame_index), "status": "record", "skip_reason": None, "skip_detail": None,
        "study_uid": _text(r.study_uid), "series_uid": _text(r.series_uid),
        "sop_instance_uid": _text(r.sop_instance_uid), "series_number": _int(r.series_number),
        "instance_number": _int(r.instance_number), "modality": _text(r.modality),
        "manufacturer": _text(r.manufacturer), "series_description": _text(r.series_description),
        "b_value": r.b_value, "series_key": _text(series_key(r)), "record": json.dumps(payload),
    }


def skipped_row(s: SkippedFile, st: tuple[int, int, int, int]) -> dict[str, Any]:
    row = dict.fromkeys(SCHEMA.names)
    row.update(path=_text(s.path), path_bytes=os.fsencode(s.path), size=st[0], mtime_ns=st[1], ctime_ns=st[2],
               inode=_int(st[3]), status="skipped",
               skip_reason=s.reason, skip_detail=_text(s.detail),
               record=json.dumps({"path": s.path, "reason": s.reason, "detail": s.detail}))
    return row


def record_from_json(text: str) -> InstanceRecord:
    data = json.loads(text)
    for name in _TUPLE_FIELDS:
        if data.get(name) is not None:
            data[name] = tuple(data[name])
    return InstanceRecord(**data)


def skipped_from_json(text: str) -> SkippedFile:
    return SkippedFile(**json.loads(text))
