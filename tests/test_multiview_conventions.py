"""Public mammography conventions (CBIS-DDSM, CMMD, VinDr-Mammo) assemble into the right cases,
with the woman as the split unit. The generated DICOM copies each set's header layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from breastlab.multiview.cases import assemble_cases, read_cases
from breastlab.multiview.conventions import parse_birads, parse_cbis_id
from breastlab.training.splits import check_split, repeat_split

DM_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography X-Ray, For Presentation
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"   # what CBIS-DDSM's converted images are


def _dcm(path: Path, *, patient: str, study: str | None = None, sop_class: str = DM_PRESENTATION,
         desc: str | None = None, lat: str | None = None, code_meaning: str | None = None,
         pixels: np.ndarray | None = None, seed: int = 0, manufacturer: str | None = None) -> Path:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop = generate_uid(entropy_srcs=[str(path)])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop
    ds.Modality = "MG"
    ds.PatientID = patient
    ds.PatientName = patient
    ds.StudyInstanceUID = study or generate_uid(entropy_srcs=[str(path), "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[str(path), "series"])
    ds.BodyPartExamined = "BREAST"
    if desc is not None:
        ds.SeriesDescription = desc
    if lat:
        ds.ImageLaterality = lat
    if manufacturer:
        ds.Manufacturer = manufacturer
    if code_meaning:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "x", "SCT", code_meaning
        ds.ViewCodeSequence = Sequence([item])
    if pixels is None:
        pixels = np.random.default_rng(seed).integers(0, 4000, (16, 12), dtype=np.uint16)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = pixels.astype("<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_parse_cbis_id_and_birads() -> None:
    cid = parse_cbis_id("Mass-Test_P_00173_LEFT_CC")
    assert (cid.kind, cid.part, cid.woman, cid.laterality, cid.projection, cid.abnormality) == (
        "Mass", "Test", "P_00173", "L", "CC", None)
    assert parse_cbis_id("Calc-Training_P_00038_RIGHT_MLO_2").abnormality == 2
    assert parse_cbis_id("D1-0001") is None and parse_cbis_id(None) is None
    assert [parse_birads(t) for t in ("BI-RADS 1", "BI-RADS 3", "BI-RADS 4", "bi-rads 5", "1")] == [
        0, 0, 1, 1, None]


def _cbis_tree(root: Path) -> None:
    """TCIA download layout: CBIS-DDSM/<PatientID>/<date-DDSM-id>/<n-series description-id>/1-1.dcm."""
    n = 0
    def full(pid: str, seed: int) -> None:
        nonlocal n
        n += 1
        _dcm(root / "CBIS-DDSM" / pid / f"07-20-2016-DDSM-{n:05d}" / f"1.000000-full mammogram images-{n:05d}"
             / "1-1.dcm", patient=pid, sop_class=SECONDARY_CAPTURE, desc="full mammogram images", seed=seed)

    def roi(pid: str, seed: int) -> None:
        nonlocal n
        n += 1
        series = root / "CBIS-DDSM" / pid / f"08-07-2016-DDSM-{n:05d}" / f"1.000000-ROI mask images-{n:05d}"
        study = f"1.3.6.1.4.1.9590.100.1.2.{n}"
        _dcm(series / "1-1.dcm", patient=pid, study=study, sop_class=SECONDARY_CAPTURE,
             desc="cropped images", seed=seed + 100)
        _dcm(series / "1-2.dcm", patient=pid, study=study, sop_class=SECONDARY_CAPTURE,
             desc="ROI mask images", seed=seed + 200)

    # woman P_00001: left breast (mass, malignant) and right breast (calcification, benign)
    for i, pid in enumerate(("Mass-Training_P_00001_LEFT_CC", "Mass-Training_P_00001_LEFT_MLO",
                             "Calc-Training_P_00001_RIGHT_CC", "Calc-Training_P_00001_RIGHT_MLO")):
        full(pid, seed=i)
        roi(pid + "_1", seed=i)
    # the same left CC again under the Calc collection: byte-identical pixels, other ids
    import shutil
    import pydicom

    src = next((root / "CBIS-DDSM" / "Mass-Training_P_00001_LEFT_CC").rglob("1-1.dcm"))
    ds = pydicom.dcmread(src)
    ds.PatientID = ds.PatientName = "Calc-Training_P_00001_LEFT_CC"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.999"
    ds.StudyInstanceUID = "1.2.3.998"
    dst = root / "CBIS-DDSM" / "Calc-Training_P_00001_LEFT_CC" / "x" / "1.000000-full mammogram images-1" / "1-1.dcm"
    dst.parent.mkdir(parents=True)
    ds.save_as(dst)
    # woman P_00002 (test collection): four views
    for i, pid in enumerate(("Mass-Test_P_00002_LEFT_CC", "Mass-Test_P_00002_LEFT_MLO",
                             "Mass-Test_P_00002_RIGHT_CC", "Mass-Test_P_00002_RIGHT_MLO")):
        full(pid, seed=10 + i)
    shutil.rmtree(root / "unused", ignore_errors=True)


def test_cbis_ddsm_assembles_by_woman(tmp_path: Path) -> None:
    _cbis_tree(tmp_path)
    # the set's case description CSV: one row per abnormality, per breast
    labels = tmp_path / "mass_case_description.csv"
    labels.write_text(
        "patient_id,breast_density,left or right breast,image view,abnormality id,pathology\n"
        "P_00001,3,LEFT,CC,1,MALIGNANT\nP_00001,3,LEFT,MLO,1,MALIGNANT\n"
        "P_00001,3,RIGHT,CC,1,BENIGN_WITHOUT_CALLBACK\nP_00001,3,RIGHT,MLO,1,BENIGN\n"
        "P_00002,2,LEFT,CC,1,BENIGN\nP_00002,2,RIGHT,MLO,1,BENIGN\n")
    table = assemble_cases([tmp_path], view_set="mammo4", labels=labels)
    assert len(table) == 2                       # one case per woman, not one per image
    reasons = table.problem_counts()
    assert reasons["excluded-series"] == 8       # 4 crops + 4 ROI masks, each with a reason
    assert reasons["duplicate-image"] == 1       # the Calc copy of the left CC
    assert "missing-view" not in reasons
    excluded = [p for p in table.problems if p.reason == "excluded-series"]
    assert all("not a full mammogram" in p.detail for p in excluded)
    by_label = {c.label: c for c in table}
    c1 = by_label[1]
    assert c1.breast_labels == {"L": 1, "R": 0} and c1.convention == "cbis-ddsm"
    assert all("full mammogram images" in c1.paths[v] for v in ("LCC", "RCC", "LMLO", "RMLO"))
    assert by_label[0].breast_labels == {"L": 0, "R": 0}
    # the woman is the patient: ids are her pseudonym, never the per-image PatientID
    from breastlab.multiview.cases import pseudonym
    assert c1.patient_id == pseudonym("P_00001", prefix="P")
    out, _ = table.write(tmp_path / "cases.csv")
    again = read_cases(out)
    assert again.view_names == ("LCC", "RCC", "LMLO", "RMLO")
    assert again.cases[0].breast_labels == table.cases[0].breast_labels


def test_cmmd_duplicates_dropped_and_woman_is_split_unit(tmp_path: Path) -> None:
    # CMMD layout: CMMD/<D1-xxxx>/<date-NA-NA-id>/1.000000-NA-id/1-1.dcm ..., laterality and
    # view in the tags (ImageLaterality, ViewCodeSequence), one study per woman
    views = (("L", "cranio-caudal"), ("L", "medio-lateral oblique"),
             ("R", "cranio-caudal"), ("R", "medio-lateral oblique"))
    pixels = {}
    for w in range(1, 16):
        pid = f"D1-{w:04d}"
        study = f"1.3.6.1.4.1.9590.100.1.2.{w}"
        for i, (lat, meaning) in enumerate(views):
            px = np.random.default_rng(w * 10 + i).integers(0, 4000, (16, 12), dtype=np.uint16)
            if pid == "D1-0015":             # byte-identical to D1-0002 under another id
                px = pixels[("D1-0002", i)]
            pixels[(pid, i)] = px
            _dcm(tmp_path / "CMMD" / pid / "07-18-2010-NA-NA-79377" / "1.000000-NA-70244" / f"1-{i + 1}.dcm",
                 patient=pid, study=study, lat=lat, code_meaning=meaning, pixels=px,
                 manufacturer="GE MEDICAL SYSTEMS")
    # CMMD_clinicaldata_revision (as CSV): ID1, LeftRight, Age, number, abnormality, classification
    rows = ["ID1,LeftRight,Age,number,abnormality,classification,subtype"]
    rows += [f"D1-{w:04d},{'L' if w % 2 else 'R'},50,1,mass,{'Malignant' if w % 3 == 0 else 'Benign'},"
             for w in range(1, 16)]
    (tmp_path / "clinical.csv").write_text("\n".join(rows) + "\n")
    table = assemble_cases([tmp_path], view_set="mammo4", labels=tmp_path / "clinical.csv",
                           missing="drop")
    assert len(table) == 14                      # D1-0015 lost its four (duplicate) images
    dups = [p for p in table.problems if p.reason == "duplicate-image"]
    assert len(dups) == 4 and all("D1-0002" in p.detail for p in dups)
    c3 = next(c for c in table if c.breast_labels == {"L": 1})      # D1-0003: left malignant
    assert c3.label == 1 and c3.manufacturer
    assert next(c for c in table if c.breast_labels == {"R": 0}).label == 0
    # woman = split unit: the patient ids are distinct per woman, and a split keeps them apart
    ids = [c.case_id for c in table]
    sp = repeat_split(ids, np.array([c.label for c in table]), [c.patient_id for c in table],
                      repeat=0, seed=0)
    check_split(sp, {c.case_id: c.patient_id for c in table})


def test_vindr_csv_as_manifest(tmp_path: Path) -> None:
    # VinDr-Mammo: breast-level_annotations.csv + images/<study_id>/<image_id>.dicom
    header = ("study_id,series_id,image_id,laterality,view_position,height,width,breast_birads,"
              "breast_density,split")
    rows = [header]
    for s, (birads_l, birads_r, split) in enumerate((("BI-RADS 1", "BI-RADS 4", "training"),
                                                      ("BI-RADS 2", "BI-RADS 2", "test"))):
        study = f"a{s}b2c3d4"
        for lat, birads in (("L", birads_l), ("R", birads_r)):
            for view in ("CC", "MLO"):
                image = f"img{s}{lat}{view}"
                _dcm(tmp_path / "images" / study / f"{image}.dicom", patient=f"anon{s}",
                     seed=hash((s, lat, view)) % 1000)
                rows.append(f"{study},ser{s},{image},{lat},{view},16,12,{birads},DENSITY C,{split}")
    (tmp_path / "breast-level_annotations.csv").write_text("\n".join(rows) + "\n")
    table = assemble_cases(manifest=tmp_path / "breast-level_annotations.csv", view_set="mammo4")
    assert len(table) == 2 and not table.problem_counts().get("missing-file")
    labels = sorted((c.label, tuple(sorted(c.breast_labels.items()))) for c in table)
    assert labels == [(0, (("L", 0), ("R", 0))), (1, (("L", 0), ("R", 1)))]
    assert {c.convention for c in table} == {"vindr-mammo"}
    assert all(Path(p).is_file() for c in table for p in c.paths.values())


@pytest.mark.parametrize("layout", ["cbis"])
def test_cases_cli_nonzero_when_nothing_built(tmp_path: Path, layout: str) -> None:
    from typer.testing import CliRunner

    from breastlab.cli.main import app

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.bin").write_bytes(b"not dicom")
    res = CliRunner().invoke(app, ["cases", str(tmp_path / "in"), "--out", str(tmp_path / "c.csv"),
                                   "--no-progress"])
    assert res.exit_code != 0
    assert "no case" in (res.output + (res.stderr if res.stderr_bytes is not None else "")).lower()
