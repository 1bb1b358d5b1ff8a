"""Hybrid sort: header rules + image model (evidence header/image/both), and header-less inputs."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from breastlab.mri.imaging.model import DEMO_NOTICE, MODEL_KIND


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
    rows = {r["label"] + ("" if r["image_agrees"] != "no" else "!"): r for r in read_rows(tmp_path / "b" / "series.csv")}
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
    model = constant_model(tmp_path / "phase.pt", ["DCE_pre", "DCE_early", "DCE_delayed"], "DCE_pre", task="phase")
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[sort]\nmodel = "{model.name}"\n')
    monkeypatch.setenv("BREASTLAB_CONFIG", str(cfg))
    monkeypatch.delenv("BREASTLAB_MRI_MODEL", raising=False)
    sort_cli([str(tmp_path / "ph" / "GE"), "--out", str(tmp_path / "c")])
    rows = read_rows(tmp_path / "c" / "series.csv")
    unknown_before = [r for r in rows if r["header_label"] == "UNKNOWN"]
    assert unknown_before, "stripped headers should leave the rules uncertain"
    assert all(r["label"] == "DCE_pre" and r["evidence_source"] == "image" for r in unknown_before)
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
