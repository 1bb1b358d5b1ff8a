"""``breastlab query OUT "SQL"``: DuckDB over a sort's header index and outputs, read-only.

Views (docs/scale.md): ``headers`` (the index: one row per image record or skipped
file), ``series`` (series.csv), ``instances`` (instances.csv), ``skipped`` (skipped.csv).

The query never touches ``OUT``: the files are copied into a private temporary folder
(mode 0700), the views live in a DuckDB database there, and the query runs on a
**read-only** connection to it with DuckDB's own guards set before the SQL is seen:
``enable_external_access = false`` with ``allowed_directories`` = the private folder only
(no other file, no URL), ``autoinstall/autoload_known_extensions = false``,
``allow_community_extensions = false`` and ``lock_configuration = true`` (the SQL cannot
undo them). Only ``SELECT`` (``WITH``, ``FROM``, ``VALUES``, ``DESCRIBE``, ``SUMMARIZE``)
and ``EXPLAIN`` statements run: ``COPY``, ``ATTACH``, ``INSTALL``, ``LOAD``, ``CREATE``,
``SET``, ``PRAGMA`` ... are refused before execution.

>>> rows = run_query("sorted", "SELECT label, count(*) FROM series GROUP BY label")  # doctest: +SKIP
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from breastlab.core.errors import UsageError

#: rows returned at most (``run_query(max_rows=...)``); the CLI says when the limit is hit
DEFAULT_MAX_ROWS = 100_000
VIEWS = ("series", "instances", "skipped")


class QueryRefused(UsageError):
    """The SQL is not a read-only query (one line, names the statement type)."""


def _q(path: Path) -> str:
    return "'" + os.fspath(path).replace("'", "''") + "'"


def _private_copy(out: Path, tmp: Path) -> tuple[list[Path], dict[str, Path]]:
    """Index parts and the CSV outputs of ``out`` copied into ``tmp`` (regular files only)."""
    parts: list[Path] = []
    index = out / "index"
    if index.is_dir():
        for i, p in enumerate(sorted(index.glob("part-*.parquet"))):
            if p.is_file() and not p.is_symlink():
                dst = tmp / f"part-{i:06d}.parquet"
                shutil.copyfile(p, dst)
                parts.append(dst)
    csvs = {}
    for name in VIEWS:
        src = out / f"{name}.csv"
        if src.is_file():
            csvs[name] = tmp / f"{name}.csv"
            shutil.copyfile(src, csvs[name])
    return parts, csvs


def _build(db: Path, parts: list[Path], csvs: dict[str, Path]) -> None:
    import duckdb

    con = duckdb.connect(os.fspath(db), config={"autoinstall_known_extensions": False,
                                                "autoload_known_extensions": False})
    try:
        if parts:
            con.execute(f"CREATE VIEW headers AS SELECT * EXCLUDE (record, path_bytes) "
                        f"FROM read_parquet([{', '.join(_q(p) for p in parts)}])")
        for name, path in csvs.items():
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_csv({_q(path)}, header = true, "
                        f"all_varchar = false, sample_size = -1)")
    finally:
        con.close()


def _locked(db: Path, tmp: Path):  # noqa: ANN202 - a duckdb connection
    """A read-only connection that can reach nothing but ``tmp`` and cannot change that."""
    import duckdb

    con = duckdb.connect(os.fspath(db), read_only=True, config={
        "autoinstall_known_extensions": False, "autoload_known_extensions": False,
        "allow_community_extensions": False, "memory_limit": "1GB", "threads": 2})
    con.execute(f"SET allowed_directories = [{_q(tmp)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def check_read_only(con: Any, sql: str) -> None:
    """Raise :class:`QueryRefused` unless every statement of ``sql`` only reads."""
    import duckdb

    allowed = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
    statements = con.extract_statements(sql)
    if not statements:
        raise QueryRefused("no SQL statement given")
    for st in statements:
        if st.type not in allowed:
            kind = str(st.type).rsplit(".", 1)[-1]
            raise QueryRefused(f"only read-only queries (SELECT, EXPLAIN) are run; refused a {kind} statement")


def run_query(out_dir: str | os.PathLike, sql: str, *, max_rows: int = DEFAULT_MAX_ROWS
              ) -> tuple[list[str], list[tuple[Any, ...]], bool]:
    """(column names, at most ``max_rows`` rows, whether rows were left out) of ``sql`` over ``out_dir``.

    Raises:
        ValueError: ``out_dir`` is no sort output, or the SQL is refused (:class:`QueryRefused`).
    """
    out = Path(out_dir)
    if not (out / "series.csv").is_file():
        raise ValueError(f"{out} holds no series.csv: not the output folder of breastlab sort")
    tmp = Path(tempfile.mkdtemp(prefix="breastlab-query-"))  # 0700: private to this user
    try:
        parts, csvs = _private_copy(out, tmp)
        db = tmp / "views.duckdb"
        _build(db, parts, csvs)
        con = _locked(db, tmp)
        try:
            check_read_only(con, sql)
            cur = con.execute(sql)
            rows = cur.fetchmany(max_rows + 1)
            columns = [d[0] for d in cur.description or []]
        finally:
            con.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return columns, rows[:max_rows], len(rows) > max_rows

