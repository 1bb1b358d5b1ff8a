"""Reproducibility: library versions, data fingerprints, seeds, saved with every run."""
from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import random
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from breastlab.core.privacy import redact_urls

_LIBRARIES = (
    "breastlab", "torch", "numpy", "pydicom", "scikit-learn",
    "scipy", "statsmodels", "matplotlib", "nibabel", "pillow",
)


def library_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def fingerprint_files(paths: Iterable[str | os.PathLike], *, content: bool = True) -> str:
    """SHA-256 over sorted (relative name, size[, content]) of the given files.

    ``content=False`` hashes names and sizes only (fast for large trees).
    """
    digest = hashlib.sha256()
    for path in sorted(str(p) for p in paths):
        p = Path(path)
        digest.update(os.fsencode(p.name))  # names that are not UTF-8 keep their bytes
        try:
            size = p.stat().st_size
        except OSError:  # gone or unreadable since it was listed
            size = -1
        digest.update(str(size).encode())
        if content:
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def fingerprint_arrays(*arrays: Any) -> str:
    """SHA-256 over the raw bytes of numpy arrays (for in-memory data sets)."""
    import numpy as np

    digest = hashlib.sha256()
    for array in arrays:
        a = np.ascontiguousarray(array)
        digest.update(str(a.shape).encode() + str(a.dtype).encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (if imported) for a reproducible run."""
    import numpy as np

    random.seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    np.random.seed(seed)
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)


def run_manifest(config: dict[str, Any], *, data_fingerprint: str | None = None) -> dict[str, Any]:
    """The provenance block written as ``provenance.json`` beside every run's outputs."""
    return {
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": redact_urls(" ".join(sys.argv)),  # no credential of a URL (user info, query)
        "config": config,
        "data_fingerprint": data_fingerprint,
        "versions": library_versions(),
    }
