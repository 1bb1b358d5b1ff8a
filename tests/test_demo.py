"""`breastlab demo` (the `make demo` job) runs end to end on tiny settings."""
from __future__ import annotations

import csv

import pytest
from typer.testing import CliRunner

from breastlab.cli.main import app

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def test_demo_sorts_trains_and_reports(tmp_path):
    out = tmp_path / "demo"
    res = CliRunner().invoke(app, ["demo", "--out", str(out), "--cases", "20", "--repeats", "1",
                                   "--epochs", "1", "--image-size", "32", "--models", "resnet18,mlp",
                                   "--skip-hybrid"])
    assert res.exit_code == 0, res.output
    labels = {r["label"] for r in csv.DictReader(open(out / "mri-sorted" / "series.csv"))}
    assert {"T2WI", "T2WI_FS", "DWI_low", "DWI_high", "ADC", "DCE_pre", "DCE_early", "DCE_delayed"} <= labels
    html = (out / "bsgi-run" / "report.html").read_text()
    assert "resnet18" in html and "mlp" in html and "data:image/png;base64" in html
    assert "synthetic" in res.output.lower()
