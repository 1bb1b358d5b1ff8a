"""``breastlab pacs sort`` over DICOMweb against a real Orthanc: equal to the file sort, SR write-back."""
from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

from breastlab.cli.main import app

runner = CliRunner()


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def keyed_by_sop(out: Path) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """series.csv and instances.csv rows with every path replaced by its SOP instance UID."""
    instances = read_csv(out / "instances.csv")
    sop_of = {row["path"]: row["sop_instance_uid"] for row in instances}
    for row in instances:
        row["path"] = row["sop_instance_uid"]
        row.pop("export_path")
    series = read_csv(out / "series.csv")
    for row in series:
        row["first_path"] = sop_of[row["first_path"]]
    key = ("sop_instance_uid", "frame_index")
    return (sorted(series, key=lambda r: (r["series_uid"], int(r["image_set"]))),
            sorted(instances, key=lambda r: tuple(r[k] for k in key)))


def nact_study(loaded) -> str:  # noqa: ANN001
    """StudyInstanceUID of the nact-dce DCE exam in the test PACS (skips when it was not loaded)."""
    path = next((p for p in loaded.files if "nact-dce" in str(p)), None)
    if path is None:
        pytest.skip("nact-dce not in the test PACS")
    return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)


@pytest.fixture(scope="module")
def both_sorts(orthanc, tmp_path_factory):  # noqa: ANN001, ANN201
    """The PACS sort (metadata only) and the file sort of the same instances."""
    base = tmp_path_factory.mktemp("sorts")
    env = {"BREASTLAB_PACS_USER": orthanc.server.username, "BREASTLAB_PACS_PASSWORD": orthanc.server.password,
           "NETRC": "/dev/null"}
    pacs = runner.invoke(app, ["pacs", "sort", orthanc.dicomweb_url, "--out", str(base / "pacs"), "--no-progress"],
                         env=env)
    assert pacs.exit_code == 0, pacs.output
    listing = base / "files.txt"
    listing.write_text("\n".join(str(p) for p in orthanc.files) + "\n", encoding="utf-8")
    files = runner.invoke(app, ["sort", *map(str, orthanc.files), "--out", str(base / "files"), "--no-progress",
                                "-j", "1"])
    assert files.exit_code == 0, files.output
    return base / "pacs", base / "files", pacs.output


def test_metadata_sort_equals_file_sort(both_sorts) -> None:  # noqa: ANN001
    pacs_out, file_out, _ = both_sorts
    pacs_series, pacs_instances = keyed_by_sop(pacs_out)
    file_series, file_instances = keyed_by_sop(file_out)
    assert len(file_instances) > 300  # the real data is there
    assert [r["sop_instance_uid"] for r in pacs_instances] == [r["sop_instance_uid"] for r in file_instances]
    assert pacs_instances == file_instances
    assert pacs_series == file_series
    labels = {r["label"] for r in pacs_series}
    assert {"DCE_pre", "DCE_early", "DCE_delayed", "DWI_high"} <= labels
    # the skipped instances (e.g. the nact-dce SEG) are skipped for the same reasons
    assert sorted(r["reason"] for r in read_csv(pacs_out / "skipped.csv")) == \
        sorted(r["reason"] for r in read_csv(file_out / "skipped.csv"))


def test_private_tags_survive_dicom_json(both_sorts) -> None:  # noqa: ANN001
    """Vendor b-values from private tags (GE, Siemens CSA, Philips) reach the records over DICOMweb."""
    pacs_out, _, _ = both_sorts
    sources = {r["b_value"] for r in read_csv(pacs_out / "instances.csv") if r["b_value"]}
    assert {"0", "1000"} <= sources
    from breastlab.pacs.metadata import needed_bulk_tags

    # a CSA header sent as bulk data is one of the elements fetched; pixel data never is
    item = {"00290010": {"vr": "LO", "Value": ["SIEMENS CSA HEADER"]},
            "00291010": {"vr": "OB", "BulkDataURI": "http://x/bulk/00291010"},
            "00291020": {"vr": "OB", "BulkDataURI": "http://x/bulk/00291020"},
            "7FE00010": {"vr": "OW", "BulkDataURI": "http://x/bulk/7FE00010"}}
    assert needed_bulk_tags(item) == {0x00291010}


def test_outputs_have_no_phi_and_no_credentials(both_sorts, orthanc) -> None:  # noqa: ANN001
    pacs_out, _, output = both_sorts
    text = "".join(p.read_text(encoding="utf-8") for p in pacs_out.iterdir()) + output
    assert orthanc.server.password not in text
    assert "patient_id" not in read_csv(pacs_out / "series.csv")[0]
    import json

    prov = json.loads((pacs_out / "provenance.json").read_text(encoding="utf-8"))
    assert prov["config"]["credentials"] == "environment"
    assert prov["config"]["source"].startswith("WADO-RS metadata")


