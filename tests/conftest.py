"""Shared test fixtures. Real data comes from BREASTLAB_DATA (default ../shared/data)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# the preprocessed-view cache of training runs (multiview/cache.py) in a folder of the
# session's own, never the user's ~/.cache
import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

os.environ["BREASTLAB_CACHE"] = tempfile.mkdtemp(prefix="breastlab-test-cache-")
atexit.register(shutil.rmtree, os.environ["BREASTLAB_CACHE"], ignore_errors=True)

from breastlab.core.settings import data_root  # noqa: E402


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder; skips the test when it is absent."""
    root = data_root()
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set BREASTLAB_DATA)")
    return root


def require(path: Path) -> Path:
    """Skip unless ``path`` exists (for tests that need one data subfolder)."""
    if not path.exists():
        pytest.skip(f"real data not found: {path}")
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run faster on one thread than on a contended OpenMP pool (restored after)."""
    torch = pytest.importorskip("torch")
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
