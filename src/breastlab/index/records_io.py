"""InstanceRecord / SkippedFile ⇄ index columns (one Parquet row per image record or skipped file).

Typed columns, one per :class:`InstanceRecord` field (derived from the dataclass: a field
added there gets its column here without further code), so a commit is column building
rather than a JSON text of every record. The exact path is ``path_bytes``
(``os.fsencode``). The ``record`` column is null except for the rare row typed columns
cannot hold exactly (text that is not UTF-8, an integer outside int64, a field of a type
with no column): it then holds the whole record as JSON, which wins when reading.
"""
from __future__ import annotations

import json
import os
from dataclasses import fields
from operator import attrgetter
from typing import Any

import pyarrow as pa

from breastlab.dicom.records import InstanceRecord, SkippedFile, series_key

_INT64 = (-(1 << 63), (1 << 63) - 1)

#: bookkeeping columns of every part, then one column per record field (docs/scale.md)
_BASE = [
    ("path", pa.string()),          # display path (bytes that are not UTF-8 shown as U+FFFD)
    ("path_bytes", pa.binary()),    # exact path (os.fsencode); the key of the index
    ("size", pa.int64()),           # st_size when read
    ("mtime_ns", pa.int64()),       # st_mtime_ns when read
    ("ctime_ns", pa.int64()),       # st_ctime_ns when read (an edit that restores size and mtime changes it)
    ("inode", pa.int64()),          # st_ino when read (a file replaced by another)
    ("status", pa.string()),        # "record", "skipped", or "archive" (an archive whose members follow)
    ("archive_bytes", pa.binary()), # the archive a member was read from (null: a plain file)
    ("skip_reason", pa.string()),
    ("skip_detail", pa.string()),
    ("series_key", pa.string()),    # SeriesInstanceUID, or a stand-in when it is missing
    ("record", pa.string()),        # null, or the exact record as JSON when typed columns cannot hold it
]
_TYPES = {
    "str | None": ("str", pa.string()),
    "str": ("str", pa.string()),
    "int | None": ("int", pa.int64()),
    "int": ("int", pa.int64()),
    "float | None": ("float", pa.float64()),
    "float": ("float", pa.float64()),
    "bool": ("bool", pa.bool_()),
    "bool | None": ("bool", pa.bool_()),
    "tuple[str, ...]": ("strs", pa.list_(pa.string())),
    "tuple[str, ...] | None": ("strs", pa.list_(pa.string())),
    "tuple[float, ...]": ("floats", pa.list_(pa.float64())),
    "tuple[float, ...] | None": ("floats", pa.list_(pa.float64())),
    "dict[str, str]": ("map", pa.map_(pa.string(), pa.string())),
}
#: record fields with a column, in dataclass order (``path`` is ``path_bytes``)
FIELDS = [f.name for f in fields(InstanceRecord) if f.name != "path"]
KINDS = {f.name: _TYPES.get(str(f.type), ("json", pa.string()))[0] for f in fields(InstanceRecord)}
SCHEMA = pa.schema(_BASE + [(f.name, _TYPES.get(str(f.type), ("json", pa.string()))[1])
                            for f in fields(InstanceRecord) if f.name != "path"])
_TUPLE_FIELDS = {name for name, kind in KINDS.items() if kind in ("strs", "floats")}
_get_fields = attrgetter(*FIELDS)
_PHI = [FIELDS.index("patient_id"), FIELDS.index("patient_name")]
_RECORD = [name for name, _ in _BASE].index("record")
assert fields(InstanceRecord)[0].name == "path"  # records_from_table builds records positionally


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    return value.encode("utf-8", "replace").decode("utf-8") if not value.isascii() else value


def _int(value: int | None) -> int | None:
    return value if value is not None and _INT64[0] <= value <= _INT64[1] else None


