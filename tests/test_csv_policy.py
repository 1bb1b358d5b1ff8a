"""CSV cells are safe by default (no control characters, no live formulas) and verbatim on request."""
from __future__ import annotations

import csv

import pytest

from breastlab.core import atomic
from breastlab.core.csvcells import safe_cell


@pytest.mark.parametrize("raw, safe", [
    ("=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"),
    ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1+1", "'=1+1"),
    ("\r=1", "'=1"),
    ("ax\x1b[31mred\x1b[0m", "ax[31mred[0m"),
    ("two\nlines\r\n", "twolines"),
    ("bidi\u202eevil", "bidievil"),
    ("-1.5", "-1.5"), ("+3", "+3"), ("-1e-3", "-1e-3"),
    ("T1 fl3d", "T1 fl3d"), ("", ""), ("caf\udcff.dcm", "caf\udcff.dcm"),
])
def test_safe_cell(raw, safe):
    assert safe_cell(raw) == safe


def test_numbers_are_untouched():
    assert safe_cell(-1.5) == -1.5 and safe_cell(0) == 0 and safe_cell(None) is None


def _write(tmp_path, monkeypatch, verbatim):
    if verbatim:
        monkeypatch.setenv("BREASTLAB_CSV_VERBATIM", "1")
    else:
        monkeypatch.delenv("BREASTLAB_CSV_VERBATIM", raising=False)
    path = tmp_path / "t.csv"
    atomic.write_csv(path, [{"a": "=HYPERLINK(\"x\")", "b": "esc\x1b]0;t\x07", "c": -2.5}], ["a", "b", "c"])
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_write_csv_is_safe_by_default_and_verbatim_on_request(tmp_path, monkeypatch):
    (row,) = _write(tmp_path, monkeypatch, verbatim=False)
    assert row == {"a": "'=HYPERLINK(\"x\")", "b": "esc]0;t", "c": "-2.5"}
    (row,) = _write(tmp_path, monkeypatch, verbatim=True)
    assert row == {"a": "=HYPERLINK(\"x\")", "b": "esc\x1b]0;t\x07", "c": "-2.5"}


def test_stream_writer_follows_the_policy(tmp_path, monkeypatch):
    from breastlab.mri.stream import StreamWriter

    monkeypatch.delenv("BREASTLAB_CSV_VERBATIM", raising=False)
    w = StreamWriter(tmp_path, ["d"], ["p"])
    w.series([{"d": "=1+1\x1b[2J"}])
    w.instances([{"p": "@x"}])
    w.close()
    assert (tmp_path / "series.csv").read_text().splitlines()[1] == "'=1+1[2J"
    assert (tmp_path / "instances.csv").read_text().splitlines()[1] == "'@x"


def test_tsv_newline_never_splits_a_row(tmp_path, monkeypatch):
    from breastlab.convert.layouts.common import TreeWriter

    monkeypatch.setenv("BREASTLAB_CSV_VERBATIM", "1")  # even verbatim: quoted by the csv module
    w = TreeWriter(tmp_path)
    w.write_tsv("conversion.tsv", [{"id": "u1", "message": "failed:\nline two\tx"}, {"id": "u2", "message": None}],
                ["id", "message"])
    with open(tmp_path / "conversion.tsv", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    assert rows == [["id", "message"], ["u1", "failed:\nline two\tx"], ["u2", "n/a"]]


def test_sort_outputs_are_safe_by_default_and_verbatim_with_the_option(tmp_path, monkeypatch):
    """The issue's case: header text with ESC sequences and `=HYPERLINK(` reaching series.csv."""
    import pydicom
    from cli_helpers import invoke

    from breastlab.phantom.mri import write_mri_phantom

    monkeypatch.setenv("BREASTLAB_CSV_VERBATIM", "0")  # restored after the test (the option sets it)
    write_mri_phantom(tmp_path / "ph", matrix=16, n_slices=4)
    exam = tmp_path / "ph" / "GE"
    evil = '=HYPERLINK("http://x","y")\x1b[31m'
    first = sorted(p for p in exam.rglob("*") if p.is_file())
    series = None
    for p in first:
        ds = pydicom.dcmread(p)
        if series is None:
            series = ds.SeriesInstanceUID
        if ds.SeriesInstanceUID == series:
            ds.SeriesDescription = evil
            ds.save_as(p)
    invoke(["sort", exam, "--out", tmp_path / "safe", "--no-progress", "-j", "1"])
    invoke(["--csv-verbatim", "sort", exam, "--out", tmp_path / "raw", "--no-progress", "-j", "1"])

    def descriptions(out):
        with open(out / "series.csv", newline="", encoding="utf-8") as fh:
            return {r["series_description"] for r in csv.DictReader(fh)}

    assert "'" + evil.replace("\x1b", "") in descriptions(tmp_path / "safe")
    assert not any("\x1b" in d or d.startswith("=") for d in descriptions(tmp_path / "safe"))
    assert evil in descriptions(tmp_path / "raw")
