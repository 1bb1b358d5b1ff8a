"""DICOM pixel data: the one place that decodes it, for every path of the toolkit.

* ``read_view`` (``read_view_and_header`` with the dataset): one 2-D view for four-view / one-view diagnosis (``multiview.preprocess``):
  rescaled (slope, intercept), the middle (or given) frame of a multi-frame file, colour as
  luminance, MONOCHROME1 inverted so that bright = high value;
* ``read_slice``: one MRI slice with its geometry (``seriesmodels.volumes``, used by the
  series models and DCE phase ordering): rescaled pixels as stored, colour averaged, and
  ImagePositionPatient / ImageOrientationPatient / PixelSpacing.

One frame of an enhanced multi-frame file with uncompressed little-endian pixels is read
without parsing its Per-frame Functional Groups (``_multiframe_native``: 10x faster on
Siemens XA files, identical pixels; anything unusual falls back to the whole-file read).
Otherwise decoding is pydicom's, through the fastest installed plugin for the transfer syntax
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

    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # noqa: BLE001 - not DICOM, truncated, unreadable: one line for the caller
        raise PixelDataError(f"{path}: not readable as DICOM ({type(exc).__name__})") from None
    return ds, _pixel_array(ds, path)


def _pixel_array(ds, path: str | os.PathLike) -> np.ndarray:  # noqa: ANN001 - a pydicom Dataset
    """The decoded pixels of ``ds``, through the preferred plugin first (module docstring)."""
    if "PixelData" not in ds:
        raise PixelDataError(f"{path}: DICOM file has no pixel data")
    plugin = decoding_plugin(str(getattr(ds.file_meta, "TransferSyntaxUID", "") or ""))
    if plugin:
        try:
            ds.pixel_array_options(decoding_plugin=plugin)
            return ds.pixel_array
        except Exception:  # noqa: BLE001 - this plugin cannot read this file: try them all
            ds.pixel_array_options(decoding_plugin="")
    try:
        return ds.pixel_array
    except Exception as exc:  # missing decoder, corrupt stream
        raise PixelDataError(f"{path}: cannot decode pixel data ({exc})") from exc


#: (5200,9230) Per-frame Functional Groups Sequence: thousands of nested items in an enhanced file
_PER_FRAME_GROUPS = 0x52009230


def _multiframe_native(path: str | os.PathLike):  # noqa: ANN202 - (Dataset, array) or None
    """An enhanced (multi-frame) file with uncompressed little-endian pixels, without parsing its per-frame groups.

    pydicom parses the whole Per-frame Functional Groups Sequence before the pixel data
    (0.1-0.4 s for a 39-frame Siemens XA file, profiled), though the pixels need none of it.
    Here the header is read up to that sequence, the pixel data element is taken from the
    end of the file (its length follows from Rows, Columns, samples, bits and frames, and
    its tag, VR and length are checked), and pydicom decodes it as usual. ``None`` when
    any of that does not hold (compressed, big-endian, trailing elements, 1-bit data):
    the caller then reads the file whole.
    """
    from pydicom.filereader import read_dataset, read_partial

    with open(path, "rb") as fh:
        ds = read_partial(fh, stop_when=lambda tag, vr, length: tag >= _PER_FRAME_GROUPS)
        ts = ds.file_meta.get("TransferSyntaxUID") if getattr(ds, "file_meta", None) is not None else None
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
        bits = int(ds.get("BitsAllocated", 0) or 0)
        if (n_frames < 2 and ts is not None and ts.is_little_endian and not ts.is_deflated
                and "PixelData" not in ds):
            # a single frame: go on from where the partial read stopped (pydicom rewinds to the
            # element), rather than parsing the header a second time in a whole-file read
            ds.update(read_dataset(fh, ts.is_implicit_VR, True))
            return ds, _pixel_array(ds, path)
        if (ts is None or ts.is_compressed or not ts.is_little_endian or n_frames < 2 or bits not in (8, 16, 32)
                or "PixelData" in ds or not ds.get("Rows") or not ds.get("Columns")):
            return None
        length = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1) * bits // 8 * n_frames
        length += length % 2
        size = os.fstat(fh.fileno()).st_size
        head = 12 if ts.is_implicit_VR is False else 8
        if size < length + head:
            return None
        fh.seek(size - length - head)
        element = fh.read(head)
        if element[:4] != b"\xe0\x7f\x10\x00" or int.from_bytes(element[-4:], "little") != length:
            return None
        if head == 12 and (element[4:6] not in (b"OW", b"OB") or element[6:8] != b"\0\0"):
            return None
        ds.add_new(0x7FE00010, "OB" if bits == 8 else "OW", fh.read(length))
    return ds, ds.pixel_array


def read_view(path: str | os.PathLike, frame: int | None = None) -> np.ndarray:
    """One view as float32 (module docstring); ``frame`` picks a frame of a multi-frame file."""
    return read_view_and_header(path, frame)[0]


def read_view_and_header(path: str | os.PathLike, frame: int | None = None):  # noqa: ANN201 - (array, Dataset)
    """``read_view`` and the pydicom dataset it was read from (for callers that also want header values)."""
    fast = None
    try:
        fast = _multiframe_native(path)
    except Exception:  # noqa: BLE001 - any surprise: the whole-file read below decides
        fast = None
    ds, arr = fast if fast is not None else _decoded(path)
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
    return arr, ds


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
