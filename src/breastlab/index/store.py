"""The persistent header index: Parquet parts, committed one batch at a time.

Layout (docs/scale.md):

* ``OUT/index/part-*.parquet``: the published index, part of the output set (it is
  staged and published with series.csv & co by :mod:`breastlab.core.publish`, so it
  always matches the outputs beside it);
* ``<parent>/.<OUT name>.index/``: the journal, beside the lock file. Every batch of
  files read is written there as a new part (temporary name, fsync, rename: a part
  exists whole or not at all). A killed run leaves committed parts only; the next
  run (re)uses them and reads only the files they do not cover.

A file is *fresh* when a part holds a row with its path, size, mtime, ctime and inode
(a file edited and given back its size and mtime still has a new ctime); the newest
such part wins. Rows of deleted or changed files are dropped when the index is
compacted (at the end of any run that found some).

Trust: the index believes only parts its own manifests list with the size and SHA-256
they were written with: ``OUT/index/_manifest.json`` for the published index, and the
append-only ``manifest.jsonl`` of the journal for the parts of a killed run. Anything
else named like a part (a folder, a part planted by another program or by a query, a
part whose bytes changed) is ignored with a warning and the files it would have
covered are read again.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import stat as stat_mod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from breastlab.dicom.records import SkippedFile
from breastlab.index.filestate import FileState, Stat, sql_path
from breastlab.index.records_io import SCHEMA, Columns
from breastlab.index.studies import STUDIES_NAME

#: files read per committed part (bounds the memory of the reading process)
BATCH_FILES = 512
PART_GLOB = "part-*.parquet"
#: parts published before they are merged into one (a full sort of 1M files commits about 2,000)
MAX_PARTS = 64
#: Parquet key-value metadata of every part: were patient name and ID kept (``--keep-phi``)?
PHI_KEY = b"breastlab.patient_identity"
#: the published index's own manifest (a leading ``_``: Parquet readers of the folder skip it)
INDEX_MANIFEST = "_manifest.json"
#: the journal's manifest: one JSON line per committed part, appended (a torn last line is ignored)
JOURNAL_MANIFEST = "manifest.jsonl"
MANIFEST_FORMAT = "breastlab-index/2"
_log = logging.getLogger("breastlab.index")


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


def write_part(folder: Path, seq: int, cols: Columns, *, flag: bytes = b"dropped") -> Path:
    """Write ``cols`` as ``folder/part-<seq>.parquet`` atomically (temporary name, fsync, rename)."""
    final = folder / f"part-{seq:08d}-{os.urandom(4).hex()}.parquet"
    tmp = folder / f".tmp-{seq:08d}-{os.getpid()}.parquet"
    table = cols.table(SCHEMA.with_metadata({PHI_KEY: flag}))
    pq.write_table(table, tmp, compression="zstd")
    _fsync(tmp)
    os.replace(tmp, final)
    _fsync(folder)
    return final


def part_entry(path: Path) -> dict | None:
    """``{"name", "bytes", "sha256"}`` of a regular part file (``None``: not a regular file)."""
    try:
        st = os.lstat(path)
        if not stat_mod.S_ISREG(st.st_mode):
            return None
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return {"name": path.name, "bytes": st.st_size, "sha256": digest.hexdigest()}


def _matches(path: Path, entry: dict) -> bool:
    """Is ``path`` a regular file with the size and hash its manifest entry names?"""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat_mod.S_ISREG(st.st_mode) or st.st_size != entry.get("bytes"):
        return False
    got = part_entry(path)
    return got is not None and got["sha256"] == entry.get("sha256")


def _read_jsonl(path: Path) -> list[dict]:
    out = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a torn line of a killed run
                if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                    out.append(entry)
    except OSError:
        pass
    return out


class HeaderIndex:
    """The index of one output folder. Use only while holding that folder's output lock."""

    def __init__(self, out_dir: str | os.PathLike, *, full: bool = False, keep_phi: bool = False,
                 open_archives: bool = True) -> None:
        self.keep_phi = keep_phi
        self.flag = _phi_flag(keep_phi, open_archives)
        self.out_dir = Path(os.path.realpath(os.fspath(out_dir)))
        self.journal = journal_dir(self.out_dir)
        self.full = full
        self.n_read = 0
        self.n_reused = 0
        self.n_files = 0
        self.state: FileState | None = None  # the per-file state of this run (DuckDB, out of core)
        self._seq = 0
        self.warnings: list[str] = []  # untrusted or damaged index parts that were ignored
        self.previous_studies: Path | None = None  # OUT/index/_studies.parquet, when its manifest vouches for it
        self.studies_file: Path | None = None  # this run's study rows (breastlab.index.studies), to publish
        self._trusted: dict[str, dict] = {}  # part name -> its manifest entry

    # ---------------------------------------------------------------- journal
    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        _log.warning(message)

    def open(self) -> None:
        """Trust the parts the manifests list (and whose bytes match); drop everything else."""
        if self.journal.is_symlink() or (self.journal.exists() and not self.journal.is_dir()):
            self._warn(f"{self.journal} is not a folder: removed")
            self.journal.unlink()
        self.journal.mkdir(parents=True, exist_ok=True)
        for tmp in self.journal.glob(".tmp-*"):  # a batch or a query killed while being written
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
        trusted: dict[str, dict] = {}
        if not self.full:
            for entry in _read_jsonl(self.journal / JOURNAL_MANIFEST):  # what a killed run committed
                if _matches(self.journal / entry["name"], entry):
                    trusted[entry["name"]] = entry
            trusted.update(self._published())
        for item in list(self.journal.iterdir()):  # the journal is ours: anything untrusted goes
            if item.name == JOURNAL_MANIFEST or item.name.startswith(".tmp-view-") or item.name in trusted:
                continue
            if item.name.startswith("part-") and not self.full:
                self._warn(f"index: {item.name} in the journal is not in its manifest (or changed): ignored")
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item, ignore_errors=True)
            else:
                item.unlink(missing_ok=True)
        self._trusted = {}
        self._rewrite_journal_manifest(trusted)
        for name in sorted(trusted):
            part = self.journal / name
            try:
                meta = pq.read_schema(part).metadata or {}
            except Exception:  # noqa: BLE001 - unreadable part (disk trouble): forget it, re-read its files
                self._warn(f"index: {name} cannot be read: ignored, its files are read again")
                self._drop(part)
                continue
            if meta.get(PHI_KEY) != self.flag:  # --keep-phi changed: read those files again
                self._drop(part)
                continue
            with contextlib.suppress(ValueError, IndexError):
                self._seq = max(self._seq, int(part.stem.split("-")[1]) + 1)
        self.state = FileState(self.journal, index_schema=SCHEMA)
        self.state.set_parts(self.parts())

    def close(self) -> None:
        """Close the per-file state (its database and spill files are removed)."""
        if self.state is not None:
            self.state.close()
            self.state = None

    def _published(self) -> dict[str, dict]:
        """Parts of ``OUT/index`` that its manifest lists with matching bytes, linked into the journal."""
        published = self.out_dir / "index"
        if not published.is_dir() or published.is_symlink():
            return {}
        listed: dict[str, dict] = {}
        try:
            manifest = json.loads((published / INDEX_MANIFEST).read_text(encoding="utf-8"))
            if manifest.get("format") == MANIFEST_FORMAT:
                listed = {e["name"]: e for e in manifest["parts"]
                          if isinstance(e, dict) and isinstance(e.get("name"), str) and "/" not in e["name"]
                          and e["name"].startswith("part-")}
                studies = manifest.get("studies")
                if isinstance(studies, dict) and _matches(published / STUDIES_NAME, studies):
                    self.previous_studies = published / STUDIES_NAME
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            if any(published.glob(PART_GLOB)):
                self._warn(f"index: {published} has no readable {INDEX_MANIFEST}: the index is rebuilt")
            return {}
        trusted = {}
        for item in sorted(published.iterdir()):
            if item.name == INDEX_MANIFEST or item == self.previous_studies:
                continue
            entry = listed.get(item.name)
            if entry is None or not _matches(item, entry):
                self._warn(f"index: {item.name} in {published} is not in its manifest (or changed): ignored")
                continue
            dest = self.journal / item.name
            if not _matches(dest, entry):  # parts are immutable: same name and hash, same rows
                if dest.is_dir() and not dest.is_symlink():
                    shutil.rmtree(dest, ignore_errors=True)
                else:
                    dest.unlink(missing_ok=True)
                try:
                    os.link(item, dest)
                except OSError:
                    shutil.copyfile(item, dest)
            trusted[item.name] = entry
        return trusted

    def _rewrite_journal_manifest(self, entries: dict[str, dict]) -> None:
        tmp = self.journal / f".tmp-manifest-{os.getpid()}.jsonl"
        with open(tmp, "w", encoding="utf-8") as fh:
            for name in sorted(entries):
                fh.write(json.dumps(entries[name]) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.journal / JOURNAL_MANIFEST)
        self._trusted = dict(entries)

    def _record_part(self, name: str) -> None:
        """Append a committed part to the journal manifest (after its rename: a crash loses it, harmlessly)."""
        entry = part_entry(self.journal / name)
        if entry is None:
            return
        with open(self.journal / JOURNAL_MANIFEST, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._trusted[name] = entry

    def _drop(self, part: Path) -> None:
        part.unlink(missing_ok=True)
        self._trusted.pop(part.name, None)

    def parts(self) -> list[Path]:
        """Committed, trusted parts, oldest first (a newer part's row of a path wins)."""
        return [self.journal / name for name in sorted(self._trusted)]

    def discard_journal(self) -> None:
        """Remove the journal once the index is published (it is rebuilt from ``OUT/index`` next time)."""
        shutil.rmtree(self.journal, ignore_errors=True)

    # ---------------------------------------------------------------- refresh
    def plan(self, files: Iterable[str]) -> int:
        """Walk ``files`` (a stream) into the state and find the new or changed ones; returns their number."""
        assert self.state is not None, "open() first"
        self.state.add_walk(files)
        self.n_files = self.state.n_files
        self.n_read = self.state.plan()
        self.n_reused = self.n_files - self.n_read
        return self.n_read

    def _batches(self, step: int) -> Iterator[list[tuple[str, Stat | None]]]:
        assert self.state is not None
        return self.state.todo_batches(int(os.environ.get("BREASTLAB_INDEX_BATCH", step)))  # tests: smaller

    def refresh(self, files: Iterable[str], read_many: Callable[[list[str]], list], *, workers: int = 1,
                progress: bool = False) -> None:
        """Make every file of ``files`` fresh: read the new or changed ones, one committed batch at a time."""
        from breastlab.core.progress import make_progress
        from breastlab.dicom.scan import CHUNK_SIZE, _worker_init

        n_todo = self.plan(files)
        if n_todo:
            with contextlib.ExitStack() as stack:
                pool = None
                if workers > 1 and n_todo > CHUNK_SIZE:
                    pool = stack.enter_context(ProcessPoolExecutor(max_workers=workers, initializer=_worker_init,
                                                                   initargs=(os.getpid(),)))
                    # start the workers before the progress bar's refresh thread exists (fork safety)
                    for future in [pool.submit(int) for _ in range(workers)]:
                        future.result()
                bar = stack.enter_context(make_progress(disable=not progress, transient=True))
                task = bar.add_task("Reading DICOM headers", total=n_todo)
                for batch in self._batches(BATCH_FILES):
                    results = _read_batch([p for p, _ in batch], read_many, pool, CHUNK_SIZE)
                    self._commit(batch, results)
                    bar.advance(task, len(batch))
        self._settle()

    def _commit(self, batch: list[tuple[str, Stat | None]], results: list) -> None:
        part, _keys = commit_batch(self.journal, self._seq, batch, results, keep_phi=self.keep_phi, flag=self.flag)
        self._seq += 1
        self._record_part(part)

    def _settle(self) -> None:
        """Every part of the run is committed: the live rows."""
        assert self.state is not None
        self.state.set_parts(self.parts())
        self.state.make_live()

    def refresh_dask(self, files: Iterable[str], client, read_many: Callable, *, batch_files: int = 256) -> None:  # noqa: ANN001
        """Like :meth:`refresh`, with every batch read and committed by a Dask worker (into the journal,
        which must be on a file system the workers share)."""
        from distributed import as_completed

        self.plan(files)
        futures = []
        for batch in self._batches(batch_files):  # one batch list at a time in this process
            futures.append(client.submit(read_and_commit, self.journal, self._seq, batch, read_many, self.keep_phi,
                                         self.flag, pure=False))
            self._seq += 1
        for fut in as_completed(futures):
            part, _keys = fut.result()
            self._record_part(part)
        self._settle()

    def stale_parts(self) -> bool:
        """Does any part hold rows that are not live (deleted, changed or superseded files)?"""
        assert self.state is not None
        return self.state.stale()

    def publish_into(self, stage: Path) -> None:
        """Put the live index into ``stage/index/``, compacted into one part first when rows went stale or
        parts piled up (more than :data:`MAX_PARTS`: every query of the next run opens each part)."""
        assert self.state is not None
        con = self.state.con
        dest = stage / "index"
        dest.mkdir()
        if len(self.parts()) > MAX_PARTS or self.stale_parts():
            compact = self.journal / f".tmp-compact-{os.getpid()}.parquet"
            con.execute(f"COPY (SELECT * EXCLUDE (part) FROM live_rows) "
                        f"TO '{sql_path(compact)}' (FORMAT parquet, COMPRESSION zstd, "
                        f"KV_METADATA {{'{PHI_KEY.decode()}': '{self.flag.decode()}'}})")
            _fsync(compact)
            final = self.journal / f"part-{self._seq:08d}-{os.urandom(4).hex()}.parquet"
            os.replace(compact, final)
            self._seq += 1
            for part in self.parts():
                self._drop(part)
            self._rewrite_journal_manifest({})
            self._record_part(final.name)
            self.state.set_parts(self.parts())
            self.state.repoint_live(final.name)
        entries = []
        for part in self.parts():
            os.link(part, dest / part.name)
            entries.append(self._trusted[part.name])
        from breastlab.core.atomic import write_json

        manifest: dict = {"format": MANIFEST_FORMAT, "parts": entries}
        if self.studies_file is not None and self.studies_file.is_file():
            os.link(self.studies_file, dest / STUDIES_NAME)
            manifest["studies"] = part_entry(dest / STUDIES_NAME)
        write_json(dest / INDEX_MANIFEST, manifest)


def commit_batch(journal: Path, seq: int, batch: list[tuple[str, Stat | None]], results: list, *,
                 keep_phi: bool, flag: bytes) -> tuple[str, list[bytes]]:
    """Write the rows of one batch of read files as part ``seq``; returns (part name, live keys)."""
    from breastlab.dicom.archives import ArchiveMembers

    cols = Columns()
    keys: list[bytes] = []

    def add(result, st: Stat, archive: bytes | None) -> None:  # noqa: ANN001
        if isinstance(result, SkippedFile):
            cols.skipped(result, st, archive)
            keys.append(os.fsencode(result.path))
            return
        for r in result:
            cols.record(r, st, archive, keep_phi=keep_phi)
        if result:
            keys.append(os.fsencode(result[0].path))

    for (path, st), result in zip(batch, results):
        st = st if st is not None else (-1, -1, -1, -1)
        key = os.fsencode(path)
        if isinstance(result, ArchiveMembers):
            cols.archive(path, st)
            for _member, member_result in result:
                add(member_result, st, key)
        else:
            add(result, st, None)
        keys.append(key)
    part = write_part(journal, seq, cols, flag=flag)
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
