"""Parallel header scanning of folders, files and path lists.

``scan_paths(inputs)`` expands its inputs into a sorted list of files, reads the
headers in worker processes (chunks of files per task), and returns every
record and every skipped file in a deterministic order (by path, then frame).

Inputs may be:

* a folder: walked recursively; hidden folders and hidden files (name starting
  with ``.``) are ignored, symbolic links to folders are not followed;
* a file: read as DICOM (whatever its extension);
* a path list: ``@list.txt`` (any extension), or a file ending in ``.txt``,
  holding one path per line (blank lines and lines starting with ``#`` are
  ignored; relative paths are relative to the list file's folder). Listed
  folders are walked too.

Files are only ever opened for reading.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from breastlab.dicom.headers import read_many
from breastlab.dicom.records import InstanceRecord, SkippedFile

#: files per task sent to a worker: large enough to amortise inter-process
#: overhead, small enough to keep the progress bar moving and the load balanced.
CHUNK_SIZE = 128


@dataclass
class ScanResult:
    """What a scan found: usable image records and skipped files."""

    records: list[InstanceRecord] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    n_files: int = 0


def _walk_folder(folder: str) -> Iterator[str]:
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file():
                            yield entry.path
                    except OSError:
                        continue
        except OSError:
            continue


def _read_list(list_file: Path) -> list[str]:
    base = list_file.parent
    out = []
    for line in list_file.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = Path(line).expanduser()
        out.append(str(path if path.is_absolute() else base / path))
    return out


def expand_inputs(inputs: Sequence[Path | str]) -> tuple[list[str], list[SkippedFile]]:
    """Files to read (sorted, unique) and inputs that do not exist."""
    files: set[str] = set()
    missing: list[SkippedFile] = []
    pending: list[tuple[str, bool]] = [(os.fspath(i), True) for i in inputs]
    while pending:
        item, allow_list = pending.pop()
        if allow_list and item.startswith("@"):
            list_path = Path(item[1:])
            if not list_path.is_file():
                missing.append(SkippedFile(item, "missing", "path list not found"))
                continue
            pending.extend((p, False) for p in _read_list(list_path))
            continue
        if os.path.isdir(item):
            files.update(_walk_folder(item))
        elif os.path.isfile(item):
            if allow_list and item.lower().endswith(".txt"):
                pending.extend((p, False) for p in _read_list(Path(item)))
            else:
                files.add(item)
        else:
            missing.append(SkippedFile(item, "missing", "no such file or folder"))
    return sorted(files), missing


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def scan_paths(
    inputs: Sequence[Path | str],
    *,
    workers: int | None = None,
    progress: bool = True,
    chunk_size: int = CHUNK_SIZE,
) -> ScanResult:
    """Read the headers of every file under ``inputs`` (see module docstring).

    ``workers`` defaults to ``os.cpu_count()``; ``workers=1`` (or a small job)
    reads in this process. Records come back sorted by path, then frame index.
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
        with ProcessPoolExecutor(max_workers=n_workers) as pool:
            # start the workers before the progress bar's refresh thread exists
            # (forking a process that runs threads is unsafe)
            pool.submit(int).result()
            with make_progress(disable=not progress, transient=True) as bar:
                task = bar.add_task("Reading DICOM headers", total=len(files))
                for chunk, out in zip(chunks, pool.map(read_many, chunks)):
                    outputs.append(out)
                    bar.advance(task, len(chunk))

    for out in outputs:  # chunks are in path order, map() keeps that order
        for item in out:
            if isinstance(item, SkippedFile):
                result.skipped.append(item)
            else:
                result.records.extend(item)
    result.skipped.sort(key=lambda s: s.path)
    return result


__all__ = ["ScanResult", "scan_paths", "expand_inputs", "CHUNK_SIZE"]
