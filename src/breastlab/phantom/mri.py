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
"""
from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from breastlab.core.labels import LABELS, Label
from breastlab.phantom.anatomy import FAT_T1, FAT_T2, FAT_T2_TSE, BreastModel, build_breast_model

VENDORS = ("SIEMENS", "GE", "PHILIPS")
#: Default DCE layout per vendor: one multi-phase series, or one series per phase.
DCE_LAYOUT = {"SIEMENS": "separate", "GE": "single", "PHILIPS": "single"}

B_LOW, B_HIGH = 50.0, 800.0
N_POST = 4
DCE_PHASE_DURATION = 80.0  # s per 3D volume
INJECTION_AFTER_PRE_END = 10.0  # s
POST1_START_AFTER_INJECTION = 50.0  # s (k-space centre of post 1 at +90 s)
FOV_MM = 340.0
SLAB_MM = 120.0
PATIENT_NAME = "PHANTOM^BREAST"
TRUTH_COLUMNS = (
    "vendor", "series_number", "series_uid", "series_description", "label", "b_value",
    "dce_phase", "dce_seconds", "post_injection_seconds", "n_images", "folder", "detail",
)
INSTANCE_COLUMNS = (
    "path", "vendor", "series_number", "series_uid", "sop_instance_uid", "instance_number",
    "label", "b_value", "dce_phase", "detail",
)
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


# ----------------------------------------------------------------------------- timing

def dce_acquisition_offsets() -> list[float]:
    """Acquisition start of each DCE phase (0 = pre) in seconds after the pre start."""
    post1 = DCE_PHASE_DURATION + INJECTION_AFTER_PRE_END + POST1_START_AFTER_INJECTION
    return [0.0] + [post1 + k * DCE_PHASE_DURATION for k in range(N_POST)]


def dce_post_injection_seconds() -> list[float]:
    """k-space centre of each DCE phase in seconds after contrast injection (pre < 0)."""
    inj = DCE_PHASE_DURATION + INJECTION_AFTER_PRE_END
    return [t + DCE_PHASE_DURATION / 2 - inj for t in dce_acquisition_offsets()]


# ----------------------------------------------------------------------------- physics

@dataclass(frozen=True)
class VendorImaging:
    """Small vendor differences in the images themselves (gain, noise, fat suppression)."""

    gain: float
    noise: float  # noise multiplier
    fatsat: float  # residual fat signal fraction with fat suppression
    te_t2: float  # ms
    field: float  # tesla


IMAGING = {
    "SIEMENS": VendorImaging(gain=1.0, noise=1.0, fatsat=0.05, te_t2=91.0, field=3.0),
    "GE": VendorImaging(gain=0.8, noise=1.2, fatsat=0.07, te_t2=85.0, field=1.5),
    "PHILIPS": VendorImaging(gain=1.3, noise=0.9, fatsat=0.04, te_t2=100.0, field=3.0),
}
R1_RELAXIVITY = 4.0  # 1/(mM s), gadolinium at 1.5-3 T
# ms
TR_T2, TR_DWI, TE_DWI = 4500.0, 5000.0, 70.0
TR_T1, TE_T1, FLIP_T1 = 4.5, 2.0, 12.0
# signal -> stored-value gains (before the vendor gain)
GAIN = {"T2w": 3000.0, "DWI": 2500.0, "T1w": 25000.0}  # by contrast
NOISE = {"T2w": 0.010, "DWI": 0.006, "T1w": 0.0010}


def _tse(model: BreastModel, te: float, fat_factor: float, tr: float = TR_T2) -> np.ndarray:
    water = (1 - model.ff) * (1 - np.exp(-tr / model.t1)) * np.exp(-te / model.t2)
    fat = model.ff * (1 - np.exp(-tr / FAT_T1)) * np.exp(-te / FAT_T2_TSE) * fat_factor
    return model.pd * (water + fat)


def _spgr_term(t1: np.ndarray | float, tr: float, flip_deg: float) -> np.ndarray:
    a = np.deg2rad(flip_deg)
    e1 = np.exp(-tr / np.asarray(t1))
    return np.sin(a) * (1 - e1) / (1 - np.cos(a) * e1)


def _spgr(model: BreastModel, conc: np.ndarray | None, fat_factor: float,
          tr: float = TR_T1, flip: float = FLIP_T1) -> np.ndarray:
    r1 = 1000.0 / model.t1
    if conc is not None:
        r1 = r1 + R1_RELAXIVITY * conc
    water = (1 - model.ff) * _spgr_term(1000.0 / r1, tr, flip)
    fat = model.ff * _spgr_term(FAT_T1, tr, flip) * fat_factor
    return model.pd * (water + fat) * np.exp(-TE_T1 / np.maximum(model.t2, 1.0))


def _dwi(model: BreastModel, b: float, fat_factor: float) -> np.ndarray:
    water = (1 - model.ff) * (1 - np.exp(-TR_DWI / model.t1)) * np.exp(-TE_DWI / model.t2)
    water = water * np.exp(-b * model.adc)
    fat = model.ff * np.exp(-TE_DWI / FAT_T2) * fat_factor * np.exp(-b * 1e-5)
    return model.pd * (water + fat)


def _coil_bias(shape: tuple[int, int, int]) -> np.ndarray:
    """Breast-coil sensitivity: strong anteriorly, weaker over the posterior thorax."""
    v = np.linspace(-1.0, 1.0, shape[1])[None, :, None]
    u = np.linspace(-1.0, 1.0, shape[2])[None, None, :]
    return (1.08 - 0.35 * np.clip(v, 0.0, 1.0) - 0.05 * u**2).astype(np.float32)


class _Renderer:
    """Blur (point-spread), bias, Rician noise and scaling, with one random stream."""

    def __init__(self, model: BreastModel, vendor: str, seed: int) -> None:
        self.model = model
        self.im = IMAGING[vendor]
        self.bias = _coil_bias(model.shape)
        # vendor-specific stream so vendors differ in noise but stay reproducible
        self.rng = np.random.default_rng([seed, VENDORS.index(vendor) if vendor in VENDORS else 9])
        self.sigma_px = 0.6 * model.shape[2] / 128.0

    def finish(self, signal: np.ndarray, kind: str, sigma: float | None = None) -> np.ndarray:
        s = ndimage.gaussian_filter(signal.astype(np.float32), (0, self.sigma_px, self.sigma_px))
        s = s * self.bias
        sig = NOISE[kind] * self.im.noise if sigma is None else sigma
        n1 = self.rng.normal(0.0, sig, s.shape).astype(np.float32)
        n2 = self.rng.normal(0.0, sig, s.shape).astype(np.float32)
        return np.sqrt((s + n1) ** 2 + n2**2) * GAIN[kind] * self.im.gain


def _to_uint16(a: np.ndarray, vmax: int = 4095) -> np.ndarray:
    return np.clip(np.rint(a), 0, vmax).astype(np.uint16)


def _slab_mips(vol: np.ndarray, slab: int) -> tuple[np.ndarray, list[float]]:
    """Thin-slab axial MIPs: (n, rows, cols) and the centre slice index of each slab."""
    nz = vol.shape[0]
    slab = max(1, min(slab, nz))
    step = max(1, slab // 2)
    starts = list(range(0, nz - slab + 1, step)) or [0]
    mips = np.stack([vol[s:s + slab].max(axis=0) for s in starts])
    return mips, [s + (slab - 1) / 2.0 for s in starts]


def render_volumes(model: BreastModel, vendor: str = "SIEMENS", seed: int = 0) -> dict[str, Any]:
    """All image volumes of one exam as uint16 arrays (stored values).

    Keys: ``T2WI``, ``T2WI_FS``, ``DWI_b50``, ``DWI_b800``, ``ADC`` (10⁻⁶ mm²/s),
    ``T1`` (no fat suppression), ``DCE`` (list of 5 volumes, pre first), ``SUB``
    (post 1 − pre), ``MIP`` (thin-slab MIPs of SUB) with ``MIP_centres`` (slice
    index of each slab centre), ``LOCALIZER_VOLUME`` (float, for resampling).
    """
    vendor = vendor.upper()
    r = _Renderer(model, vendor, seed)
    fs = r.im.fatsat
    out: dict[str, Any] = {}
    out[Label.T2WI] = _to_uint16(r.finish(_tse(model, r.im.te_t2, 1.0), "T2w"))
    out[Label.T2WI_FS] = _to_uint16(r.finish(_tse(model, r.im.te_t2, fs), "T2w"))

    sig_dwi = NOISE["DWI"] * r.im.noise
    b50 = r.finish(_dwi(model, B_LOW, fs * 0.6), "DWI", sig_dwi)
    b800 = r.finish(_dwi(model, B_HIGH, fs * 0.6), "DWI", sig_dwi)
    out["DWI_b50"], out["DWI_b800"] = _to_uint16(b50), _to_uint16(b800)
    # ADC from the two stored b-value images, as the scanner computes it
    s50, s800 = out["DWI_b50"].astype(np.float32), out["DWI_b800"].astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        adc = np.log(np.maximum(s50, 1.0) / np.maximum(s800, 1.0)) / (B_HIGH - B_LOW)
    thresh = 0.08 * np.percentile(s50, 99)
    adc = np.where(s50 > thresh, adc, 0.0) * 1e6
    out[Label.ADC] = _to_uint16(adc, vmax=4000)

    out[Label.T1] = _to_uint16(r.finish(_spgr(model, None, 1.0, tr=8.0, flip=20.0), "T1w"))
    times = dce_post_injection_seconds()
    dce = []
    for phase, t in enumerate(times):
        conc = model.concentration(t) if phase > 0 else None
        dce.append(_to_uint16(r.finish(_spgr(model, conc, fs * 1.6), "T1w")))
    out["DCE"] = dce
    sub = np.clip(dce[1].astype(np.int32) - dce[0].astype(np.int32), 0, 4095).astype(np.uint16)
    out[Label.SUB] = sub
    slab = max(2, model.shape[0] // 2)
    out[Label.MIP], out["MIP_centres"] = _slab_mips(sub, slab)
    out["MIP_slab"] = slab
    loc = _spgr(model, None, 1.0, tr=8.0, flip=25.0) * r.bias
    out["LOCALIZER_VOLUME"] = loc * GAIN["T1w"] * r.im.gain
    return out


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
    geom = _Geometry(n_slices, matrix)
    loc_pixels, _ = _localizer(v["LOCALIZER_VOLUME"], geom, np.random.default_rng(seed))
    return {
        Label.T2WI: v[Label.T2WI], Label.T2WI_FS: v[Label.T2WI_FS], Label.DWI_LOW: v["DWI_b50"],
        Label.DWI_HIGH: v["DWI_b800"], Label.ADC: v[Label.ADC], Label.T1: v[Label.T1],
        Label.DCE_PRE: v["DCE"][0], Label.DCE_EARLY: v["DCE"][1], Label.DCE_DELAYED: v["DCE"][-1],
        Label.SUB: v[Label.SUB], Label.MIP: v[Label.MIP], Label.LOCALIZER: loc_pixels,
    }


# ----------------------------------------------------------------------------- geometry

@dataclass(frozen=True)
class _Pos:
    ipp: tuple[float, float, float]
    iop: tuple[float, ...]
    spacing: float
    thickness: float
    location: float
    between: float | None = None  # SpacingBetweenSlices when it differs from the thickness


class _Geometry:
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


def _localizer(vol: np.ndarray, g: _Geometry, rng: np.random.Generator) -> tuple[np.ndarray, list[_Pos]]:
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
    return _to_uint16(noisy), pos


# ----------------------------------------------------------------------------- exam plan

@dataclass
class _ImageSet:
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
class _Series:
    number: int
    description: str
    start: float  # s after the study start
    public: dict[str, Any]
    private: list[tuple[int, str, int, str, Any]]
    sets: list[_ImageSet]
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


def _axial_set(label: str, pixels: np.ndarray, g: _Geometry, **kw: Any) -> _ImageSet:
    return _ImageSet(label, pixels, [g.axial(k) for k in range(pixels.shape[0])], **kw)


def _plan(vendor: str, v: dict[str, Any], g: _Geometry, loc: tuple[np.ndarray, list[_Pos]],
          dce_layout: str) -> list[_Series]:
    builders = {"SIEMENS": _plan_siemens, "GE": _plan_ge, "PHILIPS": _plan_philips}
    return builders[vendor](v, g, loc, dce_layout)


def _dce_sets(v: dict[str, Any], g: _Geometry, public_for_phase) -> list[_ImageSet]:
    offsets, post = dce_acquisition_offsets(), dce_post_injection_seconds()
    return [
        _axial_set(Label.dce_phase(p), v["DCE"][p], g, dce_phase=p, dce_seconds=offsets[p],
                   post_injection=round(post[p], 1), acq_offset=offsets[p], public=public_for_phase(p))
        for p in range(N_POST + 1)
    ]


def _mip_set(v: dict[str, Any], g: _Geometry, **kw: Any) -> _ImageSet:
    thick = v["MIP_slab"] * g.dz
    centres = v["MIP_centres"]
    step = (centres[1] - centres[0]) * g.dz if len(centres) > 1 else thick
    pos = [g.axial(c, thickness=thick, between=step) for c in centres]
    return _ImageSet(Label.MIP, v[Label.MIP], pos, **kw)


def _loc_set(loc: tuple[np.ndarray, list[_Pos]], **kw: Any) -> _ImageSet:
    return _ImageSet(Label.LOCALIZER, loc[0], loc[1], **kw)


SIEMENS_HDR = "SIEMENS MR HEADER"


def _plan_siemens(v, g, loc, dce_layout) -> list[_Series]:
    orig = ["ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D"]
    s: list[_Series] = []
    s.append(_Series(1, "localizer", 30, dict(ImageType=orig, SequenceName="*fl2d1", ScanningSequence="GR",
             SequenceVariant=["SP", "OSP"], RepetitionTime=8.6, EchoTime=4.0, FlipAngle=20, MRAcquisitionType="2D"),
             [], [_loc_set(loc)]))
    tse = dict(ImageType=orig, SequenceName="*tse2d1_15", ScanningSequence="SE", SequenceVariant=["SK", "SP", "OSP"],
               RepetitionTime=TR_T2, EchoTime=91.0, EchoTrainLength=15, FlipAngle=150, MRAcquisitionType="2D")
    s.append(_Series(2, "t2_tse_tra", 120, {**tse, "ScanOptions": "PFP"}, [], [_axial_set(Label.T2WI, v[Label.T2WI], g)]))
    s.append(_Series(3, "t2_tse_spair_tra", 400, {**tse, "ScanOptions": ["PFP", "FS"]}, [],
             [_axial_set(Label.T2WI_FS, v[Label.T2WI_FS], g)]))
    dwi_common = dict(ScanningSequence="EP", SequenceVariant=["SK", "SP"], ScanOptions=["PFP", "FS"],
                      RepetitionTime=TR_DWI, EchoTime=TE_DWI, FlipAngle=90, MRAcquisitionType="2D",
                      ImageType=["ORIGINAL", "PRIMARY", "DIFFUSION", "TRACEW", "ND", "NORM"])
    sets = []
    for label, b, key in ((Label.DWI_LOW, B_LOW, "DWI_b50"), (Label.DWI_HIGH, B_HIGH, "DWI_b800")):
        sets.append(_axial_set(label, v[key], g, b_value=b, public={"SequenceName": f"*ep_b{int(b)}t"},
                               private=[(0x0019, SIEMENS_HDR, 0x0C, "IS", int(b))]))
    s.append(_Series(4, "ep2d_diff_tra", 700, dwi_common, [], sets))
    s.append(_Series(5, "ep2d_diff_tra_ADC", 705, {**dwi_common, "SequenceName": "*ep_b50_800",
             "ImageType": ["DERIVED", "PRIMARY", "DIFFUSION", "ADC", "ND", "NORM"]}, [],
             [_axial_set(Label.ADC, v[Label.ADC], g)]))
    t1 = dict(ImageType=["ORIGINAL", "PRIMARY", "M", "NORM", "ND"], SequenceName="*fl3d1", ScanningSequence="GR",
              SequenceVariant=["SP", "OSP"], RepetitionTime=8.0, EchoTime=TE_T1, FlipAngle=20, MRAcquisitionType="3D")
    s.append(_Series(6, "t1_fl3d_tra_nonFS", 900, t1, [], [_axial_set(Label.T1, v[Label.T1], g)]))
    vibe = {**t1, "ScanOptions": "FS", "RepetitionTime": TR_T1, "FlipAngle": FLIP_T1}
    dce_start = 1100.0
    sets = _dce_sets(v, g, lambda p: {"AcquisitionNumber": p + 1})
    number = 7
    if dce_layout == "separate":
        for st in sets:
            off = st.acq_offset
            st.acq_offset = 0.0
            s.append(_Series(number, "fl3d_vibe_dyn", dce_start + off, vibe, [], [st]))
            number += 1
    else:
        s.append(_Series(number, "fl3d_vibe_dyn", dce_start, {**vibe, "NumberOfTemporalPositions": N_POST + 1},
                         [], [_with(st, TemporalPositionIdentifier=st.dce_phase + 1) for st in sets]))
        number += 1
    last = dce_start + dce_acquisition_offsets()[-1] + DCE_PHASE_DURATION
    s.append(_Series(number, "fl3d_vibe_dyn_SUB", last + 20, {**vibe, "ImageType":
             ["DERIVED", "PRIMARY", "SUBTRACTION", "ND"]}, [], [_axial_set(Label.SUB, v[Label.SUB], g)]))
    s.append(_Series(number + 1, "fl3d_vibe_dyn_SUB_MIP_TRA", last + 40, {**vibe, "ImageType":
             ["DERIVED", "PRIMARY", "MIP", "SUBTRACTION", "ND"]}, [], [_mip_set(v, g)]))
    return s


def _with(st: _ImageSet, **public: Any) -> _ImageSet:
    st.public = {**st.public, **public}
    return st


GE_ACQU, GE_PARM = "GEMS_ACQU_01", "GEMS_PARM_01"


def _ge_b(b: float) -> tuple[int, str, int, str, Any]:
    return (0x0043, GE_PARM, 0x39, "IS", [1000000000 + int(b), 8, 0, 0] if b else [0, 0, 0, 0])


def _plan_ge(v, g, loc, dce_layout) -> list[_Series]:
    orig = ["ORIGINAL", "PRIMARY", "OTHER"]

    def psn(name: str) -> list[tuple[int, str, int, str, Any]]:
        return [(0x0019, GE_ACQU, 0x9C, "LO", name), _ge_b(0)]

    s: list[_Series] = []
    s.append(_Series(1, "3-Plane Loc", 20, dict(ImageType=orig, ScanningSequence="GR", SequenceVariant="SS",
             ScanOptions=["FAST_GEMS", "SEQ_GEMS"], RepetitionTime=4.9, EchoTime=1.6, FlipAngle=30,
             MRAcquisitionType="2D"), psn("fgre"), [_loc_set(loc)]))
    fse = dict(ImageType=orig, ScanningSequence="SE", SequenceVariant="SK", RepetitionTime=TR_T2, EchoTime=85.0,
               EchoTrainLength=18, FlipAngle=111, MRAcquisitionType="2D")
    s.append(_Series(2, "Ax T2 FSE", 100, {**fse, "ScanOptions": ["FAST_GEMS", "EDR_GEMS", "TRF_GEMS"]},
                     psn("fse-xl"), [_axial_set(Label.T2WI, v[Label.T2WI], g)]))
    s.append(_Series(3, "Ax T2 FSE FS", 380, {**fse, "ScanOptions": ["SAT_GEMS", "FAST_GEMS", "EDR_GEMS", "FS"]},
                     psn("fse-xl"), [_axial_set(Label.T2WI_FS, v[Label.T2WI_FS], g)]))
    dwi = dict(ImageType=orig, ScanningSequence=["EP", "SE"], SequenceVariant="NONE",
               ScanOptions=["SAT_GEMS", "EDR_GEMS", "EPI_GEMS", "ACC_GEMS", "FS"], RepetitionTime=TR_DWI,
               EchoTime=TE_DWI, FlipAngle=90, MRAcquisitionType="2D")
    sets = []
    for label, b, key in ((Label.DWI_LOW, B_LOW, "DWI_b50"), (Label.DWI_HIGH, B_HIGH, "DWI_b800")):
        sets.append(_axial_set(label, v[key], g, b_value=b, public={"DiffusionBValue": b},
                               private=[_ge_b(b)]))
    s.append(_Series(4, "Ax DWI b50-800", 650, dwi, [(0x0019, GE_ACQU, 0x9C, "LO", "epi2")], sets, slice_major=True))
    s.append(_Series(400, "Apparent Diffusion Coefficient (mm2/s)", 660, {**dwi, "ImageType":
             ["DERIVED", "PRIMARY", "ADC"]}, psn("epi2"), [_axial_set(Label.ADC, v[Label.ADC], g)]))
    t1 = dict(ImageType=orig, ScanningSequence="GR", SequenceVariant=["SS", "SP"], RepetitionTime=8.0,
              EchoTime=TE_T1, FlipAngle=20, MRAcquisitionType="3D", ScanOptions=["FAST_GEMS", "EDR_GEMS"])
    s.append(_Series(5, "Ax 3D T1 NON FS", 880, t1, psn("efgre3d"), [_axial_set(Label.T1, v[Label.T1], g)]))
    vib = {**t1, "ScanOptions": ["FAST_GEMS", "EDR_GEMS", "ZIP2_GEMS", "FS"], "RepetitionTime": TR_T1,
           "FlipAngle": FLIP_T1, "ContrastBolusAgent": "NONE"}  # GE writes NONE even after contrast
    dce_start = 1080.0
    sets = _dce_sets(v, g, lambda p: {})
    if dce_layout == "single":
        for st in sets:
            _with(st, TemporalPositionIdentifier=st.dce_phase + 1, TriggerTime=st.acq_offset * 1000.0,
                  AcquisitionNumber=1)
        s.append(_Series(6, "Ax VIBRANT MPh", dce_start, {**vib, "NumberOfTemporalPositions": N_POST + 1},
                         psn("vibrant"), sets))
        number = 7
    else:
        number = 6
        for st in sets:
            off, st.acq_offset = st.acq_offset, 0.0
            s.append(_Series(number, "Ax VIBRANT" + (" PRE" if st.dce_phase == 0 else f" POST {st.dce_phase}"),
                             dce_start + off, vib, psn("vibrant"), [st]))
            number += 1
    last = dce_start + dce_acquisition_offsets()[-1] + DCE_PHASE_DURATION
    derived = {**vib, "ImageType": ["DERIVED", "SECONDARY", "OTHER"]}
    s.append(_Series(number * 100 + 1, "Ax VIBRANT MPh SUB 2-1", last + 60, derived, psn("vibrant"),
                     [_axial_set(Label.SUB, v[Label.SUB], g)]))
    s.append(_Series(number * 100 + 2, "MIP Ax VIBRANT SUB", last + 90,
                     {**derived, "ImageType": ["DERIVED", "SECONDARY", "REFORMATTED", "MIP"]},
                     psn("vibrant"), [_mip_set(v, g)]))
    return s


PH_IMG = "Philips Imaging DD 001"


def _ph(elem: int, vr: str, value: Any) -> tuple[int, str, int, str, Any]:
    return (0x2001, PH_IMG, elem, vr, value)


def _plan_philips(v, g, loc, dce_layout) -> list[_Series]:
    se = ["ORIGINAL", "PRIMARY", "M_SE", "M", "SE"]
    ffe = ["ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE"]
    tra = _ph(0x0B, "CS", "TRANSVERSAL")

    def tech(name: str, spir: bool) -> list[tuple[int, str, int, str, Any]]:
        return [_ph(0x20, "LO", name), _ph(0x21, "CS", "Y" if spir else "N"), tra]

    s: list[_Series] = []
    s.append(_Series(101, "Survey", 15, dict(ImageType=ffe, ScanningSequence="GR", SequenceVariant="SP",
             ScanOptions="OTHER", RepetitionTime=10.0, EchoTime=4.6, FlipAngle=15, MRAcquisitionType="2D"),
             tech("FFE", False), [_loc_set(loc)]))
    tse = dict(ImageType=se, ScanningSequence="SE", SequenceVariant="SK", RepetitionTime=TR_T2, EchoTime=100.0,
               EchoTrainLength=20, FlipAngle=90, MRAcquisitionType="2D")
    s.append(_Series(201, "T2W_TSE", 110, {**tse, "ScanOptions": "OTHER"}, tech("TSE", False),
                     [_axial_set(Label.T2WI, v[Label.T2WI], g)]))
    s.append(_Series(301, "T2W_SPAIR", 390, {**tse, "ScanOptions": "FS"}, tech("TSE", True),
                     [_axial_set(Label.T2WI_FS, v[Label.T2WI_FS], g)]))
    dwi = dict(ImageType=se, ScanningSequence="SE", SequenceVariant="SK", ScanOptions="FS", RepetitionTime=TR_DWI,
               EchoTime=TE_DWI, FlipAngle=90, MRAcquisitionType="2D")
    rng = np.random.default_rng(int(v["DWI_b800"][0, 0, :8].sum()))
    sets = [_axial_set(Label.DWI_LOW, v["DWI_b50"], g, b_value=B_LOW, public={"DiffusionBValue": B_LOW},
                       private=[_ph(0x03, "FL", B_LOW), _ph(0x04, "CS", "I")], detail="isotropic (2001,1004)=I")]
    hi = v["DWI_b800"].astype(np.float32)
    for d in ("M", "P", "S"):  # directional volumes: isotropic tissue, independent noise
        noisy = _to_uint16(hi * rng.normal(1.0, 0.04, hi.shape).astype(np.float32))
        sets.append(_axial_set(Label.DWI_HIGH, noisy, g, b_value=B_HIGH, public={"DiffusionBValue": B_HIGH},
                               private=[_ph(0x03, "FL", B_HIGH), _ph(0x04, "CS", d)], detail=f"direction {d}"))
    sets.append(_axial_set(Label.DWI_HIGH, v["DWI_b800"], g, b_value=B_HIGH, public={"DiffusionBValue": B_HIGH},
                           private=[_ph(0x03, "FL", B_HIGH), _ph(0x04, "CS", "I")],
                           detail="isotropic trace (2001,1004)=I"))
    s.append(_Series(401, "DWI_b50_800", 660, dwi, tech("DwiSE", True), sets))
    s.append(_Series(402, "dADC", 670, {**dwi, "ImageType": ["DERIVED", "PRIMARY", "ADC_SE", "ADC", "SE"]},
                     tech("DwiSE", True), [_axial_set(Label.ADC, v[Label.ADC], g)]))
    t1 = dict(ImageType=ffe, ScanningSequence="GR", SequenceVariant="SP", ScanOptions="OTHER", RepetitionTime=8.0,
              EchoTime=TE_T1, FlipAngle=20, MRAcquisitionType="3D")
    s.append(_Series(501, "T1W_FFE", 870, t1, tech("T1FFE", False), [_axial_set(Label.T1, v[Label.T1], g)]))
    thrive = {**t1, "ScanOptions": "FS", "RepetitionTime": TR_T1, "FlipAngle": FLIP_T1}
    dce_start = 1060.0
    sets = _dce_sets(v, g, lambda p: {})
    if dce_layout == "single":
        for st in sets:
            _with(st, TemporalPositionIdentifier=st.dce_phase + 1, TriggerTime=st.acq_offset * 1000.0,
                  AcquisitionNumber=6)
        s.append(_Series(601, "e-THRIVE dyn", dce_start, {**thrive, "NumberOfTemporalPositions": N_POST + 1},
                         tech("T1TFE", True) + [_ph(0x81, "IS", N_POST + 1), _ph(0x12, "CS", "Y")], sets))
        number = 7
    else:
        number = 6
        for st in sets:
            off, st.acq_offset = st.acq_offset, 0.0
            s.append(_Series(number * 100 + 1, "e-THRIVE dyn", dce_start + off, thrive,
                             tech("T1TFE", True), [st]))
            number += 1
    last = dce_start + dce_acquisition_offsets()[-1] + DCE_PHASE_DURATION
    s.append(_Series(number * 100 + 1, "SUB_e-THRIVE dyn", last + 30, {**thrive, "ImageType":
             ["DERIVED", "PRIMARY", "SUBTRACTION", "M", "FFE"]}, tech("T1TFE", True),
             [_axial_set(Label.SUB, v[Label.SUB], g)]))
    s.append(_Series(number * 100 + 2, "MIP_SUB_e-THRIVE", last + 50, {**thrive, "ImageType":
             ["DERIVED", "SECONDARY", "MIP", "M", "FFE"]}, tech("T1TFE", True), [_mip_set(v, g)]))
    return s


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


def _dataset(vendor: str, series: _Series, st: _ImageSet, j: int, instance: int, study_uid: str,
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


def _write_vendor(root: Path, vendor: str, plan: list[_Series], seed: int, strip: bool
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
        merged: dict[tuple, list[_ImageSet]] = {}
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
    g = _Geometry(n_slices, matrix)
    files: list[Path] = []
    truth: list[SeriesTruth] = []
    inst_rows: list[dict[str, Any]] = []
    for vendor in vendor_list:
        v = render_volumes(model, vendor, seed)
        loc = _localizer(v["LOCALIZER_VOLUME"], g, np.random.default_rng([seed, 77, VENDORS.index(vendor)]))
        plan = _plan(vendor, v, g, loc, dce_layout or DCE_LAYOUT[vendor])
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
    atomic.write_json(out_dir / "provenance.json", run_manifest(config))
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
