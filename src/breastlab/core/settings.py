"""Project-wide settings read from the environment.

One setting locates the shared real data used by tests and benchmarks:
``BREASTLAB_DATA`` (default ``../shared/data`` relative to the project root).
"""
from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "BREASTLAB_DATA"
_PROJECT_ROOT = Path(__file__).resolve().parents[3]


def data_root() -> Path:
    """Folder holding the shared public data (may not exist)."""
    value = os.environ.get(DATA_ENV)
    if value:
        return Path(value).expanduser().resolve()
    return (_PROJECT_ROOT / ".." / "shared" / "data").resolve()
