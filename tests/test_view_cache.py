"""The on-disk cache of preprocessed views: hit, invalidation (file, setting), two concurrent
readers, and SIGKILL during a fill followed by a correct re-run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from breastlab.multiview.cache import ViewCache, default_cache_dir
from breastlab.multiview.dataset import CaseDataset
from breastlab.multiview.preprocess import PreprocessConfig, load_view

SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    p for p in (SRC, os.environ.get("PYTHONPATH", "")) if p)}  # this checkout first


def _image(path: Path, seed: int, size: int = 48) -> Path:
    rng = np.random.default_rng(seed)
    np.save(path, rng.gamma(2.0, 50.0, (size, size)).astype(np.float32))
    return path


def _entries(root: Path) -> list[Path]:
    return sorted(root.glob("*/*.npy"))


def test_hit_and_invalidation_on_changed_file_and_setting(tmp_path):
    cache = ViewCache(tmp_path / "cache")
    img = _image(tmp_path / "a.npy", 0)
    config = PreprocessConfig(image_size=16)
    plain = load_view(img, "RCC", config)
    first = load_view(img, "RCC", config, cache)
    second = load_view(img, "RCC", config, cache)
    assert (cache.misses, cache.hits) == (1, 1)
    assert isinstance(second, np.memmap)                     # read back memory-mapped
    assert np.array_equal(first, plain) and np.array_equal(second, plain)
    assert len(_entries(cache.root)) == 1 and cache.size_bytes() > 16 * 16 * 4

    _image(img, 1)                                           # the file's content changes
    changed = load_view(img, "RCC", config, cache)
    assert cache.misses == 2 and np.array_equal(changed, load_view(img, "RCC", config))
    assert not np.array_equal(changed, plain)

    for other in (PreprocessConfig(image_size=24), PreprocessConfig(image_size=16, flip_right=False),
                  PreprocessConfig(image_size=16, normalization="minmax")):
        out = load_view(img, "RCC", other, cache)
        assert np.array_equal(out, load_view(img, "RCC", other))
    assert cache.misses == 5 and len(_entries(cache.root)) == 5

    copy = tmp_path / "copy.npy"                             # same content: the same entry
    copy.write_bytes(img.read_bytes())
    load_view(copy, "RCC", config, cache)
    assert cache.hits == 2


def test_dataset_reads_the_cache_and_the_default_folder(tmp_path, monkeypatch):
    rows = [{"case_id": f"c{i}", "label": i % 2, "LCC": str(_image(tmp_path / f"l{i}.npy", i)),
             "RCC": str(_image(tmp_path / f"r{i}.npy", 10 + i))} for i in range(4)]
    monkeypatch.setenv("BREASTLAB_CACHE", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    ref = CaseDataset(rows, image_size=16)
    cold = CaseDataset(rows, image_size=16, disk_cache=True)
    warm = CaseDataset(rows, image_size=16, disk_cache=True)
    assert cold.disk_cache.misses == 8 and warm.disk_cache.hits == 8 and warm.disk_cache.misses == 0
    assert np.array_equal(ref._data.numpy(), warm._data.numpy())
    lazy = CaseDataset(rows, image_size=16, cache=False, disk_cache=tmp_path / "env")
    assert np.array_equal(lazy[2]["image"].numpy(), ref[2]["image"].numpy())
    assert lazy.disk_cache.hits == 2


_READER = textwrap.dedent("""
    import sys, numpy as np
    from breastlab.multiview.cache import ViewCache
    from breastlab.multiview.preprocess import PreprocessConfig, load_view
    cache = ViewCache(sys.argv[1])
    out = np.stack([load_view(p, "LCC", PreprocessConfig(image_size=32), cache)
                    for _ in range(3) for p in sys.argv[3:]])
    np.save(sys.argv[2], out)
""")


def test_two_concurrent_readers_fill_and_read_the_same_entries(tmp_path):
    images = [str(_image(tmp_path / f"v{i}.npy", i, size=256)) for i in range(6)]
    root = tmp_path / "cache"
    env = ENV
    procs = [subprocess.Popen([sys.executable, "-c", _READER, str(root), str(tmp_path / f"out{k}.npy"),
                               *images], env=env) for k in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    ref = np.stack([load_view(p, "LCC", PreprocessConfig(image_size=32)) for _ in range(3)
                    for p in images])
    for k in range(2):
        assert np.array_equal(np.load(tmp_path / f"out{k}.npy"), ref)
    assert len(_entries(root)) == 6 and not list(root.glob("*/.*.tmp"))


_KILLED_FILL = textwrap.dedent("""
    import sys, time, numpy as np
    from breastlab.multiview import cache as C
    from breastlab.multiview.preprocess import PreprocessConfig, load_view

    def half_then_hang(fh, arr, allow_pickle=False):   # killed in the middle of a write
        fh.write(b"\\x93NUMPY" + b"\\0" * 100)
        fh.flush()
        open(sys.argv[3], "w").close()
        time.sleep(600)

    C.np.save = half_then_hang
    load_view(sys.argv[2], "LCC", PreprocessConfig(image_size=32), C.ViewCache(sys.argv[1]))
""")


def test_sigkill_during_a_fill_leaves_no_entry_and_a_rerun_is_correct(tmp_path):
    img = str(_image(tmp_path / "v.npy", 3, size=128))
    root, ready = tmp_path / "cache", tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_FILL, str(root), img, str(ready)],
                            env=ENV)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the fill did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _entries(root) == [] and len(list(root.glob("*/.*.tmp"))) == 1   # no half entry
    cache = ViewCache(root)
    out = load_view(img, "LCC", PreprocessConfig(image_size=32), cache)
    assert cache.misses == 1
    assert np.array_equal(out, load_view(img, "LCC", PreprocessConfig(image_size=32)))
    again = ViewCache(root)
    assert np.array_equal(load_view(img, "LCC", PreprocessConfig(image_size=32), again), out)
    assert again.hits == 1
    assert cache.clean(older_than=0) == 1 and not list(root.glob("*/.*.tmp"))
    assert len(_entries(root)) == 1


def test_an_unwritable_cache_folder_is_not_an_error(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o500)
    try:
        img = _image(tmp_path / "a.npy", 0)
        out = load_view(img, "LCC", PreprocessConfig(image_size=16), ViewCache(root / "sub"))
        assert np.array_equal(out, load_view(img, "LCC", PreprocessConfig(image_size=16)))
    finally:
        root.chmod(0o700)
