"""The persistent header index: Parquet parts, committed one batch at a time.

Layout (docs/scale.md):

* ``OUT/index/part-*.parquet``: the published index, part of the output set (it is
  staged and published with series.csv & co by :mod:`breastlab.core.publish`, so it
  always matches the outputs beside it);
* ``<parent>/.<OUT name>.index/``: the journal, beside the lock file. Every batch of
  files read is written there as a new part (temporary name, fsync, rename: a part
  exists whole or not at all). A killed run leaves committed parts only; the next
  run (re)uses them and reads only the files they do not cover.

A file is *fresh* when a part holds a row with its path, size and mtime; the newest
such part wins. Rows of deleted or changed files are dropped when the index is
compacted (at the end of any run that found some).
"""
from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import replace
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from breastlab.dicom.records import SkippedFile
from breastlab.index.records_io import SCHEMA, _text as _display, record_row, skipped_row

#: files read per committed part (bounds the memory of the reading process)
BATCH_FILES = 512
PART_GLOB = "part-*.parquet"
#: Parquet key-value metadata of every part: were patient name and ID kept (``--keep-phi``)?
PHI_KEY = b"breastlab.patient_identity"


def journal_dir(out_dir: str | os.PathLike) -> Path:
    target = Path(os.path.realpath(os.fspath(out_dir)))  # beside the folder the set is published at
    return target.parent / f".{target.name}.index"


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _phi_flag(keep_phi: bool, open_archives: bool = True) -> bytes:
    return (b"kept" if keep_phi else b"dropped") + (b"" if open_archives else b";archives-closed")


def write_part(folder: Path, seq: int, rows: list[dict], *, flag: bytes = b"dropped") -> Path:
    """Write ``rows`` as ``folder/part-<seq>.parquet`` atomically (temporary name, fsync, rename)."""
    final = folder / f"part-{seq:08d}-{os.urandom(4).hex()}.parquet"
    tmp = folder / f".tmp-{seq:08d}-{os.getpid()}.parquet"
    table = pa.Table.from_pylist(rows, schema=SCHEMA.with_metadata({PHI_KEY: flag}))
    pq.write_table(table, tmp, compression="zstd")
    _fsync(tmp)
    os.replace(tmp, final)
    _fsync(folder)
    return final


