"""The MRI phantom's physics: exam constants, DCE timing, per-vendor imaging and the signal
equations that render each sequence of a breast model (``render_volumes``, ``render_exam``).
Written as DICOM by ``phantom.mri``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from breastlab.core.labels import Label
from breastlab.phantom.anatomy import FAT_T1, FAT_T2, FAT_T2_TSE, BreastModel


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


def to_uint16(a: np.ndarray, vmax: int = 4095) -> np.ndarray:
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
    out[Label.T2WI] = to_uint16(r.finish(_tse(model, r.im.te_t2, 1.0), "T2w"))
    out[Label.T2WI_FS] = to_uint16(r.finish(_tse(model, r.im.te_t2, fs), "T2w"))

    sig_dwi = NOISE["DWI"] * r.im.noise
    b50 = r.finish(_dwi(model, B_LOW, fs * 0.6), "DWI", sig_dwi)
    b800 = r.finish(_dwi(model, B_HIGH, fs * 0.6), "DWI", sig_dwi)
    out["DWI_b50"], out["DWI_b800"] = to_uint16(b50), to_uint16(b800)
    # ADC from the two stored b-value images, as the scanner computes it
    s50, s800 = out["DWI_b50"].astype(np.float32), out["DWI_b800"].astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        adc = np.log(np.maximum(s50, 1.0) / np.maximum(s800, 1.0)) / (B_HIGH - B_LOW)
    thresh = 0.08 * np.percentile(s50, 99)
    adc = np.where(s50 > thresh, adc, 0.0) * 1e6
    out[Label.ADC] = to_uint16(adc, vmax=4000)

    out[Label.T1] = to_uint16(r.finish(_spgr(model, None, 1.0, tr=8.0, flip=20.0), "T1w"))
    times = dce_post_injection_seconds()
    dce = []
    for phase, t in enumerate(times):
        conc = model.concentration(t) if phase > 0 else None
        dce.append(to_uint16(r.finish(_spgr(model, conc, fs * 1.6), "T1w")))
    out["DCE"] = dce
    sub = np.clip(dce[1].astype(np.int32) - dce[0].astype(np.int32), 0, 4095).astype(np.uint16)
    out[Label.SUB] = sub
    slab = max(2, model.shape[0] // 2)
    out[Label.MIP], out["MIP_centres"] = _slab_mips(sub, slab)
    out["MIP_slab"] = slab
    loc = _spgr(model, None, 1.0, tr=8.0, flip=25.0) * r.bias
    out["LOCALIZER_VOLUME"] = loc * GAIN["T1w"] * r.im.gain
    return out
