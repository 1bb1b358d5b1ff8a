"""Reading the header index for a sort: live rows, duplicates, studies in order (DuckDB).

DuckDB works out of core (``memory_limit``, spilling to the journal folder), so the
sorting process holds one study at a time, whatever the size of the archive.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from breastlab.dicom.records import InstanceRecord, SkippedFile
from breastlab.index.records_io import FIELDS, records_from_table, skipped_from_row
from breastlab.index.store import HeaderIndex

#: records per spill range of the study pass (memory: about this many records, or the largest study)
BUCKET_RECORDS = 8192
STUDY_BATCH_ROWS = 2048


class _IndexView:
    """The live rows of a :class:`HeaderIndex` as SQL views, with the queries the sorter needs."""

    def __init__(self, index: HeaderIndex) -> None:
        self.index = index

    def __enter__(self) -> _IndexView:
        state = self.index.state
        assert state is not None, "the index must be open and refreshed"
        self.con = state.con  # live_rows: breastlab.index.filestate
        self.tmp = state.tmp
        self._duplicates()
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.tmp / "buckets", ignore_errors=True)

    # ------------------------------------------------------------------ duplicates
    def _duplicates(self) -> None:
        """Files repeating a SOP Instance UID: the first path (in sorted order) is kept, as ``deduplicate``."""
        rows = self.con.execute("""
            WITH first AS (
                SELECT path_bytes, arg_min(sop_instance_uid, coalesce(frame_index, -1)) AS uid
                FROM live_rows WHERE status = 'record' GROUP BY path_bytes),
            dup AS (SELECT uid FROM first WHERE uid IS NOT NULL AND uid <> '' GROUP BY uid HAVING count(*) > 1)
            SELECT f.path_bytes, f.uid FROM first f JOIN dup USING (uid)""").fetchall()
        by_uid: dict[str, list[str]] = {}
        for path_bytes, uid in rows:
            by_uid.setdefault(uid, []).append(os.fsdecode(path_bytes))
        self.dropped: list[SkippedFile] = []
        for paths in by_uid.values():
            paths.sort()
            self.dropped += [SkippedFile(p, "duplicate", f"same SOP Instance UID as {paths[0]} (kept)")
                             for p in paths[1:]]
        self.dropped.sort(key=lambda s: s.path)
        import pyarrow as pa

        self.con.register("dropped", pa.table({"path_bytes": pa.array([os.fsencode(s.path) for s in self.dropped],
                                                                     pa.binary())}))
        self.con.execute("""CREATE TEMP VIEW kept AS SELECT * FROM live_rows WHERE status = 'record'
                            AND path_bytes NOT IN (SELECT path_bytes FROM dropped)""")
        self.n_records = self.con.execute("SELECT count(*) FROM kept").fetchall()[0][0]

    def skipped(self, walk_skipped: list[SkippedFile]) -> list[SkippedFile]:
        """Every skipped entry: met while walking, read and skipped, duplicates; sorted by path."""
        out = list(walk_skipped)
        for row in self.con.execute("SELECT path_bytes, skip_reason, skip_detail, record FROM live_rows "
                                    "WHERE status = 'skipped'").fetchall():
            out.append(skipped_from_row(*row))
        out.sort(key=lambda s: s.path)
        out += self.dropped
        out.sort(key=lambda s: s.path)
        return out

    def data_fingerprint(self) -> str:
        """A digest of the kept images' file names, sizes and frames, for provenance.

        Order-independent streaming aggregates (count, XOR and sum of a 64-bit MD5 of each
        row's file name, size and frame) in one pass over the index: no path list in memory,
        no ``stat`` of every file again (:func:`breastlab.core.provenance.fingerprint_files`
        does both; the in-memory sort still uses it).
        """
        import hashlib

        row = self.con.execute("""
            SELECT count(*), coalesce(bit_xor(h), 0), coalesce(sum(h::HUGEINT), 0) FROM (
                SELECT md5_number_lower(regexp_extract(CAST(path_bytes AS VARCHAR), '[^/]*$') || ':' || size
                                        || ':' || coalesce(frame_index, -1)) AS h FROM kept)""").fetchall()[0]
        return hashlib.sha256(f"breastlab-records/1:{row[0]}:{row[1]}:{row[2]}".encode()).hexdigest()

    # ------------------------------------------------------------------ studies
    def _series_study(self) -> None:
        """series_key -> study_key, once: a series belongs to the study most of its records name
        (ties: the first record in instance order), as ``group_image_sets`` decides."""
        if getattr(self, "_assigned", False):
            return
        self.con.execute("""
            CREATE TEMP TABLE series_study AS
            WITH counts AS (
                SELECT series_key, study_uid, count(*) AS n,
                       min(struct_pack(i := coalesce(instance_number, 1073741824), f := coalesce(frame_index, -1),
                                       p := path_bytes)) AS first
                FROM kept GROUP BY series_key, study_uid)
            SELECT series_key, coalesce(arg_min_null(study_uid, struct_pack(n := -n, first := first)), '') AS study_key
            FROM counts GROUP BY series_key""")
        self._assigned = True

    def study_fingerprints(self, settings: str) -> dict[str, str]:
        """study_key -> a digest of its kept rows' identities (path, size, mtime, ctime, inode, frame)
        and ``settings``: equal digests, equal records, equal output rows (docs/scale.md)."""
        self._series_study()
        # streaming aggregates (constant memory per study, whatever its size): the count, the XOR and
        # the sum of a 64-bit hash of each row's identity
        rows = self.con.execute("""
            SELECT s.study_key, md5(? || s.study_key || ':' || count(*) || ':' || bit_xor(h) || ':' || sum(h >> 32))
            FROM (SELECT series_key, hash(path_bytes, size, mtime_ns, coalesce(ctime_ns, -1), coalesce(inode, -1),
                                          coalesce(frame_index, -1), coalesce(record, '')) AS h
                  FROM kept) k
            JOIN series_study s USING (series_key) GROUP BY s.study_key""", [settings]).fetchall()
        return dict(rows)

    def studies(self) -> Iterator[list[InstanceRecord]]:
        """The kept records, one study at a time, in (StudyInstanceUID or "") order."""
        for _key, records in self.studies_keyed():
            yield records  # type: ignore[misc] - nothing skipped: never None

    def studies_keyed(self, skip: frozenset[str] | set[str] = frozenset()
                      ) -> Iterator[tuple[str, list[InstanceRecord] | None]]:
        """(study_key, records) in study order; ``None`` instead of the records of studies in ``skip``.

        Out of core without a large sort: the studies to read are cut into consecutive
        ranges of about :data:`BUCKET_RECORDS` records, one streaming pass writes each
        record to its range's spill file, then the ranges are read back one at a time.
        """
        self._series_study()
        sizes = dict(self.con.execute("""SELECT s.study_key, count(*) FROM kept k JOIN series_study s
                                         USING (series_key) GROUP BY s.study_key""").fetchall())
        order = sorted(sizes)
        bucket_of: dict[str, int] = {}
        bucket, filled = 0, 0
        for key in order:
            if key in skip:
                continue
            if filled and filled + sizes[key] > BUCKET_RECORDS:
                bucket, filled = bucket + 1, 0
            bucket_of[key] = bucket
            filled += sizes[key]
        if not order:
            return
        if bucket_of:
            self._spill(bucket_of)
        loaded, by_study = -1, {}
        for key in order:
            if key not in bucket_of:
                yield key, None
                continue
            if bucket_of[key] != loaded:
                loaded = bucket_of[key]
                by_study = self._read_bucket(loaded)
            yield key, _in_path_order(by_study.pop(key))

    def _spill(self, bucket_of: dict[str, int]) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        self.con.register("buckets", pa.table({"study_key": pa.array(list(bucket_of), pa.string()),
                                               "bucket": pa.array(list(bucket_of.values()), pa.int64())}))
        spill = self.tmp / "buckets"
        spill.mkdir()
        columns = ", ".join(f'k."{name}"' for name in ("path_bytes", "record", *FIELDS))
        writers: dict[int, pa.ipc.RecordBatchStreamWriter] = {}
        handles: dict[int, object] = {}
        try:  # one streaming pass: each row to its range's spill file (Arrow IPC, typed columns)
            reader = self.con.sql(f"""SELECT b.bucket, s.study_key, {columns} FROM kept k
                                      JOIN series_study s USING (series_key) JOIN buckets b USING (study_key)
                                      """).to_arrow_reader(STUDY_BATCH_ROWS)
            for batch in reader:
                buckets = batch.column(0)
                distinct = pc.unique(buckets).to_pylist()
                for b in distinct:
                    part = (batch if len(distinct) == 1 else batch.filter(pc.equal(buckets, b))).drop_columns(
                        ["bucket"])
                    writer = writers.get(b)
                    if writer is None:
                        handles[b] = open(spill / f"{b:06d}.arrow", "wb")
                        writer = writers[b] = pa.ipc.new_stream(handles[b], part.schema)
                    writer.write(part)
        finally:
            for writer in writers.values():
                writer.close()
            for fh in handles.values():
                fh.close()

    def _read_bucket(self, b: int) -> dict[str, list[InstanceRecord]]:
        import pyarrow as pa

        path = self.tmp / "buckets" / f"{b:06d}.arrow"
        with pa.ipc.open_stream(path) as stream:
            table = stream.read_all()
        path.unlink()
        by_study: dict[str, list[InstanceRecord]] = {}
        for key, record in zip(table.column("study_key").to_pylist(), records_from_table(table)):
            by_study.setdefault(key, []).append(record)
        return by_study


def _in_path_order(records: list[InstanceRecord]) -> list[InstanceRecord]:
    """Scan order: by path (as ``str``), then frame."""
    return sorted(records, key=lambda r: (r.path, -1 if r.frame_index is None else r.frame_index))
