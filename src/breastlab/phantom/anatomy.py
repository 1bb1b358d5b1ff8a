"""A 3D numeric breast model for the synthetic MRI phantom.

The volume is axial, indexed ``[slice, row, column]`` = ``[z, y, x]`` in the
DICOM patient frame (LPS) of a prone patient: row 0 is anterior (the breasts
hang towards the top of the image), column 0 is the patient's right, slice 0
is inferior. The model holds

* ``labels``: one tissue label per voxel (see :data:`TISSUES`);
* tissue property maps ``t1``/``t2`` (ms, water component), ``pd`` (relative
  proton density), ``adc`` (mm²/s) and ``ff`` (fat fraction 0..1);
* ``enh_amp`` (peak contrast-agent concentration scale, mM) and ``enh_kind``
  (index into :data:`CURVES`), from which :meth:`BreastModel.concentration`
  gives the concentration map at any time after injection;
* ``lesion_mask`` and ``cyst_mask`` for tests and for training targets.

Values are textbook-plausible (1.5-3 T); the model is for software tests and
for teaching an image classifier what the sequences look like, never for
physics or accuracy claims.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# --- enhancement curves: concentration (relative to amp) vs seconds after injection

def _washout(t: np.ndarray) -> np.ndarray:
    """Malignant type III: fast wash-in, peak at ~70 s, then wash-out."""
    return (1.0 - np.exp(-t / 20.0)) * np.exp(-t / 600.0)


def _persistent(t: np.ndarray) -> np.ndarray:
    """Type I: slow, steadily rising (fibroglandular / background parenchyma)."""
    return 1.0 - np.exp(-t / 400.0)


def _plateau(t: np.ndarray) -> np.ndarray:
    """Type II-ish: moderate wash-in, then flat (benign lesion, muscle, skin)."""
    return 1.0 - np.exp(-t / 120.0)


def _arterial(t: np.ndarray) -> np.ndarray:
    """Blood pool: very early peak, then slow decline."""
    return (1.0 - np.exp(-t / 8.0)) * (0.55 + 0.45 * np.exp(-t / 90.0))


def _none(t: np.ndarray) -> np.ndarray:
    return np.zeros_like(t)


#: Curve kinds, in the order of ``BreastModel.enh_kind`` indices.
CURVES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": _none,
    "washout": _washout,
    "persistent": _persistent,
    "plateau": _plateau,
    "arterial": _arterial,
}
_CURVE_INDEX = {name: i for i, name in enumerate(CURVES)}


@dataclass(frozen=True)
class Tissue:
    label: int
    t1: float  # ms (water component)
    t2: float  # ms (water component)
    pd: float  # relative proton density
    adc: float  # mm^2/s
    ff: float  # fat fraction
    curve: str  # key of CURVES
    amp: float  # peak concentration scale, mM


#: Tissue table (label 0 = air / background).
TISSUES: dict[str, Tissue] = {
    "air": Tissue(0, 1000.0, 1.0, 0.0, 0.0, 0.0, "none", 0.0),
    "fat": Tissue(1, 300.0, 60.0, 0.90, 0.0, 1.0, "none", 0.0),
    "fibroglandular": Tissue(2, 1300.0, 50.0, 0.75, 1.8e-3, 0.08, "persistent", 0.18),
    "skin": Tissue(3, 800.0, 40.0, 0.70, 1.4e-3, 0.05, "plateau", 0.12),
    "muscle": Tissue(4, 1000.0, 35.0, 0.70, 1.4e-3, 0.0, "plateau", 0.10),
    "heart": Tissue(5, 1500.0, 60.0, 0.90, 3.2e-3, 0.0, "arterial", 1.40),  # black blood on SE/EPI
    "lung": Tissue(6, 1200.0, 30.0, 0.08, 2.0e-3, 0.0, "none", 0.0),
    "lesion": Tissue(7, 1400.0, 80.0, 0.80, 0.9e-3, 0.0, "washout", 0.60),
    "cyst": Tissue(8, 3000.0, 1000.0, 1.00, 2.8e-3, 0.0, "none", 0.0),
    "bone": Tissue(9, 500.0, 40.0, 0.35, 0.4e-3, 0.3, "none", 0.0),
}
LABEL_NAMES = {t.label: name for name, t in TISSUES.items()}

#: Fat's own relaxation (the fat component of every voxel).
FAT_T1 = 300.0
FAT_T2 = 60.0
FAT_T2_TSE = 140.0  # J-coupling: fat stays bright on fast/turbo spin echo


@dataclass
class BreastModel:
    """Voxel maps of one synthetic bilateral breast volume (see module doc)."""

    labels: np.ndarray  # uint8 (z, y, x)
    t1: np.ndarray
    t2: np.ndarray
    pd: np.ndarray
    adc: np.ndarray
    ff: np.ndarray
    enh_amp: np.ndarray
    enh_kind: np.ndarray  # uint8 index into CURVES
    lesion_mask: np.ndarray
    cyst_mask: np.ndarray
    lesion_kind: str = "malignant"
    seed: int = 0

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.labels.shape)  # type: ignore[return-value]

    def mask(self, tissue: str) -> np.ndarray:
        return self.labels == TISSUES[tissue].label

    def concentration(self, t_seconds: float) -> np.ndarray:
        """Contrast-agent concentration map (mM) ``t_seconds`` after injection."""
        if t_seconds <= 0:
            return np.zeros(self.labels.shape, np.float32)
        t = np.asarray(float(t_seconds))
        values = np.array([float(f(t)) for f in CURVES.values()], np.float32)
        return (self.enh_amp * values[self.enh_kind]).astype(np.float32)


def enhancement_curve(kind: str, t_seconds: np.ndarray | float) -> np.ndarray:
    """Relative concentration of a curve kind at the given seconds after injection."""
    t = np.clip(np.asarray(t_seconds, dtype=float), 0.0, None)
    return CURVES[kind](t)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: tuple[float, ...]) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    field -= field.mean()
    field /= field.std() + 1e-6
    return field


def build_breast_model(
    n_slices: int = 16,
    matrix: int = 128,
    *,
    seed: int = 0,
    lesion_kind: str = "malignant",
) -> BreastModel:
    """Build a bilateral breast model of shape ``(n_slices, matrix, matrix)``.

    ``seed`` varies breast size, fibroglandular pattern, lesion side, position
    and size, and the cyst. ``lesion_kind`` is ``"malignant"`` (wash-out curve,
    restricted diffusion) or ``"benign"`` (persistent curve, higher ADC).
    """
    if lesion_kind not in ("malignant", "benign"):
        raise ValueError(f"lesion_kind must be 'malignant' or 'benign', not {lesion_kind!r}")
    if n_slices < 1 or matrix < 16:
        raise ValueError("need n_slices >= 1 and matrix >= 16")
    rng = np.random.default_rng(seed)
    nz, ny, nx = n_slices, matrix, matrix
    shape = (nz, ny, nx)

    # normalised coordinates: u (right->left) and v (anterior->posterior) in [-1, 1];
    # w (inferior->superior) in [-1, 1] across the slab
    w = np.linspace(-0.9, 0.9, nz)[:, None, None] if nz > 1 else np.zeros((1, 1, 1))
    v = np.linspace(-1.0, 1.0, ny)[None, :, None]
    u = np.linspace(-1.0, 1.0, nx)[None, None, :]
    px = 2.0 / matrix  # one pixel in normalised units

    chest_v = 0.12 + rng.uniform(-0.03, 0.03)  # pectoral surface (anterior chest wall)
    size = rng.uniform(0.85, 1.1)  # breast size
    labels = np.zeros(shape, np.uint8)

    # thorax: a wide ellipse behind the chest wall
    th_c = (chest_v + 0.97) / 2.0
    th_b = (0.97 - chest_v) / 2.0 + 0.04
    thorax = ((np.abs(u) / 0.97) ** 4 + (np.abs(v - th_c) / th_b) ** 4) <= 1.0
    thorax &= v >= chest_v - 0.02
    thorax = np.broadcast_to(thorax, shape).copy()

    # two breasts: half-ellipsoids hanging anteriorly from the chest wall
    taper = np.sqrt(np.clip(1.0 - (w / 1.08) ** 2, 0.05, 1.0))
    breast_r_u = 0.40 * size * taper
    breast_r_v = (chest_v + 0.78) * size * taper
    breasts = np.zeros(shape, bool)
    centres_u = (-0.47 + rng.uniform(-0.02, 0.02), 0.47 + rng.uniform(-0.02, 0.02))
    for cu in centres_u:
        # slightly pointed towards the nipple: exponent < 2 along v
        e = (np.abs(u - cu) / breast_r_u) ** 2 + (np.abs(v - chest_v) / breast_r_v) ** 1.7
        breasts |= (e <= 1.0) & (v <= chest_v + 0.01)
    body = thorax | breasts
    labels[body] = TISSUES["fat"].label  # fat everywhere inside the body first

    # thoracic contents: muscle layer, ribs, lungs, heart
    inner = ndimage.binary_erosion(thorax, iterations=max(2, matrix // 24), structure=_plane_struct())
    labels[thorax & ~inner] = TISSUES["fat"].label
    pectoral = thorax & (v >= chest_v) & (v <= chest_v + 0.10) & (np.abs(u) <= 0.85)
    labels[pectoral] = TISSUES["muscle"].label
    ribs = inner & (v > chest_v + 0.10) & (v <= chest_v + 0.15)
    labels[ribs] = TISSUES["bone"].label
    cavity = inner & (v > chest_v + 0.15)
    labels[cavity] = TISSUES["muscle"].label
    lung_l = (((u + 0.45) / 0.36) ** 2 + ((v - 0.62) / 0.30) ** 2) <= 1.0
    lung_r = (((u - 0.45) / 0.36) ** 2 + ((v - 0.62) / 0.30) ** 2) <= 1.0
    labels[cavity & np.broadcast_to(lung_l | lung_r, shape)] = TISSUES["lung"].label
    heart = (((u - 0.06) / 0.26) ** 2 + ((v - 0.50) / 0.22) ** 2 + ((w + 0.35) / 0.9) ** 2) <= 1.0
    labels[cavity & heart] = TISSUES["heart"].label

    # fibroglandular tissue: textured, concentrated in a cone behind the nipple
    texture = _smooth_noise(rng, shape, (0.6, 2.2 * matrix / 128, 2.2 * matrix / 128))
    fgt = np.zeros(shape, bool)
    depth = np.zeros(shape, np.float32)
    for cu in centres_u:
        # 0 at the chest wall, 1 at the nipple
        d = np.clip((chest_v - v) / np.maximum(breast_r_v, 1e-3), 0.0, 1.0)
        radial = np.abs(u - cu) / np.maximum(breast_r_u, 1e-3)
        cone = np.exp(-((radial / (0.55 + 0.25 * (1 - d))) ** 2)) * np.clip(d * 3.0, 0.0, 1.0)
        cone *= np.clip((1.0 - d) * 6.0, 0.0, 1.0)
        side = np.abs(u - cu) < breast_r_u * 1.1
        depth = np.where(side, cone, depth)
    density = rng.uniform(0.15, 0.45)  # ACR-like density: fraction of gland in the cone
    fgt = breasts & (texture + 2.2 * depth - 1.2 > 1.0 - 2.0 * density)
    skin_free = ndimage.binary_erosion(breasts | thorax, iterations=2, structure=_plane_struct())
    fgt &= skin_free
    labels[fgt] = TISSUES["fibroglandular"].label

    # skin: the outer 1-2 pixels of the body
    skin = (breasts | thorax) & ~ndimage.binary_erosion(breasts | thorax, iterations=max(1, matrix // 100), structure=_plane_struct())
    labels[skin] = TISSUES["skin"].label

    # lesion: irregular blob inside the gland of one breast
    side = int(rng.integers(0, 2))
    cu = centres_u[side]
    lz = rng.uniform(-0.3, 0.3) if nz > 1 else 0.0
    lu = cu + rng.uniform(-0.12, 0.12) * size
    lv = chest_v - rng.uniform(0.25, 0.45) * (chest_v + 0.78) * size
    radius = rng.uniform(0.075, 0.11)
    rz = max(0.28, 1.6 * radius / max(nz / 16.0, 0.25))
    ang = np.arctan2(v - lv, u - lu)
    lobes = 1.0 + 0.18 * np.sin(3 * ang + rng.uniform(0, 6.3)) + 0.10 * np.sin(5 * ang + rng.uniform(0, 6.3))
    if lesion_kind == "benign":
        lobes = 1.0 + 0.05 * np.sin(2 * ang)
    r = np.sqrt((u - lu) ** 2 + (v - lv) ** 2 + ((w - lz) * radius / rz) ** 2)
    lesion = (r <= radius * lobes) & breasts & skin_free
    if not lesion.any():  # very small grids: force one voxel
        iz, iy, ix = nz // 2, int((lv + 1) / px), int((lu + 1) / px)
        lesion[iz, iy, ix] = True
    labels[lesion] = TISSUES["lesion"].label

    # cyst: small round fluid collection in the other breast
    cu2 = centres_u[1 - side]
    cz = rng.uniform(-0.4, 0.4) if nz > 1 else 0.0
    cyu = cu2 + rng.uniform(-0.1, 0.1) * size
    cyv = chest_v - rng.uniform(0.3, 0.5) * (chest_v + 0.78) * size
    cr = rng.uniform(0.045, 0.065)
    crz = max(0.2, 1.6 * cr / max(nz / 16.0, 0.25))
    cyst = ((u - cyu) ** 2 + (v - cyv) ** 2 + ((w - cz) * cr / crz) ** 2 <= cr**2) & breasts & skin_free & ~lesion
    labels[cyst] = TISSUES["cyst"].label

    # property maps from the table, with texture
    table = sorted(TISSUES.values(), key=lambda t: t.label)
    lut = {k: np.array([getattr(t, k) for t in table], np.float32) for k in ("t1", "t2", "pd", "adc", "ff", "amp")}
    kind_lut = np.array([_CURVE_INDEX[t.curve] for t in table], np.uint8)
    t1, t2, pd, adc, ff = (lut[k][labels] for k in ("t1", "t2", "pd", "adc", "ff"))
    enh_amp = lut["amp"][labels]
    enh_kind = kind_lut[labels]

    tex2 = _smooth_noise(rng, shape, (0.5, 1.2, 1.2))
    gland = labels == TISSUES["fibroglandular"].label
    pd = np.where(gland, pd * (1.0 + 0.08 * tex2), pd)
    ff = np.where(gland, np.clip(ff + 0.08 * tex2, 0.0, 0.4), ff)
    adc = np.where(gland, adc * (1.0 + 0.06 * tex2), adc)
    enh_amp = np.where(gland, enh_amp * np.clip(1.0 + 0.4 * tex2, 0.3, 2.0), enh_amp)
    fat = labels == TISSUES["fat"].label
    pd = np.where(fat, pd * (1.0 + 0.03 * tex2), pd)

    if lesion_kind == "benign":
        lesion_sel = labels == TISSUES["lesion"].label
        enh_kind = np.where(lesion_sel, _CURVE_INDEX["plateau"], enh_kind).astype(np.uint8)
        adc = np.where(lesion_sel, 1.5e-3, adc)
        t2 = np.where(lesion_sel, 110.0, t2)
    else:
        # rim enhancement: the periphery of a carcinoma enhances more than its core
        rel = np.clip(r / (radius * lobes + 1e-6), 0.0, 1.0)
        enh_amp = np.where(labels == TISSUES["lesion"].label, enh_amp * (0.75 + 0.35 * rel), enh_amp)

    return BreastModel(
        labels=labels,
        t1=t1.astype(np.float32),
        t2=t2.astype(np.float32),
        pd=pd.astype(np.float32),
        adc=adc.astype(np.float32),
        ff=ff.astype(np.float32),
        enh_amp=enh_amp.astype(np.float32),
        enh_kind=enh_kind.astype(np.uint8),
        lesion_mask=labels == TISSUES["lesion"].label,
        cyst_mask=labels == TISSUES["cyst"].label,
        lesion_kind=lesion_kind,
        seed=seed,
    )


def _plane_struct() -> np.ndarray:
    """Erosion element acting within each axial slice only."""
    s = np.zeros((3, 3, 3), bool)
    s[1] = ndimage.generate_binary_structure(2, 1)
    return s
