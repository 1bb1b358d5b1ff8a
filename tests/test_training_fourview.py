"""Four-view run directory: splits, predictions, provenance, resume, config guard, CLI."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from breastlab.cli.main import app
from breastlab.training.fourview import RunConfigError, run_fourview
from breastlab.training.config import FourViewConfig


pytestmark = pytest.mark.usefixtures("one_torch_thread")


VIEWS = ("LCC", "RCC", "LMLO", "RMLO")


def _cases(tmp_path, n=20):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        y = i % 2
        row = {"case_id": f"c{i}", "patient_id": f"p{i // 2}", "label": y}
        for v in VIEWS:
            img = rng.poisson(20, size=(24, 20)).astype(np.float32)
            if y:
                img[4:12, 2:10] += 80
            np.save(tmp_path / f"c{i}_{v}.npy", img)
            row[v] = f"c{i}_{v}.npy"
        rows.append(row)
    path = tmp_path / "cases.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_run_directory_contract_and_resume(tmp_path):
    cases = _cases(tmp_path)
    run = tmp_path / "run"
    cfg = FourViewConfig.from_dict(dict(models="mlp", repeats=2, image_size=16, epochs=2,
                                        progress=False, evaluate=False))
    res = run_fourview(cases, run, cfg)
    assert res.trained == [("mlp", 0), ("mlp", 1)]
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["config"]["settings"]["train"]["lr"] == 1e-3
    assert prov["config"]["views"] == list(VIEWS)
    assert FourViewConfig.from_dict(prov["config"]["settings"]) == cfg  # read back whole
    assert prov["data_fingerprint"] and "torch" in prov["versions"]
    with open(run / "cases.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 20
    split = json.loads((run / "splits" / "repeat0.json").read_text())
    assert set(split) >= {"train", "val", "test"}
    with open(run / "models" / "mlp" / "repeat0" / "predictions.csv") as fh:
        preds = list(csv.DictReader(fh))
    assert list(preds[0]) == ["case_id", "split", "label", "prob_0", "prob_1", "prob"]
    assert {p["case_id"] for p in preds if p["split"] == "test"} == set(split["test"])
    assert {p["split"] for p in preds} == {"val", "test"}
    for d in ("repeat0", "repeat1"):
        for f in ("checkpoint.pt", "model.pt", "history.csv"):
            assert (run / "models" / "mlp" / d / f).is_file()

    from breastlab.models.files import load_model

    model, meta = load_model(run / "models" / "mlp" / "repeat0" / "model.pt")
    assert meta["views"] == list(VIEWS) and meta["preprocessing"]["flip_right"] is True
    assert meta["class_names"] == ["benign", "malignant"]

    again = run_fourview(cases, run, cfg.replace(repeats=3))  # one more repeat: extends the run
    assert again.skipped == [("mlp", 0), ("mlp", 1)] and again.trained == [("mlp", 2)]
    with pytest.raises(RunConfigError, match="train.epochs"):
        run_fourview(cases, run, cfg.replace(train=cfg.train.replace(epochs=3)))


def test_kfold_and_cli(tmp_path):
    cases = _cases(tmp_path, n=20)
    run = tmp_path / "cli_run"
    args = ["train", str(cases), "--out", str(run), "--models", "mlp,autoencoder", "--repeats", "2",
            "--split", "kfold", "--folds", "2", "--epochs", "1", "--image-size", "16",
            "--no-pretrained", "--ae-pretrain-epochs", "1", "-q"]
    runner = CliRunner()
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    s0 = json.loads((run / "splits" / "repeat0.json").read_text())
    s1 = json.loads((run / "splits" / "repeat1.json").read_text())
    assert not set(s0["test"]) & set(s1["test"])  # two folds: disjoint test parts
    assert sorted(s0["test"] + s1["test"]) == sorted(f"c{i}" for i in range(20))
    assert (run / "models" / "autoencoder" / "repeat1" / "predictions.csv").is_file()
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "already done 4" in again.output
    bad = runner.invoke(app, [*args[:-1], "--no-flip-right", "-q"])
    assert bad.exit_code == 2 and "different configuration" in bad.output
    forced = runner.invoke(app, [*args[:-1], "--no-flip-right", "--force", "-q"])
    assert forced.exit_code == 0 and "trained 4" in forced.output


def test_pretrained_fails_fast_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.setenv("BREASTLAB_OFFLINE", "1")
    result = CliRunner().invoke(app, ["train", str(_cases(tmp_path, n=4)), "--out",
                                      str(tmp_path / "r"), "--models", "resnet18", "-q"])
    assert result.exit_code == 2 and "--weights" in result.output
    assert not (tmp_path / "r").exists()
