"""End to end through the command line, on phantom data.

* MRI: ``phantom mri`` → ``sort`` (outputs, ``--export`` layout, no patient name/ID
  without ``--keep-phi``, present with it, inputs unchanged). Label agreement with the
  phantom's truth per vendor is tested in ``test_mri_phantom.py`` and not repeated here.
* Four-view: ``phantom bsgi`` → ``cases`` → ``train`` (tiny) → ``evaluate`` → ``report``
  → ``predict``, with the same privacy and inputs-unchanged checks.
* Robustness: corrupt and non-DICOM files, empty and missing inputs, model files that
  are not breastlab models or carry pickle code: a clear message, never a traceback.
"""
from __future__ import annotations

import csv
import hashlib
import pickle
import re
import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

torch = pytest.importorskip("torch")
pydicom = pytest.importorskip("pydicom")

from typer.testing import CliRunner  # noqa: E402

from breastlab.cli.main import app  # noqa: E402
from cli_helpers import invoke as _invoke  # noqa: E402

LABELS = {"T2WI", "T2WI_FS", "DWI_low", "DWI_high", "ADC", "T1", "DCE_pre", "DCE_early",
          "DCE_delayed", "SUB", "MIP", "LOCALIZER", "DERIVED", "OTHER", "UNKNOWN"}


