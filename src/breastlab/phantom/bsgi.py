"""Synthetic breast-specific gamma imaging (BSGI / MBI) four-view cases as DICOM.

For tests, ``make demo`` and pipeline checks only: **a phantom never backs an accuracy
claim.** Each case is one patient with four planar Tc-99m sestamibi views (LCC, RCC,
LMLO, RMLO) written as NM Image Storage files, as dedicated breast gamma cameras export
them (Modality ``NM``, SOP class 1.2.840.10008.5.1.4.1.1.20, 16-bit counts).

Image model (per view, counts per pixel):

* a compressed-breast outline (half ellipse from the chest wall; on MLO a pectoral
  muscle wedge with its own uptake), soft edges and thinner tissue towards the skin;
* background parenchymal uptake (BPU, per patient: minimal … marked) over a smooth
  random fibroglandular pattern, plus scatter from the chest wall/heart;
* a lesion in one breast, seen on both of its views at the same depth from the nipple:
  malignant → mostly focal, irregular (lobulated satellites), higher lesion-to-background
  ratio; some non-mass segmental uptake. Benign → mostly diffuse/patchy (fibrocystic),
  sometimes a smooth focal uptake (fibroadenoma), sometimes nothing beyond BPU;
* a gamma-camera blur (collimator resolution), then Poisson counts with a per-patient
  count level (dose, time, habitus).

The class distributions overlap on purpose (lesion-to-background ratio, size, shape,
BPU, count level): simple features such as the maximum count separate them only weakly,
and a good model should land well below AUC 1.0.
"""
from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from breastlab.core import atomic
from breastlab.multiview.views import FOUR_VIEWS, VIEW_CODES, View

NM_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.20"
VENDOR_STYLES = ("dicom-tags", "series-description", "file-names", "mixed")
FOV_MM = 200.0  # field of view of a dedicated breast gamma camera (about 20 x 15 cm)
PHANTOM_NOTE = ("Synthetic BSGI phantom written by breastlab. For software tests only; "
                "never use it to support an accuracy claim.")


@dataclass
class CaseTruth:
    """Ground truth of one simulated case (written to ``truth.csv``)."""

    label: int
    pattern: str  # focal-irregular, nonmass-segmental, focal-smooth, patchy, none
    side: str  # L or R: breast holding the lesion
    lbr: float  # lesion-to-background ratio of the activity (before blur/noise)
    radius_mm: float
    bpu: float  # background parenchymal uptake (glandular/fat activity)
    count_level: float  # expected counts per fat pixel at 128x128
    cc_center: tuple[int, int]  # (row, col) of the lesion on the CC view
    mlo_center: tuple[int, int]


# --------------------------------------------------------------------------- simulation

def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="reflect")
    return field / (field.std() + 1e-9)


