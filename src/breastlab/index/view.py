"""Reading the header index for a sort: live rows, duplicates, studies in order (DuckDB).

DuckDB works out of core (``memory_limit``, spilling to the journal folder), so the
sorting process holds one study at a time, whatever the size of the archive.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from breastlab.dicom.records import InstanceRecord, SkippedFile
from breastlab.index.records_io import record_from_json, skipped_from_json
from breastlab.index.store import HeaderIndex, _sql_path

#: DuckDB's working memory for the sort's queries (it spills to disk beyond that)
MEMORY_LIMIT = "256MB"
STUDY_BATCH_ROWS = 2048


class _IndexView:
    """The live rows of a :class:`HeaderIndex` as SQL views, with the queries the sorter needs."""

    def __init__(self, index: HeaderIndex) -> None:
        self.index = index

    def __enter__(self) -> _IndexView:
        import duckdb

        self.tmp = Path(tempfile.mkdtemp(prefix=".tmp-view-", dir=self.index.journal))
        self.con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "threads": 1,
                                          "temp_directory": os.fspath(self.tmp / "spill"),
                                          "preserve_insertion_order": False})
        live = self.index.live_table()  # noqa: F841 - read by DuckDB by name
        self.con.register("live", live)
        parts = [os.fspath(p) for p in self.index.parts()]
        if parts:
            files = ", ".join(f"'{_sql_path(Path(p))}'" for p in parts)
            self.con.execute(
                f"CREATE VIEW live_rows AS SELECT r.* EXCLUDE (filename), r.filename AS part "
                f"FROM read_parquet([{files}], filename = true) r "
                f"JOIN live l ON r.path_bytes = l.path_bytes AND parse_filename(r.filename) = l.part")
        else:
            from breastlab.index.records_io import SCHEMA

            import pyarrow as pa

            empty = pa.Table.from_pylist([], schema=SCHEMA).append_column("part", pa.array([], pa.string()))
            self.con.register("live_rows", empty)
        self._duplicates()
        return self

    def __exit__(self, *exc: object) -> None:
        self.con.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

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
        self.n_records = self.con.execute("SELECT count(*) FROM kept").fetchone()[0]

    def skipped(self, walk_skipped: list[SkippedFile]) -> list[SkippedFile]:
        """Every skipped entry: met while walking, read and skipped, duplicates; sorted by path."""
        out = list(walk_skipped)
        for (text,) in self.con.execute("SELECT record FROM live_rows WHERE status = 'skipped'").fetchall():
            out.append(skipped_from_json(text))
        out.sort(key=lambda s: s.path)
        out += self.dropped
        out.sort(key=lambda s: s.path)
        return out

    def record_paths(self) -> Iterator[str]:
        for (p,) in self.con.execute("SELECT DISTINCT path_bytes FROM kept").fetchall():
            yield os.fsdecode(p)

    # ------------------------------------------------------------------ studies
    def studies(self) -> Iterator[list[InstanceRecord]]:
        """The kept records, one study at a time, in (StudyInstanceUID or "") order.

        A series belongs to the study most of its records name (ties: the first record
        in instance order), as :func:`breastlab.mri.grouping.group_image_sets` decides.
        """
        import pyarrow.parquet as pq

        sorted_file = self.tmp / "by_study.parquet"
        self.con.execute(f"""
            COPY (
              WITH counts AS (
                SELECT series_key, study_uid, count(*) AS n,
                       min(struct_pack(i := coalesce(instance_number, 1073741824), f := coalesce(frame_index, -1),
                                       p := path_bytes)) AS first
                FROM kept GROUP BY series_key, study_uid),
              series_study AS (
                SELECT series_key, arg_min_null(study_uid, struct_pack(n := -n, first := first)) AS study
                FROM counts GROUP BY series_key)
              SELECT coalesce(s.study, '') AS study_key, k.record
              FROM kept k JOIN series_study s USING (series_key)
              ORDER BY study_key, k.path_bytes, coalesce(k.frame_index, -1)
            ) TO '{_sql_path(sorted_file)}' (FORMAT parquet, ROW_GROUP_SIZE {STUDY_BATCH_ROWS})""")
        current: str | None = None
        records: list[InstanceRecord] = []
        pf = pq.ParquetFile(sorted_file)
        for batch in pf.iter_batches(batch_size=STUDY_BATCH_ROWS):
            keys = batch.column(0).to_pylist()
            texts = batch.column(1).to_pylist()
            for key, text in zip(keys, texts):
                if key != current and records:
                    yield _in_path_order(records)
                    records = []
                current = key
                records.append(record_from_json(text))
        if records:
            yield _in_path_order(records)


def _in_path_order(records: list[InstanceRecord]) -> list[InstanceRecord]:
    """Scan order: by path (as ``str``), frames of a file in order (the sort is stable)."""
    return sorted(records, key=lambda r: r.path)
