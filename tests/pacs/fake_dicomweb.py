"""A fake DICOMweb server on a loopback free port (``http.server`` in a thread) for hostile answers.

``FakeDicomWeb(answers)`` serves ``/dicom-web/studies`` (QIDO-RS), ``/dicom-web/studies/<uid>/metadata``
(WADO-RS) and ``/dicom-web/bulk/<name>`` from ``answers``: a key (``"qido"``, ``"metadata:<uid>"``,
``"bulk:<name>"``) maps to bytes, or to a callable ``(handler) -> None`` that writes the answer itself
(trickling, endless streams). ``sent`` counts the body bytes each key got out before the client hung up.
"""
from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable
from typing import Any

import pydicom


class FakeDicomWeb:
    """Start with ``with FakeDicomWeb(answers) as server:``; ``server.url`` is the DICOMweb root."""

    def __init__(self, answers: dict[str, bytes | Callable[[Any], None]]) -> None:
        self.answers = answers
        self.sent: dict[str, int] = {}
        self.stop = threading.Event()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?", 1)[0].removeprefix("/dicom-web")
                key = ("qido" if path == "/studies" else
                       f"metadata:{path.split('/')[2]}" if path.endswith("/metadata") else
                       f"bulk:{path.rsplit('/', 1)[-1]}" if path.startswith("/bulk/") else "")
                answer = fake.answers.get(key)
                try:
                    if answer is None:
                        self.send_response(404)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                    elif callable(answer):
                        answer(self, fake, key)
                    else:
                        self.send_response(200)
                        ctype = "application/octet-stream" if key.startswith("bulk:") else "application/dicom+json"
                        self.send_header("Content-Type", ctype)
                        self.send_header("Content-Length", str(len(answer)))
                        self.end_headers()
                        self.wfile.write(answer)
                        fake.sent[key] = len(answer)
                except OSError:  # the client hung up
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/dicom-web"

    def __enter__(self) -> FakeDicomWeb:
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def trickle(handler: Any, fake: FakeDicomWeb, key: str, *, every: float = 0.2) -> None:
    """Headers at once, then one byte of a never-ending JSON array every ``every`` seconds."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/dicom+json")
    handler.send_header("Content-Length", str(1 << 30))
    handler.end_headers()
    handler.wfile.write(b"[")
    while not fake.stop.wait(every):
        handler.wfile.write(b" ")
        handler.wfile.flush()


def endless(handler: Any, fake: FakeDicomWeb, key: str, *, total: int = 200 << 20) -> None:
    """``total`` bytes of octet-stream in 1 MiB writes, counting what got out."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/octet-stream")
    handler.send_header("Content-Length", str(total))
    handler.end_headers()
    block = bytes(1 << 20)
    fake.sent[key] = 0
    for _ in range(total >> 20):
        if fake.stop.is_set():
            return
        handler.wfile.write(block)
        fake.sent[key] += len(block)


def qido(*uids: str) -> bytes:
    return json.dumps([{"0020000D": {"vr": "UI", "Value": [u]}} for u in uids]).encode()


def metadata_of(paths: list[Any], bulk_base: str | None = None) -> tuple[str, bytes]:
    """(StudyInstanceUID, WADO-RS metadata JSON) of real files; bulk elements point at ``bulk_base``."""
    items, study = [], ""
    for p in paths:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        study = str(ds.StudyInstanceUID)
        items.append(ds.to_json_dict(bulk_data_threshold=4096, suppress_invalid_tags=True,
                                     bulk_data_element_handler=lambda el: f"{bulk_base or 'http://x'}/bulk/{el.tag:08X}"))
    return study, json.dumps(items).encode()
