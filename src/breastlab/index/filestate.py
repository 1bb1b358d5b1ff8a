"""The per-file state of one sort, out of core: walked files, files to read, live index rows.

A sort of a million files must not hold a million Python objects: the files the walk
finds (path and ``stat``), the comparison with the index (which files are new or
changed), and the *live* rows (for each walked file, the newest index part that holds
it) are DuckDB tables in a database file in the journal's temporary folder, under a
memory limit (DuckDB spills beyond it). The process holds one chunk of the walk, one
batch of files to read, or one batch of query results at a time.

A file is *fresh* when the newest part holding its path recorded its current size,
mtime, ctime and inode; *live* rows are those of each walked path in its newest part,
plus the members of a walked archive in the archive's newest part (docs/scale.md).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pyarrow as pa

#: DuckDB's working memory for the sort's queries (it spills to disk beyond that)
MEMORY_LIMIT = "128MB"
#: walked files stat'ed and inserted per chunk (memory: about 200 bytes each)
WALK_CHUNK = 65_536
#: a file's identity when read: (size, mtime_ns, ctime_ns, inode)
Stat = tuple[int, int, int, int]
_WALK_SCHEMA = pa.schema([("path_bytes", pa.binary()), ("size", pa.int64()), ("mtime_ns", pa.int64()),
                          ("ctime_ns", pa.int64()), ("inode", pa.int64())])
_INT64 = 1 << 63


def file_stat(path: str) -> Stat | None:
    """(size, mtime_ns, ctime_ns, inode) of ``path`` (links followed); ``None`` when it cannot be stat'ed.

    Inode numbers at or above 2**63 (some network file systems) are stored wrapped to a signed
    64-bit integer, as the index's columns are.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    ino = st.st_ino
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, ino - (1 << 64) if ino >= _INT64 else ino


def sql_path(path: os.PathLike | str) -> str:
    """A path as the body of a SQL string literal."""
    return os.fspath(path).replace("'", "''")