def _utf8(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _fits(values: tuple) -> bool:
    """Can the typed columns hold these field values exactly?"""
    for name, value in zip(FIELDS, values):
        if value is None:
            continue
        kind = KINDS[name]
        if kind == "str":
            if not _utf8(value):
                return False
        elif kind == "int":
            if not _INT64[0] <= value <= _INT64[1]:
                return False
        elif kind == "strs":
            if not all(_utf8(v) for v in value):
                return False
        elif kind == "map":
            if not all(_utf8(k) and _utf8(v) for k, v in value.items()):
                return False
        elif kind == "json":
            return False
    return True


def _clean(name: str, value: Any) -> Any:
    """A value typed columns can hold (display text, out-of-range integers dropped)."""
    if value is None:
        return None
    kind = KINDS[name]
    if kind == "str":
        return _text(value)
    if kind == "int":
        return _int(value)
    if kind == "strs":
        return tuple(_text(v) for v in value)
    if kind == "map":
        return {_text(k): _text(v) for k, v in value.items()}
    if kind == "json":
        return json.dumps(value, default=str)
    return value


class Columns:
    """Rows of one index part, collected as tuples in :data:`SCHEMA` order.

    Optimistic: the columns are built as they are; only when Arrow refuses one (text that
    is not UTF-8, an integer outside int64: rare) are the record rows checked one by one
    and the odd ones given their exact JSON.
    """

    def __init__(self) -> None:
        self.rows: list[tuple] = []
        self._records: dict[int, InstanceRecord] = {}  # row number -> record (for the exact JSON)
        self._phi: dict[int, bool] = {}

    def record(self, r: InstanceRecord, st: tuple[int, int, int, int], archive: bytes | None, *,
               keep_phi: bool = False) -> None:
        values = _get_fields(r)
        if not keep_phi:  # patient name and ID never reach the index unless --keep-phi
            values = list(values)
            for i in _PHI:
                values[i] = None
            values = tuple(values)
        self._records[len(self.rows)] = r
        self._phi[len(self.rows)] = keep_phi
        self.rows.append((_text(r.path), os.fsencode(r.path), st[0], st[1], st[2], _int(st[3]), "record", archive,
                          None, None, _text(series_key(r)), None) + values)

    def _exact(self, i: int, row: tuple) -> tuple:
        values = row[len(_BASE):]
        if _fits(values):
            return row
        r = self._records[i]
        exact = {f.name: getattr(r, f.name) for f in fields(InstanceRecord)}
        if not self._phi[i]:
            exact.update(patient_id=None, patient_name=None)
        clean = tuple(_clean(name, v) for name, v in zip(FIELDS, values))
        return row[:_RECORD] + (json.dumps(exact),) + clean

    def skipped(self, s: SkippedFile, st: tuple[int, int, int, int], archive: bytes | None) -> None:
        exact = _utf8(s.reason) and _utf8(s.detail)
        payload = None if exact else json.dumps({"path": s.path, "reason": s.reason, "detail": s.detail})
        self.rows.append((_text(s.path), os.fsencode(s.path), st[0], st[1], st[2], _int(st[3]), "skipped", archive,
                          _text(s.reason), _text(s.detail), None, payload) + (None,) * len(FIELDS))

    def archive(self, path: str, st: tuple[int, int, int, int]) -> None:
        key = os.fsencode(path)
        self.rows.append((_text(path), key, st[0], st[1], st[2], _int(st[3]), "archive", key, None, None, None, None)
                         + (None,) * len(FIELDS))

    def table(self, schema: pa.Schema = SCHEMA) -> pa.Table:
        if not self.rows:
            return pa.Table.from_pylist([], schema=schema)
        try:
            return _arrays(self.rows, schema)
        except (pa.ArrowException, UnicodeError, OverflowError, ValueError, TypeError):
            rows = [self._exact(i, row) if i in self._records else row for i, row in enumerate(self.rows)]
            return _arrays(rows, schema)


def _arrays(rows: list[tuple], schema: pa.Schema) -> pa.Table:
    columns = list(zip(*rows))
    return pa.Table.from_arrays([pa.array(col, type=field.type) for col, field in zip(columns, schema)],
                                schema=schema)


def records_from_table(table: pa.Table) -> list[InstanceRecord]:
    """The records of index rows (``path_bytes``, ``record`` and the field columns)."""
    paths = [os.fsdecode(p) for p in table.column("path_bytes").to_pylist()]
    exact = table.column("record").to_pylist()
    cols = [table.column(name).to_pylist() for name in FIELDS]
    tuples = [i for i, name in enumerate(FIELDS) if name in _TUPLE_FIELDS]
    maps = [i for i, name in enumerate(FIELDS) if KINDS[name] == "map"]
    out = []
    for i, values in enumerate(zip(*cols)):
        if exact[i] is not None:
            out.append(record_from_json(exact[i]))
            continue
        values = list(values)
        for j in tuples:
            if values[j] is not None:
                values[j] = tuple(values[j])
        for j in maps:
            values[j] = dict(values[j]) if values[j] is not None else {}
        out.append(InstanceRecord(paths[i], *values))
    return out


def skipped_from_row(path_bytes: bytes, reason: str, detail: str | None, record: str | None) -> SkippedFile:
    if record is not None:
        return skipped_from_json(record)
    return SkippedFile(os.fsdecode(path_bytes), reason, detail or "")


def record_from_json(text: str) -> InstanceRecord:
    data = json.loads(text)
    for name in _TUPLE_FIELDS:
        if data.get(name) is not None:
            data[name] = tuple(data[name])
    return InstanceRecord(**data)


def skipped_from_json(text: str) -> SkippedFile:
    return SkippedFile(**json.loads(text))
