"""Evaluation of a synthetic run directory and the self-contained HTML report."""
from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from breastlab.core import atomic
from breastlab.evaluation.run import evaluate_run
from breastlab.reporting.build import build_report

SECRET_PATIENT = "PATIENT-SECRET-4711"
VIEWS = ["LCC", "RCC", "LMLO", "RMLO"]


def write_predictions(path: Path, rows: list[dict], k: int) -> None:
    cols = ["case_id", "split", "label", *[f"prob_{j}" for j in range(k)]]
    if k == 2:
        cols.append("prob")
    atomic.write_csv(path, rows, cols)


def make_run(root: Path, *, k: int = 2, models=("resnet18", "mlp"), repeats: int = 2,
             n_val: int = 20, n_test: int = 30, class_names=None, seed: int = 0) -> Path:
    """A run directory as training writes it (predictions only, no model files)."""
    rng = np.random.default_rng(seed)
    run = root / ("run_binary" if k == 2 else "run_multi")
    ids = [f"C{i:04d}" for i in range(n_val + n_test)]
    labels = np.arange(len(ids)) % k
    strength = {"resnet18": 2.5, "mlp": 0.8, "viewwise": 1.5}
    for r in range(repeats):
        order = rng.permutation(len(ids))
        split = {ids[i]: ("val" if j < n_val else "test") for j, i in enumerate(order)}
        atomic.write_json(run / "splits" / f"repeat{r}.json",
                          {"train": [], "val": [c for c in ids if split[c] == "val"],
                           "test": [c for c in ids if split[c] == "test"]})
        for model in models:
            logits = rng.normal(size=(len(ids), k))
            logits[np.arange(len(ids)), labels] += strength.get(model, 1.0)
            prob = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
            rows = []
            for i, c in enumerate(ids):
                row = {"case_id": c, "split": split[c], "label": int(labels[i]),
                       **{f"prob_{j}": float(prob[i, j]) for j in range(k)}}
                if k == 2:
                    row["prob"] = float(prob[i, 1])
                rows.append(row)
            write_predictions(run / "models" / model / f"repeat{r}" / "predictions.csv", rows, k)
    atomic.write_csv(run / "cases.csv",
                     [{"case_id": c, "patient_id": SECRET_PATIENT, "label": int(y)}
                      for c, y in zip(ids, labels)], ["case_id", "patient_id", "label"])
    config = {"task": "fourview", "models": list(models), "repeats": repeats,
              "class_names": class_names or (["benign", "malignant"] if k == 2 else None),
              "demo": True, "weights_url_note": "none"}
    atomic.write_json(run / "provenance.json", {
        "created_utc": "2025-01-01T00:00:00+00:00", "command": "breastlab train",
        "config": config, "data_fingerprint": "abc123",
        "versions": {"python": "3.11", "torch": "2.13.0"}})
    return run


def assert_self_contained(text: str) -> None:
    assert not re.search(r"(?:src|href)\s*=\s*['\"](?:https?:|//|file:)", text, re.I)
    assert "<script" not in text.lower() and "<link" not in text.lower()
    for src in re.findall(r"src=['\"]([^'\"]+)", text):
        assert src.startswith("data:image/png;base64,")


def test_evaluate_binary_run(tmp_path):
    run = make_run(tmp_path)
    m = evaluate_run(run)
    assert (run / "metrics.json").is_file()
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk["task"] == "binary" and set(on_disk["models"]) == {"resnet18", "mlp"}
    rep = m["models"]["resnet18"]["repeats"]["repeat0"]
    thr = json.loads((run / "models/resnet18/repeat0/threshold.json").read_text())
    assert thr["threshold"] == rep["threshold"]["threshold"] and thr["rule"] == "youden"
    for key in ("accuracy", "sensitivity", "specificity", "auc"):
        fig = rep["test"][key]
        assert fig["ci_low"] <= fig["value"] <= fig["ci_high"]
    assert rep["test"]["n"] == 30
    s = m["models"]["resnet18"]["summary"]["sensitivity"]
    assert s["n_repeats"] == 2 and s["mean"] == pytest.approx(np.mean(s["values"]))
    pooled = m["models"]["resnet18"]["pooled"]
    assert pooled["n"] == 60
    cms = [np.array(e["test"]["confusion_matrix"])
           for e in m["models"]["resnet18"]["repeats"].values()]
    assert np.array_equal(np.array(pooled["confusion_matrix"]), sum(cms))
    (pair,) = m["paired"]
    assert {pair["model_a"], pair["model_b"]} == {"resnet18", "mlp"}
    assert set(pair["repeats"]) == {"repeat0", "repeat1"}
    r0 = pair["repeats"]["repeat0"]
    assert 0 <= r0["mcnemar"]["accuracy"]["p_value"] <= 1
    assert r0["delong"]["auc_a"] == pytest.approx(rep["test"]["auc"]["value"]) or \
        r0["delong"]["auc_b"] == pytest.approx(rep["test"]["auc"]["value"])
    # issue 11: no pooled test over repeats that share test cases (it counted cases twice)
    assert "pooled" not in pair
    assert len(pair["across_repeats"]["delong_auc"]["p_values"]) == 2


