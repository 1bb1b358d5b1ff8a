"""Conventions of public mammography sets, recognised from what the files say.

No per-data-set flag is needed: each rule fires only on the layout it was written for.

* **CBIS-DDSM** (TCIA): the view and the woman are written into PatientID
  (``Mass-Test_P_00173_LEFT_CC``; cropped and ROI-mask series add the abnormality number,
  ``..._LEFT_CC_1``), every image has its own StudyInstanceUID, ViewPosition and
  ImageLaterality are empty, and SeriesDescription says what the series holds
  (``full mammogram images``, ``cropped images``, ``ROI mask images``). The woman
  (``P_00173``) is the patient and the case (all her full mammograms, from the Mass and
  Calc, Training and Test collections); only full mammograms are kept.
* **CMMD** (TCIA): PatientIDs ``D1-0001`` / ``D2-0001``, one study per woman, laterality and
  view in the tags. Some images are byte-identical under different IDs: every assembly
  drops pixel duplicates (:func:`pixel_key`), so this needs no rule of its own.
* **VinDr-Mammo** (PhysioNet): ``breast-level_annotations.csv`` (``study_id, series_id,
  image_id, laterality, view_position, breast_birads, ..., split``) with images at
  ``images/{study_id}/{image_id}.dicom``. The CSV is read as a manifest; the study is the
  woman (the set publishes one exam per woman and no other patient id).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

# Mass-Training_P_00001_LEFT_CC, Calc-Test_P_00038_RIGHT_MLO_2
_CBIS_RE = re.compile(
    r"^(?P<kind>Mass|Calc)-(?P<part>Training|Test)_(?P<woman>P_\d+)_(?P<side>LEFT|RIGHT)_"
    r"(?P<view>CC|MLO)(?:_(?P<abnormality>\d+))?$",
    re.IGNORECASE,
)
CBIS_FULL = "full mammogram images"


@dataclass(frozen=True)
class CbisId:
    """What a CBIS-DDSM PatientID says."""

    kind: str  # Mass or Calc
    part: str  # Training or Test (the set's own split)
    woman: str  # P_00001
    laterality: str  # L or R
    projection: str  # CC or MLO
    abnormality: int | None  # set on cropped / ROI-mask series


def parse_cbis_id(patient_id: str | None) -> CbisId | None:
    """``Mass-Test_P_00173_LEFT_CC`` → ``CbisId``; ``None`` for any other PatientID."""
    m = _CBIS_RE.match((patient_id or "").strip())
    if not m:
        return None
    abn = m.group("abnormality")
    return CbisId(m.group("kind").title(), m.group("part").title(), m.group("woman").upper(),
                  m.group("side")[0].upper(), m.group("view").upper(),
                  int(abn) if abn else None)


def cbis_exclusion(cbis: CbisId, series_description: str | None) -> str | None:
    """Why a CBIS-DDSM image is not a full mammogram (``None`` when it is one)."""
    desc = (series_description or "").strip().lower()
    if desc and desc != CBIS_FULL:
        return f"CBIS-DDSM {desc!r} series (lesion crop or mask, not a full mammogram)"
    if cbis.abnormality is not None:
        return ("CBIS-DDSM abnormality series (PatientID ends in _"
                f"{cbis.abnormality}: lesion crop or ROI mask, not a full mammogram)")
    return None


# --------------------------------------------------------------------------- VinDr
VINDR_COLUMNS = ("study_id", "image_id")


def is_vindr_manifest(fieldnames: list[str]) -> bool:
    """True for VinDr-Mammo's ``breast-level_annotations.csv`` (no path column)."""
    names = {f.strip().lower() for f in fieldnames if f}
    return set(VINDR_COLUMNS) <= names and "laterality" in names and "view_position" in names


def vindr_candidates(base: Path, study_id: str, image_id: str) -> list[Path]:
    """Where VinDr-Mammo keeps one image (the layout of the PhysioNet download first)."""
    out = []
    for folder in (base / "images" / study_id, base / study_id, base / "images", base):
        for suffix in (".dicom", ".dcm", ".png"):
            out.append(folder / f"{image_id}{suffix}")
    return out


_BIRADS_RE = re.compile(r"^bi-?rads\s*(?P<n>[0-6])\s*[a-c]?$", re.IGNORECASE)

#: VinDr-Mammo BI-RADS → label: 4 and 5 (suspicious, highly suggestive: biopsy advised)
#: count as malignant (1), 1–3 as not (0). Change with ``--label-map 'bi-rads 3=1'``.
BIRADS_POSITIVE_FROM = 4


def parse_birads(text: str) -> int | None:
    """``"BI-RADS 4"`` → 1, ``"BI-RADS 2"`` → 0, anything else ``None``."""
    m = _BIRADS_RE.match(str(text).strip().replace("_", " "))
    if not m:
        return None
    n = int(m.group("n"))
    if n == 0:  # incomplete assessment
        return None
    return int(n >= BIRADS_POSITIVE_FROM)


# --------------------------------------------------------------------------- pixel hash
def pixel_key(path: str | Path) -> str | None:
    """SHA-256 of an image's pixel content, to find byte-identical images under other ids.

    DICOM: the raw PixelData value (so two files that differ only in their headers, e.g.
    another PatientID, match). Other images: the decoded pixels. ``None`` when the file
    cannot be read or the image is constant (blank images say nothing about identity).
    """
    p = Path(path)
    try:
        if p.suffix.lower() == ".npy":
            import numpy as np

            arr = np.load(p, allow_pickle=False)
            if arr.size == 0 or arr.min() == arr.max():
                return None
            data = repr(arr.shape).encode() + arr.tobytes()
        elif p.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}:
            import numpy as np
            from PIL import Image

            with Image.open(p) as im:
                arr = np.asarray(im)
            if arr.size == 0 or arr.min() == arr.max():
                return None
            data = repr(arr.shape).encode() + arr.tobytes()
        else:
            import pydicom

            ds = pydicom.dcmread(p, force=False)
            if "PixelData" not in ds:
                return None
            data = ds["PixelData"].value
            if not ds.file_meta.TransferSyntaxUID.is_compressed and _constant(data):
                return None
    except Exception:  # noqa: BLE001 - unreadable files are reported by the scanner
        return None
    return hashlib.sha256(data).hexdigest()


def _constant(data: bytes) -> bool:
    return len(data) == 0 or data.count(data[:1]) == len(data)


def manufacturer_of(path: str | Path | None) -> str:
    """The DICOM Manufacturer (0008,0070) of one file, header only; ``""`` for other files."""
    if not path:
        return ""
    try:
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Manufacturer"])
        return str(ds.get("Manufacturer", "") or "").strip()
    except Exception:  # noqa: BLE001 - not DICOM (PNG, ...) or unreadable: no manufacturer
        return ""