def _stat(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class HeaderIndex:
    """The index of one output folder. Use only while holding that folder's output lock."""

    def __init__(self, out_dir: str | os.PathLike, *, full: bool = False, keep_phi: bool = False,
                 open_archives: bool = True) -> None:
        self.keep_phi = keep_phi
        self.flag = _phi_flag(keep_phi, open_archives)
        self._members: dict[bytes, list[bytes]] = {}  # archive -> its members' paths
        self.out_dir = Path(os.path.realpath(os.fspath(out_dir)))
        self.journal = journal_dir(self.out_dir)
        self.full = full
        self.n_read = 0
        self.n_reused = 0
        # path_bytes -> (size, mtime_ns, part name): the newest row of each path in the journal
        self._known: dict[bytes, tuple[int, int, str]] = {}
        self._live: dict[bytes, str] = {}
        self._seq = 0

    # ---------------------------------------------------------------- journal
    def open(self) -> None:
        self.journal.mkdir(parents=True, exist_ok=True)
        for tmp in self.journal.glob(".tmp-*"):  # a batch or a query killed while being written
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
        if self.full:
            for part in self.journal.glob(PART_GLOB):
                part.unlink()
        else:  # the published index, plus what a killed run committed since
            published = self.out_dir / "index"
            for part in sorted(published.glob(PART_GLOB)) if published.is_dir() else []:
                if (self.journal / part.name).exists():
                    continue  # parts are immutable: same name, same rows
                try:
                    os.link(part, self.journal / part.name)
                except OSError:
                    shutil.copyfile(part, self.journal / part.name)
        for part in self.parts():
            try:
                meta = pq.read_schema(part).metadata or {}
                if meta.get(PHI_KEY) != self.flag:  # --keep-phi changed: read those files again
                    part.unlink()
                    continue
                cols = pq.read_table(part, columns=["path_bytes", "size", "mtime_ns", "archive_bytes"])
            except Exception:  # noqa: BLE001 - unreadable part (disk trouble): forget it, re-read its files
                part.unlink(missing_ok=True)
                continue
            for p, size, mtime, archive in zip(*(cols.column(i).to_pylist() for i in range(4))):
                self._known[p] = (size, mtime, part.name)
                if archive is not None and archive != p:
                    self._members.setdefault(archive, []).append(p)
            self._seq = max(self._seq, int(part.stem.split("-")[1]) + 1)

    def parts(self) -> list[Path]:
        """Committed parts, oldest first (a newer part's row of a path wins)."""
        return sorted(self.journal.glob(PART_GLOB))

    def discard_journal(self) -> None:
        """Remove the journal once the index is published (it is rebuilt from ``OUT/index`` next time)."""
        shutil.rmtree(self.journal, ignore_errors=True)

    # ---------------------------------------------------------------- refresh
    def refresh(self, files: Sequence[str], read_many: Callable[[list[str]], list], *, workers: int = 1,
                progress: bool = False) -> None:
        """Make every file of ``files`` fresh: read the new or changed ones, one committed batch at a time."""
        from breastlab.core.progress import make_progress
        from breastlab.dicom.scan import CHUNK_SIZE, _worker_init

        todo = self.plan(files)
        if not todo:
            return
        with contextlib.ExitStack() as stack:
            pool = None
            if workers > 1 and len(todo) > CHUNK_SIZE:
                pool = stack.enter_context(ProcessPoolExecutor(max_workers=workers, initializer=_worker_init,
                                                               initargs=(os.getpid(),)))
                # start the workers before the progress bar's refresh thread exists (fork safety)
                for future in [pool.submit(int) for _ in range(workers)]:
                    future.result()
            bar = stack.enter_context(make_progress(disable=not progress, transient=True))
            task = bar.add_task("Reading DICOM headers", total=len(todo))
            step = int(os.environ.get("BREASTLAB_INDEX_BATCH", BATCH_FILES))  # tests commit smaller batches
            for start in range(0, len(todo), step):
                batch = todo[start:start + step]
                results = _read_batch([p for p, _ in batch], read_many, pool, CHUNK_SIZE)
                self._commit(batch, results)
                bar.advance(task, len(batch))

    def _commit(self, batch: list[tuple[str, tuple[int, int] | None]], results: list) -> None:
        part, keys = commit_batch(self.journal, self._seq, batch, results, keep_phi=self.keep_phi, flag=self.flag)
        self._seq += 1
        self._mark(batch, part, keys)

    def _mark(self, batch: list, part: str, keys: list[bytes]) -> None:
        for key in keys:
            self._live[key] = part
        for (path, st) in batch:
            self._known[os.fsencode(path)] = (*(st or (-1, -1)), part)

    def plan(self, files: Sequence[str]) -> list[tuple[str, tuple[int, int] | None]]:
        """Mark the fresh files live; returns the (path, stat) of those to read."""
        todo: list[tuple[str, tuple[int, int] | None]] = []
        for path in files:
            key = os.fsencode(path)
            st = _stat(path)
            known = self._known.get(key)
            if st is not None and known is not None and known[:2] == st:
                self._live[key] = known[2]
                for member in self._members.get(key, ()):  # an unchanged archive: its members too
                    self._live[member] = known[2]
                self.n_reused += 1
            else:
                todo.append((path, st))
        self.n_read = len(todo)
        return todo

    def refresh_dask(self, files: Sequence[str], client, read_many: Callable, *, batch_files: int = 256) -> None:  # noqa: ANN001
        """Like :meth:`refresh`, with every batch read and committed by a Dask worker (into the journal,
        which must be on a file system the workers share)."""
        from distributed import as_completed

        todo = self.plan(files)
        step = int(os.environ.get("BREASTLAB_INDEX_BATCH", batch_files))
        batches = [todo[i:i + step] for i in range(0, len(todo), step)]
        futures = {}
        for batch in batches:
            fut = client.submit(read_and_commit, self.journal, self._seq, batch, read_many, self.keep_phi, self.flag,
                                pure=False)
            futures[fut] = batch
            self._seq += 1
        for fut in as_completed(futures):
            part, keys = fut.result()
            self._mark(futures.pop(fut), part, keys)

    def live_table(self) -> pa.Table:
        """(path_bytes, part) of every live row: what the queries join against."""
        return pa.table({"path_bytes": pa.array(list(self._live), pa.binary()),
                         "part": pa.array(list(self._live.values()), pa.string())})

    def stale_parts(self) -> bool:
        """Does any part hold rows that are not live (deleted, changed or superseded files)?"""
        live_per_part: dict[str, int] = {}
        for part in self._live.values():
            live_per_part[part] = live_per_part.get(part, 0) + 1
        for part in self.parts():
            n = pq.ParquetFile(part).metadata.num_rows
            paths = pq.read_table(part, columns=["path_bytes"]).column(0)
            if len(set(paths.to_pylist())) != live_per_part.get(part.name, 0) and n:
                return True
        return False

    def publish_into(self, stage: Path, con) -> None:  # noqa: ANN001 - a duckdb connection
        """Put the live index into ``stage/index/`` (compacting first when rows went stale)."""
        dest = stage / "index"
        dest.mkdir()
        if self.stale_parts():
            compact = self.journal / f".tmp-compact-{os.getpid()}.parquet"
            con.execute(f"COPY (SELECT * EXCLUDE (part) FROM live_rows) "
                        f"TO '{_sql_path(compact)}' (FORMAT parquet, COMPRESSION zstd, "
                        f"KV_METADATA {{'{PHI_KEY.decode()}': '{self.flag.decode()}'}})")
            _fsync(compact)
            final = self.journal / f"part-{self._seq:08d}-{os.urandom(4).hex()}.parquet"
            os.replace(compact, final)
            self._seq += 1
            for part in self.parts():
                if part != final:
                    part.unlink()
            self._live = dict.fromkeys(self._live, final.name)
        for part in self.parts():
            os.link(part, dest / part.name)


def _sql_path(path: Path) -> str:
    return os.fspath(path).replace("'", "''")


def commit_batch(journal: Path, seq: int, batch: list[tuple[str, tuple[int, int] | None]], results: list, *,
                 keep_phi: bool, flag: bytes) -> tuple[str, list[bytes]]:
    """Write the rows of one batch of read files as part ``seq``; returns (part name, live keys)."""
    from breastlab.dicom.archives import ArchiveMembers

    rows: list[dict] = []
    keys: list[bytes] = []

    def add(result, size: int, mtime: int, archive: bytes | None) -> None:  # noqa: ANN001
        if isinstance(result, SkippedFile):
            rows.append(skipped_row(result, size, mtime) | {"archive_bytes": archive})
            keys.append(os.fsencode(result.path))
            return
        for r in result:
            if not keep_phi:
                r = replace(r, patient_id=None, patient_name=None)
            rows.append(record_row(r, size, mtime) | {"archive_bytes": archive})
        if result:
            keys.append(os.fsencode(result[0].path))

    for (path, st), result in zip(batch, results):
        size, mtime = st if st is not None else (-1, -1)
        key = os.fsencode(path)
        if isinstance(result, ArchiveMembers):
            row = dict.fromkeys(SCHEMA.names)
            row.update(path=_display(path), path_bytes=key, size=size, mtime_ns=mtime, status="archive",
                       archive_bytes=key, record="{}")
            rows.append(row)
            for _member, member_result in result:
                add(member_result, size, mtime, key)
        else:
            add(result, size, mtime, None)
        keys.append(key)
    part = write_part(journal, seq, rows, flag=flag)
    return part.name, keys


def read_and_commit(journal: Path, seq: int, batch: list, read_many: Callable, keep_phi: bool,
                    flag: bytes) -> tuple[str, list[bytes]]:
    """One task of the Dask engine: read a batch of files and commit it as a part."""
    return commit_batch(journal, seq, batch, read_many([p for p, _ in batch]), keep_phi=keep_phi, flag=flag)


def _read_batch(paths: list[str], read_many: Callable, pool: ProcessPoolExecutor | None, chunk: int) -> list:
    """``read_many`` over ``paths``, spread over ``pool`` in chunks (results in path order)."""
    if pool is None:
        return read_many(paths)
    chunks = [paths[i:i + chunk] for i in range(0, len(paths), chunk)]
    try:
        futures = [pool.submit(read_many, c) for c in chunks]
    except BrokenProcessPool:
        return read_many(paths)
    results: list = []
    for c, future in zip(chunks, futures):
        try:
            results.extend(future.result())
        except BrokenProcessPool:  # a worker was killed (e.g. by the OOM killer)
            results.extend(read_many(c))
    return results
