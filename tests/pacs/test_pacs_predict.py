"""``breastlab predict --pacs``: prediction SR and Grad-CAM Secondary Captures stored in the test Orthanc."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess

import pydicom
import pytest
from typer.testing import CliRunner

from breastlab.cli.main import app

runner = CliRunner()


@pytest.fixture()
def small_model(tmp_path, one_torch_thread):  # noqa: ANN001, ANN201
    torch = pytest.importorskip("torch")
    from breastlab.models.files import save_model
    from breastlab.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("resnet18", in_channels=4, num_classes=2, image_size=32)
    path = tmp_path / "model.pt"
    save_model(path, model.eval(), {"views": ["LCC", "RCC", "LMLO", "RMLO"], "class_names": ["benign", "malignant"],
                                    "threshold": 0.4, "preprocessing": {"image_size": 32, "normalization": "zscore"}})
    return path


def test_predict_writes_sr_and_overlays_to_pacs(pacs_env, small_model, tmp_path) -> None:  # noqa: ANN001
    ph = tmp_path / "phantom"
    assert runner.invoke(app, ["phantom", "bsgi", str(ph), "--cases", "3", "--matrix", "32", "--seed", "1"]).exit_code == 0
    pacs_env.server.upload_files(sorted(ph.rglob("*.dcm")))
    got = runner.invoke(app, ["cases", str(ph), "--out", str(tmp_path / "cases.csv"), "--no-progress", "-j", "1"])
    assert got.exit_code == 0, got.output
    got = runner.invoke(app, ["predict", str(small_model), str(tmp_path / "cases.csv"), "--out", str(tmp_path / "pred"),
                              "--no-progress", "--pacs", pacs_env.dicomweb_url])
    assert got.exit_code == 0, got.output
    assert "prediction SR(s)" in got.output
    preds = {r["case_id"]: r for r in csv.DictReader(open(tmp_path / "pred" / "predictions.csv"))}
    info = json.loads((tmp_path / "pred" / "pacs_writeback.json").read_text())
    assert sum(s["n_cases"] for s in info["studies"]) == len(preds) == 3
    assert sum(s["n_overlays"] for s in info["studies"]) == 3
    from breastlab.pacs.address import parse_pacs_url
    from breastlab.pacs.dicomweb import DicomWebPacs

    pacs = DicomWebPacs(parse_pacs_url(pacs_env.dicomweb_url))
    probs = {}
    for study in info["studies"]:
        sr = pacs.client.retrieve_instance(study["study_uid"], study["sr_series_uid"], study["sr_sop_instance_uid"])
        assert sr.Modality == "SR" and "RESEARCH" in sr.SeriesDescription.upper()
        nums = {i.ConceptNameCodeSequence[0].CodeValue: float(i.MeasuredValueSequence[0].NumericValue)
                for i in sr.ContentSequence if i.ValueType == "NUM"}
        assert nums["THRESHOLD"] == pytest.approx(0.4)
        for box in (i for i in sr.ContentSequence if i.ValueType == "CONTAINER"):
            case = next(i.TextValue for i in box.ContentSequence if i.ValueType == "TEXT"
                        and i.ConceptNameCodeSequence[0].CodeValue == "CASE_ID")
            probs[case] = next(float(i.MeasuredValueSequence[0].NumericValue) for i in box.ContentSequence
                               if i.ValueType == "NUM")
            assert sum(1 for i in box.ContentSequence if i.ValueType == "IMAGE") == 4
        scs = pacs.client.retrieve_series(study["study_uid"], study["overlay_series_uid"])
        assert len(scs) == study["n_overlays"]
        for sc in scs:
            assert sc.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
            assert "RESEARCH" in sc.ImageComments and sc.pixel_array.shape[-1] == 3
    assert probs == pytest.approx({c: float(r["prob"]) for c, r in preds.items()}, abs=1e-6)
    path = tmp_path / "sr.dcm"
    sr.save_as(path, enforce_file_format=True)
    dump = subprocess.run([shutil.which("dsrdump"), str(path)], capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0 and "Probability of malignancy" in dump.stdout
    # the same prediction again: nothing new is written (issue 17)
    again = runner.invoke(app, ["predict", str(small_model), str(tmp_path / "cases.csv"), "--out",
                                str(tmp_path / "pred2"), "--no-progress", "--pacs", pacs_env.dicomweb_url])
    assert again.exit_code == 0, again.output
    info2 = json.loads((tmp_path / "pred2" / "pacs_writeback.json").read_text())
    assert {s["action"] for s in info2["studies"]} == {"unchanged"}
    assert sum(s["n_stored"] for s in info2["studies"]) == 0 and "unchanged: nothing written" in again.output
    assert ({s["sr_sop_instance_uid"] for s in info2["studies"]} ==
            {s["sr_sop_instance_uid"] for s in info["studies"]})
