"""HTTP for DICOMweb with a **total** deadline and a size cap per request.

``requests`` bounds each socket read (``timeout``), not the request: a server that
sends one byte every few seconds keeps a call alive for ever, and ``response.content``
holds whatever the server sends. :class:`BoundedSession` (the session ``dicomweb-client``
is given) reads every answer itself, in chunks, and

* a watchdog thread shuts the request's socket down at the deadline, wherever the
  request is (headers or body), so the call ends within ``deadline`` seconds (plus one
  poll interval) with :class:`requests.exceptions.Timeout`;
* the body is refused (:class:`AnswerTooLarge`) as soon as it passes the cap, before it
  is held whole (:func:`answer_cap` lowers the cap for one call, e.g. bulk data).

Hand-written because neither ``requests`` nor ``urllib3`` has a total-time bound
(urllib3's ``Timeout(total=...)`` is also applied per socket operation).
"""
from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from breastlab.pacs.errors import PacsError

#: largest answer read by default (DICOM JSON metadata of a large study is tens of MB)
MAX_ANSWER_BYTES = 1 << 30
_CHUNK = 1 << 16
_LOCAL = threading.local()


class AnswerTooLarge(PacsError):
    """The server's answer passed the size cap (the rest was not read)."""


def _remember(conn: Any) -> Any:
    held = getattr(_LOCAL, "conns", None)
    if held is not None:
        held.append(conn)
    return conn


class _Pool(HTTPConnectionPool):
    def _get_conn(self, timeout: float | None = None) -> Any:
        return _remember(super()._get_conn(timeout))


class _TlsPool(HTTPSConnectionPool):
    def _get_conn(self, timeout: float | None = None) -> Any:
        return _remember(super()._get_conn(timeout))


@contextlib.contextmanager
def answer_cap(max_bytes: int) -> Iterator[None]:
    """Lower the size cap of the requests made by this thread inside the block."""
    old = getattr(_LOCAL, "cap", None)
    _LOCAL.cap = max_bytes
    try:
        yield
    finally:
        _LOCAL.cap = old


def _watch(conns: list[Any], deadline: float, done: threading.Event, fired: list[bool]) -> None:
    while not done.wait(min(0.25, max(0.0, deadline - time.monotonic()))):
        if time.monotonic() >= deadline:
            fired.append(True)
            for conn in list(conns):
                sock = getattr(conn, "sock", None)
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)


class BoundedSession(requests.Session):
    """A ``requests.Session`` whose every request ends within ``deadline`` seconds and ``max_bytes``."""

    def __init__(self, deadline: float, max_bytes: int = MAX_ANSWER_BYTES) -> None:
        super().__init__()
        self.deadline, self.max_bytes = deadline, max_bytes
        for prefix in ("http://", "https://"):
            adapter = HTTPAdapter(max_retries=0)
            adapter.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TlsPool}
            self.mount(prefix, adapter)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        deadline = time.monotonic() + self.deadline
        cap = getattr(_LOCAL, "cap", None) or self.max_bytes
        conns: list[Any] = []
        done, fired = threading.Event(), []
        _LOCAL.conns = conns
        watchdog = threading.Thread(target=_watch, args=(conns, deadline, done, fired), daemon=True,
                                    name="http-deadline")
        watchdog.start()
        kwargs["stream"] = True
        kwargs["allow_redirects"] = False  # a redirect is an answer of its own: never followed blindly
        try:
            response = super().send(request, **kwargs)
            if response.is_redirect:
                response.close()
                raise PacsError(f"the server answered HTTP {response.status_code} (a redirect): not followed; "
                                "give the URL it redirects to")
            body, n = [], 0
            for chunk in response.iter_content(_CHUNK):
                n += len(chunk)
                if n > cap:
                    response.close()
                    raise AnswerTooLarge(f"{request.method} answer larger than {cap} bytes: not read further")
                body.append(chunk)
                if time.monotonic() > deadline:
                    raise requests.exceptions.Timeout("deadline")
            response._content = b"".join(body)  # what .content/.json() give, as without stream
            if "json" in response.headers.get("Content-Type", "").lower():
                _check_json_depth(response._content)
            response._content_consumed = True
            return response
        except (requests.exceptions.RequestException, OSError) as exc:
            if fired or time.monotonic() >= deadline:
                raise requests.exceptions.Timeout(f"no complete answer within {self.deadline:g} s") from None
            raise exc
        finally:
            done.set()
            _LOCAL.conns = None


#: JSON nesting accepted in an answer: DICOM JSON nests about 3 levels per sequence level
MAX_JSON_DEPTH = 200
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_CHUNK = 1 << 22


def _check_json_depth(body: bytes) -> None:
    """Refuse JSON nested deeper than ``MAX_JSON_DEPTH`` before any parser recurses into it.

    ``json.loads`` recurses per level: a body nested 100,000 deep reaches the interpreter's
    recursion limit, and objects freed that deep (a ``__del__``, a warning) fail unpredictably.
    Strings are removed (regex, C speed), every other byte but brackets is deleted, and the
    running depth is a NumPy cumulative sum over chunks of 4 Mi brackets: no Python loop over
    the body, and memory bounded by the chunk, not the answer.
    """
    import numpy as np

    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    depth = 0
    for start in range(0, len(brackets), _DEPTH_CHUNK):
        chunk = np.frombuffer(brackets, np.uint8, min(_DEPTH_CHUNK, len(brackets) - start), start)
        run = depth + np.cumsum(np.where((chunk == 0x5B) | (chunk == 0x7B), 1, -1), dtype=np.int64)
        if int(run.max()) > MAX_JSON_DEPTH:
            raise PacsError(f"the answer's JSON is nested more than {MAX_JSON_DEPTH} levels deep: refused")
        depth = int(run[-1])
