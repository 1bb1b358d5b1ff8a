"""DICOM pixel data: the one place that decodes it, for every path of the toolkit.

* ``read_view``: one 2-D view for four-view / one-view diagnosis (``multiview.preprocess``):
  rescaled (slope, intercept), the middle (or given) frame of a multi-frame file, colour as
  luminance, MONOCHROME1 inverted so that bright = high value;
* ``read_slice``: one MRI slice with its geometry (``seriesmodels.volumes``, used by the
  series models and DCE phase ordering): rescaled pixels as stored, colour averaged, and
  ImagePositionPatient / ImageOrientationPatient / PixelSpacing.

Decoding is pydicom's, through the fastest installed plugin for the transfer syntax
(``PREFERRED_PLUGINS``, measured by ``bench/decoders.py`` on a 4736 x 2624 mammogram:
pylibjpeg-rle decodes RLE 6.5x faster than pydicom's own decoder, pyjpegls JPEG-LS 3.8x
faster than pylibjpeg, and GDCM, when installed (``pip install python-gdcm``), JPEG 2000
and lossless JPEG about 2x faster than pylibjpeg); if that plugin fails on a file, every
other installed one is tried. A file without pixel data or with an undecodable stream
raises ``PixelDataError`` with a one-line reason.
Header-only reading is ``dicom.headers``'s.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DICOM_SUFFIXES = {".dcm", ".dicom", ".ima"}


class PixelDataError(ValueError):
    """A DICOM file's pixel data cannot be read; the message says why."""


def is_dicom(path: str | os.PathLike) -> bool:
    """A DICOM suffix, or the ``DICM`` magic at byte 128."""
    p = Path(path)
    if p.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(p, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def rgb_to_grey(arr: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luminance of the first three channels (last axis)."""
    rgb = arr[..., :3].astype(np.float32)
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


#: Decoding plugins per transfer syntax, fastest first (docs/benchmarks.md, "DICOM decoders").
PREFERRED_PLUGINS: dict[str, tuple[str, ...]] = {
    "1.2.840.10008.1.2.5": ("pylibjpeg", "pydicom", "gdcm"),      # RLE Lossless
    "1.2.840.10008.1.2.4.80": ("pyjpegls", "gdcm", "pylibjpeg"),  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81": ("pyjpegls", "gdcm", "pylibjpeg"),  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90": ("gdcm", "pylibjpeg", "pillow"),    # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91": ("gdcm", "pylibjpeg", "pillow"),    # JPEG 2000
    "1.2.840.10008.1.2.4.70": ("gdcm", "pylibjpeg"),              # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.57": ("gdcm", "pylibjpeg"),              # JPEG Lossless
}


@functools.lru_cache(maxsize=None)
def decoding_plugin(transfer_syntax: str) -> str:
    """The fastest installed decoding plugin for ``transfer_syntax`` ('' = pydicom's choice)."""
    prefs = PREFERRED_PLUGINS.get(str(transfer_syntax))
    if not prefs:
        return ""
    try:
        from pydicom.pixels import get_decoder

        available = get_decoder(transfer_syntax).available_plugins
    except Exception:  # noqa: BLE001 - no decoder registered: pydicom says why later
        return ""
    return next((p for p in prefs if p in available), "")


def _decoded(path: str | os.PathLike):
    import pydicom

    ds = pydicom.dcmread(path)
    if "PixelData" not in ds:
        raise PixelDataError(f"{path}: DICOM file has no pixel data")
    plugin = decoding_plugin(str(getattr(ds.file_meta, "TransferSyntaxUID", "") or ""))
    if plugin:
        try:
            ds.pixel_array_options(decoding_plugin=plugin)
            return ds, ds.pixel_array
        except Exception:  # noqa: BLE001 - this plugin cannot read this file: try them all
            ds.pixel_array_options(decoding_plugin="")
    try:
        return ds, ds.pixel_array
    except Exception as exc:  # missing decoder, corrupt stream
        raise PixelDataError(f"{path}: cannot decode pixel data ({exc})") from exc


def read_view(path: str | os.PathLike, frame: int | None = None) -> np.ndarray:
    """One view as float32 (module docstring); ``frame`` picks a frame of a multi-frame file."""
    ds, arr = _decoded(path)
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if n_frames > 1:
        arr = arr[arr.shape[0] // 2 if frame is None else frame]
    arr = arr.astype(np.float32)
    if samples > 1:  # colour DICOM (e.g. a secondary capture): luminance
        arr = rgb_to_grey(arr)
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    arr = arr * slope + intercept
    if str(getattr(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        arr = arr.max() + arr.min() - arr  # invert so that bright = high value
    return arr


@dataclass(frozen=True)
class SlicePixels:
    """Rescaled pixels of one slice and where it lies (patient coordinates, mm)."""

    pixels: np.ndarray
    position: tuple[float, ...] | None
    orientation: tuple[float, ...] | None
    spacing: tuple[float, ...] | None


def read_slice(path: str | os.PathLike) -> SlicePixels:
    """Pixel data (rescaled, as stored) and geometry of a single-frame DICOM file."""
    ds, arr = _decoded(path)
    pixels = arr.astype(np.float32)
    if pixels.ndim == 3 and ds.get("SamplesPerPixel", 1) > 1:
        pixels = pixels.mean(axis=-1)
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    pixels = pixels * slope + intercept

    def _tuple(name: str) -> tuple[float, ...] | None:
        value = ds.get(name)
        return tuple(float(v) for v in value) if value is not None else None

    return SlicePixels(pixels, _tuple("ImagePositionPatient"), _tuple("ImageOrientationPatient"),
                       _tuple("PixelSpacing"))
