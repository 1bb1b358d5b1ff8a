"""Consistent output sets: stage every output of a run, then publish them together.

>>> with staged_outputs("sorted") as stage:          # doctest: +SKIP
...     atomic.write_csv(stage / "series.csv", rows, columns)
...     atomic.write_json(stage / "provenance.json", manifest)
>>> # "sorted/" now holds exactly this run's files, or (after a crash) the previous run's

Contract of :func:`staged_outputs` (stable API; other commands publish their trees the same way):

* **Stage.** The body writes into a fresh folder beside the target,
  ``<parent>/.<name>.staging-<pid>-<random>`` (same file system, so publishing is a
  rename). It gets the user's umask (``0o777 & ~umask``), like every file
  :mod:`breastlab.core.atomic` writes.
* **Manifest.** On success a manifest, ``MANIFEST_NAME`` (``manifest.json``), is written
  last into the stage: every file of the set with its size and SHA-256
  (``manifest=False`` skips hashing, for very large trees). :func:`verify_outputs` checks
  a published folder against it.
* **Publish.** The stage then *replaces* the target in one step: Linux
  ``renameat2(RENAME_EXCHANGE)`` swaps the two folders atomically, and the previous set
  (now under a temporary name) is deleted. Where the exchange is not supported the
  target is renamed aside first (``.<name>.old-...``) and restored by the next run if a
  crash falls between the two renames. A reader therefore sees the previous complete
  set or the new complete set, never a mix.
* **Lock.** While staging and publishing, an exclusive ``flock`` is held on
  ``<parent>/.<name>.lock`` (a small file that stays, holding the owner's pid). A second
  run on the same target fails at once with :class:`OutputLocked`. The kernel drops the
  lock when its process dies, SIGKILL included: a killed run never blocks the next one.
* **Stale temporaries.** A small watchdog process (``python -I -S``, holding only a pipe
  from the run) removes the stage the moment the run dies, SIGKILL included, and puts
  a set renamed aside back; it exits right after. Under the lock, staging and old
  folders an earlier run left anyway (e.g. the machine lost power) are removed before
  the new stage is made.
* **Failure.** If the body raises (or the process is interrupted), the stage is removed
  and the target is left exactly as it was.
* **Ownership.** The whole target folder is the output set. A target that exists, is
  not empty and has no manifest (a folder breastlab did not write) is refused with
  :class:`OutputError` rather than replaced, so user files are never deleted; only a
  folder holding nothing but the files named in ``replaceable`` (what an older version
  wrote, without a manifest) is replaced as well.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path

from breastlab.core.atomic import current_umask, write_json
from breastlab.core.errors import BreastlabError

MANIFEST_NAME = "manifest.json"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


class OutputError(BreastlabError, RuntimeError):
    """The output folder cannot be used (one-line message for the user)."""

    exit_code = 2  # in use by another run, not a folder: bad usage, nothing written


class OutputLocked(OutputError):
    """Another run holds the lock on this output folder."""


def _names(target: Path) -> tuple[str, str, str]:
    base = target.name[:100]  # temporaries stay well inside NAME_MAX
    return f".{base}.lock", f".{base}.staging-", f".{base}.old-"


@contextlib.contextmanager
def output_lock(target: str | os.PathLike) -> Iterator[Path]:
    """Hold the exclusive lock on ``target`` (raises :class:`OutputLocked` at once if taken)."""
    target = Path(target)
    lock_name, _, _ = _names(target)
    lock_path = target.parent / lock_name
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise OutputError(f"cannot create {lock_path}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputError(f"cannot lock {lock_path}: {exc.strerror or exc}") from None
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise OutputLocked(f"another run{who} is writing to {target}; wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield lock_path
    finally:
        os.close(fd)  # releases the flock


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
        path.unlink()


def clean_stale(target: str | os.PathLike) -> list[Path]:
    """Remove staging/old folders of earlier (killed) runs; restore an old set if the target is gone.

    Call only while holding :func:`output_lock`. Returns what was removed.
    """
    target = Path(target)
    _, staging, old = _names(target)
    removed = []
    olds = sorted(target.parent.glob(old + "*"), key=lambda p: p.stat().st_mtime, reverse=True)
    if olds and not target.exists():  # killed between the two renames of the fallback
        os.rename(olds.pop(0), target)
    for path in [*target.parent.glob(staging + "*"), *olds]:
        _rmtree(path)
        removed.append(path)
    return removed


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False when unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), os.fspath(b))


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def file_digest(path: Path) -> str:
    """SHA-256 of a file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _listing(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if (p.is_file() or p.is_symlink()) and p.name != MANIFEST_NAME)


def write_manifest(root: str | os.PathLike, *, hashes: bool = True) -> Path:
    """Write ``root/manifest.json``: every file (relative POSIX path) with size and SHA-256."""
    root = Path(root)
    files = {}
    for path in _listing(root):
        rel = path.relative_to(root).as_posix()
        entry: dict = {"bytes": path.lstat().st_size}
        if hashes and path.is_file() and not path.is_symlink():
            entry["sha256"] = file_digest(path)
        files[rel] = entry
    return write_json(root / MANIFEST_NAME, {"format": "breastlab-output-set/1", "files": files})


