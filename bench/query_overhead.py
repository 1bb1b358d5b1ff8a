"""Benchmark: ``breastlab query`` read-only (private copy, locked DuckDB) against the old plain connection.

Sorts ``$BREASTLAB_DATA/dcmqa`` once into a temporary folder, then times, in the same run and
the same process, N repetitions of one aggregate query through

1. :func:`breastlab.index.query.run_query` (copy of the index and CSVs into a private folder,
   views in a read-only database, external access off, configuration locked);
2. the baseline: an in-memory DuckDB connection with the same views straight over ``OUT``
   (what ``breastlab query`` did before it was made read-only).

Usage::

    python bench/query_overhead.py [--repeat 20]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from breastlab.core.settings import data_root
from breastlab.index.query import _q, run_query
from breastlab.mri.sorter import sort_exam

SQL = "SELECT label, count(*) AS n FROM series GROUP BY label ORDER BY label"


def baseline(out: Path, sql: str) -> list:
    import duckdb

    con = duckdb.connect()
    parts = sorted((out / "index").glob("part-*.parquet"))
    con.execute(f"CREATE VIEW headers AS SELECT * EXCLUDE (record, path_bytes) "
                f"FROM read_parquet([{', '.join(_q(p) for p in parts)}])")
    for name in ("series", "instances", "skipped"):
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_csv({_q(out / (name + '.csv'))}, header = true)")
    rows = con.execute(sql).fetchall()
    con.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    src = data_root() / "dcmqa"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        sort_exam([src], out_dir=out, progress=False, workers=2)
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        times = {}
        for name, fn in (("baseline", lambda: baseline(out, SQL)), ("read-only", lambda: run_query(out, SQL)[1])):
            fn()  # warm
            began = time.perf_counter()
            for _ in range(args.repeat):
                rows = fn()
            times[name] = (time.perf_counter() - began) / args.repeat
        print(f"OUT: {size / 1e6:.1f} MB; {len(rows)} rows; per query: baseline {times['baseline'] * 1000:.0f} ms, "
              f"read-only {times['read-only'] * 1000:.0f} ms; ratio {times['read-only'] / times['baseline']:.2f}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
