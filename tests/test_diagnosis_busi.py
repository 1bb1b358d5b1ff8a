"""BUSI (one view, real data) through cases → train → evaluate → report → predict on a folder,
as docs/cases.md, docs/training.md and docs/evaluation.md document it (small subset)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cli_helpers import invoke as _run

PER_CLASS = 24  # images per class in the subset (the suite's time budget)


@pytest.mark.slow
def test_busi_one_view_path_as_documented(shared_data: Path, tmp_path: Path, one_torch_thread) -> None:
    busi = shared_data / "busi"
    if not busi.is_dir():
        pytest.skip(f"real data not found: {busi}")
    subset = tmp_path / "busi"
    for cls in ("benign", "malignant", "normal"):
        files = sorted((busi / cls).glob("*.png"))[:PER_CLASS]
        if len(files) < 10:
            pytest.skip(f"too few BUSI images in {busi / cls}")
        (subset / cls).mkdir(parents=True)
        for f in files:
            (subset / cls / f.name).symlink_to(f)
    _run(["cases", subset, "--view-set", "single", "--label-map", "normal=drop",
          "--out", tmp_path / "cases.csv", "--no-progress"])
    res = _run(["train", tmp_path / "cases.csv", "--out", tmp_path / "run", "--models",
                "resnet18,mlp", "--repeats", "2", "--epochs", "2", "--image-size", "32",
                "--no-pretrained", "--threads", "1"])
    assert "image-level split" in res.output
    run = tmp_path / "run"
    res = _run(["evaluate", run])
    assert "Breast / exam / patient level" in res.output and "no pooled test" in res.output
    m = json.loads((run / "metrics.json").read_text())
    for pair in m["paired"]:                               # no p-value counts a case twice
        assert "pooled" not in pair
        if "averaged" in pair:
            assert pair["averaged"]["n_cases"] == m["models"]["mlp"]["repeats"]["repeat0"]["n_test"]
    for model in ("resnet18", "mlp"):
        levels = m["models"][model]["levels"]
        for level in ("breast", "exam"):
            auc = levels[level]["repeats"]["repeat0"]["test"]["auc_bootstrap"]
            assert auc["method"].startswith("bootstrap (2000") and auc["ci_low"] is not None
    _run(["report", run, "--gallery-cases", "2"])
    html = (run / "report.html").read_text()
    assert "Image-level split" in html and "Breast, exam and patient level" in html
    assert "Learning curves" in html and "as stored" in html
    gallery = json.loads((run / "explain" / "index.json").read_text())["cases"]
    assert gallery and all((subset / e["files"]["image"]).exists() for e in gallery)
    res = _run(["predict", run / "models/resnet18/repeat0/model.pt", subset / "benign",
                "--out", tmp_path / "pred", "--no-progress"])
    with open(tmp_path / "pred" / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == PER_CLASS and all((subset / "benign" / r["file_image"]).exists() for r in rows)
    assert all(r["heatmap"] for r in rows) and "rule 'youden'" in res.output
