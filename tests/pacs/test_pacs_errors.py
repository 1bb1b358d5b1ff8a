"""A PACS that refuses, fails, hangs or drops us: one-line error, non-zero exit, no outputs."""
from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from breastlab.cli.main import app
from breastlab.pacs.address import credentials_for, parse_pacs_url
from breastlab.pacs.errors import PacsError
from breastlab.pacs.orthanc import free_port

runner = CliRunner()


class _Handler(http.server.BaseHTTPRequestHandler):
    mode = "500"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.mode == "hang":
            time.sleep(3)
        try:
            self.send_response(500 if self.mode == "500" else 200)
            self.send_header("Content-Type", "application/dicom+json")
            self.end_headers()
            self.wfile.write(b"[]" if self.mode != "500" else b"boom")
        except OSError:  # the client gave up (timeout test)
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=["500", "hang"])
def bad_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    handler = type("H", (_Handler,), {"mode": request.param})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield request.param, f"http://127.0.0.1:{server.server_address[1]}/dicom-web"
    finally:
        server.shutdown()
        server.server_close()


def one_line_failure(result, out) -> None:  # noqa: ANN001
    assert result.exit_code == 3  # the server failed us mid-run (core.errors)
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("breastlab pacs "), result.output
    assert ": error: " in lines[0], result.output
    assert not out.exists()


def test_http_500_and_timeout(bad_server, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    mode, url = bad_server
    monkeypatch.setenv("NETRC", "/dev/null")
    got = runner.invoke(app, ["pacs", "sort", url, "--out", str(tmp_path / "out"), "--timeout", "0.5",
                              "--no-progress"])
    one_line_failure(got, tmp_path / "out")
    assert ("HTTP 500" if mode == "500" else "did not answer within 0.5 s") in got.output


def test_wrong_password_is_http_401(orthanc, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("BREASTLAB_PACS_USER", orthanc.server.username)
    monkeypatch.setenv("BREASTLAB_PACS_PASSWORD", "wrong-password-xyz")
    got = runner.invoke(app, ["pacs", "sort", orthanc.dicomweb_url, "--out", str(tmp_path / "out"), "--no-progress"])
    one_line_failure(got, tmp_path / "out")
    assert "HTTP 401" in got.output and "wrong-password-xyz" not in got.output


def test_connection_refused_and_dropped_association(tmp_path) -> None:  # noqa: ANN001
    port = free_port()  # nothing listens there
    got = runner.invoke(app, ["pacs", "sort", f"http://127.0.0.1:{port}/dicom-web", "--out", str(tmp_path / "a"),
                              "--no-progress", "--timeout", "2"])
    one_line_failure(got, tmp_path / "a")
    assert "cannot connect" in got.output
    # a DICOM peer that accepts the TCP connection and closes it at once
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    stop = threading.Event()

    def drop() -> None:
        sock.settimeout(0.1)
        for _ in range(200):  # bounded: at most ~20 s
            if stop.is_set():
                return
            try:
                conn, _ = sock.accept()
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=drop, daemon=True)
    thread.start()
    try:
        got = runner.invoke(app, ["pacs", "sort", f"dicom://PACS@127.0.0.1:{sock.getsockname()[1]}", "--out",
                                  str(tmp_path / "b"), "--no-progress", "--timeout", "2"])
    finally:
        stop.set()
        thread.join(5)
        sock.close()
    one_line_failure(got, tmp_path / "b")
    assert "cannot associate" in got.output


def test_credentials_never_from_the_url(monkeypatch, tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(PacsError, match="credentials in the URL"):
        parse_pacs_url("http://user:pw@127.0.0.1:8042/dicom-web")
    netrc = tmp_path / "netrc"
    netrc.write_text("machine pacs.example login alice password n3tpw\n")
    netrc.chmod(0o600)
    monkeypatch.delenv("BREASTLAB_PACS_USER", raising=False)
    monkeypatch.delenv("BREASTLAB_PACS_TOKEN", raising=False)
    monkeypatch.setenv("NETRC", str(netrc))
    creds = credentials_for("pacs.example")
    assert (creds.username, creds.password, creds.source) == ("alice", "n3tpw", "netrc")
    assert "n3tpw" not in repr(creds)
    monkeypatch.setenv("BREASTLAB_PACS_USER", "bob")
    monkeypatch.setenv("BREASTLAB_PACS_PASSWORD", "envpw")
    assert credentials_for("pacs.example").source == "environment"
    assert parse_pacs_url("dicom://PACS@127.0.0.1:104").called_aet == "PACS"
    with pytest.raises(PacsError):
        parse_pacs_url("dicom://127.0.0.1:104")