def verify_outputs(out_dir: str | os.PathLike) -> list[str]:
    """Problems of a published set against its manifest (empty list: complete and intact)."""
    root = Path(out_dir)
    try:
        listed = json.loads((root / MANIFEST_NAME).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"no readable {MANIFEST_NAME}: {exc}"]
    problems = []
    present = {p.relative_to(root).as_posix(): p for p in _listing(root)}
    for rel, entry in listed.items():
        path = present.get(rel)
        if path is None:
            problems.append(f"missing: {rel}")
        elif path.lstat().st_size != entry.get("bytes"):
            problems.append(f"size differs: {rel}")
        elif "sha256" in entry and file_digest(path) != entry["sha256"]:
            problems.append(f"content differs: {rel}")
    problems += [f"not in manifest: {rel}" for rel in sorted(set(present) - set(listed))]
    return problems


def check_target(target: str | os.PathLike, replaceable: Collection[str] = ()) -> Path:
    """Raise :class:`OutputError` unless ``target`` can be (re)published; returns it absolute.

    Symbolic links in ``target`` are resolved (a link to a folder stays a link; the
    folder it points to is replaced). Checks, without writing anything: the parent is
    a writable folder; the target is
    absent, an empty folder, a folder holding a manifest (an earlier output set), or a
    folder holding nothing but files named in ``replaceable`` (the outputs of a version
    that wrote no manifest).
    """
    target = Path(os.path.realpath(os.fspath(target)))  # a link to a folder publishes at the folder
    parent = target.parent
    if target.exists() or target.is_symlink():
        if not target.is_dir() or target.is_symlink():
            raise OutputError(f"{target} exists and is not a folder")
        legacy = bool(replaceable) and all(p.name in replaceable and p.is_file() for p in target.iterdir())
        if any(target.iterdir()) and not (target / MANIFEST_NAME).is_file() and not legacy:
            raise OutputError(
                f"{target} is not empty and was not written by breastlab (no {MANIFEST_NAME}; an older "
                "version's outputs have none either): choose a new or empty folder, or empty this one"
            )
    probe = parent
    while not probe.exists():  # the nearest existing ancestor must let us create folders
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"{probe} is not writable")
    return target


_WATCHDOG = r"""
import os, select, shutil, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
stage, target, aside = (os.fsencode(a) for a in sys.argv[1:4])
parent, fd, said = os.getppid(), sys.stdin.fileno(), b""
while True:  # until EOF, or the parent is gone (its forked children may hold the pipe open)
    if select.select([fd], [], [], 0.5)[0]:
        chunk = os.read(fd, 64)
        if not chunk:
            break
        said += chunk
    elif os.getppid() != parent:
        break
if b"done" not in said:  # the run died before it published or cleaned up
    if not os.path.lexists(target) and os.path.isdir(aside):
        os.rename(aside, target)
    shutil.rmtree(stage, ignore_errors=True)
    shutil.rmtree(aside, ignore_errors=True)
"""


def _start_watchdog(stage: Path, target: Path, aside: Path):  # noqa: ANN202 - Popen or None
    """A process that cleans up after this one if it dies before publishing (see module doc)."""
    import subprocess
    import sys

    try:
        return subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _WATCHDOG, os.fsencode(stage), os.fsencode(target), os.fsencode(aside)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True,
        )
    except OSError:  # no interpreter to start: the next run's clean_stale() still cleans up
        return None


def _stop_watchdog(proc) -> None:  # noqa: ANN001
    if proc is None:
        return
    with contextlib.suppress(OSError, ValueError):
        proc.stdin.write(b"done")
        proc.stdin.close()
    with contextlib.suppress(Exception):
        proc.wait(timeout=10)


@contextlib.contextmanager
def staged_outputs(
    out_dir: str | os.PathLike, *, manifest: bool = True, replaceable: Collection[str] = ()
) -> Iterator[Path]:
    """Yield a staging folder; on success publish it as ``out_dir`` in one step (see module doc).

    Args:
        out_dir: the folder the set is published as (created with its parents).
        manifest: hash every file into ``manifest.json`` (sizes only when False).
        replaceable: file names an older version wrote without a manifest; a folder
            holding only such files may be replaced too (see :func:`check_target`).

    Raises:
        OutputLocked: another run is writing to ``out_dir``.
        OutputError: ``out_dir`` is not a folder breastlab may replace.
    """
    target = check_target(out_dir, replaceable)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {target.parent}: {exc.strerror or exc}") from None
    with output_lock(target):
        check_target(target, replaceable)  # again, now that nobody else can change it
        clean_stale(target)
        _, staging, old = _names(target)
        stage = Path(tempfile.mkdtemp(prefix=staging, dir=target.parent))
        aside = target.parent / f"{old}{os.getpid()}-{os.urandom(4).hex()}"
        watchdog = _start_watchdog(stage, target, aside)
        try:
            os.chmod(stage, 0o777 & ~current_umask())
            yield stage
            write_manifest(stage, hashes=manifest)
            _fsync_dir(stage)
            if not target.exists():
                os.rename(stage, target)
            elif _exchange(stage, target):
                _rmtree(stage)  # the previous set, now under the staging name
            else:
                os.rename(target, aside)
                os.rename(stage, target)  # killed just before this: the watchdog restores ``aside``
                _rmtree(aside)
            _fsync_dir(target.parent)
        except BaseException:
            _rmtree(stage)
            raise
        finally:
            _stop_watchdog(watchdog)


__all__ = [
    "MANIFEST_NAME", "OutputError", "OutputLocked", "staged_outputs", "output_lock", "clean_stale",
    "check_target", "write_manifest", "verify_outputs", "file_digest",
]
