"""Re-runs proportional to change (issue 19, item 1): unchanged studies keep their previous rows;
outputs equal a full run on a clean folder after files are added, removed and changed inside
existing studies."""
from __future__ import annotations

import os
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from cli_helpers import invoke
from conftest import require
from test_sort_scale import link_tree, same_outputs


def sort(inputs, out, **kw):
    from breastlab.mri.sorter import sort_exam

    return sort_exam(inputs, out_dir=out, workers=1, progress=False, keep_records=False, **kw)


@pytest.fixture
def archive(shared_data: Path, tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    for vendor in ("ge", "siemens_xa30", "transfer_syntax", "philips"):
        link_tree(require(shared_data / "dcmqa" / vendor / "In"), root / vendor)
    return root


def _images(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.rglob("*")) if p.is_file() and p.stat().st_size > 20_000]


def test_changed_studies_are_sorted_again_and_outputs_equal_a_full_run(archive, shared_data, tmp_path):
    out = tmp_path / "out"
    first = sort([archive], out)
    n_studies = len({s.study for s in first.sets})
    assert first.index["studies_reused"] == 0 and n_studies >= 4
    assert (out / "index" / "_studies.parquet").is_file()

    unchanged = sort([archive], out)
    assert unchanged.index["studies_reused"] == n_studies  # nothing read, grouped or labelled again
    same_outputs(out, sort([archive], tmp_path / "clean0").out_dir)

    # inside existing studies: one file added (a new instance of a series), one removed, one changed
    source = _images(archive / "ge")[0]
    ds = pydicom.dcmread(source)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = 9999
    ds.save_as(source.parent / "added.dcm")
    _images(archive / "siemens_xa30")[-1].unlink()
    victim = next(p for p in _images(archive / "philips") if b"ORIGINAL" in p.read_bytes()[:8192])
    data = victim.read_bytes()
    victim.unlink()  # hard-linked from the shared data: write a new file
    victim.write_bytes(data.replace(b"ORIGINAL", b"DERIVED ", 1))
    link_tree(require(shared_data / "dcmqa" / "nih" / "In"), archive / "nih")  # and a new study

    again = sort([archive], out)
    assert 0 < again.index["studies_reused"] < len({s.study for s in again.sets})
    clean = sort([archive], tmp_path / "clean")
    same_outputs(out, clean.out_dir)
    assert [s.label for s in again.sets] == [s.label for s in clean.sets]

    full = sort([archive], out, full=True)  # --full: nothing reused, same outputs
    assert full.index["studies_reused"] == 0
    same_outputs(out, clean.out_dir)


def test_settings_change_reuses_nothing(archive, tmp_path):
    out = tmp_path / "out"
    sort([archive], out)
    other = sort([archive], out, b_threshold=500.0)
    assert other.index["studies_reused"] == 0
    same_outputs(out, sort([archive], tmp_path / "clean", b_threshold=500.0).out_dir)


def test_a_planted_study_file_is_ignored(archive, tmp_path):
    out = tmp_path / "out"
    sort([archive], out)
    studies = out / "index" / "_studies.parquet"
    data = bytearray(studies.read_bytes())
    studies.unlink()
    data[len(data) // 2] ^= 0x01
    studies.write_bytes(bytes(data))  # a tampered copy: its hash no longer matches
    again = sort([archive], out)
    assert again.index["studies_reused"] == 0
    same_outputs(out, sort([archive], tmp_path / "clean").out_dir)


def test_cli_rerun_prints_the_summary_of_reused_studies(archive, tmp_path):
    out = tmp_path / "out"
    first = invoke(["sort", archive, "--out", out, "-j", "1", "--no-progress"])
    again = invoke(["sort", archive, "--out", out, "-j", "1", "--no-progress"])
    table = [line for line in first.output.splitlines() if "│" in line or "|" in line]
    assert table and table == [line for line in again.output.splitlines() if "│" in line or "|" in line]
    assert os.path.isfile(out / "series.csv")
