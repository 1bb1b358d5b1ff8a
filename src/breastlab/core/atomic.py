"""Atomic file output: write to a temporary sibling, fsync, then rename.

A crash or kill never leaves a half-written output under the final name. Every file
gets the permissions an ordinary ``open()`` would give it: ``0o666`` minus the user's
umask (``mkstemp`` alone would leave ``0o600``).
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any


def current_umask() -> int:
    """The process umask, read without changing it (Linux ``/proc``), else by a set/reset."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no read-only API elsewhere: set and restore at once
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """Permissions a newly created regular file gets: ``0o666 & ~umask``."""
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file next to ``path``; rename it over ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, default_file_mode())
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, default=str, sort_keys=False) + "\n")


def write_csv(
    path: str | os.PathLike,
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
) -> Path:
    """Write dict rows as CSV with a fixed column order (extra keys are an error).

    UTF-8; strings holding surrogate escapes (file names that are not UTF-8, as
    ``os`` gives them) are written back as their original bytes, so no name is lost.
    Text cells follow :mod:`breastlab.core.csvcells` (control characters removed, formula
    cells made inert; ``BREASTLAB_CSV_VERBATIM=1`` writes them verbatim; docs/sorting.md,
    "CSV and spreadsheets").
    """
    from breastlab.core.csvcells import row_cells, verbatim

    safe = not verbatim()
    with atomic_open(path, "w", encoding="utf-8", errors="surrogateescape", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="raise")
        writer.writeheader()
        for row in rows:
            writer.writerow(row_cells(row, safe=safe))
    return Path(path)


def remove_stale_temporaries(path: str | os.PathLike) -> int:
    """Remove the temporaries :func:`atomic_open` left beside ``path`` when a run was killed
    (``.<name>.*.tmp``: SIGKILL leaves no chance to clean up); returns how many.

    Only for files one process writes at a time (a run's checkpoint): a temporary of a
    live writer would be removed too.
    """
    path = Path(path)
    n = 0
    for tmp in path.parent.glob(f".{glob_escape(path.name[:64])}.*.tmp"):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
            tmp.unlink()
            n += 1
    return n


def glob_escape(text: str) -> str:
    import glob

    return glob.escape(text)


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    """torch.save through an atomic rename (checkpoints survive a kill; temporaries of an
    earlier killed save are removed first)."""
    import torch

    remove_stale_temporaries(path)
    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)
    return Path(path)
