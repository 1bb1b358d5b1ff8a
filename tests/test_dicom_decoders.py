"""The fastest installed decoding plugin per transfer syntax (dicom/pixels.py), with a
fallback to every other plugin when it cannot read a file."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.uid import RLELossless  # noqa: E402

from breastlab.dicom import pixels  # noqa: E402


def _rle_file(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from decoders import dataset, phantom

    img = phantom(64, 48)
    ds = dataset(img)
    ds.compress(RLELossless)
    path = tmp_path / "rle.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path, img


def test_rle_is_decoded_by_the_fastest_plugin_and_is_lossless(tmp_path):
    path, img = _rle_file(tmp_path)
    expected = "pylibjpeg" if importlib.util.find_spec("rle") else "pydicom"
    assert pixels.decoding_plugin(str(RLELossless)) == expected
    assert pixels.decoding_plugin("1.2.840.10008.1.2.1") == ""   # uncompressed: pydicom's own
    assert np.array_equal(pixels.read_view(path), img.astype(np.float32))


def test_a_plugin_that_fails_falls_back_to_the_others(tmp_path, monkeypatch):
    path, img = _rle_file(tmp_path)
    monkeypatch.setattr(pixels, "decoding_plugin", lambda uid: "pyjpegls")  # cannot read RLE
    assert np.array_equal(pixels.read_view(path), img.astype(np.float32))