def test_write_back_sr_reads_back(pacs_env, tmp_path) -> None:  # noqa: ANN001
    """--write-back stores one Comprehensive SR per study; read back from Orthanc and dumped by dsrdump."""
    from breastlab.pacs.address import parse_pacs_url
    from breastlab.pacs.dicomweb import DicomWebPacs

    pacs = DicomWebPacs(parse_pacs_url(pacs_env.dicomweb_url))
    study = nact_study(pacs_env)
    result = runner.invoke(app, ["pacs", "sort", pacs_env.dicomweb_url, "--study", study, "--out",
                                 str(tmp_path / "out"), "--write-back", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "result SR(s) stored" in result.output
    import json

    written = json.loads((tmp_path / "out" / "provenance.json").read_text())["summary"]["written_back"]
    assert len(written) == 1 and written[0]["study_uid"] == study
    # read it back over WADO-RS (the whole instance) and check its content tree
    sr = pacs.client.retrieve_instance(study, written[0]["series_uid"], written[0]["sop_instance_uid"])
    assert sr.Modality == "SR" and sr.SOPClassUID == pydicom.uid.ComprehensiveSRStorage
    assert "RESEARCH" in sr.SeriesDescription.upper()
    sets = [item for item in sr.ContentSequence if item.ValueType == "CONTAINER"]
    labels = {i.ConceptCodeSequence[0].CodeValue for s in sets for i in s.ContentSequence if i.ValueType == "CODE"}
    series = read_csv(tmp_path / "out" / "series.csv")
    assert len(sets) == len(series)
    assert labels == {r["label"] for r in series} and {"DCE_pre", "DCE_early", "DCE_delayed"} <= labels
    n_refs = sum(1 for s in sets for i in s.ContentSequence if i.ValueType == "IMAGE")
    assert n_refs == len(read_csv(tmp_path / "out" / "instances.csv"))
    dce_seconds = [i.MeasuredValueSequence[0].NumericValue for s in sets for i in s.ContentSequence
                   if i.ValueType == "NUM" and i.ConceptNameCodeSequence[0].CodeValue == "DCE_SECONDS"]
    assert dce_seconds and max(float(v) for v in dce_seconds) > 0
    # the new series belongs to the study it describes, and dcmtk reads it
    assert sr.StudyInstanceUID == study
    path = tmp_path / "sr.dcm"
    sr.save_as(path, enforce_file_format=True)
    dump = subprocess.run([shutil.which("dsrdump"), str(path)], capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0, dump.stderr
    assert "Comprehensive SR" in dump.stdout and "DCE_early" in dump.stdout and "Series label" in dump.stdout


def test_fast_json_encoder_equals_pydicom_route(pacs_env) -> None:  # noqa: ANN001
    """The hand-written DICOM JSON encoder gives the records that Dataset.from_json + pydicom give."""
    from breastlab.pacs.address import parse_pacs_url
    from breastlab.pacs.dicomweb import DicomWebPacs, StudyFilter
    from breastlab.pacs.metadata import fast_records_from_json, records_from_json

    pacs = DicomWebPacs(parse_pacs_url(pacs_env.dicomweb_url))
    n = 0
    for study in pacs.find_studies(StudyFilter()):
        for item in pacs.study_metadata(study):
            slow = records_from_json(item, "x", pacs.fetch_bulk)
            fast = fast_records_from_json(item, "x", pacs.fetch_bulk)
            assert fast == slow
            if isinstance(fast, list):
                assert [r.vendor for r in fast] == [r.vendor for r in slow]
                n += len(fast)
    assert n > 300


def test_patient_filter_finds_the_study_and_is_never_written(pacs_env, tmp_path) -> None:  # noqa: ANN001
    path = next(p for p in pacs_env.files if "nact-dce" in str(p))
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    pid = str(ds.PatientID)
    assert len(pid) >= 3
    got = runner.invoke(app, ["pacs", "sort", pacs_env.dicomweb_url, "--patient-id", pid, "--out",
                              str(tmp_path / "out"), "--no-progress"])
    assert got.exit_code == 0, got.output
    series = read_csv(tmp_path / "out" / "series.csv")
    assert series and {r["study_uid"] for r in series} == {str(ds.StudyInstanceUID)}
    for out_file in (tmp_path / "out").iterdir():
        assert pid not in out_file.read_text(encoding="utf-8"), out_file.name
    assert runner.invoke(app, ["pacs", "echo", pacs_env.dicomweb_url]).exit_code == 0
    assert runner.invoke(app, ["pacs", "echo", pacs_env.dimse_url, "--calling-aet", "BREASTLAB"]).exit_code == 0
    from breastlab.pacs.sort import redact_argv

    assert pid not in " ".join(redact_argv(["breastlab", "pacs", "sort", "u", "--patient-id", pid,
                                            f"--accession={pid}"]))