def test_binary_report_contents(tmp_path):
    run = make_run(tmp_path)
    out = build_report(run)
    assert out == run / "report.html"
    text = out.read_text()
    for heading in ("Notes and caveats", "Metrics (test set)", "Operating thresholds",
                    "Paired comparisons", "ROC curves", "Confusion matrices",
                    "Grad-CAM gallery", "Configuration and versions"):
        assert heading in text
    assert "Sensitivity" in text and "Specificity" in text and "DeLong" in text
    assert "McNemar" in text and "±" in text
    assert "Phantom / demo data" in text          # provenance says demo
    assert text.count("data:image/png;base64,") >= 3   # ROC, spread, 2 confusion matrices
    assert "abc123" in text and "2.13.0" in text
    # (was: "C00" in text, which only ever matched inside base64 image data)
    assert "Breast, exam and patient level" in text and "AUC (bootstrap)" in text
    assert "Learning curves" in text and "<details>" in text
    assert SECRET_PATIENT not in text
    assert_self_contained(text)


def test_calibration_section_reports_brier_scores_of_the_test_predictions(tmp_path):
    from sklearn.metrics import brier_score_loss

    from breastlab.evaluation.run import discover, read_predictions

    run = make_run(tmp_path)
    text = build_report(run).read_text()
    assert "Calibration" in text and "Reliability diagram" in text
    for model, reps in discover(run).items():
        tests = [read_predictions(p, ["benign", "malignant"]).subset("test") for p in reps.values()]
        y = np.concatenate([t.label for t in tests])
        prob = np.concatenate([t.prob[:, 1] for t in tests])
        assert f"{model} {brier_score_loss(y, prob):.3f}" in text


def test_multiclass_run_and_report(tmp_path):
    names = ["T2WI", "T2WI_FS", "ADC"]
    run = make_run(tmp_path, k=3, models=("resnet18",), repeats=2, class_names=names)
    m = evaluate_run(run)
    assert m["task"] == "multiclass" and m["class_names"] == names
    t = m["models"]["resnet18"]["repeats"]["repeat0"]["test"]
    cm = np.array(t["confusion_matrix"])
    assert cm.shape == (3, 3) and cm.sum() == 30
    assert t["accuracy"]["value"] == pytest.approx(np.trace(cm) / 30)
    for i, n in enumerate(names):
        acc = t["per_class"][n]["accuracy"]
        assert acc["value"] == pytest.approx(cm[i, i] / cm[i].sum())
        assert acc["method"] == "Wilson" and acc["ci_low"] <= acc["value"] <= acc["ci_high"]
    thr = json.loads((run / "models/resnet18/repeat0/threshold.json").read_text())
    assert thr["rule"] == "argmax" and thr["threshold"] is None
    assert m["paired"] == []
    text = build_report(run, tmp_path / "out" / "mc.html").read_text()
    assert "accuracy T2WI_FS" in text and "overall accuracy" in text
    assert "single repeat" not in text
    assert_self_contained(text)
    assert SECRET_PATIENT not in text


