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
