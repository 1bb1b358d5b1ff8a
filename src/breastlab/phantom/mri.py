"""Synthetic breast MRI exams as DICOM, with Siemens, GE and Philips header dialects.

``write_mri_phantom(out)`` renders one bilateral breast model
(:mod:`breastlab.phantom.anatomy`) through simple signal equations per sequence
and writes each vendor's exam as classic MR Image Storage files::

    OUT/
      truth.csv             one row per image set: the expected sorter label and facts
      truth_instances.csv   one row per file: its image set and label
      provenance.json       parameters, seed, library versions
      SIEMENS/S003/I0001.dcm ...   (vendor / series number / instance number)
      GE/...
      PHILIPS/...

Sequences: localizer (3-plane), T2WI, T2WI_FS, DWI (b=50 and b=800, trace),
ADC, non-fat-saturated T1, DCE (pre + 4 post-contrast phases), SUB (first post
minus pre) and MIP (thin-slab maximum-intensity projections of the SUB). The
DCE is written as one multi-phase series (GE, Philips) or as one series per
phase (Siemens); ``dce_layout`` overrides this.

Labels in ``truth.csv`` are exactly those of the sorter contract
(:data:`LABELS`). Phase 1 (k-space centre ~90 s after injection, the peak of
the malignant wash-out curve) is ``DCE_early``; phases 2-4 are ``DCE_delayed``.

This is test and demo data. Nothing measured on it backs an accuracy claim.

Physics and rendering: ``phantom.mri_render``; the exam plan: ``phantom.mri_plan``; this
module writes the DICOM files and the truth tables.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from breastlab.core.artefacts import write_provenance
from breastlab.core.labels import LABELS
from breastlab.phantom.anatomy import build_breast_model
from breastlab.phantom.mri_plan import (
    Geometry,
    ImageSet,
    PhantomExam,
    Series,
    SeriesTruth,
    localizer,
    plan_exam,
    render_exam,
)
from breastlab.phantom.mri_render import (
    DCE_LAYOUT,
    IMAGING,
    INSTANCE_COLUMNS,
    MR_IMAGE_STORAGE,
    PATIENT_NAME,
    TRUTH_COLUMNS,
    VENDORS,
    dce_acquisition_offsets,
    dce_post_injection_seconds,
    render_volumes,
)

__all__ = ["DCE_LAYOUT", "LABELS", "PATIENT_NAME", "VENDORS", "PhantomExam", "SeriesTruth",
           "dce_acquisition_offsets", "dce_post_injection_seconds", "read_truth", "render_exam",
           "render_volumes", "write_mri_phantom"]


# ----------------------------------------------------------------------------- DICOM

VENDOR_INFO = {
    "SIEMENS": dict(Manufacturer="SIEMENS", ManufacturerModelName="MAGNETOM Skyra",
                    SoftwareVersions="syngo MR E11", StationName="PHANTOMSKYRA", StudyDate="20240115"),
    "GE": dict(Manufacturer="GE MEDICAL SYSTEMS", ManufacturerModelName="SIGNA HDxt",
               SoftwareVersions=["24", "LX", "MR Software release:HD16.0_V02_1131.a"], StationName="PHANTOMGE",
               StudyDate="20240116"),
    "PHILIPS": dict(Manufacturer="Philips Medical Systems", ManufacturerModelName="Ingenia",
                    SoftwareVersions=["5.4.1", "5.4.1.0"], StationName="PHANTOMINGENIA", StudyDate="20240117"),
}
STUDY_START = 10 * 3600.0  # 10:00:00


def _tm(seconds: float) -> str:
    seconds = seconds % 86400
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h):02d}{int(m):02d}{s:09.6f}"


def _uid(*parts: Any) -> str:
    """A deterministic UID under the 2.25 (UUID-derived) root, from the given parts."""
    digest = hashlib.sha256("|".join(["breastlab-phantom-mri", *map(str, parts)]).encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def _fmt(x: float) -> str:
    """A DS string of at most 16 characters."""
    s = f"{x:.6g}"
    return s if len(s) <= 16 else f"{x:.4e}"


def _dataset(vendor: str, series: Series, st: ImageSet, j: int, instance: int, study_uid: str,
             frame_uid: str, seed: int, strip: bool):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.datadict import dictionary_VR
    from pydicom.uid import ExplicitVRLittleEndian

    sop_uid = _uid(seed, vendor, series.number, "sop", instance)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    pos = st.positions[j]
    pix = np.ascontiguousarray(st.pixels[j])
    if not strip:
        info = VENDOR_INFO[vendor]
        t_series = STUDY_START + series.start
        t_acq = t_series + st.acq_offset
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = st.public.get("ImageType", series.public.get("ImageType", ["ORIGINAL", "PRIMARY"]))
        ds.InstanceCreationDate = info["StudyDate"]
    ds.SOPClassUID = MR_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid
    if not strip:
        date = info["StudyDate"]
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = date
        ds.StudyTime = _tm(STUDY_START)
        ds.SeriesTime = _tm(t_series)
        ds.AcquisitionTime = _tm(t_acq)
        # 2D sequences: each slice has its own time within the acquisition
        ds.ContentTime = _tm(t_acq + (0.0 if st.label.startswith("DCE") else 0.25 * j))
        ds.AccessionNumber = f"PHA{seed:05d}{VENDORS.index(vendor)}"
    ds.Modality = "MR"
    if not strip:
        ds.Manufacturer = info["Manufacturer"]
        ds.InstitutionName = "BREASTLAB PHANTOM HOSPITAL"
        ds.ReferringPhysicianName = "REFERRER^PHANTOM"
        ds.StationName = info["StationName"]
        ds.StudyDescription = "MR BREAST BILATERAL W/WO CONTRAST"
        ds.SeriesDescription = series.description
        ds.ManufacturerModelName = info["ManufacturerModelName"]
        ds.PatientName = PATIENT_NAME
        ds.PatientID = f"PHANTOM{seed:04d}"
        ds.PatientBirthDate = "19700101"
        ds.PatientSex = "F"
        ds.BodyPartExamined = "BREAST"
    if not strip:
        merged = {**series.public, **st.public}
        merged.pop("ImageType", None)
        for key, value in merged.items():
            if isinstance(value, (float, int)) and dictionary_VR(key) == "DS":
                value = _fmt(float(value))
            setattr(ds, key, value)
        ds.SliceThickness = _fmt(pos.thickness)
        ds.MagneticFieldStrength = _fmt(IMAGING[vendor].field)
        ds.SpacingBetweenSlices = _fmt(pos.between or pos.thickness)
        ds.SoftwareVersions = info["SoftwareVersions"]
        ds.ProtocolName = series.description
        ds.PatientPosition = "FFP"
    else:
        ds.SliceThickness = _fmt(pos.thickness)
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series.uid
    if not strip:
        ds.StudyID = "1"
        ds.SeriesNumber = series.number
        if "AcquisitionNumber" not in ds:
            ds.AcquisitionNumber = 1
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [_fmt(x) for x in pos.ipp]
    ds.ImageOrientationPatient = [_fmt(x) for x in pos.iop]
    ds.FrameOfReferenceUID = frame_uid
    if not strip:
        ds.PositionReferenceIndicator = ""
    ds.SliceLocation = _fmt(pos.location)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pix.shape
    ds.PixelSpacing = [_fmt(pos.spacing), _fmt(pos.spacing)]
    ds.BitsAllocated = 16
    ds.BitsStored = 12 if pix.max(initial=0) < 4096 else 16
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    if not strip:
        hi = float(np.percentile(pix, 99.5)) if pix.size else 1.0
        ds.WindowCenter = _fmt(round(hi / 2))
        ds.WindowWidth = _fmt(max(1, round(hi)))
        for group, creator, elem, vr, value in [*series.private, *st.private]:
            block = ds.private_block(group, creator, create=True)
            block.add_new(elem, vr, value)
    ds.PixelData = pix.astype("<u2").tobytes()
    return ds


def _write_vendor(root: Path, vendor: str, plan: list[Series], seed: int, strip: bool
                  ) -> tuple[list[Path], list[SeriesTruth], list[dict[str, Any]]]:
    from pydicom import dcmwrite

    study_uid = _uid(seed, vendor, "study")
    frame_uid = _uid(seed, vendor, "frame")
    files: list[Path] = []
    truth: list[SeriesTruth] = []
    inst_rows: list[dict[str, Any]] = []
    for series in plan:
        series.uid = _uid(seed, vendor, "series", series.number)
        folder = f"{vendor}/S{series.number:03d}"
        (root / f"S{series.number:03d}").mkdir(parents=True, exist_ok=True)
        # instance order: set after set, or interleaved per location (GE DWI)
        order = [(i, j) for i, st in enumerate(series.sets) for j in range(st.pixels.shape[0])]
        if series.slice_major:
            order.sort(key=lambda ij: (ij[1], ij[0]))
        for instance, (i, j) in enumerate(order, start=1):
            st = series.sets[i]
            ds = _dataset(vendor, series, st, j, instance, study_uid, frame_uid, seed, strip)
            path = root / f"S{series.number:03d}" / f"I{instance:04d}.dcm"
            dcmwrite(path, ds, enforce_file_format=True)
            rel = f"{folder}/{path.name}"
            files.append(path)
            inst_rows.append(dict(path=rel, vendor=vendor, series_number=series.number, series_uid=series.uid,
                                  sop_instance_uid=ds.SOPInstanceUID, instance_number=instance, label=st.label,
                                  b_value=st.b_value, dce_phase=st.dce_phase, detail=st.detail))
        # one truth row per image set; sets sharing (label, b, phase) merge (Philips directions)
        merged: dict[tuple, list[ImageSet]] = {}
        for st in series.sets:
            merged.setdefault((st.label, st.b_value, st.dce_phase), []).append(st)
        for (label, b, phase), group in merged.items():
            truth.append(SeriesTruth(
                vendor=vendor, series_number=series.number, series_uid=series.uid,
                series_description=series.description, label=label, b_value=b, dce_phase=phase,
                dce_seconds=group[0].dce_seconds, post_injection_seconds=group[0].post_injection,
                n_images=sum(st.pixels.shape[0] for st in group), folder=folder,
                detail="; ".join(st.detail for st in group if st.detail)))
    return files, truth, inst_rows


def write_mri_phantom(
    out_dir: Path,
    *,
    vendors: Sequence[str] = VENDORS,
    n_slices: int = 16,
    matrix: int = 128,
    seed: int = 0,
    strip_headers: bool = False,
    dce_layout: str | None = None,
    lesion_kind: str = "malignant",
) -> PhantomExam:
    """Write one synthetic breast MRI exam per vendor under ``out_dir`` (see module doc).

    ``dce_layout`` is ``"single"`` (one multi-phase series), ``"separate"`` (one
    series per phase) or ``None`` (per-vendor default, :data:`DCE_LAYOUT`).
    ``strip_headers=True`` keeps only pixel data, geometry and UIDs.
    Existing vendor folders under ``out_dir`` are replaced.
    """
    from breastlab.core import atomic
    from breastlab.core.provenance import run_manifest

    out_dir = Path(out_dir)
    vendor_list = _normalise_vendors(vendors)
    if dce_layout not in (None, "single", "separate"):
        raise ValueError(f"dce_layout must be 'single', 'separate' or None, not {dce_layout!r}")
    if n_slices < 2:
        raise ValueError("n_slices must be at least 2")
    out_dir.mkdir(parents=True, exist_ok=True)
    model = build_breast_model(n_slices, matrix, seed=seed, lesion_kind=lesion_kind)
    g = Geometry(n_slices, matrix)
    files: list[Path] = []
    truth: list[SeriesTruth] = []
    inst_rows: list[dict[str, Any]] = []
    for vendor in vendor_list:
        v = render_volumes(model, vendor, seed)
        loc = localizer(v["LOCALIZER_VOLUME"], g, np.random.default_rng([seed, 77, VENDORS.index(vendor)]))
        plan = plan_exam(vendor, v, g, loc, dce_layout or DCE_LAYOUT[vendor])
        partial = out_dir / f".{vendor}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        vf, vt, vi = _write_vendor(partial, vendor, plan, seed, strip_headers)
        final = out_dir / vendor
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
        files += [final / p.relative_to(partial) for p in vf]
        truth += vt
        inst_rows += vi
    truth_csv = atomic.write_csv(out_dir / "truth.csv", (asdict(t) for t in truth), TRUTH_COLUMNS)
    inst_csv = atomic.write_csv(out_dir / "truth_instances.csv", inst_rows, INSTANCE_COLUMNS)
    config = dict(command="phantom mri", vendors=list(vendor_list), n_slices=n_slices, matrix=matrix, seed=seed,
                  strip_headers=strip_headers, dce_layout=dce_layout, lesion_kind=lesion_kind,
                  lesion_voxels=int(model.lesion_mask.sum()))
    write_provenance(out_dir / "provenance.json", run_manifest(config))
    return PhantomExam(out_dir, files, truth, truth_csv, inst_csv, tuple(vendor_list), strip_headers)


def _normalise_vendors(vendors: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(vendors, str):
        vendors = [vendors]
    out: list[str] = []
    for name in vendors:
        key = name.strip().upper()
        key = {"PHILIPS MEDICAL SYSTEMS": "PHILIPS", "GE MEDICAL SYSTEMS": "GE", "GEHC": "GE"}.get(key, key)
        if key not in VENDORS:
            raise ValueError(f"unknown vendor {name!r}; choose from {', '.join(v.lower() for v in VENDORS)}")
        if key not in out:
            out.append(key)
    if not out:
        raise ValueError("no vendor given")
    return tuple(out)


def read_truth(out_dir: Path) -> list[dict[str, str]]:
    """The rows of ``truth.csv`` as dicts of strings (empty string = none)."""
    import csv

    with open(Path(out_dir) / "truth.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
