"""Index rows as typed columns (issue 19): every record comes back exactly, odd ones included."""
from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq

from breastlab.dicom.records import InstanceRecord, SkippedFile
from breastlab.index.records_io import SCHEMA, Columns, records_from_table, skipped_from_row

ST = (10, 20, 30, 40)


def _roundtrip(tmp_path, cols: Columns) -> pa.Table:
    pq.write_table(cols.table(), tmp_path / "part.parquet")
    return pq.read_table(tmp_path / "part.parquet")


def test_records_round_trip_exactly(tmp_path):
    plain = InstanceRecord(path="/a/b.dcm", frame_index=3, study_uid="1.2", series_number=7, image_type=("ORIGINAL",),
                           pixel_spacing=(0.5, 0.25), b_value=800.0, is_derived_trace=True,
                           vendor={"(2001,1004)": "I"}, patient_id="PID", manufacturer="GE")
    odd_path = os.fsdecode(b"/a/\xff\xfe.dcm")  # not UTF-8: surrogate-escaped
    huge = InstanceRecord(path=odd_path, instance_number=1 << 70, series_description="caf\u00e9")
    empty = InstanceRecord(path="/c.dcm")
    cols = Columns()
    for r in (plain, huge, empty):
        cols.record(r, ST, None, keep_phi=True)
    table = _roundtrip(tmp_path, cols)
    assert table.schema.names == SCHEMA.names
    assert table.column("record").to_pylist()[0] is None  # typed columns, no JSON, for an ordinary record
    assert table.column("record").to_pylist()[1] is not None  # the odd one keeps its exact JSON
    assert records_from_table(table) == [plain, huge, empty]
    assert [r.vendor for r in records_from_table(table)] == [plain.vendor, {}, {}]


def test_patient_identity_is_dropped_without_keep_phi(tmp_path):
    cols = Columns()
    cols.record(InstanceRecord(path="/a.dcm", patient_id="PID", patient_name="DOE^J"), ST, None)
    cols.record(InstanceRecord(path="/b.dcm", patient_id="PID", instance_number=1 << 70), ST, None)
    table = _roundtrip(tmp_path, cols)
    assert table.column("patient_id").to_pylist() == [None, None]
    assert all(r.patient_id is None and r.patient_name is None for r in records_from_table(table))


def test_skipped_rows_round_trip(tmp_path):
    odd = SkippedFile(os.fsdecode(b"/x/\xff"), "corrupt", "bad " + os.fsdecode(b"\xfe"))
    plain = SkippedFile("/x/y", "not-dicom", "no DICM")
    cols = Columns()
    cols.skipped(odd, ST, None)
    cols.skipped(plain, ST, b"/x/archive.zip")
    cols.archive("/x/archive.zip", ST)
    table = _roundtrip(tmp_path, cols).to_pylist()
    assert [r["status"] for r in table] == ["skipped", "skipped", "archive"]
    got = [skipped_from_row(r["path_bytes"], r["skip_reason"], r["skip_detail"], r["record"]) for r in table[:2]]
    assert got == [odd, plain]
    assert table[0]["ctime_ns"] == 30 and table[0]["inode"] == 40
