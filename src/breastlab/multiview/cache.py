"""An on-disk cache of preprocessed views: decode and preprocess each image once.

Each entry is one preprocessed view (float32 ``[H, W]``, a ``.npy`` file read back
memory-mapped), keyed by

* the SHA-256 of the image file's **content** (a changed file is a new key; a renamed or
  copied file hits the same entry), and
* the preprocessing settings (``PreprocessConfig``, whether the view is flipped) and
  ``PREPROCESS_VERSION`` (raised whenever ``multiview.preprocess`` changes what it
  computes), so a changed setting never reads an old entry.

Safety: an entry is written to a temporary sibling, fsynced and renamed into place
(``core.atomic``), so readers see a whole entry or none, a killed fill leaves at most a
hidden ``.*.tmp`` file (never read; ``clean`` removes old ones) and two processes filling
the same entry both write the same bytes. Entries are never changed in place, so a
reader's memory map stays valid when another process replaces the entry.

Location: ``--cache-dir``, else ``$BREASTLAB_CACHE``, else ``$XDG_CACHE_HOME/breastlab/views``
(``~/.cache/breastlab/views``). Size: one float32 image per view at the model's size
(256 x 256: 256 KiB per view, 1 MiB per four-view case). Delete the folder to empty it.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from breastlab.core.atomic import atomic_open

#: Raise when the preprocessing computes something else for the same settings.
PREPROCESS_VERSION = 1
_STALE_TMP_SECONDS = 3600


def default_cache_dir() -> Path:
    """``$BREASTLAB_CACHE``, else ``$XDG_CACHE_HOME/breastlab/views`` (``~/.cache``)."""
    env = os.environ.get("BREASTLAB_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "breastlab" / "views"


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content (hex), read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ViewCache:
    """Preprocessed views on disk (module docstring).

    Args:
        root: the cache folder (created on first write); None: ``default_cache_dir()``.
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.hits = 0
        self.misses = 0
        # content digests by (path, size, mtime, inode): one hash per file and process
        self._digests: dict[tuple[str, int, int, int], str] = {}

    def __repr__(self) -> str:
        return f"ViewCache({str(self.root)!r})"

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers get a fresh memo
        return {"root": self.root, "hits": 0, "misses": 0, "_digests": {}}

    # ------------------------------------------------------------------ keys
    def digest(self, path: str | os.PathLike) -> str:
        st = os.stat(path)
        memo = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
        if memo not in self._digests:
            self._digests[memo] = file_digest(path)
        return self._digests[memo]

    @staticmethod
    def settings_key(settings: dict[str, Any]) -> str:
        text = json.dumps({"v": PREPROCESS_VERSION, **settings}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def entry(self, path: str | os.PathLike, settings: dict[str, Any]) -> Path:
        """Where the entry of ``path`` under ``settings`` lives (it may not exist)."""
        content = self.digest(path)
        return self.root / content[:2] / f"{content}-{self.settings_key(settings)}.npy"

    # ------------------------------------------------------------------ read / write
    def get(self, entry: Path) -> np.ndarray | None:
        """The memory-mapped array of ``entry``, or None (absent or unreadable: refilled)."""
        try:
            return np.load(entry, mmap_mode="r", allow_pickle=False)
        except (FileNotFoundError, ValueError, OSError):
            return None

    def put(self, entry: Path, array: np.ndarray) -> None:
        """Write ``array`` as ``entry``, atomically (temporary sibling, fsync, rename)."""
        with atomic_open(entry, "wb") as fh:
            np.save(fh, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)

    def fetch(self, path: str | os.PathLike, settings: dict[str, Any],
              compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached array of ``path`` under ``settings``; on a miss ``compute()`` it and
        store it. A cache folder that cannot be written is not an error: the array is
        returned uncached."""
        entry = self.entry(path, settings)
        cached = self.get(entry)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        array = compute()
        try:
            self.put(entry, array)
        except OSError:
            pass
        return array

    # ------------------------------------------------------------------ housekeeping
    def size_bytes(self) -> int:
        """Bytes held by the cache's entries."""
        if not self.root.is_dir():
            return 0
        return sum(p.stat().st_size for p in self.root.glob("*/*.npy"))

    def clean(self, older_than: float = _STALE_TMP_SECONDS) -> int:
        """Remove temporary files of killed fills older than ``older_than`` seconds;
        returns how many were removed."""
        if not self.root.is_dir():
            return 0
        now, removed = time.time(), 0
        for tmp in self.root.glob("*/.*.tmp"):
            try:
                if now - tmp.stat().st_mtime > older_than:
                    tmp.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed


def as_cache(value: Any) -> ViewCache | None:
    """``None``/``False`` → no cache; ``True`` → the default folder; a path or a
    ``ViewCache`` as given."""
    if value is None or value is False:
        return None
    if isinstance(value, ViewCache):
        return value
    if value is True:
        return ViewCache()
    return ViewCache(value)