@pytest.fixture(scope="module")
def model_run(tmp_path_factory, one_torch_thread):
    """A binary run with view images (.npy) and a small saved ResNet-18."""
    torch = pytest.importorskip("torch")
    from breastlab.models.files import save_model
    from breastlab.models.registry import build_model

    run = make_run(tmp_path_factory.mktemp("m"), models=("resnet18",), repeats=1,
                   n_val=6, n_test=8)
    rows = list(csv.DictReader(open(run / "cases.csv")))
    img_dir = run / "images"
    img_dir.mkdir()
    rng = np.random.default_rng(0)
    for row in rows:
        for v in VIEWS:
            p = img_dir / f"{row['case_id']}_{v}.npy"
            np.save(p, rng.normal(size=(40, 40)).astype(np.float32))
            row[v] = str(p.relative_to(run))
    atomic.write_csv(run / "cases.csv", rows, ["case_id", "patient_id", "label", *VIEWS])
    torch.manual_seed(0)
    model = build_model("resnet18", in_channels=4, num_classes=2, image_size=64)
    save_model(run / "models/resnet18/repeat0/model.pt", model.eval(), {
        "views": VIEWS, "class_names": ["benign", "malignant"],
        "preprocessing": {"image_size": 64, "normalization": "zscore"}})
    return run


@pytest.mark.slow  # builds and runs a ResNet-18
def test_gallery_generated_from_model_files(model_run):
    run = model_run
    text = build_report(run, n_gallery=3).read_text()
    pngs = sorted((run / "explain").glob("*.png"))
    assert len(pngs) == 3
    index = json.loads((run / "explain" / "index.json").read_text())
    assert {c["label"] for c in index["cases"]} == {"benign", "malignant"}
    for c in index["cases"]:
        assert c["top_view"] in VIEWS and sum(c["shares"]) == pytest.approx(1.0)
    assert text.count("data:image/png;base64,") >= 2 + 3
    assert "view shares" in text and SECRET_PATIENT not in text
    assert_self_contained(text)


@pytest.mark.slow  # runs a ResNet-18 with Grad-CAM on every case
def test_predict_cli(model_run, tmp_path):
    from typer.testing import CliRunner

    from breastlab.cli.main import app

    run = model_run
    evaluate_run(run)          # writes threshold.json next to model.pt
    thr = json.loads((run / "models/resnet18/repeat0/threshold.json").read_text())
    out = tmp_path / "pred"
    res = CliRunner().invoke(app, ["predict", str(run / "models/resnet18/repeat0/model.pt"),
                                   str(run / "cases.csv"), "--out", str(out),
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert len(rows) == 14
    assert SECRET_PATIENT not in (out / "predictions.csv").read_text()
    for r in rows:
        assert float(r["threshold"]) == pytest.approx(thr["threshold"])
        expected = "malignant" if float(r["prob"]) >= thr["threshold"] else "benign"
        assert r["predicted"] == expected
        assert (out / r["heatmap"]).read_bytes()[:4] == b"\x89PNG"
        assert r["top_view"] in VIEWS
    prov = json.loads((out / "provenance.json").read_text())
    model_bytes = (run / "models/resnet18/repeat0/model.pt").read_bytes()
    assert prov["config"]["model_sha256"] == hashlib.sha256(model_bytes).hexdigest()
    assert prov["data_fingerprint"] and "torch" in prov["versions"]
    assert SECRET_PATIENT not in (out / "provenance.json").read_text()
    res = CliRunner().invoke(app, ["predict", str(run / "models/resnet18/repeat0/model.pt"),
                                   str(run / "cases.csv"), "--out", str(tmp_path / "p2"),
                                   "--no-heatmaps", "--threshold", "0", "--no-progress"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(tmp_path / "p2" / "predictions.csv")))
    assert {r["predicted"] for r in rows} == {"malignant"}
    assert not (tmp_path / "p2" / "heatmaps").exists()


def test_evaluate_and_report_cli(tmp_path):
    from typer.testing import CliRunner

    from breastlab.cli.main import app

    run = make_run(tmp_path)
    res = CliRunner().invoke(app, ["evaluate", str(run), "--ci", "exact",
                                   "--threshold-rule", "sensitivity>=0.9"])
    assert res.exit_code == 0, res.output
    assert "resnet18" in res.output and "mlp" in res.output
    m = json.loads((run / "metrics.json").read_text())
    assert m["settings"]["proportion_ci"] == "exact"
    rep = m["models"]["resnet18"]["repeats"]["repeat0"]
    assert rep["threshold"]["rule"] == "sensitivity>=0.9"
    assert rep["threshold"]["val_sensitivity"] >= 0.9
    assert rep["test"]["accuracy"]["method"] == "Clopper-Pearson exact"
    out = tmp_path / "r.html"
    res = CliRunner().invoke(app, ["report", str(run), "--out", str(out), "--no-gallery"])
    assert res.exit_code == 0, res.output
    assert "Clopper-Pearson exact" in out.read_text()
