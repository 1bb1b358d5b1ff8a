"""`pacs sort` against a hostile DICOMweb server: odd shapes, deep nesting, trickling, huge bulk data,
credentials in the URL. One line, no traceback, bounded time and memory."""
from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest
from cli_helpers import invoke
from conftest import require

from pacs.fake_dicomweb import FakeDicomWeb, endless, metadata_of, qido, trickle

UID = "1.2.3.4"
DEEP = b"[" * 100_000 + b"]" * 100_000
SHAPES = {
    "string": b'"x"', "number": b"42", "null": b"null", "object": b'{"a": 1}', "scalars": b"[1, 2]",
    "nested-list": b"[[]]", "elem-not-object": b'[{"0008103E": 5}]',
    "value-not-list": b'[{"0008103E": {"vr": "LO", "Value": {"a": 1}}}]', "bad-key": b'[{"zz": {}}]',
    "sq-item-scalar": b'[{"00081115": {"vr": "SQ", "Value": [1]}}]', "deep-array": DEEP,
    "deep-object": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "uid-list": b'[{"0020000D": {"vr": "UI", "Value": [[]]}}]',
    "pn-bad": b'[{"00100010": {"vr": "PN", "Value": [{"Alphabetic": 5}]}}]',
    "bulk-not-string": b'[{"00291010": {"vr": "OB", "BulkDataURI": 5}}]', "not-json": b"<html>",
    "vr-bad": b'[{"00080060": {"vr": 7, "Value": ["MR"]}}]',
    "deep-sq": json.dumps([{"00081115": {"vr": "SQ", "Value": [{}]}}]).replace("{}", '{"00081115": {"vr": "SQ", "Value": [{}]}}' * 1, 1).encode(),
}
QIDO_SHAPES = {"q-object": b'{"x": 1}', "q-string": b'"s"', "q-scalars": b"[5]",
               "q-uid-number": b'[{"0020000D": {"Value": [5]}}]', "q-deep": DEEP, "q-uid-path": qido("../../x")}


def sort_cli(url: str, out: Path, *extra: str):
    res = invoke(["pacs", "sort", url, "--out", out, "--no-progress", "--timeout", "10", *extra], ok=False)
    assert res.exit_code in (0, 1, 2, 3), res.output  # done, nothing to sort, bad usage, failed (README)
    if res.exit_code:  # one error line, last; before it only warnings (or the empty sort's table)
        lines = res.output.strip().splitlines()
        assert lines[-1].startswith("breastlab pacs sort: error: "), res.output
        assert res.exit_code == 1 or all(line.startswith("breastlab pacs sort: warning: ")
                                         for line in lines[:-1]), res.output
    return res


@pytest.fixture(autouse=True)
def no_credentials(monkeypatch):
    monkeypatch.setenv("NETRC", "/dev/null")
    for name in ("BREASTLAB_PACS_USER", "BREASTLAB_PACS_PASSWORD", "BREASTLAB_PACS_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_metadata_of_any_shape_is_one_line(name, tmp_path):
    with FakeDicomWeb({"qido": qido(UID), f"metadata:{UID}": SHAPES[name]}) as server:
        res = sort_cli(server.url, tmp_path / "out")
    assert res.exit_code in (1, 3)  # the bad instance skipped (nothing left), or the answer refused


@pytest.mark.parametrize("name", sorted(QIDO_SHAPES))
def test_qido_answers_of_any_shape_are_one_line(name, tmp_path):
    with FakeDicomWeb({"qido": QIDO_SHAPES[name]}) as server:
        res = sort_cli(server.url, tmp_path / "out")
    assert res.exit_code in (1, 3) and not (tmp_path / "out").exists()  # nothing matched, or refused


def test_the_timeout_bounds_the_whole_request(tmp_path):
    """A server that sends one byte every 0.2 s: the request ends at the deadline, not never."""
    got = {}
    with FakeDicomWeb({"qido": trickle}) as server:
        worker = threading.Thread(target=lambda: got.update(res=sort_cli(server.url, tmp_path / "o", "--timeout", "1")),
                                  daemon=True)
        worker.start()
        worker.join(60)
        finished = not worker.is_alive()
    assert finished, "pacs sort still running 60 s after a 1 s deadline"
    assert "did not answer within 1 s" in got["res"].output


def test_bulk_data_is_capped_while_reading(shared_data, tmp_path):
    folder = require(shared_data / "dcmqa" / "siemens_mosaic_nibabel" / "In" / "dwi_b1000")
    files = sorted(p for p in folder.iterdir() if p.is_file())[:1]
    answers = {}
    with FakeDicomWeb(answers) as server:
        study, meta = metadata_of(files, bulk_base=server.url)
        if b"/bulk/00291010" not in meta:
            pytest.skip("no CSA image header sent as bulk data")
        answers.update({"qido": qido(study), f"metadata:{study}": meta, "bulk:00291010": endless})
        res = sort_cli(server.url, tmp_path / "out")
        sent = server.sent.get("bulk:00291010", 0)
    assert res.exit_code == 0, res.output
    assert 0 < sent < 64 << 20, sent  # 200 MiB offered; the client stopped reading after ~1 MiB


@pytest.mark.parametrize("suffix", ["?password=s3cret", "?access_token=s3cret", "#s3cret", "@@userinfo"])
def test_credentials_anywhere_in_the_url_are_refused(suffix, shared_data, tmp_path):
    files = sorted(require(shared_data / "dcmqa" / "ge" / "In" / "01_Ax_DWI_TENSOR_R2").iterdir())[:2]
    study, meta = metadata_of(files)
    with FakeDicomWeb({"qido": qido(study), f"metadata:{study}": meta}) as server:
        url = server.url.replace("http://", "http://u:s3cret@") if suffix == "@@userinfo" else server.url + suffix
        res = sort_cli(url, tmp_path / "out")
        clean = sort_cli(server.url, tmp_path / "clean")  # the same server without them sorts
    assert clean.exit_code == 0, clean.output
    assert res.exit_code == 2 and "s3cret" not in res.output  # bad usage: nothing was asked
    assert not (tmp_path / "out").exists()


def test_provenance_never_records_url_credentials(monkeypatch):
    from breastlab.core.provenance import run_manifest

    monkeypatch.setattr(sys, "argv", ["breastlab", "listen", "--write-back", "https://u:pw1@h/dw?token=pw2#pw3"])
    command = run_manifest({})["command"]
    assert "pw1" not in command and "pw2" not in command and "pw3" not in command and "https://" in command


def _redirect(handler, fake, key):
    handler.send_response(302)
    handler.send_header("Location", "http://127.0.0.1:9/elsewhere?token=s3cret")
    handler.send_header("Content-Length", "0")
    handler.end_headers()


def test_a_redirect_is_not_followed(tmp_path):
    with FakeDicomWeb({"qido": _redirect}) as server:
        res = sort_cli(server.url, tmp_path / "out")
    assert res.exit_code == 3 and "redirect" in res.output and "s3cret" not in res.output


def test_json_depth_is_checked_in_bounded_chunks_and_ignores_strings(monkeypatch):
    from breastlab.pacs import http
    from breastlab.pacs.errors import PacsError

    monkeypatch.setattr(http, "_DEPTH_CHUNK", 7)  # depth carried across many chunk boundaries
    http._check_json_depth(b"[" * 200 + b"]" * 200)
    http._check_json_depth(b'["' + b"[" * 500 + b'", {"a": [1, "\\"]"]}]')  # brackets in strings
    with pytest.raises(PacsError, match="nested more than 200"):
        http._check_json_depth(b"[{" * 101 + b"}]" * 101)
