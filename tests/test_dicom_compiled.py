"""The compiled header walker (``breastlab.dicom._cwalk``, Cython) against the pure-Python one.

Both must give identical results (records, and skip reasons with their messages) on every
file of the shared data and on the fuzz suite's hostile mutants. The compiled walker is
built by ``pip install -e .`` where a C compiler exists; without it these tests skip and
the pure-Python walker is what runs.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from breastlab.dicom import _parse
from breastlab.dicom.headers import read_records


@pytest.fixture
def both():
    """Switch walkers inside one process; back to the default afterwards."""
    if not _parse.use_compiled(True):
        pytest.skip("compiled header walker not built (no C compiler or Cython at install): pure Python runs")
    yield
    _parse.use_compiled(os.environ.get("BREASTLAB_PURE_PYTHON", "") in ("", "0"))


def _read_all(paths: list[Path], compiled: bool) -> list:
    assert _parse.use_compiled(compiled) == compiled
    assert _parse.WALKER == ("compiled" if compiled else "python")
    return [read_records(p) for p in paths]


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _compare(paths: list[Path]) -> int:
    fast = _read_all(paths, True)
    slow = _read_all(paths, False)
    differ = [(p, a, b) for p, a, b in zip(paths, fast, slow) if a != b or type(a) is not type(b)]
    assert not differ, [(str(p), str(a)[:300], str(b)[:300]) for p, a, b in differ[:3]]
    return len(paths)


def test_walker_switch_is_real(both):
    """The two paths are different code: the compiled one makes compiled nodes."""
    data = (b"\x08\x00\x60\x00CS\x02\x00MR" + b"\x28\x00\x10\x00US\x02\x00\x00\x01")
    _parse.use_compiled(True)
    node, _, _ = _parse.walk(data, 0, len(data), True, frozenset(), top=True)
    assert type(node).__name__ == "CNode" and node.str(0x00080060) == "MR" and node.int(0x00280010, "US") == 256
    _parse.use_compiled(False)
    node, _, _ = _parse.walk(data, 0, len(data), True, frozenset(), top=True)
    assert type(node) is _parse.Node and node.str(0x00080060) == "MR" and node.int(0x00280010, "US") == 256


@pytest.mark.slow
def test_compiled_and_pure_walkers_agree_on_every_shared_file(both, shared_data: Path):
    files = _files(shared_data)
    assert len(files) > 1000
    n = _compare(files)
    print(f"\n{n} files: identical records and skip reasons")


@pytest.mark.slow
def test_compiled_and_pure_walkers_agree_on_hostile_mutants(both, shared_data: Path, tmp_path: Path):
    from conftest import require
    from fuzz_mutants import build_tree

    require(shared_data / "nact-dce")
    require(shared_data / "dcmqa")
    tree = build_tree(tmp_path / "in", shared_data, seed=7)
    files = _files(tree.root / "mutants")
    assert len(files) > 300
    _compare(files)