class FileState:
    """The DuckDB database of one sort's per-file state (see the module docstring)."""

    def __init__(self, folder: Path, *, index_schema: pa.Schema) -> None:
        import duckdb

        self.tmp = Path(tempfile.mkdtemp(prefix=".tmp-view-", dir=folder))
        self.con = duckdb.connect(os.fspath(self.tmp / "state.duckdb"), config={
            "memory_limit": MEMORY_LIMIT, "threads": min(4, os.cpu_count() or 1), "temp_directory": os.fspath(self.tmp / "spill"),
            "preserve_insertion_order": False})
        self._index_schema = index_schema
        self.con.execute("CREATE TABLE walk_raw (path_bytes BLOB, size BIGINT, mtime_ns BIGINT, ctime_ns BIGINT, "
                         "inode BIGINT)")
        self.n_files = 0
        self.n_todo = 0

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------------ the index's parts
    def set_parts(self, parts: Sequence[Path]) -> None:
        """(Re)define ``idx``: every row of ``parts`` with its part's file name in ``part``."""
        if parts:
            files = ", ".join(f"'{sql_path(p)}'" for p in parts)
            self.con.execute(f"CREATE OR REPLACE VIEW idx AS SELECT r.* EXCLUDE (filename), "
                             f"parse_filename(r.filename) AS part FROM read_parquet([{files}], filename = true) r")
        else:
            empty = pa.Table.from_pylist([], schema=self._index_schema).append_column("part", pa.array([], pa.string()))
            self.con.execute("DROP VIEW IF EXISTS idx")
            self.con.register("idx_empty", empty)
            self.con.execute("CREATE OR REPLACE VIEW idx AS SELECT * FROM idx_empty")

    # ------------------------------------------------------------------ walk and plan
    def add_walk(self, files: Iterable[str]) -> None:
        """Stat every file of ``files`` (a stream) into the ``walk`` table, one chunk at a time."""
        paths: list[bytes] = []
        stats: list[Stat | None] = []
        for path in files:
            paths.append(os.fsencode(path))
            stats.append(file_stat(path))
            if len(paths) >= WALK_CHUNK:
                self._insert(paths, stats)
                paths, stats = [], []
        self._insert(paths, stats)
        # a file named twice (a folder and a file inside it) counts once
        self.con.execute("""CREATE OR REPLACE TABLE walk AS SELECT path_bytes, any_value(size) AS size,
                            any_value(mtime_ns) AS mtime_ns, any_value(ctime_ns) AS ctime_ns,
                            any_value(inode) AS inode FROM walk_raw GROUP BY path_bytes""")
        self.con.execute("DROP TABLE walk_raw")
        self.n_files = self.con.execute("SELECT count(*) FROM walk").fetchall()[0][0]

    def _insert(self, paths: list[bytes], stats: list[Stat | None]) -> None:
        if not paths:
            return
        columns = [pa.array(paths, pa.binary())]
        for i in range(4):
            columns.append(pa.array([None if st is None else st[i] for st in stats], pa.int64()))
        chunk = pa.Table.from_arrays(columns, schema=_WALK_SCHEMA)  # noqa: F841 - read by DuckDB by name
        self.con.execute("INSERT INTO walk_raw SELECT * FROM chunk")

    def plan(self) -> int:
        """Fill ``todo``: walked files that are new, changed or could not be stat'ed; returns their number."""
        self.con.execute("""
            CREATE OR REPLACE TABLE todo AS
            WITH known AS (
                SELECT path_bytes, arg_max(struct_pack(size, mtime_ns, ctime_ns, inode), part) AS st
                FROM idx SEMI JOIN walk USING (path_bytes) GROUP BY path_bytes)
            SELECT w.* FROM walk w LEFT JOIN known k USING (path_bytes)
            WHERE k.st IS NULL OR w.size IS NULL
               OR k.st <> struct_pack(size := w.size, mtime_ns := w.mtime_ns, ctime_ns := w.ctime_ns,
                                      inode := w.inode)""")
        self.n_todo = self.con.execute("SELECT count(*) FROM todo").fetchall()[0][0]
        return self.n_todo

    def todo_batches(self, size: int) -> Iterator[list[tuple[str, Stat | None]]]:
        """The files to read in path order, ``size`` at a time, as (path, stat)."""
        reader = self.con.sql("SELECT * FROM todo ORDER BY path_bytes").to_arrow_reader(size)
        pending: list[tuple[str, Stat | None]] = []
        for batch in reader:
            cols = [batch.column(i).to_pylist() for i in range(5)]
            for p, size_, mtime, ctime, ino in zip(*cols):
                pending.append((os.fsdecode(p), None if size_ is None else (size_, mtime, ctime, ino)))
                if len(pending) == size:
                    yield pending
                    pending = []
        if pending:
            yield pending

    # ------------------------------------------------------------------ live rows
    def make_live(self) -> None:
        """``live`` (path_bytes, part): each walked path in its newest part, and the members of a walked
        archive in that archive's part. Call after the last part of the run is committed."""
        self.con.execute("""
            CREATE OR REPLACE TABLE live AS
            WITH top AS (SELECT path_bytes, max(part) AS part FROM idx SEMI JOIN walk USING (path_bytes)
                         GROUP BY path_bytes)
            SELECT path_bytes, part FROM top
            UNION
            SELECT r.path_bytes, r.part FROM idx r JOIN top a ON r.archive_bytes = a.path_bytes AND r.part = a.part""")
        self.con.execute("""CREATE OR REPLACE VIEW live_rows AS SELECT r.* FROM idx r
                            JOIN live l ON r.path_bytes = l.path_bytes AND r.part = l.part""")

    def stale(self) -> bool:
        """Does any part hold a row that is not live (a deleted, changed or superseded file)?"""
        return bool(self.con.execute("""SELECT EXISTS (SELECT 1 FROM idx r ANTI JOIN live l
                                        ON r.path_bytes = l.path_bytes AND r.part = l.part)""").fetchall()[0][0])

    def repoint_live(self, part: str) -> None:
        """Every live row is now in ``part`` (after compaction)."""
        self.con.execute("UPDATE live SET part = ?", [part])
