"""Parallel header scanning of folders, files and path lists.

``scan_paths(inputs)`` expands its inputs into a sorted list of files, reads the
headers in worker processes (chunks of files per task), and returns every
record and every skipped file in a deterministic order (by path, then frame).

Inputs may be:

* a folder: walked recursively (iteratively); hidden folders and hidden files
  (name starting with ``.``) are not read, symbolic links to folders are not
  followed, links to files are read;
* a file: read as DICOM (whatever its extension);
* a path list: ``@list.txt`` (any extension), or a file ending in ``.txt``,
  holding one path per line (blank lines and lines starting with ``#`` are
  ignored; relative paths are relative to the list file's folder). Listed
  folders are walked too.

Every entry met ends up in ``ScanResult.records`` or ``ScanResult.skipped``: hidden
entries (``hidden``), links to folders (``link-to-folder``), dangling links
(``broken-link``), link loops (``link-loop``), FIFOs, sockets and devices
(``special-file``, never opened), folders that cannot be listed (``unreadable``), a
folder reached twice (``folder-loop``), and extra copies of one SOP Instance UID
(``duplicate``, with ``drop_duplicates``: the first path in sorted order is kept). Paths are ``str`` with
surrogate escapes for bytes that are not UTF-8 (``os.fsencode`` gives the original).

Workers die with the scanning process (Linux ``PR_SET_PDEATHSIG``, SIGKILL included),
ignore Ctrl-C (the parent handles it), and a failure on one file becomes that file's
``SkippedFile``. Files are only ever opened for reading.
"""
from __future__ import annotations

import ctypes
import errno
import os
import signal
import stat
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from breastlab.dicom.headers import read_many, special_kind
from breastlab.dicom.records import InstanceRecord, SkippedFile

#: files per task sent to a worker: large enough to amortise inter-process
#: overhead, small enough to keep the progress bar moving and the load balanced.
CHUNK_SIZE = 128
PR_SET_PDEATHSIG = 1


@dataclass
class ScanResult:
    """What a scan found: usable image records and skipped files."""

    records: list[InstanceRecord] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    n_files: int = 0


def _entry_kind(path: str) -> tuple[str, str] | None:
    """``None`` for a regular file (or a link to one) to read, else (reason, detail) to skip it."""
    try:
        lst = os.lstat(path)
    except OSError as exc:
        return "unreadable", f"{type(exc).__name__}: {exc.strerror or exc}"
    if stat.S_ISLNK(lst.st_mode):
        try:
            target = os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return "link-loop", "symbolic link loop (or a link to itself)"
            if exc.errno == errno.ENOENT:
                return "broken-link", f"symbolic link to a missing target: {_readlink(path)}"
            return "unreadable", f"symbolic link: {type(exc).__name__}: {exc.strerror or exc}"
        if stat.S_ISDIR(target.st_mode):
            return "link-to-folder", "symbolic link to a folder: not followed"
        if not stat.S_ISREG(target.st_mode):
            return "special-file", f"symbolic link to a {special_kind(target.st_mode)}: not read"
        return None
    if stat.S_ISREG(lst.st_mode):
        return None
    return "special-file", f"{special_kind(lst.st_mode)}: not read"


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _walk_folder(folder: str, skipped: list[SkippedFile] | None = None) -> Iterator[str]:
    """Files under ``folder``; every other entry is appended to ``skipped`` with a reason.

    Iterative (no recursion limit); a folder reached twice (bind mounts, loops) is
    reported once as ``folder-loop``. The entry types come from the folder listing
    (``d_type``): a regular file costs no system call here (its ``stat`` is the index's);
    links and special files are looked at one by one.
    """
    skipped = skipped if skipped is not None else []
    seen: set[tuple[int, int]] = set()
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            st = os.stat(current)
            if (st.st_dev, st.st_ino) in seen:
                skipped.append(SkippedFile(current, "folder-loop", "folder already walked (bind mount or loop)"))
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(current) as listing:
                entries = list(listing)
        except OSError as exc:
            skipped.append(SkippedFile(current, "unreadable", f"folder: {type(exc).__name__}: {exc.strerror or exc}"))
            continue
        for entry in entries:
            path = entry.path
            if entry.name.startswith("."):
                skipped.append(SkippedFile(path, "hidden", "hidden entry (name starts with '.'): not read"))
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(path)
                    continue
                if entry.is_file(follow_symlinks=False):
                    yield path
                    continue
            except OSError as exc:  # d_type unknown and lstat failed
                skipped.append(SkippedFile(path, "unreadable", f"{type(exc).__name__}: {exc.strerror or exc}"))
                continue
            kind = _entry_kind(path)  # a link, or a FIFO, socket or device
            if kind is None:
                yield path
            else:
                skipped.append(SkippedFile(path, *kind))


#: largest path list read (a list of a million paths is ~100 MB)
MAX_LIST_BYTES = 256 * 1024 * 1024


def _read_list(list_file: Path) -> list[str]:
    base = list_file.parent
    if list_file.stat().st_size > MAX_LIST_BYTES:
        raise OSError(f"larger than {MAX_LIST_BYTES >> 20} MiB: not read as a path list")
    out = []
    for line in list_file.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = Path(line).expanduser()
        out.append(str(path if path.is_absolute() else base / path))
    return out


