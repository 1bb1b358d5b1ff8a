"""Unit tests: series.csv/json, instances.csv, skipped.csv, PHI, export folders (hand-built records)."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from mri_helpers import T1_GRE, T2_TSE, rec, volume

from breastlab.dicom.records import SkippedFile
from breastlab.mri.export import export_sets, plan_folders
from breastlab.mri.outputs import REQUIRED_COLUMNS, SERIES_COLUMNS, write_outputs
from breastlab.mri.sorter import sort_records

PHI = dict(patient_name="DOE^JANE", patient_id="PID-12345")


def _exam(tmp: Path | None = None):
    recs = volume(3, series_uid="1.2.3.2", series_number=2, **T2_TSE, **PHI)
    recs += volume(3, series_uid="1.2.3.4", series_number=4, b_value=0.0, scanning_sequence=("EP",),
                   image_type=("ORIGINAL", "PRIMARY", "DIFFUSION"), series_description="ep2d_diff", **PHI)
    recs += volume(3, series_uid="1.2.3.4", series_number=4, b_value=800.0, scanning_sequence=("EP",),
                   image_type=("ORIGINAL", "PRIMARY", "DIFFUSION"), series_description="ep2d_diff", **PHI)
    for sn, t in ((6, 100.0), (7, 200.0), (8, 300.0), (9, 400.0)):
        recs += volume(3, series_uid=f"1.2.3.{sn}", series_number=sn, acquisition_time=t, **T1_GRE, **PHI)
    if tmp is not None:  # real (dummy) files so the export can link them
        (tmp / "in").mkdir()
        moved = []
        for r in recs:
            p = tmp / "in" / Path(r.path).name
            p.write_bytes(b"dicom" + r.path.encode())
            moved.append(r.__class__(**{**{f: getattr(r, f) for f in r.field_names()}, "path": str(p)}))
        recs = moved
    return recs


def test_outputs_columns_and_no_phi(tmp_path: Path) -> None:
    sets = sort_records(_exam())
    skipped = [SkippedFile("/in/seg.dcm", "not-image", "DICOM SEG")]
    written = write_outputs(tmp_path, sets, skipped, manifest={"config": {}})
    assert set(written) == {"series.csv", "series.json", "instances.csv", "skipped.csv", "provenance.json"}
    rows = list(csv.DictReader(open(tmp_path / "series.csv")))
    header = next(csv.reader(open(tmp_path / "series.csv")))
    assert tuple(header[: len(REQUIRED_COLUMNS)]) == REQUIRED_COLUMNS and tuple(header) == SERIES_COLUMNS
    assert [r["label"] for r in rows] == ["T2WI", "DWI_low", "DWI_high", "DCE_pre", "DCE_early", "DCE_delayed",
                                          "DCE_delayed"]
    assert [r["dce_phase"] for r in rows] == ["", "", "", "0", "1", "2", "3"]
    assert [r["b_value"] for r in rows[:3]] == ["", "0", "800"]
    assert rows[6]["dce_seconds"] == "300" and rows[6]["n_timepoints"] == "4"
    assert all(r["evidence"] and r["evidence_source"] == "header" for r in rows)
    js = json.loads((tmp_path / "series.json").read_text())
    assert len(js) == len(rows) and js[1]["b_value"] == 0 and js[0]["dce_phase"] is None
    inst = list(csv.DictReader(open(tmp_path / "instances.csv")))
    assert len(inst) == 21 and {r["set_id"] for r in inst} == {r["set_id"] for r in rows}
    assert list(csv.DictReader(open(tmp_path / "skipped.csv")))[0]["reason"] == "not-image"
    for name in ("series.csv", "series.json", "instances.csv"):
        text = (tmp_path / name).read_text()
        assert "DOE^JANE" not in text and "PID-12345" not in text
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_keep_phi_adds_patient_columns(tmp_path: Path) -> None:
    write_outputs(tmp_path, sort_records(_exam()), [], keep_phi=True)
    rows = list(csv.DictReader(open(tmp_path / "series.csv")))
    assert rows[0]["patient_name"] == "DOE^JANE" and rows[0]["patient_id"] == "PID-12345"


@pytest.mark.parametrize("mode", ["link", "copy"])
def test_export_folders_and_inputs_untouched(tmp_path: Path, mode: str) -> None:
    recs = _exam(tmp_path)
    before = {r.path: (Path(r.path).read_bytes(), os.stat(r.path).st_mtime_ns) for r in recs}
    sets = sort_records(recs)
    placed, counts = export_sets(sets, tmp_path / "out", mode=mode)
    study = sets[0].study
    assert study.startswith("study-") and "DOE" not in study
    folders = sorted(p.name for p in (tmp_path / "out" / study).iterdir())
    assert folders == ["DCE_delayed_p2", "DCE_delayed_p3", "DCE_early", "DCE_pre", "DWI_high_b800", "DWI_low_b0", "T2WI"]
    assert len(placed) == 21 and sum(counts.values()) == 21
    assert counts["link" if mode == "link" else "copy"] == 21
    for r in recs:
        assert (Path(r.path).read_bytes(), os.stat(r.path).st_mtime_ns) == before[r.path]
    dest = Path(placed[(sets[0].set_id, sets[0].image_set.records[0].path)])
    assert dest.read_bytes() == Path(sets[0].image_set.records[0].path).read_bytes()
    assert os.path.samefile(dest, sets[0].image_set.records[0].path) == (mode == "link")
    # running again is idempotent
    _, again = export_sets(sets, tmp_path / "out", mode=mode)
    assert sum(again.values()) == 21 and (mode == "copy" or again["exists"] == 21)


def test_export_names_unique_for_same_basename() -> None:
    recs = volume(2, series_uid="1.2.3.1", series_number=1, **T2_TSE)
    recs += volume(2, series_uid="1.2.3.2", series_number=2, **T2_TSE)
    plan = plan_folders(sort_records(recs))
    assert sorted(p.split("/")[1] for p in plan.values()) == ["T2WI_s1", "T2WI_s2"]


def test_export_refuses_to_overwrite_an_input(tmp_path: Path) -> None:
    f = tmp_path / "T2WI" / "a.dcm"
    f.parent.mkdir()
    f.write_bytes(b"x")
    sets = sort_records([rec(path=str(f), study_uid=None, **T2_TSE)])
    plan = plan_folders(sets)
    root = tmp_path / "x"
    (root / plan[sets[0].set_id]).parent.mkdir(parents=True)
    os.symlink(f.parent, root / plan[sets[0].set_id])
    with pytest.raises(ValueError, match="overwrite an input"):
        export_sets(sets, root)
    assert f.read_bytes() == b"x"
