"""The run directory type (``core.rundir``) and a report that only renders."""
from __future__ import annotations

import json
import os

import pytest

from breastlab.core.rundir import RunConfig, RunDir


def test_layout_is_spelled_out_once(tmp_path) -> None:
    run = RunDir(tmp_path)
    assert run.predictions("mlp", 1) == tmp_path / "models" / "mlp" / "repeat1" / "predictions.csv"
    assert run.predictions("mlp", 1, "breast").parent.name == "breast"
    assert run.split(0) == tmp_path / "splits" / "repeat0.json"
    assert run.metrics_for("sensitivity>=0.9").name == "metrics_sensitivity_0.9.json"
    with pytest.raises(ValueError, match="level"):
        run.model_dir("mlp", 0, "patient")
    for r in (0, 2):
        run.model_dir("mlp", r).mkdir(parents=True)
    run.predictions("mlp", 2).write_text("case_id\n")
    assert run.repeats_of("mlp") == [0, 2]
    assert run.discover() == {"mlp": {2: run.predictions("mlp", 2)}}


def test_run_configuration_requires_class_names(tmp_path) -> None:
    (tmp_path / "provenance.json").write_text(json.dumps({"config": {"task": "fourview"}}))
    with pytest.raises(ValueError, match="class_names"):
        RunDir(tmp_path).config()
    cfg = RunConfig.from_dict({"task": "t", "class_names": ["a", "b", "c"], "demo": True})
    assert cfg.num_classes == 3 and cfg.synthetic


def test_report_renders_only(tmp_path) -> None:
    from test_report import make_run

    from breastlab.evaluation.run import evaluate_run
    from breastlab.reporting.html import MissingMetricsError, write_report

    run = make_run(tmp_path)
    with pytest.raises(MissingMetricsError, match="breastlab evaluate"):
        write_report(run)                      # never evaluates by itself
    evaluate_run(run)
    pred = RunDir(run).predictions("mlp", 0)
    later = os.stat(RunDir(run).metrics).st_mtime + 10
    os.utime(pred, (later, later))             # a prediction newer than the metrics
    text = write_report(run).read_text()
    assert "metrics.json is older than some predictions.csv" in text
    assert "holds no Grad-CAM gallery" in text  # and no gallery was generated
    assert not (run / "explain").exists()
