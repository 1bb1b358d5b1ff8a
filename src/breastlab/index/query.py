"""``breastlab query OUT "SQL"``: DuckDB over a sort's header index and outputs.

Views (docs/scale.md): ``headers`` (the index: one row per image record or skipped
file), ``series`` (series.csv), ``instances`` (instances.csv), ``skipped`` (skipped.csv).

>>> rows = run_query("sorted", "SELECT label, count(*) FROM series GROUP BY label")  # doctest: +SKIP
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _q(path: Path) -> str:
    return "'" + os.fspath(path).replace("'", "''") + "'"


def connect(out_dir: str | os.PathLike):  # noqa: ANN201 - a duckdb connection
    """A read-only DuckDB connection with the views of ``out_dir``; ``ValueError`` if it is no sort output."""
    import duckdb

    out = Path(out_dir)
    parts = sorted((out / "index").glob("part-*.parquet"))
    if not (out / "series.csv").is_file():
        raise ValueError(f"{out} holds no series.csv: not the output folder of breastlab sort")
    con = duckdb.connect(config={"memory_limit": "1GB"})
    if parts:
        con.execute(f"CREATE VIEW headers AS SELECT * EXCLUDE (record, path_bytes) "
                    f"FROM read_parquet([{', '.join(_q(p) for p in parts)}])")
    for name in ("series", "instances", "skipped"):
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_csv({_q(out / (name + '.csv'))}, header = true, "
                    f"all_varchar = false, sample_size = -1)")
    return con


def run_query(out_dir: str | os.PathLike, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """(column names, rows) of ``sql`` over the views of ``out_dir``."""
    con = connect(out_dir)
    try:
        cur = con.execute(sql)
        return [d[0] for d in cur.description or []], cur.fetchall()
    finally:
        con.close()
