"""The diagnosis path as a researcher uses it (issue 11): one-view folders end to end,
breast/exam levels, honest splits and tests, predictions that map back to files, CLI traps."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import invoke as _run


def _ultrasound_folder(root: Path, n: int = 40) -> Path:
    """BUSI-like class folders of one-view images (no patient ids)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        cls = "malignant" if i % 2 else "benign"
        img = rng.integers(0, 120, (24, 20)).astype(np.uint8)
        if cls == "malignant":
            img[8:16, 6:14] += 100
        (root / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / cls / f"{cls} ({i}).png")
    return root


@pytest.fixture(scope="module")
def one_view_run(tmp_path_factory, one_torch_thread) -> dict:
    tmp = tmp_path_factory.mktemp("oneview")
    us = _ultrasound_folder(tmp / "us")
    _run(["cases", us, "--view-set", "single", "--out", tmp / "cases.csv", "--no-progress"])
    res = _run(["train", tmp / "cases.csv", "--out", tmp / "run", "--models", "mlp,autoencoder",
                "--repeats", "2", "--epochs", "2", "--image-size", "16", "--no-pretrained",
                "--ae-pretrain-epochs", "1", "--threads", "1"])
    return {"root": tmp, "us": us, "run": tmp / "run", "train_output": res.output}


def test_per_epoch_lines_and_logs_when_not_a_terminal(one_view_run: dict) -> None:
    out = one_view_run["train_output"]
    assert "mlp repeat 1/2 epoch 1/2 train loss" in out and "epoch 2/2" in out
    run = one_view_run["run"]
    log = (run / "train.log").read_text()
    assert log.count(" epoch ") >= 8                       # 2 models × 2 repeats × 2 epochs
    events = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert {"start", "epoch", "end"} <= {e["event"] for e in events}
    assert all("val_auc" in e for e in events if e["event"] == "epoch")


def test_image_level_split_is_flagged_everywhere(one_view_run: dict) -> None:
    assert "image-level split" in one_view_run["train_output"]          # console
    run = one_view_run["run"]
    m = json.loads((run / "metrics.json").read_text())
    assert m["split"]["unit"] == "image"
    assert any("image-level split" in w for w in m["warnings"])
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["config"]["split_unit"] == "image"
    _run(["report", run, "--no-gallery"])
    html = (run / "report.html").read_text()
    assert "Image-level split" in html and "The split is by image" in html


def test_levels_with_bootstrap_cis_and_no_pooled_test(one_view_run: dict) -> None:
    m = json.loads((one_view_run["run"] / "metrics.json").read_text())
    levels = m["models"]["mlp"]["levels"]
    assert {"breast", "exam", "patient"} <= set(levels)
    for level in ("breast", "exam"):
        t = levels[level]["repeats"]["repeat0"]["test"]
        assert t["auc"]["method"] == "DeLong"
        assert t["auc_bootstrap"]["method"].startswith("bootstrap (2000")
        assert t["auc_bootstrap"]["ci_low"] <= t["auc_bootstrap"]["value"] <= t["auc_bootstrap"]["ci_high"]
        assert t["sensitivity"]["method"].lower().startswith("wilson")
    assert m["models"]["mlp"]["repeats"]["repeat0"]["test"]["auc_bootstrap"]["n"] == t["n"]
    (pair,) = m["paired"]
    assert "pooled" not in pair                     # no test counting a test case twice
    assert len(pair["across_repeats"]["delong_auc"]["p_values"]) == 2
    # same split for both repeats: the valid replacement counts each case once
    assert pair["averaged"]["n_cases"] == m["models"]["mlp"]["repeats"]["repeat0"]["n_test"]
    assert "never pooled" in m["settings"]["paired_tests"]
    pooled = m["models"]["mlp"]["pooled"]
    assert pooled["auc"]["ci_low"] is None and "share test cases" in pooled["note"]


def test_other_threshold_rule_does_not_change_what_predict_uses(one_view_run: dict, tmp_path: Path) -> None:
    run = one_view_run["run"]
    tj = run / "models/mlp/repeat0/threshold.json"
    before = tj.read_text()
    res = _run(["evaluate", run, "--threshold-rule", "fixed:0.3"])
    assert tj.read_text() == before                                  # predict unchanged
    assert (run / "metrics_fixed_0.3.json").is_file()
    assert "keeps the 'youden' thresholds" in res.output
    res = _run(["predict", run / "models/mlp/repeat0/model.pt", one_view_run["us"],
                "--out", tmp_path / "p", "--no-heatmaps", "--no-progress"])
    assert "rule 'youden'" in res.output
    _run(["evaluate", run, "--threshold-rule", "fixed:0.3", "--set-threshold"])
    assert json.loads(tj.read_text())["threshold"] == 0.3
    _run(["evaluate", run, "--threshold-rule", "youden", "--set-threshold"])
    assert tj.read_text() == before


