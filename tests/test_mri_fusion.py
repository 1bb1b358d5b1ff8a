"""Hybrid sort: header rules + image model (evidence header/image/both), and header-less inputs."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from breastlab.seriesmodels.model import DEMO_NOTICE, MODEL_KIND


def constant_model(path: Path, classes: list[str], favourite: str, *, demo: bool = False, task: str = "sequence") -> Path:
    """A real model file whose output is always ``favourite`` (fc weights 0, bias set): deterministic fusion tests."""
    import torch

    from breastlab.models.files import save_model
    from breastlab.models.registry import build_model

    model = build_model("resnet18", in_channels=1, num_classes=len(classes), image_size=32)
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.copy_(torch.tensor([4.0 if c == favourite else 0.0 for c in classes]))
    save_model(path, model, {"kind": MODEL_KIND, "task": task, "class_names": classes, "demo": demo,
                             "preprocessing": {"image_size": 32, "slices_per_series": 2, "central_fraction": 0.6,
                                               "aggregation": "logmean", "normalization": "zscore"}})
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    from breastlab.phantom.mri import write_mri_phantom

    root = tmp_path_factory.mktemp("phantom")
    write_mri_phantom(root, vendors=["SIEMENS"], n_slices=4, matrix=32, seed=3)
    return root


def sort_cli(args: list[str]):
    from typer.testing import CliRunner

    from breastlab.cli.main import app

    res = CliRunner().invoke(app, ["sort", "--no-progress", "-j", "1", *args])
    assert res.exit_code == 0, res.output
    return res


def test_sort_without_model_is_unchanged(phantom, tmp_path, monkeypatch):
    monkeypatch.setenv("BREASTLAB_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.delenv("BREASTLAB_MRI_MODEL", raising=False)
    from breastlab.mri.outputs import SERIES_COLUMNS

    sort_cli([str(phantom / "SIEMENS"), "--out", str(tmp_path / "a")])
    rows = read_rows(tmp_path / "a" / "series.csv")
    assert tuple(rows[0].keys()) == SERIES_COLUMNS
    assert {r["evidence_source"] for r in rows} == {"header"}
    assert "header_label" not in rows[0]


def test_sort_model_evidence_header_image_both(phantom, tmp_path, monkeypatch):
    monkeypatch.setenv("BREASTLAB_CONFIG", str(tmp_path / "none.toml"))
    model = constant_model(tmp_path / "m.pt", ["T2WI", "T2WI_FS", "ADC"], "T2WI", demo=True)
    res = sort_cli([str(phantom / "SIEMENS"), "--out", str(tmp_path / "b"), "--model", str(model)])
    assert "DEMO MODEL" in res.output
    by_label = {}
    for r in read_rows(tmp_path / "b" / "series.csv"):
        by_label.setdefault(r["header_label"], []).append(r)
    t2 = by_label["T2WI"][0]
    assert t2["evidence_source"] == "both" and t2["image_agrees"] == "yes" and t2["evidence"].startswith("both:")
    fs = by_label["T2WI_FS"][0]  # the model says T2WI: flagged, header kept
    assert fs["label"] == "T2WI_FS" and fs["image_agrees"] == "no" and "DISAGREE" in fs["evidence"]
    assert fs["evidence_source"] == "header"
    dwi = by_label["DWI_high"][0]  # not a model class: header only
    assert dwi["evidence_source"] == "header" and dwi["image_label"] == "" and dwi["evidence"].startswith("header:")
    assert "(DEMO)" in t2["image_model"]
    prov = json.loads((tmp_path / "b" / "provenance.json").read_text())
    assert prov["image_model_summary"]["notice"] == DEMO_NOTICE
    assert prov["config"]["classifier"].endswith("(DEMO)")
    assert fs["set_id"] in prov["image_model_summary"]["disagreements"]


def test_model_fills_in_unknown_from_user_config(tmp_path, monkeypatch):
    """Stripped headers: the rules give UNKNOWN; the configured model labels the sets (source image)."""
    from breastlab.phantom.mri import write_mri_phantom

    write_mri_phantom(tmp_path / "ph", vendors=["GE"], n_slices=4, matrix=32, seed=4, strip_headers=True)
    model = constant_model(tmp_path / "seq.pt", ["T2WI", "T2WI_FS", "ADC"], "T2WI_FS")
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[sort]\nmodel = "{model.name}"\n')
    monkeypatch.setenv("BREASTLAB_CONFIG", str(cfg))
    monkeypatch.delenv("BREASTLAB_MRI_MODEL", raising=False)
    sort_cli([str(tmp_path / "ph" / "GE"), "--out", str(tmp_path / "c")])
    rows = read_rows(tmp_path / "c" / "series.csv")
    unknown_before = [r for r in rows if r["header_label"] == "UNKNOWN"]
    assert unknown_before, "stripped headers should leave the rules uncertain"
    assert all(r["label"] == "T2WI_FS" and r["evidence_source"] == "image" for r in unknown_before)
    assert all(r["evidence"].startswith("image:") for r in unknown_before)


def test_sort_png_and_nifti_inputs_with_model_alone(tmp_path, monkeypatch):
    import nibabel as nib
    from PIL import Image

    monkeypatch.setenv("BREASTLAB_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "in" / "shots").mkdir(parents=True)
    for i in range(3):
        Image.fromarray((np.random.default_rng(i).random((24, 24)) * 255).astype(np.uint8)).save(
            tmp_path / "in" / "shots" / f"{i}.png")
    Image.fromarray(np.full((20, 20), 9, np.uint8)).save(tmp_path / "in" / "one.jpg")
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((16, 16, 5)).astype(np.float32), np.eye(4)),
             str(tmp_path / "in" / "vol.nii.gz"))
    (tmp_path / "in" / "notes.txt.bak").write_text("not an image")
    model = constant_model(tmp_path / "m.pt", ["T2WI", "T2WI_FS", "ADC"], "ADC")
    sort_cli([str(tmp_path / "in"), "--out", str(tmp_path / "d"), "--model", str(model)])
    rows = read_rows(tmp_path / "d" / "series.csv")
    assert len(rows) == 3  # the PNG folder, the JPEG, the NIfTI volume
    assert {r["label"] for r in rows} == {"ADC"}
    assert {r["evidence_source"] for r in rows} == {"image"}
    nifti = next(r for r in rows if r["first_path"].endswith(".nii.gz"))
    assert nifti["n_images"] == "5"
    skipped = read_rows(tmp_path / "d" / "skipped.csv")
    assert [Path(s["path"]).name for s in skipped] == ["notes.txt.bak"]
    inst = read_rows(tmp_path / "d" / "instances.csv")
    assert sum(r["path"].endswith(".png") for r in inst) == 3


def test_stripped_multiphase_series_is_split_and_ordered(tmp_path):
    """A stripped GE dynamic (5 phases in one series): split by geometry, ordered by enhancement."""
    from dataclasses import replace

    from breastlab.mri.classify import Classification
    from breastlab.seriesmodels.fusion import order_dce_sets
    from breastlab.mri.sorter import sort_exam
    from breastlab.phantom.mri import write_mri_phantom

    write_mri_phantom(tmp_path / "ph", vendors=["GE"], n_slices=6, matrix=48, seed=6, strip_headers=True)
    truth = {r["path"]: r for r in read_rows(tmp_path / "ph" / "truth_instances.csv")}
    result = sort_exam([tmp_path / "ph" / "GE"], progress=False, workers=1)
    dce = [ls for ls in result.sets if ls.image_set.n_images == 30]
    assert len(dce) == 1 and dce[0].label == "UNKNOWN"
    # as if the image model had called it a DCE phase (the header rules could not)
    sets = [replace(ls, classification=Classification("DCE_pre", 0.7, "image", "image:m", "image"))
            if ls is dce[0] else ls for ls in result.sets]
    extra = {dce[0].set_id: {"header_label": "UNKNOWN", "header_confidence": 0.0, "image_label": "DCE_pre"}}
    out = order_dce_sets(sets, extra)
    parts = [ls for ls in out if ls.set_id.startswith(dce[0].set_id + "_v")]
    assert len(parts) == 5 and all(p.image_set.n_images == 6 for p in parts)
    for p in parts:
        rel = {str(Path(r.path).relative_to(tmp_path / "ph")) for r in p.image_set.records}
        labels = {truth[x]["label"] for x in rel}
        assert len(labels) == 1, "each split volume holds one phase"
        assert p.label == labels.pop()
        assert p.classification.source == "image" and "exam-level" in p.classification.evidence
    assert len(out) == len(result.sets) + 4


def test_real_sort_series_csv_is_training_data(phantom, tmp_path, monkeypatch):
    """DATA form 3 from an actual sort run: series.csv (labels as corrected) + instances.csv."""
    from breastlab.seriesmodels.data import TASK_CLASSES, read_data, slice_table

    monkeypatch.setenv("BREASTLAB_CONFIG", str(tmp_path / "none.toml"))
    sort_cli([str(phantom / "SIEMENS"), "--out", str(tmp_path / "s")])
    rows = read_rows(tmp_path / "s" / "series.csv")
    # the user corrects one label (here: calls the T1 set T2WI_FS) and trains on the file
    with open(tmp_path / "s" / "series.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow(r | ({"label": "T2WI_FS"} if r["label"] == "T1" else {}))
    data = read_data(tmp_path / "s" / "series.csv", TASK_CLASSES["sequence"])
    assert data.source == "sort-series"
    labels = sorted(i.label for i in data.items)
    assert labels == ["ADC", "T2WI", "T2WI_FS", "T2WI_FS"]
    assert all(len(i.files) == 4 and all(Path(f).is_file() for f in i.files) for i in data.items)
    assert len({i.patient_id for i in data.items}) == 1  # one study
    table = slice_table(data.items, TASK_CLASSES["sequence"], slices_per_series=2)
    assert len(table.refs) == 8


def test_sort_rejects_a_missing_model_before_scanning(phantom, tmp_path):
    from typer.testing import CliRunner

    from breastlab.cli.main import app

    res = CliRunner().invoke(app, ["sort", "--no-progress", str(phantom / "SIEMENS"), "--out", str(tmp_path / "x"),
                                   "--model", str(tmp_path / "missing.pt")])
    assert res.exit_code != 0 and "image model not found" in res.output
    assert not (tmp_path / "x" / "series.csv").exists()


def test_unsure_phase_but_sure_dynamic_becomes_a_dce_candidate(phantom):
    from dataclasses import replace

    from breastlab.mri.classify import Classification
    from breastlab.seriesmodels.fusion import fuse_sets
    from breastlab.mri.sorter import sort_exam

    class FakeModel:
        class_names = ["T2WI", "DCE_pre", "DCE_early", "DCE_delayed"]
        path = Path("fake.pt")
        demo = False

        def predict_items(self, items):
            return {i.series_id: np.array([0.3, 0.25, 0.25, 0.2]) for i in items}

    ls = sort_exam([phantom / "SIEMENS"], progress=False, workers=1).sets[0]
    unknown = replace(ls, classification=Classification("UNKNOWN", 0.0, "no rule matched", "fallback"))
    out, extra = fuse_sets([unknown], [FakeModel()])
    c = out[0].classification
    assert c.label in ("DCE_pre", "DCE_early") and abs(c.confidence - 0.7) < 1e-6 and c.source == "image"
    assert "phase uncertain" in c.evidence and extra[ls.set_id]["image_confidence"] == 0.7
