"""Conformance with dcm2niix's reference sidecars (dcmqa/*/Ref/*.json and .bval).

Table-driven: every ``Ref/*.json`` found under ``$BREASTLAB_DATA/dcmqa`` is one case (no
count is hard-coded). A reference is matched to the records of its folder's ``In/`` by
SeriesNumber and Manufacturer (dcm2niix QA names ``*_cl``/``*_enh`` references after the
classic and the enhanced copy of one series). Every field both sides have is compared;
the few that cannot match are listed in :data:`KNOWN_DIFFERENCES`, with the reason, and
explained in docs/dicom.md ("Conformance with dcm2niix").
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from breastlab.core.settings import data_root
from breastlab.dicom.headers import normalise_manufacturer, read_records
from breastlab.dicom.records import InstanceRecord, SkippedFile
from breastlab.dicom.scan import scan_paths
from conftest import require

DCMQA = data_root() / "dcmqa"
REFS = sorted(DCMQA.glob("*/Ref/*.json")) if DCMQA.is_dir() else []

#: dcm2niix appends the complex component (from GE (0043,102F), Siemens XA, Philips) to ImageType
DCM2NIIX_IMAGE_TYPE_SUFFIXES = {"MAGNITUDE", "PHASE", "REAL", "IMAGINARY"}


def _ms(value: float) -> float:  # dcm2niix writes seconds; records hold ms
    return value * 1000.0


# (JSON key, record field, JSON -> record units); compared on every record of the series
NUMERIC: tuple[tuple[str, str, Callable[[float], float]], ...] = (
    ("EchoTime", "echo_time", _ms),
    ("RepetitionTime", "repetition_time", _ms),
    ("InversionTime", "inversion_time", _ms),
    ("FlipAngle", "flip_angle", float),
    ("MagneticFieldStrength", "magnetic_field_strength", float),
    ("SliceThickness", "slice_thickness", float),
    ("EchoTrainLength", "echo_train_length", float),
)
TEXT: tuple[tuple[str, str], ...] = (
    ("SeriesDescription", "series_description"),
    ("ProtocolName", "protocol_name"),
    ("ManufacturersModelName", "manufacturer_model"),
    ("SequenceName", "sequence_name"),
    ("Modality", "modality"),
    ("BodyPartExamined", "body_part"),
)
MULTI: tuple[tuple[str, str], ...] = (
    ("ScanningSequence", "scanning_sequence"),
    ("SequenceVariant", "sequence_variant"),
    ("ScanOptions", "scan_options"),
)

#: (folder, reference-name suffix or "", field) -> why breastlab and dcm2niix differ
KNOWN_DIFFERENCES: dict[tuple[str, str, str], str] = {
    ("canon", "_enh", "ImageType"):
        "enhanced files: breastlab reports the per-frame FrameType (0008,9007) (ORIGINAL\\PRIMARY\\DIFFUSION\\"
        "NONE), dcm2niix the top-level ImageType (ORIGINAL\\PRIMARY\\GDC\\NONE)",
    ("siemens_xa30", "", "ScanningSequence"):
        "enhanced files carry no (0018,0020); dcm2niix derives it from other enhanced-MR attributes",
    ("siemens_xa30", "", "SequenceVariant"): "enhanced files carry no (0018,0021); dcm2niix derives it",
    ("siemens_xa30", "", "ScanOptions"): "enhanced files carry no (0018,0022); dcm2niix derives it",
    ("deident", "", "ProtocolName"):
        "the de-identified file has no ProtocolName (0018,1030); dcm2niix fills it with SeriesDescription",
}

_scans: dict[Path, tuple[list[InstanceRecord], list[SkippedFile]]] = {}


def _scan(folder: Path) -> tuple[list[InstanceRecord], list[SkippedFile]]:
    if folder not in _scans:
        result = scan_paths([folder], workers=1, progress=False)
        _scans[folder] = (result.records, result.skipped)
    return _scans[folder]


def _known(folder: str, stem: str, key: str) -> str | None:
    for (f, suffix, field), why in KNOWN_DIFFERENCES.items():
        if f == folder and field == key and (not suffix or stem.endswith(suffix)):
            return why
    return None


def _series_for(ref: Path) -> list[InstanceRecord]:
    d = json.loads(ref.read_text())
    records, skipped = _scan(ref.parent.parent / "In")
    # the data set is only usable for conformance if every DICOM file in it was read
    assert {s.reason for s in skipped} <= {"not-dicom", "hidden"}, [s for s in skipped if s.reason != "not-dicom"]
    want = normalise_manufacturer(d.get("Manufacturer"))
    series = [r for r in records if r.series_number == d.get("SeriesNumber") and r.manufacturer == want]
    if ref.stem.endswith("_enh"):
        series = [r for r in series if r.frame_index is not None]
    elif ref.stem.endswith("_cl"):
        series = [r for r in series if r.frame_index is None]
    return series


def _image_type_matches(ours: tuple[str, ...], ref: list[str]) -> bool:
    """dcm2niix splits values at '_' and may append the complex component."""
    split = [part for value in ours for part in value.split("_")]
    ref = [v.upper() for v in ref]
    if split == ref:
        return True
    return split == ref[:-1] and ref[-1] in DCM2NIIX_IMAGE_TYPE_SUFFIXES


@pytest.mark.parametrize("ref", REFS, ids=[str(p.relative_to(DCMQA)) for p in REFS])
def test_records_match_dcm2niix_sidecar(ref: Path) -> None:
    d = json.loads(ref.read_text())
    folder, stem = ref.parent.parent.name, ref.stem
    series = _series_for(ref)
    if not series:
        pytest.skip(f"{ref.name}: its series is not in {folder}/In (a partial copy of the QA repository)")
    mismatches: dict[str, str] = {}

    def check(key: str, ok: bool, ours: object) -> None:
        if key in d and not ok and not _known(folder, stem, key):
            mismatches[key] = f"dcm2niix {d[key]!r}, breastlab {ours!r}"

    if "Manufacturer" in d:
        check("Manufacturer", {r.manufacturer for r in series} == {normalise_manufacturer(d["Manufacturer"])},
              {r.manufacturer for r in series})
    check("SeriesNumber", {r.series_number for r in series} == {d.get("SeriesNumber")}, None)
    for key, field in TEXT:
        if key in d:
            ours = {getattr(r, field) for r in series}
            check(key, {(v or "").upper() for v in ours} == {str(d[key]).upper()}, ours)
    for key, field in MULTI:
        if key in d:
            ours = {getattr(r, field) for r in series}
            check(key, ours == {tuple(str(d[key]).upper().split("\\"))}, ours)
    for key, field, unit in NUMERIC:
        if key in d:
            ours = {getattr(r, field) for r in series}
            want = unit(float(d[key]))
            check(key, all(v is not None and math.isclose(v, want, rel_tol=1e-4, abs_tol=1e-6) for v in ours), ours)
    if "ImageType" in d:
        ours = {r.image_type for r in series}
        check("ImageType", all(_image_type_matches(t, d["ImageType"]) for t in ours), ours)
    if "AcquisitionNumber" in d:  # dcm2niix reports the first acquisition of the series
        ours = {r.acquisition_number for r in series}
        check("AcquisitionNumber", d["AcquisitionNumber"] in ours, ours)
    if "ImageOrientationPatientDICOM" in d:
        want = np.array(d["ImageOrientationPatientDICOM"], dtype=float)
        ours = {r.image_orientation for r in series}
        check("ImageOrientationPatientDICOM",
              all(o is not None and np.allclose(o, want, atol=1e-4) for o in ours), len(ours))
    bval = ref.with_suffix(".bval")
    if bval.is_file():
        want_b = {float(v) for v in bval.read_text().split()}
        ours_b = {r.b_value for r in series if not r.is_derived_trace}
        if ours_b != want_b:
            mismatches["bval"] = f"dcm2niix {sorted(want_b)}, breastlab {sorted(ours_b, key=str)}"
    assert not mismatches, f"{ref.relative_to(DCMQA)}: {mismatches}"


def test_every_known_difference_is_still_real(shared_data: Path) -> None:
    """A listed difference that disappeared must be removed from the list (and the docs)."""
    require(DCMQA)
    for (folder, suffix, key), _ in KNOWN_DIFFERENCES.items():
        refs = [r for r in REFS if r.parent.parent.name == folder and r.stem.endswith(suffix)]
        real = False
        for ref in refs:
            d, series = json.loads(ref.read_text()), _series_for(ref)
            if not series or key not in d:
                continue
            field = dict(TEXT + MULTI + (("ImageType", "image_type"),)).get(key)
            ours = {getattr(r, field) for r in series}
            if key == "ImageType":
                real |= not all(_image_type_matches(t, d[key]) for t in ours)
            elif key in dict(MULTI):
                real |= ours != {tuple(str(d[key]).upper().split("\\"))}
            else:
                real |= {(v or "").upper() for v in ours} != {str(d[key]).upper()}
        if refs:
            assert real, f"{folder}{suffix} {key} now matches dcm2niix: drop it from KNOWN_DIFFERENCES and docs"


def _strip(record: InstanceRecord, *fields: str) -> dict:
    row = record.to_row(keep_phi=True)
    for name in ("path", *fields):
        row.pop(name)
    return row


def test_agfa_pacs_copy_gives_the_original_records(shared_data: Path) -> None:
    """The PACS renamed private groups and replaced the UIDs: every other fact is the same."""
    root = require(shared_data / "dcmqa" / "agfa_pacs")
    names = sorted(p.name for p in (root / "Siemens").iterdir())
    assert names and names == sorted(p.name for p in (root / "Agfa").iterdir())
    for name in names:
        original, copy = read_records(root / "Siemens" / name), read_records(root / "Agfa" / name)
        assert not isinstance(original, SkippedFile) and not isinstance(copy, SkippedFile)
        assert len(original) == len(copy)
        for a, b in zip(original, copy):
            assert _strip(a, "sop_instance_uid", "study_uid", "series_uid") == \
                _strip(b, "sop_instance_uid", "study_uid", "series_uid"), name
            assert a.vendor == b.vendor


def test_nine_transfer_syntaxes_give_the_same_records_and_pixels(shared_data: Path) -> None:
    """One image in 9 transfer syntaxes: same records (but for identity), same pixels to every reader."""
    from breastlab.seriesmodels.volumes import read_slice
    from breastlab.multiview.preprocess import _load_dicom

    files = sorted(require(shared_data / "dcmqa" / "transfer_syntax" / "In").glob("*.dcm"))
    records = []
    for path in files:
        result = read_records(path)
        assert not isinstance(result, SkippedFile), result
        records += result
    syntaxes = {r.transfer_syntax_uid for r in records}
    assert len(syntaxes) >= 5  # explicit/implicit LE, big endian, RLE, JPEG family...
    first = _strip(records[0], "sop_instance_uid", "transfer_syntax_uid", "series_number")
    for r in records[1:]:
        assert _strip(r, "sop_instance_uid", "transfer_syntax_uid", "series_number") == first, r.path
    mri = [read_slice(p).pixels for p in files]  # phase ordering and the MRI image models read this
    views = [_load_dicom(p, None) for p in files]  # four-view preprocessing reads this
    for path, a, b in zip(files, mri, views):
        assert np.array_equal(a, mri[0]), path
        assert np.array_equal(b, views[0]), path
    assert mri[0].std() > 0
