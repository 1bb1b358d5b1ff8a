"""Check: the study-fingerprint query in DuckDB's 128 MB at a 320k-file archive's size (700,000 rows).

The first version aggregated a text of every row per study (``string_agg``) and ran out of
DuckDB's memory limit at 320,000 files; the one in ``index/view.py`` streams hash aggregates.
Prints both on the same synthetic rows. Usage: ``.venv/bin/python bench/fingerprint_memory.py``
"""
import tempfile

import duckdb, time, pyarrow as pa, random
n = 700_000
rng = random.Random(1)
t = pa.table({
  "series_key": pa.array([f"1.2.840.{i // 300}" for i in range(n)]),
  "path_bytes": pa.array([f"/work/bench/out/gen_tree/c{i // 2105:04d}/dcmqa/siemens_xa30/In/14_DWI_dir80_PA/{i:08d}_1.3.12.2.1107.5.2.43.67093.dcm".encode() for i in range(n)], pa.binary()),
  "size": pa.array([rng.randrange(1 << 20) for _ in range(n)], pa.int64()),
  "mtime_ns": pa.array([rng.randrange(1 << 60) for _ in range(n)], pa.int64()),
  "ctime_ns": pa.array([rng.randrange(1 << 60) for _ in range(n)], pa.int64()),
  "inode": pa.array([rng.randrange(1 << 30) for _ in range(n)], pa.int64()),
  "frame_index": pa.array([None] * n, pa.int64()),
  "record": pa.array([None] * n, pa.string()),
})
ss = pa.table({"series_key": pa.array([f"1.2.840.{j}" for j in range(n // 300 + 1)]),
               "study_key": pa.array([f"study{j // 10}" for j in range(n // 300 + 1)])})
old = """SELECT s.study_key, md5(? || s.study_key || string_agg(
                hex(k.path_bytes) || ':' || k.size || ':' || k.mtime_ns || ':' || coalesce(k.ctime_ns, -1) || ':'
                || coalesce(k.inode, -1) || ':' || coalesce(k.frame_index, -1) || ':' || coalesce(k.record, ''),
                ',' ORDER BY k.path_bytes, k.frame_index))
            FROM kept k JOIN series_study s USING (series_key) GROUP BY s.study_key"""
new = """SELECT s.study_key, md5(? || s.study_key || ':' || count(*) || ':' || bit_xor(h) || ':' || sum(h >> 32))
            FROM (SELECT series_key, hash(path_bytes, size, mtime_ns, coalesce(ctime_ns, -1), coalesce(inode, -1),
                                          coalesce(frame_index, -1), coalesce(record, '')) AS h
                  FROM kept) k
            JOIN series_study s USING (series_key) GROUP BY s.study_key"""
for name, sql in (("string_agg (before)", old), ("hash aggregates (after)", new)):
    con = duckdb.connect(config={"memory_limit": "128MB", "threads": 1, "temp_directory": tempfile.mkdtemp(), "preserve_insertion_order": False})
    con.register("kept", t); con.register("series_study", ss)
    t0 = time.perf_counter()
    try:
        rows = con.execute(sql, ["s"]).fetchall()
        print(name, "ok", len(rows), "studies", round(time.perf_counter() - t0, 2), "s")
    except Exception as e:
        print(name, "FAILS:", type(e).__name__, str(e)[:120])
    con.close()