def _tree_hash(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _files_containing(roots: list[Path], needles: list[str], skip: Path | None = None) -> list[str]:
    """Files under ``roots`` (but not under ``skip``) whose bytes hold one of ``needles``."""
    found = []
    for root in roots:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for p in files:
            if skip is not None and skip in p.parents:
                continue
            data = p.read_bytes()
            found += [f"{p}: {n}" for n in needles if n.encode() in data]
    return found


def _identity(dicom_file: Path) -> list[str]:
    """The patient name (as written and with spaces) and ID the phantom put in its files."""
    ds = pydicom.dcmread(dicom_file, stop_before_pixels=True)
    name, pid = str(ds.PatientName), str(ds.PatientID)
    assert name and pid
    return [name, name.replace("^", " "), pid]


# ---------------------------------------------------------------- MRI sorting --------

@pytest.fixture(scope="module")
def mri_exam(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("e2e_mri") / "exam"
    _invoke(["phantom", "mri", root, "--vendor", "siemens", "--vendor", "philips",
             "--slices", "4", "--matrix", "32", "--seed", "5"])
    return root


def test_sort_outputs_export_privacy_and_inputs_unchanged(mri_exam: Path, tmp_path: Path) -> None:
    before = _tree_hash(mri_exam)
    phi = _identity(next(mri_exam.rglob("*.dcm")))
    # the phantom's folder names must not carry the patient ID (they are the user's paths)
    assert not any(n in str(p.relative_to(mri_exam)) for p in mri_exam.rglob("*") for n in phi)

    out, exp = tmp_path / "sorted", tmp_path / "by-label"
    res = _invoke(["sort", mri_exam, "--out", out, "--export", exp, "--no-progress", "-j", "1"])
    rows = list(csv.DictReader((out / "series.csv").open()))
    assert rows and {r["label"] for r in rows} <= LABELS
    assert {"T2WI", "DWI_high", "ADC", "DCE_pre", "DCE_early"} <= {r["label"] for r in rows}
    for name in ("series.json", "instances.csv", "skipped.csv", "provenance.json"):
        assert (out / name).is_file()

    # export layout: EXPORT/<study>/<label>[_b<value>|_p<phase>|_s<series>...]/<file>,
    # the same bytes as the input, one exported file per input file
    inst = list(csv.DictReader((out / "instances.csv").open()))
    assert inst and all(r["export_path"] for r in inst)
    assert "linked" in res.output
    for r in inst:
        placed = Path(r["export_path"])
        assert placed.is_file() and exp in placed.parents
        study_dir, label_dir = placed.parent.parent, placed.parent
        assert study_dir.parent == exp and study_dir.name == r["study"]
        assert study_dir.name.startswith("study-")
        assert label_dir.name == r["label"] or label_dir.name.startswith(r["label"] + "_")
        if r["label"].startswith("DWI") and r["b_value"]:
            assert f"_b{float(r['b_value']):g}" in label_dir.name
        assert placed.read_bytes() == Path(r["path"]).read_bytes()
    assert {r["path"] for r in inst} == {str(mri_exam / k) for k in before if k.endswith(".dcm")}
    assert not any(n in str(p.relative_to(exp)) for p in exp.rglob("*") for n in phi)

    # no patient name or ID in any table, JSON or terminal output (exported DICOM files
    # are the user's own images and keep their headers)
    assert not _files_containing([out], phi)
    assert not any(n in res.output for n in phi)

    # --keep-phi: the identity is written on purpose
    out_phi = tmp_path / "sorted-phi"
    _invoke(["sort", mri_exam, "--out", out_phi, "--keep-phi", "--no-progress", "-j", "1"])
    text = (out_phi / "series.csv").read_text()
    assert phi[0] in text and phi[2] in text

    assert _tree_hash(mri_exam) == before  # inputs never modified


def test_sort_empty_and_missing_inputs(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    # issue 7: a run that sorted nothing exits 1 (it used to exit 0 with a warning)
    res = _invoke(["sort", tmp_path / "empty", "--out", tmp_path / "o1", "--no-progress"], ok=False)
    assert res.exit_code == 1 and "no readable DICOM images" in res.output
    assert (tmp_path / "o1" / "series.csv").is_file()
    res = _invoke(["sort", tmp_path / "nope", "--out", tmp_path / "o2", "--no-progress"], ok=False)
    assert res.exit_code == 2 and "no such file or folder" in res.output
    assert not (tmp_path / "o2").exists()


# ------------------------------------------------------- four-view pipeline ----------

@pytest.fixture(scope="module")
def bsgi_run(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("e2e_bsgi")
    ph = root / "phantom"
    outputs = {}
    outputs["phantom"] = _invoke(["phantom", "bsgi", ph, "--cases", "20", "--matrix", "32", "--seed", "2"])
    before = _tree_hash(ph)
    outputs["cases"] = _invoke(["cases", ph, "--out", root / "cases.csv", "--no-progress", "-j", "1"])
    after_cases = _tree_hash(ph)
    run = root / "run"
    outputs["train"] = _invoke(["train", root / "cases.csv", "--out", run, "--models", "resnet18,mlp",
                                "--image-size", "32", "--epochs", "1", "--repeats", "1",
                                "--no-pretrained", "--threads", "1", "--quiet", "--no-evaluate"])
    outputs["evaluate"] = _invoke(["evaluate", run])
    outputs["report"] = _invoke(["report", run, "--gallery-cases", "1"])
    model = run / "models" / "resnet18" / "repeat0" / "model.pt"
    outputs["predict"] = _invoke(["predict", model, root / "cases.csv", "--out", root / "preds",
                                  "--no-heatmaps", "--no-progress"])
    return {"root": root, "phantom": ph, "run": run, "model": model, "outputs": outputs,
            "before": before, "after_cases": after_cases}


def test_fourview_pipeline_outputs(bsgi_run: dict) -> None:
    root, run = bsgi_run["root"], bsgi_run["run"]
    assert bsgi_run["after_cases"] == bsgi_run["before"]      # cases leaves inputs alone
    assert _tree_hash(bsgi_run["phantom"]) == bsgi_run["before"]  # ...and so does the rest

    cases = list(csv.DictReader((root / "cases.csv").open()))
    truth = {r["case_id"]: r["label"] for r in csv.DictReader((bsgi_run["phantom"] / "labels.csv").open())}
    assert len(cases) == 20
    assert sorted(r["label"] for r in cases) == sorted(truth.values())

    for m in ("resnet18", "mlp"):
        assert (run / "models" / m / "repeat0" / "model.pt").is_file()
    assert (run / "metrics.json").is_file()

    html = (run / "report.html").read_text()
    assert "ROC curves" in html and re.search(r'<img alt="ROC curves" src="data:image/png;base64,', html)
    assert not re.search(r"(?:src|href)\s*=\s*['\"](?:https?:|//|file:)", html, re.I)
    assert "<script" not in html.lower() and "<link" not in html.lower()
    for src in re.findall(r"src=['\"]([^'\"]+)", html):
        assert src.startswith("data:image/png;base64,")

    preds = list(csv.DictReader((root / "preds" / "predictions.csv").open()))
    assert sorted(r["case_id"] for r in preds) == sorted(r["case_id"] for r in cases)
    for r in preds:
        p0, p1 = float(r["prob_0"]), float(r["prob_1"])
        assert 0.0 <= p0 <= 1.0 and 0.0 <= p1 <= 1.0 and p0 + p1 == pytest.approx(1.0, abs=1e-5)
        assert float(r["prob"]) == pytest.approx(p1)
        assert r["predicted"] in ("benign", "malignant")


def test_fourview_pipeline_writes_no_phi(bsgi_run: dict) -> None:
    ph, root = bsgi_run["phantom"], bsgi_run["root"]
    phi = sorted({n for f in ph.rglob("*.dcm") for n in _identity(f)})
    # the phantom's case folders are named caseNNNN, not by patient ID
    assert not any(n in str(p.relative_to(ph)) for p in ph.rglob("*") for n in phi)
    leaks = _files_containing([root], phi, skip=ph)
    assert not leaks, leaks[:5]
    for name, res in bsgi_run["outputs"].items():
        assert not any(n in res.output for n in phi), name
    # --keep-phi: real ids on purpose
    _invoke(["cases", ph, "--out", root / "cases-phi.csv", "--keep-phi", "--no-progress", "-j", "1"])
    ids = {r["patient_id"] for r in csv.DictReader((root / "cases-phi.csv").open())}
    assert ids and ids <= set(phi)


# ------------------------------------------------------------- robustness ------------

@pytest.fixture()
def damaged(bsgi_run: dict, tmp_path: Path) -> Path:
    """Three phantom cases, one with a truncated view, plus a non-DICOM and a junk .dcm."""
    folder = tmp_path / "damaged"
    for c in ("case0001", "case0002", "case0003"):
        shutil.copytree(bsgi_run["phantom"] / c, folder / c)
    victim = sorted((folder / "case0002").glob("*.dcm"))[0]
    victim.write_bytes(victim.read_bytes()[:1500])
    (folder / "case0003" / "notes.txt").write_text("not an image\n")
    (folder / "case0001" / "junk.dcm").write_bytes(b"garbage")
    return folder


def test_cases_and_predict_report_bad_files_and_carry_on(bsgi_run: dict, damaged: Path,
                                                         tmp_path: Path) -> None:
    before = _tree_hash(damaged)
    res = _invoke(["cases", damaged, "--out", tmp_path / "c.csv", "--missing", "drop",
                   "--no-progress", "-j", "1"])
    assert len(list(csv.DictReader((tmp_path / "c.csv").open()))) == 2
    problems = (tmp_path / "c_problems.csv").read_text()
    assert "unreadable" in problems and "junk.dcm" in problems and "missing-view" in problems
    res = _invoke(["cases", damaged, "--out", tmp_path / "c2.csv", "--no-progress", "-j", "1"], ok=False)
    assert res.exit_code == 2 and "missing" in res.output and not (tmp_path / "c2.csv").exists()

    res = _invoke(["predict", bsgi_run["model"], damaged, "--out", tmp_path / "p",
                   "--no-heatmaps", "--no-progress"])
    assert len(list(csv.DictReader((tmp_path / "p" / "predictions.csv").open()))) == 2
    assert "problems.csv" in res.output          # the user is told what was left out
    assert "unreadable" in (tmp_path / "p" / "problems.csv").read_text()
    assert _tree_hash(damaged) == before

    # a case table whose files went bad after it was written: skipped with a reason
    table = tmp_path / "c.csv"
    first = next(csv.DictReader(table.open()))
    Path(first["LCC"]).write_bytes(b"garbage")
    res = _invoke(["predict", bsgi_run["model"], table, "--out", tmp_path / "p2",
                   "--no-heatmaps", "--no-progress"])
    assert len(list(csv.DictReader((tmp_path / "p2" / "predictions.csv").open()))) == 1
    assert first["case_id"] in (tmp_path / "p2" / "skipped.csv").read_text()


def test_empty_folder_for_cases_is_reported(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    res = _invoke(["cases", tmp_path / "empty", "--out", tmp_path / "c.csv", "--no-progress"],
                  ok=False)
    # issue 11: a run that built no case did nothing, so it exits non-zero and says why
    assert res.exit_code == 1 and "no case built" in res.output
    assert not (tmp_path / "c.csv").exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_predict_refuses_foreign_and_pickle_model_files(bsgi_run: dict, tmp_path: Path) -> None:
    cases = bsgi_run["root"] / "cases.csv"
    marker = tmp_path / "pickle-code-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(3)}, plain)
    module = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), module)
    raw_pickle = tmp_path / "model.pkl"
    raw_pickle.write_bytes(pickle.dumps(Payload()))
    torch_pickle = tmp_path / "evil.pt"
    torch.save({"format": "breastlab-model", "x": Payload()}, torch_pickle)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")

    res = _invoke(["predict", plain, cases, "--out", tmp_path / "o"], ok=False)
    assert res.exit_code == 2 and "not a breastlab model file" in res.output
    assert res.output.startswith("breastlab predict: error: ")
    for f in (module, raw_pickle, torch_pickle, empty):
        res = _invoke(["predict", f, cases, "--out", tmp_path / "o"], ok=False)
        assert res.exit_code == 2, res.output
        assert "refused for safety" in res.output
        # torch's advice to retry with weights_only=False (which runs the pickle) is not passed on
        assert "weights_only` set to `False`" not in res.output and "\x1b[" not in res.output
    assert not marker.exists()
    assert not (tmp_path / "o" / "predictions.csv").exists()


def test_version_and_bare_command_print_and_exit_zero():
    from breastlab import __version__

    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == __version__
    res = CliRunner().invoke(app, [])
    assert res.exit_code == 0 and "sort" in res.output and "cases" in res.output
