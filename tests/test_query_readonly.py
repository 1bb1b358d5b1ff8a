"""`breastlab query` is read-only: no statement writes, attaches, installs, loads or reaches a network."""
from __future__ import annotations

import csv

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from breastlab.index.query import QueryRefused, run_query


@pytest.fixture
def out(tmp_path):
    out = tmp_path / "out"
    (out / "index").mkdir(parents=True)
    with open(out / "series.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["series_uid", "label", "series_description"])
        for i in range(30):
            w.writerow([f"1.2.{i}", "DCE" if i % 2 else "T2", "ax\x1b[31mred" if i == 0 else f"s{i}"])
    for name in ("instances", "skipped"):
        (out / f"{name}.csv").write_text("path,reason\n/a,x\n")
    (out / "provenance.json").write_text("{}\n")
    pq.write_table(pa.table({"path": ["/a"], "status": ["record"], "record": ["{}"], "path_bytes": [b"/a"]}),
                   out / "index" / "part-000000.parquet")
    return out


def snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_select_works_over_all_views(out):
    cols, rows, more = run_query(out, "SELECT label, count(*) AS n FROM series GROUP BY label ORDER BY label")
    assert cols == ["label", "n"] and rows == [("DCE", 15), ("T2", 15)] and not more
    assert run_query(out, "SELECT count(*) FROM headers")[1] == [(1,)]


@pytest.mark.parametrize("sql", [
    "COPY (SELECT 1) TO '{out}/series.csv'",
    "COPY series TO '{out}/provenance.json' (FORMAT json)",
    "COPY (SELECT * FROM headers) TO '{out}/index/part-999999.parquet' (FORMAT parquet)",
    "ATTACH '{out}/evil.duckdb' AS e",
    "CREATE TABLE t AS SELECT 1",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SELECT 1; COPY (SELECT 1) TO '{out}/x.csv'",
    "PRAGMA enable_profiling",
])
def test_writing_statements_are_refused_and_out_is_unchanged(out, sql):
    before = snapshot(out)
    with pytest.raises(QueryRefused, match="refused"):
        run_query(out, sql.format(out=out))
    assert snapshot(out) == before


@pytest.mark.parametrize("sql", ["SELECT * FROM read_csv('/etc/passwd')",
                                 "SELECT * FROM read_text('{out}/provenance.json')",
                                 "SELECT * FROM 'http://127.0.0.1:9/x.csv'"])
def test_no_file_or_url_outside_the_private_copy(out, sql):
    import duckdb

    with pytest.raises(duckdb.Error, match="(?i)permission|disabled"):
        run_query(out, sql.format(out=out))


def test_row_limit_and_message(out, tmp_path):
    from cli_helpers import invoke

    cols, rows, more = run_query(out, "SELECT * FROM series", max_rows=10)
    assert len(rows) == 10 and more
    res = invoke(["query", out, "SELECT * FROM series", "--max-rows", "5"])
    assert res.exit_code == 0
    assert "only the first 5 rows" in res.output


def test_terminal_output_is_stripped_of_control_characters(out):
    from breastlab.cli.query_cmd import for_terminal

    cols, rows, _ = run_query(out, "SELECT series_description, 1 AS one FROM series WHERE series_uid = '1.2.0'")
    assert "\x1b" in rows[0][0]  # the data holds it (CSV to a pipe stays verbatim)...
    _, shown = for_terminal(cols, rows)
    assert "\x1b" not in shown[0][0] and shown[0][1] == 1  # ...a terminal never sees it


def test_refused_query_is_one_line_exit_2(out):
    from cli_helpers import invoke

    res = invoke(["query", out, f"COPY series TO '{out}/series.csv'"], ok=False)
    assert res.exit_code == 2 and "refused a COPY statement" in res.output
    assert "Traceback" not in res.output
