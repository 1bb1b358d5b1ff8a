"""The MRI phantom's exam plan: slice geometry, the localizer, and each vendor's series
(numbers, descriptions, private tags, DCE layout) with their ground truth
(``SeriesTruth``, ``PhantomExam``), and ``render_exam`` (volumes by label, no DICOM). Written as DICOM by ``phantom.mri``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from breastlab.core.labels import Label
from breastlab.phantom.anatomy import build_breast_model
from breastlab.phantom.mri_render import (
    B_HIGH,
    B_LOW,
    DCE_PHASE_DURATION,
    FLIP_T1,
    FOV_MM,
    N_POST,
    SLAB_MM,
    TE_DWI,
    TE_T1,
    TR_DWI,
    TR_T1,
    TR_T2,
    dce_acquisition_offsets,
    dce_post_injection_seconds,
    render_volumes,
    to_uint16,
)


# ----------------------------------------------------------------------------- geometry

@dataclass(frozen=True)
class _Pos:
    ipp: tuple[float, float, float]
    iop: tuple[float, ...]
    spacing: float
    thickness: float
    location: float
    between: float | None = None  # SpacingBetweenSlices when it differs from the thickness


class Geometry:
    """Axial slab geometry in LPS (prone, feet first): row 0 anterior, column 0 right."""

    AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)

    def __init__(self, n_slices: int, matrix: int) -> None:
        self.n, self.m = n_slices, matrix
        self.ps = FOV_MM / matrix
        self.dz = float(np.clip(SLAB_MM / n_slices, 1.0, 8.0))
        self.x0 = -FOV_MM / 2 + self.ps / 2
        self.y0 = -FOV_MM / 2 - 30.0 + self.ps / 2
        self.z0 = 20.0 - (n_slices - 1) * self.dz / 2

    def z(self, k: float) -> float:
        return self.z0 + k * self.dz

    def axial(self, k: float, thickness: float | None = None, between: float | None = None) -> _Pos:
        z = round(self.z(k), 4)
        return _Pos((round(self.x0, 4), round(self.y0, 4), z), self.AXIAL, self.ps,
                    thickness or self.dz, z, between)


def localizer(vol: np.ndarray, g: Geometry, rng: np.random.Generator) -> tuple[np.ndarray, list[_Pos]]:
    """3-plane localizer: 3 axial, 3 coronal, 3 sagittal low-resolution images."""
    lm = max(16, g.m // 2)
    ps = FOV_MM / lm
    zoom_xy = lm / g.m
    images, pos = [], []
    nz = g.n
    # axial
    for k in (nz // 4, nz // 2, (3 * nz) // 4):
        k = min(max(k, 0), nz - 1)
        images.append(ndimage.zoom(vol[k], zoom_xy, order=1))
        z = round(g.z(k), 4)
        pos.append(_Pos((-FOV_MM / 2 + ps / 2, g.y0 - g.ps / 2 + ps / 2, z), g.AXIAL, ps, 10.0, z))
    # the slab covers only part of the S-I field of view: embed it, superior at the top
    zpix = max(1, int(round(nz * g.dz / ps)))
    top = (lm - zpix) // 2
    z_top = g.z(nz - 1) + g.dz / 2 + top * ps - ps / 2  # centre of row 0

    def embed(plane: np.ndarray) -> np.ndarray:  # plane: (nz, m) inferior->superior
        img = np.zeros((lm, lm), np.float32)
        small = ndimage.zoom(plane[::-1], (zpix / plane.shape[0], lm / plane.shape[1]), order=1)
        img[top:top + zpix] = small[: lm - top]
        return img

    for frac in (0.25, 0.4, 0.55):  # coronal, through breasts and chest wall
        yi = int(frac * (g.m - 1))
        images.append(embed(vol[:, yi, :]))
        y = round(g.y0 + yi * g.ps, 4)
        pos.append(_Pos((round(-FOV_MM / 2 + ps / 2, 4), y, round(z_top, 4)),
                        (1.0, 0.0, 0.0, 0.0, 0.0, -1.0), ps, 10.0, y))
    for frac in (0.27, 0.5, 0.73):  # sagittal: right breast, midline, left breast
        xi = int(frac * (g.m - 1))
        images.append(embed(vol[:, :, xi]))
        x = round(g.x0 + xi * g.ps, 4)
        pos.append(_Pos((x, round(g.y0 - g.ps / 2 + ps / 2, 4), round(z_top, 4)),
                        (0.0, 1.0, 0.0, 0.0, 0.0, -1.0), ps, 10.0, x))
    stack = np.stack(images).astype(np.float32)
    sig = 0.02 * float(np.percentile(stack, 99))
    noisy = np.sqrt((stack + rng.normal(0, sig, stack.shape)) ** 2 + rng.normal(0, sig, stack.shape) ** 2)
    return to_uint16(noisy), pos


# ----------------------------------------------------------------------------- exam plan

@dataclass
class ImageSet:
    label: str
    pixels: np.ndarray  # (k, rows, cols) uint16
    positions: list[_Pos]
    b_value: float | None = None
    dce_phase: int | None = None
    dce_seconds: float | None = None
    post_injection: float | None = None
    acq_offset: float = 0.0  # s after the series start
    public: dict[str, Any] = field(default_factory=dict)
    private: list[tuple[int, str, int, str, Any]] = field(default_factory=list)
    detail: str = ""


@dataclass
class Series:
    number: int
    description: str
    start: float  # s after the study start
    public: dict[str, Any]
    private: list[tuple[int, str, int, str, Any]]
    sets: list[ImageSet]
    slice_major: bool = False  # instance numbers interleave the sets per location (GE DWI)
    uid: str = ""


@dataclass(frozen=True)
class SeriesTruth:
    """One row of ``truth.csv``: an image set and the label the sorter should give it."""

    vendor: str
    series_number: int
    series_uid: str
    series_description: str
    label: str
    b_value: float | None
    dce_phase: int | None
    dce_seconds: float | None
    post_injection_seconds: float | None
    n_images: int
    folder: str
    detail: str = ""


@dataclass
class PhantomExam:
    """What :func:`write_mri_phantom` wrote."""

    out_dir: Path
    files: list[Path]
    truth: list[SeriesTruth]
    truth_csv: Path
    instances_csv: Path
    vendors: tuple[str, ...]
    strip_headers: bool = False

    def rows(self, vendor: str | None = None, label: str | None = None) -> list[SeriesTruth]:
        return [t for t in self.truth
                if (vendor is None or t.vendor == vendor.upper()) and (label is None or t.label == label)]


def _axial_set(label: str, pixels: np.ndarray, g: Geometry, **kw: Any) -> ImageSet:
    return ImageSet(label, pixels, [g.axial(k) for k in range(pixels.shape[0])], **kw)


def plan_exam(vendor: str, v: dict[str, Any], g: Geometry, loc: tuple[np.ndarray, list[_Pos]],
          dce_layout: str) -> list[Series]:
    builders = {"SIEMENS": _plan_siemens, "GE": _plan_ge, "PHILIPS": _plan_philips}
    return builders[vendor](v, g, loc, dce_layout)


def _dce_sets(v: dict[str, Any], g: Geometry, public_for_phase) -> list[ImageSet]:
    offsets, post = dce_acquisition_offsets(), dce_post_injection_seconds()
    return [
        _axial_set(Label.dce_phase(p), v["DCE"][p], g, dce_phase=p, dce_seconds=offsets[p],
                   post_injection=round(post[p], 1), acq_offset=offsets[p], public=public_for_phase(p))
        for p in range(N_POST + 1)
    ]


def _mip_set(v: dict[str, Any], g: Geometry, **kw: Any) -> ImageSet:
    thick = v["MIP_slab"] * g.dz
    centres = v["MIP_centres"]
    step = (centres[1] - centres[0]) * g.dz if len(centres) > 1 else thick
    pos = [g.axial(c, thickness=thick, between=step) for c in centres]
    return ImageSet(Label.MIP, v[Label.MIP], pos, **kw)


def _loc_set(loc: tuple[np.ndarray, list[_Pos]], **kw: Any) -> ImageSet:
    return ImageSet(Label.LOCALIZER, loc[0], loc[1], **kw)


SIEMENS_HDR = "SIEMENS MR HEADER"


def _plan_siemens(v, g, loc, dce_layout) -> list[Series]:
    orig = ["ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D"]
    s: list[Series] = []
    s.append(Series(1, "localizer", 30, dict(ImageType=orig, SequenceName="*fl2d1", ScanningSequence="GR",
             SequenceVariant=["SP", "OSP"], RepetitionTime=8.6, EchoTime=4.0, FlipAngle=20, MRAcquisitionType="2D"),
             [], [_loc_set(loc)]))
    tse = dict(ImageType=orig, SequenceName="*tse2d1_15", ScanningSequence="SE", SequenceVariant=["SK", "SP", "OSP"],
               RepetitionTime=TR_T2, EchoTime=91.0, EchoTrainLength=15, FlipAngle=150, MRAcquisitionType="2D")
    s.append(Series(2, "t2_tse_tra", 120, {**tse, "ScanOptions": "PFP"}, [], [_axial_set(Label.T2WI, v[Label.T2WI], g)]))
    s.append(Series(3, "t2_tse_spair_tra", 400, {**tse, "ScanOptions": ["PFP", "FS"]}, [],
             [_axial_set(Label.T2WI_FS, v[Label.T2WI_FS], g)]))
    dwi_common = dict(ScanningSequence="EP", SequenceVariant=["SK", "SP"], ScanOptions=["PFP", "FS"],
                      RepetitionTime=TR_DWI, EchoTime=TE_DWI, FlipAngle=90, MRAcquisitionType="2D",
                      ImageType=["ORIGINAL", "PRIMARY", "DIFFUSION", "TRACEW", "ND", "NORM"])
    sets = []
    for label, b, key in ((Label.DWI_LOW, B_LOW, "DWI_b50"), (Label.DWI_HIGH, B_HIGH, "DWI_b800")):
        sets.append(_axial_set(label, v[key], g, b_value=b, public={"SequenceName": f"*ep_b{int(b)}t"},
                               private=[(0x0019, SIEMENS_HDR, 0x0C, "IS", int(b))]))
    s.append(Series(4, "ep2d_diff_tra", 700, dwi_common, [], sets))
    s.append(Series(5, "ep2d_diff_tra_ADC", 705, {**dwi_common, "SequenceName": "*ep_b50_800",
             "ImageType": ["DERIVED", "PRIMARY", "DIFFUSION", "ADC", "ND", "NORM"]}, [],
             [_axial_set(Label.ADC, v[Label.ADC], g)]))
    t1 = dict(ImageType=["ORIGINAL", "PRIMARY", "M", "NORM", "ND"], SequenceName="*fl3d1", ScanningSequence="GR",
              SequenceVariant=["SP", "OSP"], RepetitionTime=8.0, EchoTime=TE_T1, FlipAngle=20, MRAcquisitionType="3D")
    s.append(Series(6, "t1_fl3d_tra_nonFS", 900, t1, [], [_axial_set(Label.T1, v[Label.T1], g)]))
    vibe = {**t1, "ScanOptions": "FS", "RepetitionTime": TR_T1, "FlipAngle": FLIP_T1}
    dce_start = 1100.0
    sets = _dce_sets(v, g, lambda p: {"AcquisitionNumber": p + 1})
    number = 7
    if dce_layout == "separate":
        for st in sets:
            off = st.acq_offset
            st.acq_offset = 0.0
            s.append(Series(number, "fl3d_vibe_dyn", dce_start + off, vibe, [], [st]))
            number += 1
    else:
        s.append(Series(number, "fl3d_vibe_dyn", dce_start, {**vibe, "NumberOfTemporalPositions": N_POST + 1},
                         [], [_with(st, TemporalPositionIdentifier=st.dce_phase + 1) for st in sets]))
        number += 1
    last = dce_start + dce_acquisition_offsets()[-1] + DCE_PHASE_DURATION
    s.append(Series(number, "fl3d_vibe_dyn_SUB", last + 20, {**vibe, "ImageType":
             ["DERIVED", "PRIMARY", "SUBTRACTION", "ND"]}, [], [_axial_set(Label.SUB, v[Label.SUB], g)]))
    s.append(Series(number + 1, "fl3d_vibe_dyn_SUB_MIP_TRA", last + 40, {**vibe, "ImageType":
             ["DERIVED", "PRIMARY", "MIP", "SUBTRACTION", "ND"]}, [], [_mip_set(v, g)]))
    return s


def _with(st: ImageSet, **public: Any) -> ImageSet:
    st.public = {**st.public, **public}
    return st


GE_ACQU, GE_PARM = "GEMS_ACQU_01", "GEMS_PARM_01"


def _ge_b(b: float) -> tuple[int, str, int, str, Any]:
    return (0x0043, GE_PARM, 0x39, "IS", [1000000000 + int(b), 8, 0, 0] if b else [0, 0, 0, 0])


def _plan_ge(v, g, loc, dce_layout) -> list[Series]:
    orig = ["ORIGINAL", "PRIMARY", "OTHER"]

    def psn(name: str) -> list[tuple[int, str, int, str, Any]]:
        return [(0x0019, GE_ACQU, 0x9C, "LO", name), _ge_b(0)]

    s: list[Series] = []
    s.append(Series(1, "3-Plane Loc", 20, dict(ImageType=orig, ScanningSequence="GR", SequenceVariant="SS",
             ScanOptions=["FAST_GEMS", "SEQ_GEMS"], RepetitionTime=4.9, EchoTime=1.6, FlipAngle=30,
             MRAcquisitionType="2D"), psn("fgre"), [_loc_set(loc)]))
    fse = dict(ImageType=orig, ScanningSequence="SE", SequenceVariant="SK", RepetitionTime=TR_T2, EchoTime=85.0,
               EchoTrainLength=18, FlipAngle=111, MRAcquisitionType="2D")
    s.append(Series(2, "Ax T2 FSE", 100, {**fse, "ScanOptions": ["FAST_GEMS", "EDR_GEMS", "TRF_GEMS"]},
                     psn("fse-xl"), [_axial_set(Label.T2WI, v[Label.T2WI], g)]))
    s.append(Series(3, "Ax T2 FSE FS", 380, {**fse, "ScanOptions": ["SAT_GEMS", "FAST_GEMS", "EDR_GEMS", "FS"]},
                     psn("fse-xl"), [_axial_set(Label.T2WI_FS, v[Label.T2WI_FS], g)]))
    dwi = dict(ImageType=orig, ScanningSequence=["EP", "SE"], SequenceVariant="NONE",
               ScanOptions=["SAT_GEMS", "EDR_GEMS", "EPI_GEMS", "ACC_GEMS", "FS"], RepetitionTime=TR_DWI,
               EchoTime=TE_DWI, FlipAngle=90, MRAcquisitionType="2D")
    sets = []
    for label, b, key in ((Label.DWI_LOW, B_LOW, "DWI_b50"), (Label.DWI_HIGH, B_HIGH, "DWI_b800")):
        sets.append(_axial_set(label, v[key], g, b_value=b, public={"DiffusionBValue": b},
                               private=[_ge_b(b)]))
    s.append(Series(4, "Ax DWI b50-800", 650, dwi, [(0x0019, GE_ACQU, 0x9C, "LO", "epi2")], sets, slice_major=True))
    s.append(Series(400, "Apparent Diffusion Coefficient (mm2/s)", 660, {**dwi, "ImageType":
             ["DERIVED", "PRIMARY", "ADC"]}, psn("epi2"), [_axial_set(Label.ADC, v[Label.ADC], g)]))
    t1 = dict(ImageType=orig, ScanningSequence="GR", SequenceVariant=["SS", "SP"], RepetitionTime=8.0,
              EchoTime=TE_T1, FlipAngle=20, MRAcquisitionType="3D", ScanOptions=["FAST_GEMS", "EDR_GEMS"])
    s.append(Series(5, "Ax 3D T1 NON FS", 880, t1, psn("efgre3d"), [_axial_set(Label.T1, v[Label.T1], g)]))
    vib = {**t1, "ScanOptions": ["FAST_GEMS", "EDR_GEMS", "ZIP2_GEMS", "FS"], "RepetitionTime": TR_T1,
           "FlipAngle": FLIP_T1, "ContrastBolusAgent": "NONE"}  # GE writes NONE even after contrast
    dce_start = 1080.0
    sets = _dce_sets(v, g, lambda p: {})
    if dce_layout == "single":
        for st in sets:
            _with(st, TemporalPositionIdentifier=st.dce_phase + 1, TriggerTime=st.acq_offset * 1000.0,
                  AcquisitionNumber=1)
        s.append(Series(6, "Ax VIBRANT MPh", dce_start, {**vib, "NumberOfTemporalPositions": N_POST + 1},
                         psn("vibrant"), sets))
        number = 7
    else:
        number = 6
        for st in sets:
            off, st.acq_offset = st.acq_offset, 0.0
            s.append(Series(number, "Ax VIBRANT" + (" PRE" if st.dce_phase == 0 else f" POST {st.dce_phase}"),
                             dce_start + off, vib, psn("vibrant"), [st]))
            number += 1
    last = dce_start + dce_acquisition_offsets()[-1] + DCE_PHASE_DURATION
    derived = {**vib, "ImageType": ["DERIVED", "SECONDARY", "OTHER"]}
    s.append(Series(number * 100 + 1, "Ax VIBRANT MPh SUB 2-1", last + 60, derived, psn("vibrant"),
                     [_axial_set(Label.SUB, v[Label.SUB], g)]))
    s.append(Series(number * 100 + 2, "MIP Ax VIBRANT SUB", last + 90,
                     {**derived, "ImageType": ["DERIVED", "SECONDARY", "REFORMATTED", "MIP"]},
                     psn("vibrant"), [_mip_set(v, g)]))
    return s


PH_IMG = "Philips Imaging DD 001"


def _ph(elem: int, vr: str, value: Any) -> tuple[int, str, int, str, Any]:
    return (0x2001, PH_IMG, elem, vr, value)


def _plan_philips(v, g, loc, dce_layout) -> list[Series]:
    se = ["ORIGINAL", "PRIMARY", "M_SE", "M", "SE"]
    ffe = ["ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE"]
    tra = _ph(0x0B, "CS", "TRANSVERSAL")

    def tech(name: str, spir: bool) -> list[tuple[int, str, int, str, Any]]:
        return [_ph(0x20, "LO", name), _ph(0x21, "CS", "Y" if spir else "N"), tra]

    s: list[Series] = []
    s.append(Series(101, "Survey", 15, dict(ImageType=ffe, ScanningSequence="GR", SequenceVariant="SP",
             ScanOptions="OTHER", RepetitionTime=10.0, EchoTime=4.6, FlipAngle=15, MRAcquisitionType="2D"),
             tech("FFE", False), [_loc_set(loc)]))
    tse = dict(ImageType=se, ScanningSequence="SE", SequenceVariant="SK", RepetitionTime=TR_T2, EchoTime=100.0,
               EchoTrainLength=20, FlipAngle=90, MRAcquisitionType="2D")
    s.append(Series(201, "T2W_TSE", 110, {**tse, "ScanOptions": "OTHER"}, tech("TSE", False),
                     [_axial_set(Label.T2WI, v[Label.T2WI], g)]))
    s.append(Series(301, "T2W_SPAIR", 390, {**tse, "ScanOptions": "FS"}, tech("TSE", True),
                     [_axial_set(Label.T2WI_FS, v[Label.T2WI_FS], g)]))
    dwi = dict(ImageType=se, ScanningSequence="SE", SequenceVariant="SK", ScanOptions="FS", RepetitionTime=TR_DWI,
               EchoTime=TE_DWI, FlipAngle=90, MRAcquisitionType="2D")
    rng = np.random.default_rng(int(v["DWI_b800"][0, 0, :8].sum()))
    sets = [_axial_set(Label.DWI_LOW, v["DWI_b50"], g, b_value=B_LOW, public={"DiffusionBValue": B_LOW},
                       private=[_ph(0x03, "FL", B_LOW), _ph(0x04, "CS", "I")], detail="isotropic (2001,1004)=I")]
    hi = v["DWI_b800"].astype(np.float32)
    for d in ("M", "P", "S"):  # directional volumes: isotropic tissue, independent noise
        noisy = to_uint16(hi * rng.normal(1.0, 0.04, hi.shape).astype(np.float32))
        sets.append(_axial_set(Label.DWI_HIGH, noisy, g, b_value=B_HIGH, public={"DiffusionBValue": B_HIGH},
                               private=[_ph(0x03, "FL", B_HIGH), _ph(0x04, "CS", d)], detail=f"direction {d}"))
    sets.append(_axial_set(Label.DWI_HIGH, v["DWI_b800"], g, b_value=B_HIGH, public={"DiffusionBValue": B_HIGH},
                           private=[_ph(0x03, "FL", B_HIGH), _ph(0x04, "CS", "I")],
                           detail="isotropic trace (2001,1004)=I"))
    s.append(Series(401, "DWI_b50_800", 660, dwi, tech("DwiSE", True), sets))
    s.append(Series(402, "dADC", 670, {**dwi, "ImageType": ["DERIVED", "PRIMARY", "ADC_SE", "ADC", "SE"]},
                     tech("DwiSE", True), [_axial_set(Label.ADC, v[Label.ADC], g)]))
    t1 = dict(ImageType=ffe, ScanningSequence="GR", SequenceVariant="SP", ScanOptions="OTHER", RepetitionTime=8.0,
              EchoTime=TE_T1, FlipAngle=20, MRAcquisitionType="3D")
    s.append(Series(501, "T1W_FFE", 870, t1, tech("T1FFE", False), [_axial_set(Label.T1, v[Label.T1], g)]))
    thrive = {**t1, "ScanOptions": "FS", "RepetitionTime": TR_T1, "FlipAngle": FLIP_T1}
    dce_start = 1060.0
    sets = _dce_sets(v, g, lambda p: {})
    if dce_layout == "single":
        for st in sets:
            _with(st, TemporalPositionIdentifier=st.dce_phase + 1, TriggerTime=st.acq_offset * 1000.0,
                  AcquisitionNumber=6)
        s.append(Series(601, "e-THRIVE dyn", dce_start, {**thrive, "NumberOfTemporalPositions": N_POST + 1},
                         tech("T1TFE", True) + [_ph(0x81, "IS", N_POST + 1), _ph(0x12, "CS", "Y")], sets))
        number = 7
    else:
        number = 6
        for st in sets:
            off, st.acq_offset = st.acq_offset, 0.0
            s.append(Series(number * 100 + 1, "e-THRIVE dyn", dce_start + off, thrive,
                             tech("T1TFE", True), [st]))
            number += 1
    last = dce_start + dce_acquisition_offsets()[-1] + DCE_PHASE_DURATION
    s.append(Series(number * 100 + 1, "SUB_e-THRIVE dyn", last + 30, {**thrive, "ImageType":
             ["DERIVED", "PRIMARY", "SUBTRACTION", "M", "FFE"]}, tech("T1TFE", True),
             [_axial_set(Label.SUB, v[Label.SUB], g)]))
    s.append(Series(number * 100 + 2, "MIP_SUB_e-THRIVE", last + 50, {**thrive, "ImageType":
             ["DERIVED", "SECONDARY", "MIP", "M", "FFE"]}, tech("T1TFE", True), [_mip_set(v, g)]))
    return s


def render_exam(
    vendor: str = "SIEMENS",
    seed: int = 0,
    *,
    n_slices: int = 16,
    matrix: int = 128,
    lesion_kind: str = "malignant",
) -> dict[str, np.ndarray]:
    """In-memory volumes keyed by sorter label (no DICOM), for image classifiers.

    Every value is a uint16 array ``(n, matrix, matrix)``: ``T2WI``, ``T2WI_FS``,
    ``DWI_low`` (b=50), ``DWI_high`` (b=800), ``ADC``, ``T1``, ``DCE_pre``,
    ``DCE_early`` (post 1), ``DCE_delayed`` (post 4), ``SUB``, ``MIP`` (fewer
    images: thin slabs) and ``LOCALIZER`` (9 images: 3 axial, 3 coronal, 3
    sagittal). The same arrays are what :func:`write_mri_phantom` stores.
    """
    model = build_breast_model(n_slices, matrix, seed=seed, lesion_kind=lesion_kind)
    v = render_volumes(model, vendor, seed)
    geom = Geometry(n_slices, matrix)
    loc_pixels, _ = localizer(v["LOCALIZER_VOLUME"], geom, np.random.default_rng(seed))
    return {
        Label.T2WI: v[Label.T2WI], Label.T2WI_FS: v[Label.T2WI_FS], Label.DWI_LOW: v["DWI_b50"],
        Label.DWI_HIGH: v["DWI_b800"], Label.ADC: v[Label.ADC], Label.T1: v[Label.T1],
        Label.DCE_PRE: v["DCE"][0], Label.DCE_EARLY: v["DCE"][1], Label.DCE_DELAYED: v["DCE"][-1],
        Label.SUB: v[Label.SUB], Label.MIP: v[Label.MIP], Label.LOCALIZER: loc_pixels,
    }
