"""Write a header-stripped copy of DICOM files: pixel data and geometry only.

Used to measure the header-free path on real data (``bench/phase_order.py``). Every
descriptive, timing and ordering element is removed (times, instance and acquisition
numbers, descriptions, contrast, sequence and vendor tags, private tags, patient and
study identity). Kept: the image pixel module, the geometry (position, orientation,
spacing, thickness) and fresh UIDs so that the files stay valid DICOM. Files get random
names so that the file order carries nothing either.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np

KEEP = (
    # image pixel module
    "SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated",
    "BitsStored", "HighBit", "PixelRepresentation", "PixelData", "RescaleSlope",
    "RescaleIntercept", "PlanarConfiguration",
    # geometry
    "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
    "SpacingBetweenSlices",
    # identity needed for a valid object (regenerated below)
    "SOPClassUID", "Modality",
)


def strip_headers(
    files: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    series: str = "one",
    seed: int = 0,
) -> list[Path]:
    """Copy ``files`` to ``out_dir`` with every header but pixel data and geometry removed.

    ``series="one"`` puts every file in one new series (what an anonymised multi-phase
    export looks like); ``"per-file"`` gives each file its own SeriesInstanceUID (the worst
    case). Returns the written paths in a shuffled order. Inputs are never modified.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    if series not in ("one", "per-file"):
        raise ValueError("series must be 'one' or 'per-file'")
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    paths = [Path(f) for f in files]
    written: list[Path | None] = [None] * len(paths)
    for index in rng.permutation(len(paths)):
        src = pydicom.dcmread(paths[index])
        ds = Dataset()
        for keyword in KEEP:
            if keyword in src:
                ds[keyword] = src[keyword]
        if "PixelData" in ds and src.file_meta.TransferSyntaxUID.is_compressed:
            src.decompress()
            ds.PixelData = src.PixelData
        ds.SOPClassUID = src.get("SOPClassUID", "1.2.840.10008.5.1.4.1.1.4")
        ds.SOPInstanceUID = generate_uid()
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid if series == "one" else generate_uid()
        ds.FrameOfReferenceUID = frame_uid
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        target = out / f"{uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | int(rng.integers(0, 2**63))).hex}.dcm"
        ds.save_as(target, enforce_file_format=True)
        written[index] = target
    return [p for p in written if p is not None]
