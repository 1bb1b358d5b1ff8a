"""The header index trusts only its own manifests (issue 18, item 2).

Each test failed before the index had manifests and stat identity: a folder named like
a part made every later run exit 3; a part planted in ``OUT/index`` was trusted; a file
edited and given back its size and mtime was not read again.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from cli_helpers import invoke
from conftest import require
from test_sort_scale import OUTPUTS, link_tree, same_outputs, sort


@pytest.fixture
def archive(shared_data: Path, tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    link_tree(require(shared_data / "dcmqa" / "ge" / "In"), root / "ge")
    link_tree(require(shared_data / "dcmqa" / "transfer_syntax" / "In"), root / "ts")
    return root


def _one_part(out: Path) -> Path:
    parts = sorted((out / "index").glob("part-*.parquet"))
    assert parts
    return parts[-1]


def test_a_folder_named_like_a_part_is_ignored_with_a_warning(archive, tmp_path):
    out = tmp_path / "out"
    invoke(["sort", archive, "--out", out, "-j", "1", "--no-progress"])
    (out / "index" / "part-99999999-00000000.parquet").mkdir()
    (out / "index" / "part-99999999-00000000.parquet" / "x").write_text("not a part")
    again = invoke(["sort", archive, "--out", out, "-j", "1", "--no-progress"])  # exit 0, not 3
    assert "warning" in again.output and "part-99999999-00000000.parquet" in again.output
    clean = sort([archive], tmp_path / "clean")
    same_outputs(out, clean.out_dir)
    assert not (out / "index" / "part-99999999-00000000.parquet").exists()  # the next set is clean
    third = invoke(["sort", archive, "--out", out, "-j", "1", "--no-progress"])
    assert "warning" not in third.output


def test_a_planted_part_is_not_trusted(archive, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    sort([archive], out)
    table = pq.read_table(_one_part(out))
    descriptions = ["PLANTED" if s == "record" else None for s in table.column("status").to_pylist()]
    planted = table.set_column(table.schema.get_field_index("series_description"), "series_description",
                               pa.array(descriptions, pa.string()))
    target = out / "index" / "part-99999999-0badc0de.parquet"  # newest sequence number: would win
    pq.write_table(planted.replace_schema_metadata(table.schema.metadata), target)
    again = sort([archive], out)
    assert any("part-99999999-0badc0de.parquet" in w for w in again.index["warnings"])
    assert again.index["files_reused"] > 0  # the listed parts are still trusted
    assert "PLANTED" not in (out / "series.csv").read_text()
    same_outputs(out, sort([archive], tmp_path / "clean").out_dir)


def test_a_listed_part_whose_bytes_changed_is_not_trusted(archive, tmp_path):
    out = tmp_path / "out"
    first = sort([archive], out)
    part = _one_part(out)
    data = bytearray(part.read_bytes())
    part.unlink()  # published parts are hard links into the journal of the run: write a new file
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    again = sort([archive], out)
    assert any(part.name in w for w in again.index["warnings"])
    assert again.index["files_read"] > 0 and again.index["files_read"] <= first.index["files_read"]
    same_outputs(out, sort([archive], tmp_path / "clean").out_dir)


def test_an_index_without_its_manifest_is_rebuilt(archive, tmp_path):
    out = tmp_path / "out"
    first = sort([archive], out)
    (out / "index" / "_manifest.json").unlink()
    again = sort([archive], out)
    assert again.index["files_read"] == first.index["files_read"] and again.index["warnings"]
    same_outputs(out, sort([archive], tmp_path / "clean").out_dir)


def test_an_edit_that_restores_size_and_mtime_is_still_seen(archive, tmp_path):
    out = tmp_path / "out"
    sort([archive], out)
    victim = None
    for path in sorted((archive / "ge").rglob("*")):
        if path.is_file() and b"ORIGINAL" in path.read_bytes()[:8192]:
            victim = path
            break
    assert victim is not None
    st = victim.stat()
    data = victim.read_bytes()
    victim.unlink()  # hard-linked from the shared data: never edit the original
    victim.write_bytes(data.replace(b"ORIGINAL", b"DERIVED ", 1))  # same size
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))  # the same mtime as well
    assert (victim.stat().st_size, victim.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    again = sort([archive], out)
    assert again.index["files_read"] == 1
    same_outputs(out, sort([archive], tmp_path / "clean").out_dir)
    import pyarrow.parquet as pq

    table = pq.read_table(out / "index", columns=["path", "image_type"]).to_pylist()
    assert "DERIVED" in next(r["image_type"] for r in table if r["path"] == str(victim))


def test_a_part_planted_in_the_journal_is_not_trusted(archive, tmp_path):
    out = tmp_path / "out"
    sort([archive], out)
    journal = tmp_path / ".out.index"
    journal.mkdir()
    shutil.copyfile(_one_part(out), journal / "part-99999998-00c0ffee.parquet")  # not in any manifest
    (journal / "part-99999999-00000000.parquet").mkdir()
    again = sort([archive], out)
    assert len([w for w in again.index["warnings"] if "journal" in w]) == 2
    same_outputs(out, sort([archive], tmp_path / "clean").out_dir)
    assert not journal.exists()


def test_outputs_named_in_the_set_manifest(archive, tmp_path):
    """The index manifest is part of the published set (OUT/manifest.json lists it)."""
    out = tmp_path / "out"
    sort([archive], out)
    listed = json.loads((out / "manifest.json").read_text())["files"]
    assert "index/_manifest.json" in listed
    parts = json.loads((out / "index" / "_manifest.json").read_text())["parts"]
    assert {p["name"] for p in parts} == {p.name for p in (out / "index").glob("part-*.parquet")}
    assert all(name in listed for name in OUTPUTS)
