"""core/atomic: outputs are renamed into place whole and get the user's umask."""
from __future__ import annotations

import os
import stat

import pytest

from breastlab.core import atomic


@pytest.fixture
def umask():
    """Set a umask for one test and restore the previous one afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(saved)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_honour_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    assert atomic.current_umask() == mask
    outputs = [
        atomic.write_text(tmp_path / "a.txt", "x"),
        atomic.write_bytes(tmp_path / "b.bin", b"x"),
        atomic.write_json(tmp_path / "c.json", {"a": 1}),
        atomic.write_csv(tmp_path / "d.csv", [{"a": 1}], ["a"]),
    ]
    for path in outputs:
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_failed_write_leaves_no_temporary_and_keeps_old_file(tmp_path):
    target = atomic.write_text(tmp_path / "out.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_open(target) as fh:
            fh.write("new")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_long_names_do_not_overflow_the_temporary_name(tmp_path):
    name = "n" * 250 + ".txt"  # 254 bytes: a temporary "." + name + suffix would be too long
    path = atomic.write_text(tmp_path / name, "ok")
    assert path.read_text() == "ok"
