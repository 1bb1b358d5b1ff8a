"""Case assembly: DICOM, manifest and class-folder inputs; missing/duplicate/odd views; privacy."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from breastlab.multiview.cases import (
    CaseAssemblyError,
    assemble_cases,
    parse_label,
    problems_path,
    read_cases,
)

PATIENT = "SMITH^JANE-12345"


def _write_dcm(path: Path, *, patient: str = PATIENT, study: str = "1.2.3.4.5", lat: str | None = None,
               view: str | None = None, desc: str = "BSGI", sop: str | None = None,
               code_meaning: str | None = None) -> Path:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop = sop or generate_uid(entropy_srcs=[str(path)])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.20"
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = sop
    ds.Modality = "NM"
    ds.PatientID = patient
    ds.PatientName = "SMITH^JANE"
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[str(path), "s"])
    ds.SeriesDescription = desc
    if lat:
        ds.ImageLaterality = lat
    if view:
        ds.ViewPosition = view
    if code_meaning:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "x", "SCT", code_meaning
        ds.ViewCodeSequence = Sequence([item])
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = np.zeros((8, 8), dtype="<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _four(folder: Path, *, skip: str | None = None, study: str = "1.2.3.4.5", patient: str = PATIENT) -> None:
    for i, name in enumerate(["LCC", "RCC", "LMLO", "RMLO"]):
        if name != skip:
            _write_dcm(folder / f"IM{i}.dcm", lat=name[0], view=name[1:], study=study, patient=patient)


def _assemble(inputs, **kw):
    kw.setdefault("workers", 1)
    return assemble_cases(inputs, **kw)


def test_dicom_complete_case_and_pseudonyms(tmp_path: Path) -> None:
    root = tmp_path / "in"
    _four(root / "exam1")
    _write_dcm(root / "exam2" / "a.dcm", patient="DOE^J", study="9.9", desc="R MLO")  # names only
    _write_dcm(root / "exam2" / "b.dcm", patient="DOE^J", study="9.9", lat="R", code_meaning="cranio-caudal")
    _write_dcm(root / "exam2" / "L_CC.dcm", patient="DOE^J", study="9.9")
    _write_dcm(root / "exam2" / "c.dcm", patient="DOE^J", study="9.9", desc="BSGI", lat="L",
               view="MLO")
    table = _assemble([root])
    assert len(table) == 2
    assert all(all(c.paths.values()) for c in table.cases)
    assert table.view_sources["tags"] == 6
    assert table.view_sources["series_description"] == 1 and table.view_sources["path"] == 1
    out, prob = table.write(tmp_path / "out" / "cases.csv")
    assert prob == problems_path(out) and prob.name == "cases_problems.csv"
    text = out.read_text() + prob.read_text()
    assert PATIENT not in text and "SMITH" not in text and "DOE" not in text
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["case_id", "patient_id", "label", "LCC", "RCC", "LMLO", "RMLO"]
    assert all(re.fullmatch(r"C[0-9a-f]{12}", r["case_id"]) for r in rows)
    assert all(re.fullmatch(r"P[0-9a-f]{12}", r["patient_id"]) for r in rows)
    exam1 = next(r for r in rows if "exam1" in r["LCC"])
    assert exam1["LCC"].endswith("IM0.dcm") and exam1["RMLO"].endswith("IM3.dcm")
    # salt changes the pseudonyms; keep_phi writes the real id
    salted = _assemble([root], salt="s3cret")
    assert {c.case_id for c in salted} .isdisjoint({r["case_id"] for r in rows})
    kept = _assemble([root], keep_phi=True)
    assert PATIENT in {c.patient_id for c in kept}


def test_same_patient_two_studies_two_cases_one_patient(tmp_path: Path) -> None:
    _four(tmp_path / "s1", study="1.1")
    _four(tmp_path / "s2", study="1.2")
    table = _assemble([tmp_path])
    assert len(table) == 2
    assert len({c.patient_id for c in table}) == 1  # for patient-level splits
    assert len(_assemble([tmp_path], group_by="patient", duplicates="first")) == 1


def test_missing_view_error_names_case_and_view(tmp_path: Path) -> None:
    _four(tmp_path / "e1", skip="RMLO")
    _write_dcm(tmp_path / "e1" / "odd.dcm", desc="SCOUT")  # unparseable, mentioned in the error
    with pytest.raises(CaseAssemblyError, match=r"missing RMLO \(has LCC, RCC, LMLO\).*no usable view") as exc:
        _assemble([tmp_path])
    reasons = exc.value.table.problem_counts()
    assert reasons["missing-view"] == 1 and reasons["unparseable-view"] == 1


@pytest.mark.parametrize("policy", ["drop", "blank", "duplicate-contralateral"])
def test_missing_view_policies(tmp_path: Path, policy: str) -> None:
    _four(tmp_path / "e1", skip="LMLO", study="1.1")
    _four(tmp_path / "e2", study="1.2")
    table = _assemble([tmp_path], missing=policy)
    assert table.problem_counts()["missing-view"] == 1
    if policy == "drop":
        assert len(table) == 1
        return
    assert len(table) == 2
    case = next(c for c in table if "e1" in (c.paths["LCC"] or ""))
    if policy == "blank":
        assert case.paths["LMLO"] is None and case.filled == {"LMLO": "blank"}
        out, _ = table.write(tmp_path / "cases.csv")
        back = read_cases(out)
        assert next(c for c in back if c.case_id == case.case_id).paths["LMLO"] is None
    else:
        assert case.paths["LMLO"] == case.paths["RMLO"]
        assert case.filled == {"LMLO": "contralateral:RMLO"}


def test_contralateral_also_missing_drops(tmp_path: Path) -> None:
    _write_dcm(tmp_path / "e1" / "a.dcm", lat="L", view="CC")
    _write_dcm(tmp_path / "e1" / "b.dcm", lat="R", view="CC")
    table = _assemble([tmp_path], missing="duplicate-contralateral")
    assert len(table) == 0
    assert any("contralateral" in p.detail and "dropped" in p.detail for p in table.problems)


def test_duplicate_view_error_and_policies(tmp_path: Path) -> None:
    _four(tmp_path / "e1")
    extra = _write_dcm(tmp_path / "e1" / "IM9.dcm", lat="L", view="CC")
    with pytest.raises(CaseAssemblyError, match="2 files for LCC") as exc:
        _assemble([tmp_path])
    assert str(extra.resolve()) in str(exc.value) and "IM0.dcm" in str(exc.value)
    first = _assemble([tmp_path], duplicates="first")
    assert len(first) == 1 and first.cases[0].paths["LCC"].endswith("IM0.dcm")
    assert len(_assemble([tmp_path], duplicates="drop")) == 0
    # the same instance copied twice is not a duplicate view
    (tmp_path / "e1" / "IM9.dcm").unlink()
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "IM0.dcm").write_bytes((tmp_path / "e1" / "IM0.dcm").read_bytes())
    table = _assemble([tmp_path])
    assert len(table) == 1 and table.problem_counts()["duplicate-instance"] == 1


def test_odd_views_and_unreadable_files(tmp_path: Path) -> None:
    _four(tmp_path / "e1")
    _write_dcm(tmp_path / "e1" / "x.dcm", lat="L", view="XCCL")
    _write_dcm(tmp_path / "e1" / "ACCESSION_CCLIP.dcm")
    (tmp_path / "e1" / "broken.dcm").write_bytes(b"not a dicom file at all")
    (tmp_path / "e1" / "notes.txt").write_text("ignored")
    table = _assemble([tmp_path])
    assert len(table) == 1
    counts = table.problem_counts()
    assert counts["view-not-in-set"] == 1 and counts["unparseable-view"] == 1
    assert counts["unreadable"] == 1
    assert any(p.view == "LXCCL" for p in table.problems)
    # a custom view set accepts the odd view
    two = _assemble([tmp_path], view_set="LXCCL,LCC")
    assert len(two) == 1 and two.cases[0].paths["LXCCL"].endswith("x.dcm")


def test_labels_file_matches_folder_names(tmp_path: Path) -> None:
    _four(tmp_path / "case0001", study="1.1")
    _four(tmp_path / "case0002", study="1.2")
    (tmp_path / "labels.csv").write_text("case_id,label\ncase0001,malignant\ncase0002,B\n")
    table = _assemble([tmp_path])  # labels.csv found automatically
    by_folder = {Path(c.paths["LCC"]).parent.name: c.label for c in table}
    assert by_folder == {"case0001": 1, "case0002": 0}
    assert all(c.label is None for c in _assemble([tmp_path], labels=None))


def _png(path: Path, value: int = 0) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4), value, dtype=np.uint8)).save(path)
    return path


def test_manifest_input_with_odd_headers(tmp_path: Path) -> None:
    imgs = tmp_path / "imgs"
    for pid in ("P1", "P2"):
        for lat in ("LEFT", "RIGHT"):
            for view in ("CC", "MLO"):
                _png(imgs / pid / f"{pid}_{lat}_{view}_full.png")
    rows = ["Patient ID;Left or Right Breast;Image View;File;Pathology"]
    for pid, label in (("P1", "MALIGNANT"), ("P2", "BENIGN_WITHOUT_CALLBACK")):
        for lat in ("LEFT", "RIGHT"):
            for view in ("CC", "MLO"):
                rows.append(f"{pid};{lat};{view};imgs/{pid}/{pid}_{lat}_{view}_full.png;{label}")
    rows.append("P3;LEFT;CC;imgs/P3/missing.png;BENIGN")
    manifest = tmp_path / "meta" / "m.csv"
    manifest.parent.mkdir()
    manifest.write_text("\n".join(rows) + "\n")
    # relative to the manifest folder first, then to the input folders
    table = assemble_cases([tmp_path], manifest=manifest)
    assert sorted(c.label for c in table) == [0, 1]
    assert table.problem_counts()["missing-file"] == 1
    assert all(Path(p).is_file() for c in table for p in c.paths.values())


def test_manifest_view_from_path_and_unknown_label(tmp_path: Path) -> None:
    for v in ("L-CC", "R-CC", "L-MLO", "R-MLO"):
        _png(tmp_path / "c1" / f"{v}.png")
    (tmp_path / "m.csv").write_text(
        "case,view,path,label\n" + "".join(f"c1,,c1/{v}.png,?\n" for v in ("L-CC", "R-CC", "L-MLO", "R-MLO"))
    )
    table = assemble_cases(manifest=tmp_path / "m.csv")
    assert len(table) == 1 and table.cases[0].label is None
    assert table.problem_counts()["unknown-label"] == 1
    with pytest.raises(ValueError, match="no path column"):
        (tmp_path / "bad.csv").write_text("case,view\nc1,LCC\n")
        assemble_cases(manifest=tmp_path / "bad.csv")


def test_class_folders_single_view(tmp_path: Path) -> None:
    root = tmp_path / "us"
    for cls, n in (("benign", 3), ("malignant", 2), ("normal", 2)):
        for i in range(n):
            _png(root / cls / f"{cls} ({i}).png", i)
    table = assemble_cases([root], view_set="single")
    assert table.columns == ["case_id", "patient_id", "label", "image"]
    assert sorted(table.label_counts().items(), key=str) == sorted({0: 3, 1: 2, None: 2}.items(), key=str)
    dropped = assemble_cases([root], view_set="single", label_map={"normal": "drop"})
    assert len(dropped) == 5 and dropped.problem_counts()["excluded-label"] == 2
    as_benign = assemble_cases([root], view_set="single", label_map={"normal": 0})
    assert as_benign.label_counts()[0] == 5
    out, _ = table.write(tmp_path / "cases.csv")
    ids = [r["case_id"] + r["patient_id"] for r in csv.DictReader(out.open())]
    assert not any("benign" in i or "normal" in i for i in ids)  # file names are not ids
    back = read_cases(out)
    assert back.view_set.any_image and len(back) == 7


def test_image_case_folders_four_views(tmp_path: Path) -> None:
    for v in ("L_CC", "R_CC", "L_MLO", "R_MLO"):
        _png(tmp_path / "malignant" / "pat7" / f"{v}.png")
    for v in ("LCC", "RCC", "LMLO"):
        _png(tmp_path / "benign" / "pat8" / f"{v}.png")
    with pytest.raises(CaseAssemblyError, match="missing RMLO"):
        assemble_cases([tmp_path])
    table = assemble_cases([tmp_path], missing="drop")
    assert len(table) == 1 and table.cases[0].label == 1


def test_read_cases_relative_paths(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    (tmp_path / "cases.csv").write_text("case_id,patient_id,label,LCC,RCC\nc1,p1,1,a.png,\nc2,p2,,a.png,a.png\n")
    table = read_cases(tmp_path / "cases.csv")
    assert table.view_names == ("LCC", "RCC")
    assert table.cases[0].paths == {"LCC": str(tmp_path / "a.png"), "RCC": None}
    assert [c.label for c in table] == [1, None]


@pytest.mark.parametrize(("raw", "label"), [
    ("malignant", 1), ("M", 1), ("1", 1), ("Cancer", 1), ("benign", 0), ("b", 0), ("0", 0),
    ("BENIGN_WITHOUT_CALLBACK", 0), ("normal", None), ("", None), (None, None),
])
def test_parse_label(raw, label) -> None:
    assert parse_label(raw) == label


def test_busi_class_counts(shared_data: Path) -> None:
    busi = shared_data / "busi"
    if not busi.is_dir():
        pytest.skip(f"real data not found: {busi}")
    table = assemble_cases([busi], view_set="single")
    counts = table.label_counts()
    # 437 / 210 / 133 files; one image sits, pixel for pixel, in benign/ and malignant/:
    # both copies are dropped as a duplicate with conflicting labels (issue 11)
    assert (counts[0], counts[1], counts[None]) == (436, 209, 133)
    assert len({c.case_id for c in table}) == 778
    dup = [p for p in table.problems if p.reason == "duplicate-image"]
    assert len(dup) == 2 and all("both dropped" in p.detail or "another label" in p.detail for p in dup)
