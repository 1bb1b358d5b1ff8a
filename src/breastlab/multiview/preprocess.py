"""Per-view preprocessing for four-view cases (BSGI, mammography, one-view ultrasound).

Pipeline for one view (``preprocess_view``), in this order:

1. **Load** (``load_image``) a 2-D float32 array from DICOM (pydicom; compressed
   transfer syntaxes through pylibjpeg; RescaleSlope/Intercept applied;
   MONOCHROME1 inverted so that high values are always bright), PNG/JPEG/TIFF/BMP
   (Pillow; colour converted to grey), NIfTI (nibabel; the middle slice of the
   last axis unless ``slice_index`` is given) or ``.npy`` (no pickles).
2. **Robust intensity normalisation** (``normalize``): clip to the 0.5th–99.5th
   percentile of the view (a few hot pixels or burnt-in markers cannot dominate),
   then either ``"zscore"`` (subtract mean, divide by standard deviation of the
   clipped image; the default, close to what ImageNet-pretrained networks expect)
   or ``"minmax"`` (scale the clipped range to [0, 1]). A constant image becomes zeros.
3. **Resize** (``resize``) to ``image_size`` × ``image_size`` with bilinear
   interpolation and anti-aliasing (``torch.nn.functional.interpolate``). The
   aspect ratio is not kept, as in the seed ("unified to the same size of 256×256").
4. **Flip right-side views horizontally** (on by default, ``flip_right=False`` to
   disable) so that every breast faces the same way and the chest wall is on the
   same side in all channels.

``stack_views`` then stacks the N views into one ``[N, H, W]`` array in the
order given (the seed's order is LCC, RCC, LMLO, RMLO).

Training-time augmentation (``Augment``) is applied on the cached, preprocessed
tensor; it never flips (laterality is meaningful after alignment).
"""
from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from breastlab.core.errors import UsageError
from breastlab.dicom.pixels import PixelDataError, is_dicom, read_view, rgb_to_grey

NORMALIZATIONS = ("zscore", "minmax")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif"}
NIFTI_SUFFIXES = (".nii", ".nii.gz")


class ImageLoadError(UsageError):
    """A view image could not be read; the message says why."""


# ----------------------------------------------------------------------------- loading
def _load_dicom(path: Path, frame: int | None) -> np.ndarray:
    try:
        return read_view(path, frame)
    except PixelDataError as exc:
        raise ImageLoadError(str(exc)) from exc


