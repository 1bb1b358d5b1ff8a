"""The sort's per-file state lives out of core (issue 19, item 4): walked files, the files to
read and the live rows are DuckDB tables, not Python objects; what is new, changed or removed
is found by the same rules as before; the command's summary keeps the first sets only."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from cli_helpers import invoke
from conftest import require
from test_sort_scale import link_tree, same_outputs


@pytest.fixture
def archive(shared_data: Path, tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    for vendor in ("ge", "transfer_syntax"):
        link_tree(require(shared_data / "dcmqa" / vendor / "In"), root / vendor)
    return root


def _files(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*") if p.is_file())


def _refresh(out: Path, root: Path):  # noqa: ANN202 - a HeaderIndex
    from breastlab.dicom.archives import read_open
    from breastlab.dicom.scan import iter_inputs
    from breastlab.index.store import HeaderIndex

    index = HeaderIndex(out)
    index.open()
    index.refresh(iter_inputs([root], []), read_open, workers=1)
    return index


def _containers(obj: object) -> dict[str, int]:
    return {name: len(value) for name, value in vars(obj).items() if isinstance(value, (list, dict, set, tuple))}


def test_the_index_holds_no_per_file_python_state(archive, tmp_path):
    n = len(_files(archive))
    assert n >= 30
    index = _refresh(tmp_path / "out", archive)
    try:
        assert index.n_files == n and index.n_read == n and index.n_reused == 0
        big = {k: v for obj in (index, index.state) for k, v in _containers(obj).items() if v >= n // 2}
        assert not big, f"per-file state held in Python: {big}"
        live = index.state.con.execute("SELECT count(DISTINCT path_bytes) FROM live_rows").fetchall()[0][0]
        assert live == n  # every walked file has live rows (records or a skipped row)
        assert not index.stale_parts()
    finally:
        index.close()
    assert not list(index.journal.glob(".tmp-view-*"))  # the state's database is gone with it


def test_new_changed_and_removed_files_are_found(archive, tmp_path):
    from breastlab.mri.sorter import sort_exam

    out = tmp_path / "out"
    sort_exam([archive], out_dir=out, workers=1, progress=False)
    files = _files(archive)
    changed, removed = Path(files[0]), Path(files[1])
    data = changed.read_bytes()
    changed.unlink()  # hard-linked from the shared data: a new file with the same bytes (new inode, ctime)
    changed.write_bytes(data)
    removed.unlink()
    shutil.copyfile(files[2], archive / "new.dcm")
    index = _refresh(out, archive)
    try:
        assert (index.n_read, index.n_reused) == (2, len(files) - 2)  # changed + new; the rest unchanged
        assert index.stale_parts()  # the removed file's and the changed file's old rows
        dead = os.fsencode(str(removed))
        assert index.state.con.execute("SELECT count(*) FROM live_rows WHERE path_bytes = ?",
                                       [dead]).fetchall()[0][0] == 0
    finally:
        index.close()


def test_an_inode_beyond_int64_is_stored_wrapped(tmp_path, monkeypatch):
    from breastlab.index import filestate

    f = tmp_path / "f"
    f.write_bytes(b"x")
    real = os.stat(f)

    class Huge:
        st_size, st_mtime_ns, st_ctime_ns, st_ino = real.st_size, real.st_mtime_ns, real.st_ctime_ns, 2**64 - 5

    monkeypatch.setattr(filestate.os, "stat", lambda path: Huge)
    st = filestate.file_stat(str(f))
    assert st is not None and st[3] == -5
    import pyarrow as pa

    assert pa.array([st[3]], pa.int64()).to_pylist() == [-5]


def test_a_summary_sort_keeps_the_first_sets_and_counts_all(archive, tmp_path, monkeypatch):
    from breastlab.mri import sorter

    full = sorter.sort_exam([archive], out_dir=tmp_path / "all", workers=1, progress=False)
    assert full.n_sets == len(full.sets) > 3
    monkeypatch.setattr(sorter, "SUMMARY_SETS", 3)
    light = sorter.sort_exam([archive], out_dir=tmp_path / "light", workers=1, progress=False, keep_records=False)
    assert len(light.sets) == 3 and light.n_sets == full.n_sets
    assert [s.set_id for s in light.sets] == [s.set_id for s in full.sets[:3]]
    assert sum(light.labels.values()) == light.n_sets
    provenance = json.loads((tmp_path / "light" / "provenance.json").read_text())
    assert provenance["summary"]["n_image_sets"] == full.n_sets
    same_outputs(tmp_path / "light", tmp_path / "all")
    res = invoke(["sort", archive, "--out", tmp_path / "cli", "--no-progress"])
    assert f"{full.n_sets} image sets (the first 3; all in series.csv)" in res.output
    assert "image sets per label:" in res.output


def test_reused_rows_keep_a_path_that_is_not_utf8(shared_data, tmp_path):
    from breastlab.mri.sorter import sort_exam

    source = require(shared_data / "dcmqa" / "ge" / "In")
    root = tmp_path / "in"
    link_tree(source, root)
    first = next(p for p in sorted(root.rglob("*")) if p.is_file())
    odd = os.path.join(os.fsencode(str(first.parent)), b"caf\xe9.dcm")
    os.rename(os.fsencode(str(first)), odd)
    out = tmp_path / "out"
    sort_exam([root], out_dir=out, workers=1, progress=False, keep_records=False)
    again = sort_exam([root], out_dir=out, workers=1, progress=False, keep_records=False)
    assert again.index["studies_reused"] >= 1
    assert b"caf\xe9.dcm" in (out / "instances.csv").read_bytes()
    same_outputs(out, sort_exam([root], out_dir=tmp_path / "clean", workers=1, progress=False).out_dir)