def test_predict_on_a_folder_maps_back_to_files(one_view_run: dict, tmp_path: Path) -> None:
    us = one_view_run["us"]
    res = _run(["predict", one_view_run["run"] / "models/mlp/repeat0/model.pt", us,
                "--out", tmp_path / "p", "--no-progress"])
    assert "not a view" not in res.output
    with open(tmp_path / "p" / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 40
    files = {r["file_image"] for r in rows}
    assert "benign/benign (0).png" in files and all((us / f).is_file() for f in files)
    assert (tmp_path / "p" / "cases.csv").is_file()                  # folder input: case table
    metrics = json.loads((tmp_path / "p" / "metrics.json").read_text())
    assert metrics["n"] == 40 and metrics["auc"]["ci_low"] is not None
    assert "labelled inputs (n = 40" in res.output and "threshold" in res.output


def test_every_option_checked_before_any_work(tmp_path: Path, one_view_run: dict) -> None:
    cases = one_view_run["root"] / "cases.csv"
    for args, word in ((["--optimizer", "foo"], "foo"), (["--models", "resnet19"], "resnet19"),
                       (["--threshold-rule", "best"], "best"), (["--views", "LCC", "--no-pretrained"], "LCC")):
        res = _run(["train", cases, "--out", tmp_path / "r", *args], ok=False)
        assert res.exit_code == 2 and word in res.output
        assert not (tmp_path / "r").exists()
    res = _run(["train", cases, "--out", tmp_path / "r", "--dry-run", "--no-pretrained"])
    assert "dry run: nothing written" in res.output and "repeat 0: train" in res.output
    assert "would train: resnet18, mlp, autoencoder, viewwise × 5" in res.output
    assert not (tmp_path / "r").exists()


def test_config_file_is_used_and_recorded(tmp_path: Path, one_view_run: dict) -> None:
    cfg = tmp_path / "train.toml"
    cfg.write_text('[train]\nmodels = "mlp"\nrepeats = 1\nepochs = 1\nimage_size = 16\n'
                   'pretrained = false\nthreads = 1\nbatch_size = 4\n')
    _run(["train", one_view_run["root"] / "cases.csv", "--out", tmp_path / "r", "--config", cfg,
          "--batch-size", "8", "-q"])
    prov = json.loads((tmp_path / "r" / "provenance.json").read_text())
    c = prov["config"]["settings"]
    assert c["run"]["config_file"] == str(cfg)
    assert c["train"]["epochs"] == 1 and c["train"]["batch_size"] == 8   # the CLI wins
    assert c["train"]["num_threads"] == 1 and c["models"] == ["mlp"]
    bad = tmp_path / "bad.toml"
    bad.write_text("epochz = 3\n")
    res = _run(["train", one_view_run["root"] / "cases.csv", "--out", tmp_path / "r2",
                "--config", bad], ok=False)
    assert res.exit_code == 2 and "epochz" in res.output and not (tmp_path / "r2").exists()


def test_help_text_has_no_bool_metavars_and_lists_choices() -> None:
    res = _run(["train", "--help"])
    assert "<bool>" not in res.output and "[sgd|adam|adamw]" in res.output
    assert "Usage: breastlab train [OPTIONS] CASES_CSV" in res.output
    assert "<bool>" not in _run(["predict", "--help"]).output
    assert "{" not in _run(["predict", "--help"]).output.splitlines()[1]


def test_api_and_cli_share_defaults() -> None:
    import inspect

    from breastlab.cli.train_cmd import train
    from breastlab.training.config import FourViewConfig
    from breastlab.training.fourview import run_fourview

    assert list(inspect.signature(run_fourview).parameters) == ["cases", "run_dir", "config"]
    api = FourViewConfig()
    cli = inspect.signature(train).parameters
    assert api.pretrained is True and cli["pretrained"].default.default is True
    assert api.repeats == cli["repeats"].default.default == 5
    assert api.preprocessing.image_size == cli["image_size"].default.default == 256


def test_mri_train_on_unlabelled_series_csv_is_one_line(tmp_path: Path) -> None:
    header = "series_uid,series_number,series_description,label\n"
    (tmp_path / "series.csv").write_text(header + "1.2.3,1,t2_tse,\n1.2.4,2,dwi,\n")
    (tmp_path / "instances.csv").write_text("series_uid,path\n")
    res = _run(["mri", "train", tmp_path / "series.csv", "--out", tmp_path / "r"], ok=False)
    assert res.exit_code != 0
    assert "error" in res.output.lower() or "invalid" in res.output.lower()


@pytest.mark.slow
def test_phantom_breast_and_exam_levels(tmp_path: Path, one_torch_thread) -> None:
    """Per-breast labels (the phantom's truth: lesion side) train breast-level models too."""
    ph = tmp_path / "ph"
    _run(["phantom", "bsgi", ph, "--cases", "40", "--matrix", "32"])
    _run(["cases", ph, "--labels", ph / "truth.csv", "--out", tmp_path / "cases.csv",
          "--no-progress"])
    with open(tmp_path / "cases.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {"label_L", "label_R"} <= set(rows[0])
    _run(["train", tmp_path / "cases.csv", "--out", tmp_path / "run", "--models", "mlp",
          "--repeats", "1", "--epochs", "2", "--image-size", "16", "--no-pretrained", "-q"])
    assert (tmp_path / "run/models/mlp/repeat0/breast/predictions.csv").is_file()
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    levels = m["models"]["mlp"]["levels"]
    assert {"exam", "breast", "exam_from_breasts"} <= set(levels)
    assert levels["breast"]["unit"] == "breast"
    for lv in ("exam", "breast"):
        assert levels[lv]["repeats"]["repeat0"]["test"]["auc_bootstrap"]["method"].startswith("bootstrap")
    assert m["split"]["unit"] == "patient" and not m["split"]["warnings"]
    _run(["report", tmp_path / "run", "--no-gallery"])
    html = (tmp_path / "run" / "report.html").read_text()
    assert "exam (from breast models)" in html and "AUC (bootstrap)" in html


def test_outputs_follow_the_umask(tmp_path: Path, one_view_run: dict) -> None:
    """Colleagues and web servers can read results: files get 0o666 & ~umask, not 0600."""
    import os
    import stat

    old = os.umask(0o002)
    try:
        _run(["train", one_view_run["root"] / "cases.csv", "--out", tmp_path / "r", "--models",
              "mlp", "--repeats", "1", "--epochs", "1", "--image-size", "16", "--no-pretrained",
              "-q"])
        _run(["report", tmp_path / "r", "--no-gallery"])
        _run(["predict", tmp_path / "r/models/mlp/repeat0/model.pt", one_view_run["us"], "--out",
              tmp_path / "p", "--no-heatmaps", "--no-progress"])
    finally:
        os.umask(old)
    files = ["r/provenance.json", "r/cases.csv", "r/metrics.json", "r/report.html", "r/train.log",
             "r/models/mlp/repeat0/model.pt", "r/models/mlp/repeat0/history.csv",
             "r/models/mlp/repeat0/predictions.csv", "p/predictions.csv", "p/metrics.json"]
    modes = {f: stat.S_IMODE((tmp_path / f).stat().st_mode) for f in files}
    assert modes == {f: 0o664 for f in files}


def test_breakdown_by_manufacturer(tmp_path: Path) -> None:
    from test_report import make_run

    from breastlab.core import atomic
    from breastlab.evaluation.run import evaluate_run

    run = make_run(tmp_path, models=("resnet18",))
    with open(run / "cases.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for i, r in enumerate(rows):
        r["manufacturer"] = "GE" if i % 2 else "HOLOGIC"
    atomic.write_csv(run / "cases.csv", rows, ["case_id", "patient_id", "label", "manufacturer"])
    m = evaluate_run(run)
    by = m["models"]["resnet18"]["levels"]["exam"]["repeats"]["repeat0"]["by"]["manufacturer"]
    assert set(by) == {"GE", "HOLOGIC"}
    n_test = m["models"]["resnet18"]["repeats"]["repeat0"]["n_test"]
    assert sum(g["n"] for g in by.values()) == n_test
    assert all("auc_bootstrap" in g or "note" in g for g in by.values())


def test_report_says_caveats_once_and_shows_the_command(tmp_path: Path) -> None:
    from test_report import make_run

    from breastlab.reporting.build import build_report
    from breastlab.reporting.sections import _merge_repeats

    merged = _merge_repeats(["repeat0: only 30 test cases; CIs are wide",
                             "repeat1: only 30 test cases; CIs are wide",
                             "mlp repeat1: AUC 1.000 with a zero-width CI",
                             "mlp: a single repeat"])
    assert merged == ["repeat0, repeat1: only 30 test cases; CIs are wide",
                      "repeat1: mlp AUC 1.000 with a zero-width CI", "mlp: a single repeat"]
    run = make_run(tmp_path, n_test=20)
    html = build_report(run).read_text()
    assert html.count("only 20 test cases") == 1 and "repeat0, repeat1: only 20" in html
    assert "<code>breastlab train</code>" in html
    assert "<details><summary>Full configuration (JSON)</summary>" in html