def iter_inputs(inputs: Sequence[Path | str], skipped: list[SkippedFile]) -> Iterator[str]:
    """Files to read, as they are met (unsorted; a file named twice comes twice); every other
    entry is appended to ``skipped`` with the reason. Memory: one folder listing at a time."""
    pending: list[tuple[str, bool]] = [(os.fspath(i), True) for i in inputs]
    while pending:
        item, allow_list = pending.pop()
        if allow_list and item.startswith("@"):
            list_path = Path(item[1:])
            if not list_path.is_file():
                skipped.append(SkippedFile(item, "missing", "path list not found"))
                continue
            try:
                pending.extend((p, False) for p in _read_list(list_path))
            except OSError as exc:
                skipped.append(SkippedFile(item, "unreadable", f"path list: {exc.strerror or exc}"))
            continue
        if os.path.isdir(item):
            yield from _walk_folder(item, skipped)
        elif not os.path.lexists(item):
            skipped.append(SkippedFile(item, "missing", "no such file or folder"))
        elif (kind := _entry_kind(item)) is not None:
            skipped.append(SkippedFile(item, *kind))
        elif allow_list and item.lower().endswith(".txt"):
            try:
                pending.extend((p, False) for p in _read_list(Path(item)))
            except OSError as exc:
                skipped.append(SkippedFile(item, "unreadable", f"path list: {exc.strerror or exc}"))
        else:
            yield item


def expand_inputs(inputs: Sequence[Path | str]) -> tuple[list[str], list[SkippedFile]]:
    """Files to read (sorted, unique) and every other entry met, with the reason it is skipped."""
    skipped: list[SkippedFile] = []
    files = set(iter_inputs(inputs, skipped))
    return sorted(files), skipped


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _worker_init(parent: int) -> None:
    """Scan workers die with their parent (even SIGKILL) and leave Ctrl-C to it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # Linux: kill me when the parent dies
    except (OSError, AttributeError):
        pass  # not Linux: the parent still shuts the pool down on any exception
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def deduplicate(
    records: Sequence[InstanceRecord], skipped: list[SkippedFile] | None = None
) -> list[InstanceRecord]:
    """One file per SOP Instance UID: the first path in sorted order is kept.

    Every other file with the same SOP Instance UID is appended to ``skipped`` with
    reason ``duplicate`` and the kept path in its detail. Records without a SOP
    Instance UID are all kept.
    """
    skipped = skipped if skipped is not None else []
    kept_path: dict[str, str] = {}
    dropped: dict[str, str] = {}
    first_by_path: dict[str, InstanceRecord] = {}
    for r in records:
        first_by_path.setdefault(r.path, r)
    for path in sorted(first_by_path):
        uid = first_by_path[path].sop_instance_uid
        if not uid:
            continue
        if uid in kept_path:
            dropped[path] = kept_path[uid]
        else:
            kept_path[uid] = path
    for path, kept in sorted(dropped.items()):
        skipped.append(SkippedFile(path, "duplicate", f"same SOP Instance UID as {kept} (kept)"))
    return [r for r in records if r.path not in dropped]


def scan_paths(
    inputs: Sequence[Path | str],
    *,
    workers: int | None = None,
    progress: bool = True,
    chunk_size: int = CHUNK_SIZE,
    drop_duplicates: bool = False,
) -> ScanResult:
    """Read the headers of every file under ``inputs`` (see module docstring).

    ``workers`` defaults to ``os.cpu_count()``; ``workers=1`` (or a small job)
    reads in this process. Records come back sorted by path, then frame index.
    With ``drop_duplicates`` (what ``breastlab sort`` uses), files repeating a SOP
    Instance UID are removed and listed as skipped (:func:`deduplicate`); without it
    the caller sees every copy (case assembly reports them its own way).
    Every entry met is either in ``records`` or in ``skipped``.
    """
    from breastlab.core.progress import make_progress

    files, missing = expand_inputs(inputs)
    result = ScanResult(skipped=list(missing), n_files=len(files))
    if not files:
        return result
    n_workers = workers if workers is not None else (os.cpu_count() or 1)
    n_workers = max(1, min(n_workers, (len(files) + chunk_size - 1) // chunk_size))
    chunks = list(_chunks(files, chunk_size))
    outputs: list[list[list[InstanceRecord] | SkippedFile]] = []

    if n_workers == 1:
        with make_progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("Reading DICOM headers", total=len(files))
            for chunk in chunks:
                outputs.append(read_many(chunk))
                bar.advance(task, len(chunk))
    else:
        with ProcessPoolExecutor(max_workers=n_workers, initializer=_worker_init,
                                 initargs=(os.getpid(),)) as pool:
            # start the workers before the progress bar's refresh thread exists
            # (forking a process that runs threads is unsafe)
            for future in [pool.submit(int) for _ in range(n_workers)]:
                future.result()
            with make_progress(disable=not progress, transient=True) as bar:
                task = bar.add_task("Reading DICOM headers", total=len(files))
                futures = [pool.submit(read_many, chunk) for chunk in chunks]
                for chunk, future in zip(chunks, futures):
                    try:
                        outputs.append(future.result())
                    except BrokenProcessPool:  # a worker was killed (e.g. by the OOM killer)
                        outputs.append(read_many(chunk))
                    bar.advance(task, len(chunk))

    for out in outputs:  # chunks are in path order, futures keep that order
        for item in out:
            if isinstance(item, SkippedFile):
                result.skipped.append(item)
            else:
                result.records.extend(item)
    if drop_duplicates:
        result.records = deduplicate(result.records, result.skipped)
    result.skipped.sort(key=lambda s: s.path)
    return result


__all__ = ["ScanResult", "scan_paths", "expand_inputs", "iter_inputs", "deduplicate", "CHUNK_SIZE"]