def _breast_geometry(matrix: int, projection: str, depth: float, half_height: float,
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Breast mask, normalised radius, pectoral mask, depth coordinate (chest wall at column 0)."""
    m = matrix
    rows, cols = np.mgrid[0:m, 0:m].astype(np.float64)
    x = cols / (depth * m)  # 0 at chest wall, 1 at the nipple
    if projection == "CC":
        y0, h = 0.5 * m, half_height * m
    else:  # MLO: taller, shifted down, pectoral muscle at the top by the chest wall
        y0, h = 0.56 * m, min(0.49, half_height * 1.12) * m
    y = (rows - y0) / h
    r = np.sqrt(x**2 + y**2)
    mask = (r <= 1.0).astype(np.float64)
    pect = np.zeros_like(mask)
    if projection == "MLO":
        pect = ((cols / m) < 0.28 * (1.0 - rows / (0.55 * m))).astype(np.float64)
        mask = np.maximum(mask, pect)
    return mask, np.clip(r, 0, 1.5), pect, x


def _blob(shape: tuple[int, int], center: tuple[float, float], sigma: tuple[float, float],
          angle: float) -> np.ndarray:
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    dy, dx = rows - center[0], cols - center[1]
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    return np.exp(-0.5 * ((u / sigma[1]) ** 2 + (v / sigma[0]) ** 2))


def _lesion_map(rng: np.random.Generator, shape: tuple[int, int], center: tuple[float, float],
                radius_px: float, pattern: str) -> np.ndarray:
    """Unit-peak lesion shape for one view."""
    if pattern == "focal-smooth":  # fibroadenoma: round/oval, well defined
        elong = rng.uniform(1.0, 1.4)
        out = _blob(shape, center, (radius_px, radius_px * elong), rng.uniform(0, np.pi))
        return out / out.max()
    if pattern == "focal-irregular":  # carcinoma: lobulated, spiculated satellites
        out = _blob(shape, center, (radius_px, radius_px * rng.uniform(1.0, 1.8)), rng.uniform(0, np.pi))
        for _ in range(rng.integers(2, 6)):
            ang = rng.uniform(0, 2 * np.pi)
            dist = radius_px * rng.uniform(0.7, 1.6)
            c = (center[0] + dist * np.sin(ang), center[1] + dist * np.cos(ang))
            s = radius_px * rng.uniform(0.25, 0.6)
            out += rng.uniform(0.35, 0.9) * _blob(shape, c, (s, s * rng.uniform(1.0, 2.5)), ang)
        return out / out.max()
    if pattern == "nonmass-segmental":  # clumped uptake along a duct towards the nipple
        out = np.zeros(shape)
        ang = rng.uniform(-0.6, 0.6)
        length = radius_px * rng.uniform(2.5, 4.5)
        for t in np.linspace(0, 1, rng.integers(4, 8)):
            c = (center[0] + t * length * np.sin(ang) + rng.normal(0, 1.0),
                 center[1] + t * length * np.cos(ang) + rng.normal(0, 1.0))
            s = radius_px * rng.uniform(0.3, 0.6)
            out += rng.uniform(0.5, 1.0) * _blob(shape, c, (s, s), 0.0)
        return out / out.max()
    raise ValueError(pattern)


def simulate_bsgi_case(rng: np.random.Generator, *, malignant: bool, matrix: int = 128,
                       ) -> tuple[dict[str, np.ndarray], CaseTruth]:
    """Four Poisson-count images (``{"LCC": ..., "RCC": ..., "LMLO": ..., "RMLO": ...}``,
    uint16) and the ground truth of one simulated case."""
    m = matrix
    px_mm = FOV_MM / m
    # patient level
    bpu = float(np.clip(rng.lognormal(np.log(1.3), 0.2), 1.0, 2.4))
    count_level = float(rng.lognormal(np.log(12.0), 0.35))
    depth = rng.uniform(0.55, 0.85)
    half_height = rng.uniform(0.33, 0.45)
    chest = rng.uniform(0.1, 0.7)
    side = "L" if rng.random() < 0.5 else "R"

    if malignant:
        pattern = "focal-irregular" if rng.random() < 0.72 else "nonmass-segmental"
        lbr = float(rng.lognormal(np.log(2.7), 0.4))
        radius_mm = float(rng.uniform(4.0, 14.0))
    else:
        u = rng.random()
        pattern = "focal-smooth" if u < 0.38 else ("patchy" if u < 0.82 else "none")
        lbr = float(rng.lognormal(np.log(1.8), 0.38)) if pattern != "none" else 1.0
        radius_mm = float(rng.uniform(3.0, 10.0)) if pattern == "focal-smooth" else float(rng.uniform(6, 14))
    lbr = max(lbr, 1.0)
    radius_px = radius_mm / px_mm
    lesion_depth = rng.uniform(0.25, 0.8)  # fraction of breast depth, same on CC and MLO
    cc_off, mlo_off = rng.uniform(-0.55, 0.55, size=2)
    mlo_visible = rng.random() > 0.1  # lesion usually seen on both views of its side
    bilateral_patchy = pattern == "patchy" and rng.random() < 0.6

    images: dict[str, np.ndarray] = {}
    centers: dict[str, tuple[int, int]] = {}
    gland_pattern = {s: _smooth_noise(rng, (m, m), rng.uniform(2.5, 5.0) * m / 128)
                     for s in "LR"}
    for name in FOUR_VIEWS:
        view = View.from_name(name)
        proj = view.projection
        mask, r, pect, x = _breast_geometry(m, proj, depth, half_height)
        soft = ndimage.gaussian_filter(mask, 1.2)
        thickness = np.clip(1.0 - r**2, 0, 1) ** 0.3
        # fibroglandular tissue: central, towards the chest wall, patterned
        gland = np.clip(0.55 + 0.45 * gland_pattern[view.laterality], 0, None)
        gland *= np.exp(-((x - 0.45) ** 2) / 0.18)
        activity = soft * thickness * (1.0 + (bpu - 1.0) * gland)
        cols = np.arange(m, dtype=np.float64)[None, :]
        activity += chest * np.exp(-cols / (0.04 * m)) * np.ones((m, 1))  # chest wall / heart scatter
        activity += pect * soft * rng.uniform(0.3, 0.8)  # pectoral muscle uptake on MLO
        activity += 0.03  # room background
        base = activity.copy()

        yc = 0.5 * m if proj == "CC" else 0.56 * m
        hh = half_height * m if proj == "CC" else min(0.49, half_height * 1.12) * m
        off = cc_off if proj == "CC" else mlo_off
        center = (yc + off * hh * np.sqrt(max(0.0, 1 - lesion_depth**2)),
                  lesion_depth * depth * m)
        centers[proj] = (int(round(center[0])), int(round(center[1])))
        if view.laterality == side and pattern in ("focal-irregular", "nonmass-segmental", "focal-smooth"):
            strength = (lbr - 1.0) * (1.0 if proj == "CC" or mlo_visible else 0.3)
            strength *= float(rng.lognormal(0.0, 0.1))
            shape = _lesion_map(rng, (m, m), center, radius_px, pattern)
            local_bg = float(np.median(base[shape > 0.5])) if (shape > 0.5).any() else 1.0
            activity += strength * local_bg * shape * soft
        elif pattern == "patchy" and (view.laterality == side or bilateral_patchy):
            patches = np.clip(_smooth_noise(rng, (m, m), radius_px * 0.8), 0, None) ** 1.5
            patches *= gland / (gland.max() + 1e-9)
            patches /= patches.max() + 1e-9
            amp = (lbr - 1.0) * (1.0 if view.laterality == side else rng.uniform(0.4, 0.9))
            activity += amp * base * patches * soft

        if view.laterality == "R":  # R breast displayed nipple-left, chest wall on the right
            activity = activity[:, ::-1]
        sigma_px = rng.uniform(1.8, 3.2) / px_mm  # collimator resolution (FWHM ~4-7 mm)
        expected = ndimage.gaussian_filter(activity, sigma_px) * count_level * (128.0 / m) ** 2
        counts = rng.poisson(np.clip(expected, 0, None))
        images[name] = np.clip(counts, 0, 65535).astype(np.uint16)
    mirror_cc = centers["CC"] if side == "L" else (centers["CC"][0], m - 1 - centers["CC"][1])
    mirror_mlo = centers["MLO"] if side == "L" else (centers["MLO"][0], m - 1 - centers["MLO"][1])
    truth = CaseTruth(int(malignant), pattern, side, round(lbr, 3), round(radius_mm, 2),
                      round(bpu, 3), round(count_level, 2), mirror_cc, mirror_mlo)
    return images, truth


# --------------------------------------------------------------------------- DICOM

_SERIES_NAMES = ("BSGI {lat}-{proj}", "MBI {lat}{proj}", "Tc99m {side} {proj}", "{side}_{proj} 10min",
                 "{lat} {proj_long}")
_FILE_NAMES = ("{lat}_{proj}", "{lat}{proj}", "{side_low}_{proj_low}", "{lat}-{proj}")
_PROJ_LONG = {"CC": "Craniocaudal", "MLO": "Mediolateral Oblique"}


def _uid(*parts: Any) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["breastlab-bsgi-phantom", *map(str, parts)])


def _code_item(value: str, scheme: str, meaning: str):  # noqa: ANN202
    from pydicom.dataset import Dataset

    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _dicom_bytes(pixels: np.ndarray, *, view: View, case_no: int, seed: int, patient_id: str,
                 series_number: int, style: str, series_description: str, matrix: int) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian

    sop_uid = _uid(seed, case_no, view.name, "sop")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = NM_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = _uid("breastlab-implementation")
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "STATIC", "EMISSION"]
    ds.SOPClassUID = NM_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid
    date = f"2024{1 + case_no % 12:02d}{1 + case_no % 28:02d}"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = date
    t = 90000 + 100 * series_number
    ds.StudyTime = "090000"
    ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = f"{t:06d}"
    ds.AccessionNumber = ""
    ds.Modality = "NM"
    ds.Manufacturer = "breastlab phantom"
    ds.ManufacturerModelName = "BSGI-PHANTOM"
    ds.InstitutionName = "synthetic"
    ds.StudyDescription = "Breast specific gamma imaging (synthetic)"
    ds.SeriesDescription = series_description
    ds.ProtocolName = "BSGI 4 VIEW"
    ds.ImageComments = PHANTOM_NOTE
    ds.PatientName = f"PHANTOM^BSGI{case_no:04d}"
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "F"
    ds.BodyPartExamined = "BREAST"
    ds.StudyInstanceUID = _uid(seed, case_no, "study")
    ds.SeriesInstanceUID = _uid(seed, case_no, view.name, "series")
    ds.StudyID = f"{case_no}"
    ds.SeriesNumber = series_number
    ds.InstanceNumber = 1
    ds.FrameOfReferenceUID = _uid(seed, case_no, view.name, "for")
    code_value, meaning = VIEW_CODES[view.projection]
    if style == "dicom-tags":
        ds.Laterality = view.laterality
        ds.ImageLaterality = view.laterality
        ds.ViewPosition = view.projection
        ds.ViewCodeSequence = Sequence([_code_item(code_value, "SCT", meaning)])
    # NM image module
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = matrix
    ds.NumberOfFrames = 1
    ds.FrameIncrementPointer = [0x00540010, 0x00540020]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    spacing = round(FOV_MM / matrix, 4)
    ds.PixelSpacing = [spacing, spacing]
    ds.ActualFrameDuration = 420000  # ms: 7 min per view
    ds.EnergyWindowVector = [1]
    ds.NumberOfEnergyWindows = 1
    ew_range = Dataset()
    ew_range.EnergyWindowLowerLimit = "126"
    ew_range.EnergyWindowUpperLimit = "154"
    ew = Dataset()
    ew.EnergyWindowRangeSequence = Sequence([ew_range])
    ew.EnergyWindowName = "Tc99m"
    ds.EnergyWindowInformationSequence = Sequence([ew])
    rp = Dataset()
    rp.Radiopharmaceutical = "Tc-99m sestamibi"
    rp.RadionuclideTotalDose = "740"  # MBq
    rp.RadionuclideCodeSequence = Sequence([_code_item("44588005", "SCT", "Technetium^99m^")])
    ds.RadiopharmaceuticalInformationSequence = Sequence([rp])
    ds.DetectorVector = [1]
    ds.NumberOfDetectors = 1
    det = Dataset()
    det.ImagePositionPatient = [0, 0, 0]
    det.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    if style == "dicom-tags":
        det.ViewCodeSequence = Sequence([_code_item(code_value, "SCT", meaning)])
    ds.DetectorInformationSequence = Sequence([det])
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()

    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _styles_for(n_cases: int, style: str, rng: np.random.Generator) -> list[str]:
    if style != "mixed":
        return [style] * n_cases
    plain = ["dicom-tags", "series-description", "file-names"]
    return [plain[i] for i in rng.choice(3, size=n_cases, p=[0.5, 0.25, 0.25])]


def write_bsgi_phantom(
    out_dir: str | Path,
    *,
    n_cases: int = 80,
    malignant_fraction: float = 0.4,
    matrix: int = 128,
    seed: int = 0,
    vendor_style: str = "dicom-tags",
    progress: bool = False,
) -> Path:
    """Write ``n_cases`` synthetic four-view BSGI cases under ``out_dir``; returns ``out_dir``.

    Layout: ``caseNNNN/`` (four NM DICOM files each), ``labels.csv`` (case_id, label;
    1 = malignant), ``manifest.csv`` (case_id, view, path, label; paths relative),
    ``truth.csv`` (lesion pattern, side, ratio, position) and ``phantom.json``.

    ``vendor_style``: ``dicom-tags`` (ImageLaterality, Laterality, ViewPosition and
    ViewCodeSequence set; file names say nothing), ``series-description`` (tags empty, the
    view only in SeriesDescription), ``file-names`` (tags empty, view only in the file name)
    or ``mixed`` (about half tagged, a quarter each of the two name-only styles).
    """
    if vendor_style not in VENDOR_STYLES:
        raise ValueError(f"vendor_style must be one of {', '.join(VENDOR_STYLES)}")
    if n_cases < 1:
        raise ValueError("n_cases must be at least 1")
    if not 0.0 <= malignant_fraction <= 1.0:
        raise ValueError("malignant_fraction must be in [0, 1]")
    if matrix < 32:
        raise ValueError("matrix must be at least 32")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 7919])
    n_mal = int(round(n_cases * malignant_fraction))
    labels = np.array([1] * n_mal + [0] * (n_cases - n_mal))
    rng.shuffle(labels)
    styles = _styles_for(n_cases, vendor_style, rng)

    label_rows, manifest_rows, truth_rows = [], [], []
    iterator: Iterable[int] = range(n_cases)
    prog = None
    if progress:
        from breastlab.core.progress import make_progress

        prog = make_progress(transient=True)
        prog.start()
        task = prog.add_task("BSGI phantom", total=n_cases)
    try:
        for i in iterator:
            case_no = i + 1
            case_id = f"case{case_no:04d}"
            patient_id = f"BSGI-PH{seed % 1000:03d}-{case_no:04d}"
            case_rng = np.random.default_rng([seed, case_no])
            images, truth = simulate_bsgi_case(case_rng, malignant=bool(labels[i]), matrix=matrix)
            style = styles[i]
            order = case_rng.permutation(len(FOUR_VIEWS))
            for k, j in enumerate(order):
                name = FOUR_VIEWS[j]
                view = View.from_name(name)
                fmt = {"lat": view.laterality, "proj": view.projection,
                       "side": "LEFT" if view.laterality == "L" else "RIGHT",
                       "side_low": "left" if view.laterality == "L" else "right",
                       "proj_low": view.projection.lower(),
                       "proj_long": _PROJ_LONG[view.projection]}
                if style == "series-description":
                    description = _SERIES_NAMES[case_no % len(_SERIES_NAMES)].format(**fmt)
                else:
                    description = "BSGI"
                if style == "file-names":
                    fname = _FILE_NAMES[case_no % len(_FILE_NAMES)].format(**fmt) + ".dcm"
                else:
                    fname = f"IM{k + 1:04d}.dcm"
                data = _dicom_bytes(images[name], view=view, case_no=case_no, seed=seed,
                                    patient_id=patient_id, series_number=k + 1, style=style,
                                    series_description=description, matrix=matrix)
                atomic.write_bytes(out / case_id / fname, data)
                manifest_rows.append({"case_id": case_id, "view": name,
                                      "path": f"{case_id}/{fname}", "label": int(labels[i])})
            label_rows.append({"case_id": case_id, "label": int(labels[i])})
            truth_rows.append({"case_id": case_id, "label": truth.label, "pattern": truth.pattern,
                               "side": truth.side, "lbr": truth.lbr, "radius_mm": truth.radius_mm,
                               "bpu": truth.bpu, "count_level": truth.count_level,
                               "cc_row": truth.cc_center[0], "cc_col": truth.cc_center[1],
                               "mlo_row": truth.mlo_center[0], "mlo_col": truth.mlo_center[1],
                               "tag_style": style})
            if prog is not None:
                prog.advance(task)
    finally:
        if prog is not None:
            prog.stop()

    atomic.write_csv(out / "labels.csv", label_rows, ["case_id", "label"])
    atomic.write_csv(out / "manifest.csv", manifest_rows, ["case_id", "view", "path", "label"])
    atomic.write_csv(out / "truth.csv", truth_rows, list(truth_rows[0]))
    atomic.write_json(out / "phantom.json", {
        "kind": "bsgi-phantom", "note": PHANTOM_NOTE, "n_cases": n_cases,
        "n_malignant": int(labels.sum()), "malignant_fraction": malignant_fraction,
        "matrix": matrix, "seed": seed, "vendor_style": vendor_style,
        "sop_class": "NM Image Storage " + NM_IMAGE_STORAGE, "views": list(FOUR_VIEWS),
        "label_convention": "1 = malignant, 0 = benign",
    })
    return out
