"""Field-map and BOLD exports nobody wrote a rule for, written with pydicom (issue 17).

The shared data holds no field map, so the truth table (tests/label_truth.csv, folder
``fixture:fieldmaps``) sorts these, written in the header layout each vendor documents
(dcm2niix's Siemens/Philips notes, the DICOM enhanced MR module):

* Siemens ``gre_field_mapping``: a magnitude series at TE 4.92 and 7.38 ms (SequenceName
  ``*fm2d2r``, ImageType ``ORIGINAL\\PRIMARY\\M\\ND``) and its phase-difference series
  (ImageType ``ORIGINAL\\PRIMARY\\P\\ND``), TR 488 ms, flip 60;
* Philips "fcMRI Field Mapping": one enhanced MR file, magnitude and phase at two echoes
  (TE 4.6 / 6.9 ms, TR 15 ms), per-frame MR Image Frame Type with ComplexImageComponent
  MAGNITUDE/PHASE and AcquisitionContrast T1 on every frame, FrameType the same for both;
* a BIDS-named functional EPI ``func-bold_task-fa_run-1`` (ImageType ``ORIGINAL\\PRIMARY\\M\\ND``).

Pixel data are small noise images; only the headers matter.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MR = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
N_SLICES = 4
MATRIX = 16


def _base(sop_class: str, study: str, series: str, number: int, description: str, manufacturer: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.Modality = "MR"
    ds.Manufacturer = manufacturer
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.SeriesNumber, ds.SeriesDescription, ds.ProtocolName = number, description, description
    ds.PatientID, ds.PatientName = "FIXTURE", "Fixture^Fieldmap"
    ds.StudyDate, ds.SeriesTime = "20250101", "101010"
    ds.Rows = ds.Columns = MATRIX
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    return ds


def _pixels(rng: np.random.Generator, frames: int = 1) -> bytes:
    return rng.integers(0, 4000, size=(frames, MATRIX, MATRIX), dtype=np.uint16).tobytes()


def _classic_series(out: Path, rng, study: str, number: int, description: str, manufacturer: str,
                    tes: tuple[float, ...], **tags) -> None:
    series = generate_uid()
    k = 0
    for te in tes:
        for z in range(N_SLICES):
            k += 1
            ds = _base(MR, study, series, number, description, manufacturer)
            ds.InstanceNumber = k
            ds.EchoTime, ds.EchoNumbers = te, tes.index(te) + 1
            ds.ImagePositionPatient = [-100.0, -100.0, 4.0 * z]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.PixelSpacing, ds.SliceThickness = [2.0, 2.0], 4.0
            for key, value in tags.items():
                setattr(ds, key, value)
            ds.PixelData = _pixels(rng)
            ds.save_as(out / f"S{number:03d}_{k:03d}.dcm", enforce_file_format=True)


def _philips_enhanced(out: Path, rng, study: str, number: int) -> None:
    ds = _base(ENHANCED_MR, study, generate_uid(), number, "fcMRI Field Mapping", "Philips Medical Systems")
    ds.ImageType = ["ORIGINAL", "PRIMARY", "MIXED", "NONE"]
    ds.InstanceNumber = 1
    ds.ScanningSequence, ds.SequenceVariant = "GR", "SP"
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing, measures.SliceThickness = [2.0, 2.0], 4.0
    orient = Dataset()
    orient.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    timing = Dataset()
    timing.RepetitionTime, timing.FlipAngle = 15.0, 20.0
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([orient])
    shared.MRTimingAndRelatedParametersSequence = Sequence([timing])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for component in ("MAGNITUDE", "PHASE"):
        for te in (4.6, 6.9):
            for z in range(N_SLICES):
                f = Dataset()
                ftype = Dataset()
                ftype.FrameType = ["ORIGINAL", "PRIMARY", "FFE", "NONE"]
                ftype.ComplexImageComponent, ftype.AcquisitionContrast = component, "T1"
                f.MRImageFrameTypeSequence = Sequence([ftype])
                e = Dataset()
                e.EffectiveEchoTime = te
                f.MREchoSequence = Sequence([e])
                pos = Dataset()
                pos.ImagePositionPatient = [-100.0, -100.0, 4.0 * z]
                f.PlanePositionSequence = Sequence([pos])
                content = Dataset()
                content.InStackPositionNumber = z + 1
                f.FrameContentSequence = Sequence([content])
                frames.append(f)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.NumberOfFrames = len(frames)
    ds.PixelData = _pixels(rng, len(frames))
    ds.save_as(out / f"S{number:03d}_enhanced.dcm", enforce_file_format=True)


def write_fieldmap_exports(out: Path) -> Path:
    """Write the three exports under ``out`` (one study each vendor) and return ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(17)
    siemens_study, philips_study = generate_uid(), generate_uid()
    gre = dict(ScanningSequence="GR", SequenceVariant=["SP"], RepetitionTime=488.0, FlipAngle=60.0,
               SequenceName="*fm2d2r")
    _classic_series(out, rng, siemens_study, 6, "gre_field_mapping", "SIEMENS", (4.92, 7.38),
                    ImageType=["ORIGINAL", "PRIMARY", "M", "ND"], **gre)
    _classic_series(out, rng, siemens_study, 7, "gre_field_mapping", "SIEMENS", (7.38,),
                    ImageType=["ORIGINAL", "PRIMARY", "P", "ND"], **gre)
    _classic_series(out, rng, siemens_study, 8, "func-bold_task-fa_run-1", "SIEMENS", (30.0,),
                    ImageType=["ORIGINAL", "PRIMARY", "M", "ND"], ScanningSequence="EP", SequenceVariant=["SK"],
                    RepetitionTime=2000.0, FlipAngle=90.0, SequenceName="epfid2d1_64")
    _philips_enhanced(out, rng, philips_study, 1401)
    return out
