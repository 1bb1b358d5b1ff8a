"""``breastlab pacs sort dicom://...``: C-FIND + C-GET against the test Orthanc equals the file sort."""
from __future__ import annotations

from typer.testing import CliRunner

from breastlab.cli.main import app
from pacs.conftest import OUR_AET
from pacs.test_pacs_dicomweb import keyed_by_sop, nact_study, read_csv

runner = CliRunner()


def test_dimse_sort_equals_file_sort(orthanc, tmp_path) -> None:  # noqa: ANN001
    study = nact_study(orthanc)
    got = runner.invoke(app, ["pacs", "sort", orthanc.dimse_url, "--study", study, "--calling-aet", OUR_AET,
                              "--out", str(tmp_path / "dimse"), "--no-progress"])
    assert got.exit_code == 0, got.output
    files = [str(p) for p in orthanc.files if "nact-dce" in str(p)]
    ref = runner.invoke(app, ["sort", *files, "--out", str(tmp_path / "files"), "--no-progress", "-j", "1"])
    assert ref.exit_code == 0, ref.output
    dimse_series, dimse_instances = keyed_by_sop(tmp_path / "dimse")
    file_series, file_instances = keyed_by_sop(tmp_path / "files")
    assert len(dimse_instances) == len(file_instances) >= 180
    assert dimse_instances == file_instances
    assert dimse_series == file_series
    # paths name the PACS instance, never the temporary C-GET folder
    assert all(r["path"].startswith(orthanc.dimse_url + "/studies/")
               for r in read_csv(tmp_path / "dimse" / "instances.csv"))


def test_dimse_unknown_calling_aet_is_refused(orthanc, tmp_path) -> None:  # noqa: ANN001
    got = runner.invoke(app, ["pacs", "sort", orthanc.dimse_url, "--calling-aet", "STRANGER", "--out",
                              str(tmp_path / "out"), "--no-progress", "--timeout", "5"])
    assert got.exit_code == 3  # refused by the server: failed mid-run (core.errors)
    assert "Traceback" not in got.output and got.output.startswith("breastlab pacs sort: error: ")
    assert len(got.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
