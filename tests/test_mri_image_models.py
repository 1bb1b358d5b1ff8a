"""MRI image models: CLI train/evaluate on phantom data (cross-vendor), demo model labelling."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from breastlab.cli.main import app
from breastlab.seriesmodels.model import DEMO_NOTICE


def run_cli(args: list[str]):
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output + repr(res.exception)
    return res


@pytest.mark.slow
def test_phantom_model_generalises_to_held_out_vendor_dialect(tmp_path):
    """Train on SIEMENS + GE phantom exams, test on PHILIPS exams of other seeds (a machinery test)."""
    from breastlab.seriesmodels.demo import phantom_class_folders

    classes = ["T2WI", "T2WI_FS", "ADC"]
    train = phantom_class_folders(tmp_path / "train", vendors=("SIEMENS", "GE"), seeds=range(4), classes=classes,
                                  n_slices=6, matrix=48)
    test = phantom_class_folders(tmp_path / "test", vendors=("PHILIPS",), seeds=(10, 11), classes=classes,
                                 n_slices=6, matrix=48)
    run = tmp_path / "run"
    res = run_cli(["mri", "train", str(train), "--task", "sequence", "--test", str(test), "--out", str(run),
                   "--image-size", "48", "--slices", "3", "--epochs", "8", "--pretrained", "no", "--threads", "1",
                   "--no-progress", "--synthetic"])
    assert "single-slice accuracy" in res.output
    assert "Phantom / demo data" in (run / "report.html").read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    test_metrics = metrics["models"]["resnet18"]["repeats"]["repeat0"]["test"]
    assert metrics["class_names"] == classes
    assert test_metrics["n"] == 6  # 2 PHILIPS exams x 3 series
    assert test_metrics["accuracy"]["value"] >= 5 / 6
    assert test_metrics["accuracy"]["ci_low"] is not None and "T2WI_FS" in test_metrics["per_class"]
    assert (run / "report.html").is_file() and (run / "model.pt").is_file()
    split = json.loads((run / "splits" / "repeat0.json").read_text())
    assert all("PHILIPS" in s for s in split["test"]) and not any("PHILIPS" in s for s in split["train"])

    # external validation of the saved model, then re-evaluation of the run
    ext = tmp_path / "ext"
    run_cli(["mri", "evaluate", str(test), "--model", str(run / "model.pt"), "--out", str(ext), "--no-report"])
    ext_metrics = json.loads((ext / "metrics.json").read_text())
    assert ext_metrics["models"]["resnet18"]["repeats"]["repeat0"]["test"]["n"] == 6
    run_cli(["mri", "evaluate", str(run), "--no-report"])


@pytest.mark.slow
def test_demo_model_is_labelled_everywhere(tmp_path):
    from breastlab.models.files import read_model_meta
    from breastlab.seriesmodels.demo import make_demo_model

    path = make_demo_model(tmp_path / "demo.pt", classes=["T2WI", "ADC"], seeds=(0, 1), vendors=("GE",), epochs=1,
                           image_size=32)
    meta = read_model_meta(path)
    assert meta["demo"] is True and meta["notice"] == DEMO_NOTICE
    assert DEMO_NOTICE in (tmp_path / "demo.DEMO-README.txt").read_text()
    prov = json.loads((tmp_path / "demo.run" / "provenance.json").read_text())
    assert prov["config"]["notice"] == DEMO_NOTICE
    assert "Phantom / demo data" in (tmp_path / "demo.run" / "report.html").read_text()


def test_order_phases_cli_on_nifti(tmp_path):
    import nibabel as nib
    import numpy as np

    from test_mri_phase_order import synthetic_exam

    vols = synthetic_exam(9)
    names = ["b.nii.gz", "c.nii.gz", "a.nii.gz"]  # delayed, pre, early by file name order a, b, c
    for name, v in zip(names, (vols[2], vols[0], vols[1])):
        nib.save(nib.Nifti1Image(v.transpose(2, 1, 0).astype(np.float32), np.eye(4)), str(tmp_path / name))
    res = run_cli(["mri", "order-phases", *(str(tmp_path / n) for n in sorted(names)), "--out", str(tmp_path / "o")])
    assert "DCE_early" in res.output
    phases = json.loads((tmp_path / "o" / "phases.json").read_text())
    assert phases["labels"] == ["DCE_early", "DCE_delayed", "DCE_pre"]