def _load_raster(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        img.seek(0)
        if img.mode in {"I;16", "I;16B", "I;16L", "I", "F", "L"}:
            arr = np.asarray(img).astype(np.float32)
        else:  # RGB, RGBA, P, LA, CMYK...
            arr = np.asarray(img.convert("RGB")).astype(np.float32)
            arr = rgb_to_grey(arr)
    return arr


def _load_nifti(path: Path, slice_index: int | None) -> np.ndarray:
    import nibabel as nib

    data = np.asanyarray(nib.load(str(path)).dataobj).astype(np.float32)
    while data.ndim > 3:  # 4-D: first volume
        data = data[..., 0]
    if data.ndim == 3:
        k = data.shape[2] // 2 if slice_index is None else slice_index
        data = data[:, :, k]
    # NIfTI arrays are (x, y); show as (rows=y, cols=x)
    return np.ascontiguousarray(data.T)


def _load_npy(path: Path, slice_index: int | None) -> np.ndarray:
    arr = np.load(path, allow_pickle=False).astype(np.float32)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = rgb_to_grey(arr)
    elif arr.ndim == 3:
        arr = arr[arr.shape[0] // 2 if slice_index is None else slice_index]
    return arr


def load_image(path: str | os.PathLike, *, slice_index: int | None = None) -> np.ndarray:
    """Read one view as a 2-D float32 array (rows, columns); raises ``ImageLoadError``.

    ``slice_index`` picks the frame of a multi-frame DICOM, the slice of a 3-D NIfTI
    (last axis) or of a 3-D ``.npy`` (first axis); the default is the middle one.
    """
    p = Path(path)
    if not p.is_file():
        raise ImageLoadError(f"{p}: file not found")
    name = p.name.lower()
    try:
        if name.endswith(NIFTI_SUFFIXES):
            arr = _load_nifti(p, slice_index)
        elif name.endswith(".npy"):
            arr = _load_npy(p, slice_index)
        elif p.suffix.lower() in IMAGE_SUFFIXES:
            arr = _load_raster(p)
        elif is_dicom(p):
            arr = _load_dicom(p, slice_index)
        else:
            raise ImageLoadError(f"{p}: unsupported file type")
    except ImageLoadError:
        raise
    except Exception as exc:
        raise ImageLoadError(f"{p}: cannot read image ({type(exc).__name__}: {exc})") from exc
    arr = np.squeeze(arr)
    if arr.ndim != 2 or min(arr.shape) < 2:
        raise ImageLoadError(f"{p}: expected a 2-D image, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    return arr


# ----------------------------------------------------------------------- intensities
def normalize(
    image: np.ndarray,
    mode: str = "zscore",
    *,
    low: float = 0.5,
    high: float = 99.5,
) -> np.ndarray:
    """Robust per-view normalisation: percentile clip [low, high], then z-score or [0, 1]."""
    if mode not in NORMALIZATIONS:
        raise ValueError(f"normalisation must be one of {NORMALIZATIONS}, not {mode!r}")
    img = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(img, [low, high])
    img = np.clip(img, lo, hi)
    if hi - lo <= 1e-12:
        return np.zeros_like(img, dtype=np.float32)
    if mode == "minmax":
        return ((img - lo) / (hi - lo)).astype(np.float32)
    std = float(img.std())
    return ((img - float(img.mean())) / max(std, 1e-6)).astype(np.float32)


def _size_pair(image_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(image_size, int):
        return (image_size, image_size)
    h, w = image_size
    return (int(h), int(w))


def resize(image: np.ndarray, image_size: int | Sequence[int]) -> np.ndarray:
    """Bilinear, anti-aliased resize of a 2-D array to ``image_size`` (int or (H, W))."""
    size = _size_pair(image_size)
    if tuple(image.shape) == size:
        return np.asarray(image, dtype=np.float32)
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    out = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out[0, 0].numpy()


# ------------------------------------------------------------------------ laterality
_RIGHT = re.compile(r"^(R|RIGHT)(?=$|[^A-Z]|CC|MLO|ML|LM|XCC|LMO|SIO|FB|AT|CV|TAN)")
_LEFT = re.compile(r"^(L|LEFT)(?=$|[^A-Z]|CC|MLO|ML|LM|XCC|LMO|SIO|FB|AT|CV|TAN)")


@functools.lru_cache(maxsize=1024)  # a few view names, asked for every image
def view_laterality(view: str) -> str | None:
    """'R', 'L' or None from a view name such as RCC, R-MLO, right_cc, L.

    Uses ``multiview.views.parse_view_parts`` (the case-assembly parser), with a
    simple prefix rule as fallback.
    """
    from .views import parse_view_parts

    lat, _ = parse_view_parts(str(view))
    if lat in ("L", "R"):
        return lat
    v = str(view).strip().upper()
    if _RIGHT.match(v):
        return "R"
    if _LEFT.match(v):
        return "L"
    return None


def flip_horizontal(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[..., ::-1])


# ---------------------------------------------------------------------- one view / case
@dataclass(frozen=True)
class PreprocessConfig:
    """Everything that defines the preprocessing (saved in model files and provenance)."""

    image_size: int = 256
    normalization: str = "zscore"
    clip_percentiles: tuple[float, float] = (0.5, 99.5)
    flip_right: bool = True
    slice_index: int | None = None
    crop_breast: bool = False  # multiview.crop: cut full-field views to the breast first

    def to_dict(self) -> dict:
        d = asdict(self)
        d["clip_percentiles"] = list(self.clip_percentiles)
        if not self.crop_breast:  # off: the record (model files, run configs) as before
            d.pop("crop_breast")
        return d


def preprocess_view(
    image: np.ndarray,
    *,
    image_size: int | Sequence[int] = 256,
    normalization: str = "zscore",
    clip_percentiles: tuple[float, float] = (0.5, 99.5),
    flip: bool = False,
    crop_breast: bool = False,
) -> np.ndarray:
    """Optionally crop to the breast (``multiview.crop``), normalise (robustly, at native
    resolution), resize, and optionally flip one view."""
    if crop_breast:
        from .crop import crop_breast as crop

        image = crop(image)
    img = normalize(image, normalization, low=clip_percentiles[0], high=clip_percentiles[1])
    img = resize(img, image_size)
    if flip:
        img = flip_horizontal(img)
    return img.astype(np.float32, copy=False)


def load_view(
    path: str | os.PathLike,
    view: str,
    config: PreprocessConfig = PreprocessConfig(),
    cache: Any = None,
) -> np.ndarray:
    """Load and preprocess one view; right views are flipped when ``config.flip_right``.

    ``cache`` (a ``multiview.cache.ViewCache``) returns the view preprocessed earlier with
    the same file content and settings, and stores it on a miss.
    """
    flip = config.flip_right and view_laterality(view) == "R"

    def compute() -> np.ndarray:
        image = load_image(path, slice_index=config.slice_index)
        return preprocess_view(
            image,
            image_size=config.image_size,
            normalization=config.normalization,
            clip_percentiles=tuple(config.clip_percentiles),
            flip=flip,
            crop_breast=config.crop_breast,
        )

    if cache is None or not Path(path).is_file():
        return compute()
    return cache.fetch(path, config.to_dict() | {"flip": bool(flip)}, compute)


def stack_views(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Stack N preprocessed 2-D views into one float32 ``[N, H, W]`` array."""
    if not arrays:
        raise ValueError("no views to stack")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"views differ in shape: {sorted(shapes)}")
    return np.stack(arrays, axis=0).astype(np.float32, copy=False)


def load_case(
    paths: Mapping[str, str | os.PathLike | None],
    views: Sequence[str],
    config: PreprocessConfig = PreprocessConfig(),
    *,
    blank_missing: bool = False,
    cache: Any = None,
) -> np.ndarray:
    """Load the given ``views`` (keys of ``paths``) of one case as ``[N, H, W]``
    (``cache``: a ``multiview.cache.ViewCache`` for the preprocessed views).

    A view without a path is an error, or an all-zero image with ``blank_missing``
    (the ``--missing blank`` policy of case assembly).
    """
    missing = [v for v in views if not paths.get(v)]
    if missing and not blank_missing:
        raise ImageLoadError(f"missing view(s): {', '.join(missing)}")
    size = _size_pair(config.image_size)
    return stack_views([
        load_view(paths[v], v, config, cache) if paths.get(v) else np.zeros(size, np.float32)
        for v in views
    ])


# ----------------------------------------------------------------------- augmentation
def _on(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``t`` (drawn on the CPU) where ``x`` lies; to a GPU through pinned memory and without
    blocking, since a copy from pageable memory would wait for the GPU's queue each batch."""
    if x.device.type != "cuda":
        return t.to(x.device)
    return t.pin_memory().to(x.device, non_blocking=True)


@dataclass
class Augment:
    """Training-time augmentation of a preprocessed ``[N, H, W]`` tensor.

    Each view gets its own random draw (views are separate acquisitions):

    - small random affine: rotation ±``rotate_deg`` (10°), isotropic scale in
      ``scale`` (0.9–1.1), translation up to ``translate`` (5 %) of the size;
      border pixels are filled with the view's minimum (the background);
    - intensity jitter: gamma in ``gamma`` (0.8–1.25, applied on the view rescaled
      to [0, 1] and mapped back) and contrast factor in ``contrast`` (0.9–1.1);
    - optional Poisson-like count noise (``noise_peak``: expected counts at the
      brightest pixel; off by default), natural for gamma-camera images;
    - **no horizontal flip** (``hflip_prob=0`` by default): after right views are
      flipped, left/right position is meaningful and flipping would mix it up.

    Uses torch's global RNG (on the CPU, wherever ``x`` lies), so ``torch.manual_seed``
    makes it reproducible and a resumed run restores it from the checkpoint. Works on a
    batch of views on any device (``training.batches.augment_batch``).
    """

    rotate_deg: float = 10.0
    scale: tuple[float, float] = (0.9, 1.1)
    translate: float = 0.05
    gamma: tuple[float, float] = (0.8, 1.25)
    contrast: tuple[float, float] = (0.9, 1.1)
    noise_peak: float | None = None
    hflip_prob: float = 0.0
    p_affine: float = 1.0
    p_intensity: float = 0.5

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @staticmethod
    def _uniform(n: int, lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n) * (hi - lo) + lo

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        x = x.float()
        if self.p_affine > 0:
            x = self._affine(x, n)
        if self.p_intensity > 0:
            x = self._intensity(x, n)
        if self.noise_peak:
            x = self._noise(x)
        if self.hflip_prob > 0:
            flip = _on(x, torch.rand(n) < self.hflip_prob)
            if flip.any():
                x = x.clone()
                x[flip] = x[flip].flip(-1)
        return x

    def _affine(self, x: torch.Tensor, n: int) -> torch.Tensor:
        active = (torch.rand(n) < self.p_affine).float()
        angle = self._uniform(n, -self.rotate_deg, self.rotate_deg) * math.pi / 180 * active
        scale = 1 + (self._uniform(n, *self.scale) - 1) * active
        tx = self._uniform(n, -self.translate, self.translate) * 2 * active
        ty = self._uniform(n, -self.translate, self.translate) * 2 * active
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack(
            [torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1
        )
        theta = _on(x, theta).to(x.dtype)
        grid = F.affine_grid(theta, [n, 1, *x.shape[-2:]], align_corners=False)
        floor = x.flatten(1).amin(1).view(n, 1, 1, 1)
        out = F.grid_sample(
            (x[:, None] - floor), grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        return (out + floor)[:, 0]

    def _intensity(self, x: torch.Tensor, n: int) -> torch.Tensor:
        active = torch.rand(n) < self.p_intensity
        if not active.any():
            return x
        flat = x.flatten(1)
        lo = flat.amin(1).view(n, 1, 1)
        hi = flat.amax(1).view(n, 1, 1)
        span = (hi - lo).clamp_min(1e-6)
        gamma = torch.where(active, self._uniform(n, *self.gamma), torch.ones(n)).view(n, 1, 1)
        gamma = _on(x, gamma)
        y = ((x - lo) / span).clamp(0, 1) ** gamma * span + lo
        c = torch.where(active, self._uniform(n, *self.contrast), torch.ones(n)).view(n, 1, 1)
        c = _on(x, c)
        mean = y.flatten(1).mean(1).view(n, 1, 1)
        return (y - mean) * c + mean

    def _noise(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        flat = x.flatten(1)
        lo = flat.amin(1).view(n, 1, 1)
        span = (flat.amax(1).view(n, 1, 1) - lo).clamp_min(1e-6)
        counts = ((x - lo) / span).clamp(0, 1) * float(self.noise_peak)
        noisy = torch.poisson(counts) / float(self.noise_peak)
        return noisy * span + lo
