"""A private Orthanc for tests, benchmarks and trying breastlab out (loopback only).

``OrthancServer`` writes a configuration into its own folder (authentication on,
remote access off, DICOMweb plug-in loaded, storage inside the folder), starts
``Orthanc`` on free loopback ports and stops it by its own process id. Nothing
here touches a system-wide Orthanc (``/etc/orthanc``, ``/var/lib/orthanc``).

>>> with OrthancServer(tmp_dir) as pacs:                     # doctest: +SKIP
...     pacs.upload_files(paths)
...     print(pacs.dicomweb_url, pacs.dimse_url)
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: where Debian's packages put things (``dpkg -L orthanc orthanc-dicomweb``)
ORTHANC_CANDIDATES = ("/usr/sbin/Orthanc", "/usr/bin/Orthanc")
DICOMWEB_PLUGIN_CANDIDATES = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so",
)
INSTALL_HINT = "apt-get install orthanc orthanc-dicomweb dcmtk (Debian/Ubuntu; `make system-deps` as root)"


def find_orthanc() -> str | None:
    """Path of the Orthanc executable, or ``None``."""
    found = shutil.which("Orthanc")
    if found:
        return found
    return next((p for p in ORTHANC_CANDIDATES if os.access(p, os.X_OK)), None)


def find_dicomweb_plugin() -> str | None:
    """Path of the DICOMweb plug-in shared library, or ``None``."""
    return next((p for p in DICOMWEB_PLUGIN_CANDIDATES if os.path.isfile(p)), None)


def missing_tools() -> list[str]:
    """What is missing for a test Orthanc plus the dcmtk tools the tests use."""
    missing = []
    if find_orthanc() is None:
        missing.append("orthanc")
    if find_dicomweb_plugin() is None:
        missing.append("orthanc-dicomweb")
    if shutil.which("dsrdump") is None:
        missing.append("dcmtk")
    return missing


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OrthancServer:
    """A private Orthanc on loopback ports with its own storage and configuration.

    Args:
        folder: its own folder (configuration, storage, log); created if needed.
        username / password: the one registered HTTP user (authentication is on).
        keep_alive: HTTP keep-alive (off for tests on a loaded machine, see ``__init__``).
        aet: Orthanc's AE title.
        modalities: AE title -> (host, port) of the DICOM nodes Orthanc may serve
            C-FIND/C-GET/C-MOVE to (and send C-MOVE results to).
    """

    def __init__(self, folder: str | os.PathLike, *, username: str = "breastlab", password: str = "s3cret-test",
                 aet: str = "ORTHANC", modalities: dict[str, tuple[str, int]] | None = None,
                 keep_alive: bool = True) -> None:
        self.folder = Path(folder)
        # Orthanc 1.10's CivetWeb closes an idle keep-alive connection after ~0.5 s: a client that reuses it
        # at that moment sees "connection dropped". Tests on a loaded machine turn keep-alive off.
        self.keep_alive = keep_alive
        self.username, self.password, self.aet = username, password, aet
        self.modalities = dict(modalities or {})
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ addresses
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.base_url}/dicom-web"

    @property
    def dimse_url(self) -> str:
        return f"dicom://{self.aet}@127.0.0.1:{self.dicom_port}"

    def configuration(self) -> dict[str, Any]:
        """The Orthanc configuration this server runs with (also shown in docs/pacs.md)."""
        plugin = find_dicomweb_plugin()
        return {
            "Name": "breastlab-test",
            "StorageDirectory": str(self.folder / "storage"),
            "IndexDirectory": str(self.folder / "storage"),
            "StorageCompression": False,
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "RemoteAccessAllowed": False,  # HTTP from loopback only
            "AuthenticationEnabled": True,
            "RegisteredUsers": {self.username: self.password},
            "HttpThreadsCount": 8,
            "KeepAlive": self.keep_alive,
            "DicomThreadsCount": 4,
            "DicomCheckCalledAet": True,
            "DicomCheckModalityHost": True,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": False,  # only the modalities below may store
            "DicomModalities": {aet: [aet, host, port] for aet, (host, port) in self.modalities.items()},
            "DicomAssociationCloseDelay": 0,
            "DicomScuTimeout": 10,
            "DicomScpTimeout": 30,
            "UnknownSopClassAccepted": False,
            "OverwriteInstances": False,
            "SaveJobs": False,
            "StableAge": 2,
            "ConcurrentJobs": 2,
            "Plugins": [plugin] if plugin else [],
            "DicomWeb": {
                "Enable": True,
                "Root": "/dicom-web/",
                "EnableWado": False,
                "StudiesMetadata": "Full",  # read every instance's header from storage (private tags too)
                "SeriesMetadata": "Full",
            },
        }

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 30.0) -> OrthancServer:
        """Write the configuration, start Orthanc and wait until its REST API answers."""
        exe = find_orthanc()
        if exe is None or find_dicomweb_plugin() is None:
            raise RuntimeError(f"Orthanc with its DICOMweb plug-in is not installed: {INSTALL_HINT}")
        (self.folder / "storage").mkdir(parents=True, exist_ok=True)
        config = self.folder / "orthanc.json"
        config.write_text(json.dumps(self.configuration(), indent=2), encoding="utf-8")
        os.chmod(config, 0o600)  # holds the test password
        log = open(self.folder / "orthanc.log", "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen([exe, str(config)], stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with code {self.process.returncode}; see {self.folder}/orthanc.log")
            try:
                self.rest("GET", "/system")
                return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {timeout:.0f} s; see {self.folder}/orthanc.log")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop Orthanc by its own process id (SIGTERM, then SIGKILL)."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def __enter__(self) -> OrthancServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ REST helpers
    def rest(self, method: str, path: str, data: bytes | None = None, *, content_type: str = "application/json",
             timeout: float = 30.0) -> Any:
        """One call to Orthanc's REST API (authenticated); JSON answers are decoded."""
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers={"Authorization": f"Basic {token}", "Content-Type": content_type})
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback URL built here
            body = resp.read()
        if resp.headers.get_content_type() == "application/json" and body:
            return json.loads(body)
        return body

    def upload_files(self, paths: Iterable[str | os.PathLike]) -> list[Path]:
        """POST DICOM files to ``/instances``; returns the files Orthanc accepted (non-DICOM ignored)."""
        accepted: list[Path] = []
        for path in paths:
            data = Path(path).read_bytes()
            if len(data) < 132 or data[128:132] != b"DICM":
                continue
            try:
                answer = self.rest("POST", "/instances", data, content_type="application/dicom")
            except urllib.error.HTTPError:
                continue  # Orthanc refused it (not a valid DICOM file for it)
            if isinstance(answer, dict) and answer.get("Status") in ("Success", "AlreadyStored"):
                accepted.append(Path(path))
        return accepted

    def delete_all(self) -> None:
        """Delete every study (between benchmark rounds)."""
        for study in self.rest("GET", "/studies"):
            self.rest("DELETE", f"/studies/{study}")
