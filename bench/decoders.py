"""DICOM decoders for full-field mammograms: every pydicom decoding plugin on every
lossless transfer syntax it can read, on an image of mammography size, in one run.

    .venv/bin/python bench/decoders.py [--rows 4736 --cols 2624] [--repeat 3]
    PYTHONPATH=/tmp/extra .venv/bin/python bench/decoders.py    # with python-gdcm, pylibjpeg-rle

Image: a synthetic full-field mammogram (``--rows`` x ``--cols``, 16-bit stored / 12-bit
used, a breast-shaped region of textured tissue on a zero background, as CBIS-DDSM's
4736 x 2624 views), encoded with pydicom's encoders as RLE Lossless, JPEG-LS Lossless and
JPEG 2000 Lossless (the lossless JPEG Process 14 of ``--jpeg-ll`` comes from a file, since
no Python encoder writes it). Each plugin that pydicom finds for a syntax
(``pydicom.pixels.get_decoder(uid).available_plugins``: ``pydicom`` (native RLE),
``pylibjpeg`` (with pylibjpeg-libjpeg / -openjpeg / -rle), ``pyjpegls``, ``gdcm``,
``pillow``) decodes the file ``--repeat`` times; the best time is kept and every result is
checked against the original pixels (lossless). Printed: ms per image, megapixels/s and the
ratio to the fastest plugin of that syntax.
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np


def phantom(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """A breast-shaped 12-bit image on a zero background (left-facing, chest wall at x=0)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    cy, ry, rx = rows / 2, rows * 0.42, cols * 0.8
    inside = ((y - cy) / ry) ** 2 + (x / rx) ** 2 <= 1
    tissue = 1800 + 900 * np.sin(x / 37.0) * np.cos(y / 53.0) + rng.normal(0, 120, (rows, cols))
    img = np.where(inside, tissue, 0).clip(0, 4095)
    return img.astype(np.uint16)


def dataset(pixels: np.ndarray):
    """A minimal Digital Mammography-like dataset holding ``pixels`` (uncompressed)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.tobytes()
    return ds


def encoded(pixels: np.ndarray) -> dict[str, bytes]:
    """The image as a DICOM file per lossless syntax an available encoder writes."""
    from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

    out = {}
    for uid in (RLELossless, JPEGLSLossless, JPEG2000Lossless):
        ds = dataset(pixels)
        try:
            ds.compress(uid)
        except Exception as exc:  # noqa: BLE001 - a missing encoder: the syntax is left out
            print(f"{uid.name}: no encoder ({exc})")
            continue
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out[uid.name] = buf.getvalue()
    return out


def measure(name: str, data: bytes, reference: np.ndarray | None, repeat: int) -> list[tuple]:
    """(syntax, plugin, best seconds, megapixels, correct) per available plugin."""
    import pydicom
    from pydicom.pixels import get_decoder, pixel_array

    ds = pydicom.dcmread(io.BytesIO(data))
    uid = ds.file_meta.TransferSyntaxUID
    try:
        plugins = get_decoder(uid).available_plugins
    except Exception:  # noqa: BLE001 - no decoder at all
        plugins = ()
    rows = []
    for plugin in plugins:
        best, arr = float("inf"), None
        try:
            for _ in range(repeat):
                t0 = time.perf_counter()
                arr = pixel_array(io.BytesIO(data), decoding_plugin=plugin)
                best = min(best, time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 - report and go on
            print(f"{name} / {plugin}: failed ({type(exc).__name__}: {exc})")
            continue
        ok = reference is None or np.array_equal(arr, reference)
        rows.append((name, plugin, best, arr.size / 1e6, ok))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=4736)
    ap.add_argument("--cols", type=int, default=2624)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--jpeg-ll", type=Path, nargs="*", default=[
        Path("../shared/data/dcmqa/transfer_syntax/In")],
        help="files or folders with other syntaxes (e.g. JPEG Lossless) to time as well")
    args = ap.parse_args(argv)
    import pydicom

    pixels = phantom(args.rows, args.cols)
    print(f"pydicom {pydicom.__version__}; image {args.rows} x {args.cols}, 12-bit; "
          f"best of {args.repeat}")
    files = {name: (data, pixels) for name, data in encoded(pixels).items()}
    for p in args.jpeg_ll:
        for f in sorted(p.glob("*.dcm") if p.is_dir() else [p]):
            try:
                ds = pydicom.dcmread(f, stop_before_pixels=True)
            except Exception:  # noqa: BLE001
                continue
            uid = ds.file_meta.TransferSyntaxUID
            if uid.is_compressed and uid.name not in files:
                files[uid.name] = (f.read_bytes(), None)
    rows = []
    for name, (data, ref) in files.items():
        rows += measure(name, data, ref, args.repeat)
    print(f"{'transfer syntax':58s} {'plugin':10s} {'ms':>9s} {'MPix/s':>8s} {'vs best':>8s} ok")
    for name in files:
        mine = [r for r in rows if r[0] == name]
        if not mine:
            continue
        fastest = min(r[2] for r in mine)
        for _, plugin, sec, mpix, ok in sorted(mine, key=lambda r: r[2]):
            print(f"{name[:58]:58s} {plugin:10s} {sec * 1e3:9.1f} {mpix / sec:8.1f} "
                  f"{sec / fastest:8.2f} {'yes' if ok else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
