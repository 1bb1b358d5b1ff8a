"""Single images beside a real DCE run are not phases (issue 17).

Two single-image copies of one slice of the real GE DCE exam (new Series and SOP Instance
UIDs, as a viewer's saved key image or an edited re-export looks; one described "T2 ...")
are added to the exam: the run must keep exactly its three 60-image phases, and both copies
must be OTHER with the reason in the evidence, never "ordered by series order".
"""
from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from conftest import require
from pydicom.uid import generate_uid

from breastlab.core.labels import DCE_LABELS, Label
from breastlab.mri.sorter import sort_exam


def _single_copies(exam: Path, dest: Path) -> list[Path]:
    """Two copies of one slice (instance 30, pre-contrast), each its own single-image series."""
    source = next(p for p in sorted(exam.rglob("*"))
                  if p.is_file() and "orig" in str(p.parent) and _instance(p) == 30)
    out = []
    for k, description in enumerate(("Sagittal-IR_3DFGRE key image", "T2 edited re-export")):
        ds = pydicom.dcmread(source)
        ds.SeriesInstanceUID = generate_uid()
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesNumber = 900 + k
        ds.InstanceNumber = 1
        ds.SeriesDescription = description
        path = dest / f"copy{k}.dcm"
        ds.save_as(path)
        out.append(path)
    return out


def _instance(path: Path) -> int | None:
    try:
        return int(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["InstanceNumber"]).InstanceNumber)
    except Exception:  # noqa: BLE001 - not a DICOM image of the exam
        return None


@pytest.fixture(scope="module")
def exam(shared_data: Path) -> Path:
    return require(shared_data / "nact-dce" / "UCSF-BR-06")


def test_single_image_copies_leave_exactly_the_real_phases(exam: Path, tmp_path: Path) -> None:
    copies = tmp_path / "copies"
    copies.mkdir()
    paths = _single_copies(exam, copies)
    result = sort_exam([exam, copies], workers=1, progress=False)
    dce = [s for s in result.sets if s.label in DCE_LABELS]
    assert [s.label for s in dce] == [Label.DCE_PRE, Label.DCE_EARLY, Label.DCE_DELAYED]
    assert [s.image_set.n_images for s in dce] == [60, 60, 60]
    singles = [s for s in result.sets if s.image_set.n_images == 1]
    assert len(singles) == len(paths) == 2
    for s in singles:
        c = s.classification
        assert c.label == Label.OTHER and c.rule == "dce_partial", c
        assert "single image" in c.evidence and "beside a dynamic acquisition of 3 phases x 60 images" in c.evidence
    assert not any("series order" in s.classification.evidence for s in result.sets if s.image_set.n_images == 1)


def test_two_single_images_alone_are_not_a_dce(exam: Path, tmp_path: Path) -> None:
    """Without the run, the two copies are two T1 images (TE/TR), not DCE_pre/DCE_early."""
    copies = tmp_path / "copies"
    copies.mkdir()
    _single_copies(exam, copies)
    result = sort_exam([copies], workers=1, progress=False)
    assert [s.label for s in result.sets] == [Label.T1, Label.T1]
    assert all(s.summary.dce_phase is None for s in result.sets)


def test_a_whole_volume_outside_the_slab_is_not_called_partial(exam: Path, tmp_path: Path) -> None:
    """A full 60-slice copy of the pre-contrast phase, shifted 30 mm (a repeat after repositioning),
    keeps its T1 label: only single images and partial sets are taken out of the run."""
    copy = tmp_path / "repeat"
    copy.mkdir()
    series = generate_uid()
    for p in sorted(exam.rglob("*.dcm")):
        if "orig" not in str(p.parent):
            continue
        ds = pydicom.dcmread(p)
        if int(ds.InstanceNumber) > 60:
            continue
        ds.SeriesInstanceUID, ds.SOPInstanceUID = series, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesNumber = 950
        ds.ImagePositionPatient = [float(ds.ImagePositionPatient[0]), float(ds.ImagePositionPatient[1]) + 30.0,
                                   float(ds.ImagePositionPatient[2])]
        ds.save_as(copy / p.name)
    result = sort_exam([exam, copy], workers=1, progress=False)
    (repeat,) = [s for s in result.sets if s.image_set.series_number == 950]
    assert repeat.summary.dce_partial is None and repeat.classification.rule != "dce_partial"
    dce = [s for s in result.sets if s.label in DCE_LABELS and s.image_set.series_number == 2]
    assert [s.image_set.n_images for s in dce] == [60, 60, 60]
