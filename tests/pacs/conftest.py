"""A private Orthanc for the PACS tests: one per session, loopback ports, own storage.

Loaded with real data from ``BREASTLAB_DATA`` (nact-dce and several dcmqa vendors). The
tests skip with a reason naming the Debian packages when Orthanc, its DICOMweb plug-in or
dcmtk are missing (``make test`` installs them when it runs as root).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from breastlab.core.settings import data_root
from breastlab.pacs.orthanc import INSTALL_HINT, OrthancServer, free_port, missing_tools

#: our AE title as Orthanc knows it (C-FIND/C-GET/C-MOVE/C-STORE allowed from it)
OUR_AET = "BREASTLAB"
#: data folders loaded into the test PACS (each optional: missing ones are left out)
PACS_DATA = (
    "nact-dce/UCSF-BR-06",
    "dcmqa/ge/In",
    "dcmqa/siemens_xa30/In",
    "dcmqa/siemens_mosaic_nibabel/In",
    "dcmqa/agfa_pacs/Agfa",
    "dcmqa/philips/In/Magdeburg_2014",
)


@dataclass
class LoadedPacs:
    server: OrthancServer
    files: list[Path]  # the files Orthanc accepted (what a file sort must be compared with)
    scp_port: int  # where Orthanc sends C-MOVE results for OUR_AET

    @property
    def dicomweb_url(self) -> str:
        return self.server.dicomweb_url

    @property
    def dimse_url(self) -> str:
        return self.server.dimse_url


def pacs_files(root: Path) -> list[Path]:
    """DICOM files of ``PACS_DATA``, one per SOP instance, and one patient per study.

    Orthanc keys a study by patient: a StudyInstanceUID reused under two PatientIDs (nibabel's
    Siemens test files do this) breaks the DICOM model, so only the first patient's files are kept.
    """
    import pydicom

    chosen: list[Path] = []
    seen_sop: set[str] = set()
    study_patient: dict[str, str] = {}
    for rel in PACS_DATA:
        folder = root / rel
        if not folder.is_dir():
            continue
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True,
                                     specific_tags=["SOPInstanceUID", "StudyInstanceUID", "PatientID"])
            except Exception:  # noqa: BLE001 - not DICOM: not for the PACS
                continue
            sop, study = str(ds.get("SOPInstanceUID", "")), str(ds.get("StudyInstanceUID", ""))
            patient = str(ds.get("PatientID", ""))
            if not sop or sop in seen_sop or study_patient.setdefault(study, patient) != patient:
                continue
            seen_sop.add(sop)
            chosen.append(path)
    return chosen


READY_TIMEOUT = 120.0  # seconds: generous for a loaded machine, but bounded


def wait_until_ready(server: OrthancServer, timeout: float = READY_TIMEOUT) -> None:
    """Retry until Orthanc answers a DICOMweb query and a C-ECHO (bounded), before the first real request.

    ``OrthancServer.start`` returns once the REST API answers; on a loaded machine the DICOMweb
    plug-in's routes and the DICOM port may lag behind it.
    """
    import time
    import urllib.error

    from breastlab.pacs.dimse import DimsePacs
    from breastlab.pacs.errors import PacsError

    deadline = time.monotonic() + timeout
    last = "no attempt"
    while time.monotonic() < deadline:
        try:
            server.rest("GET", "/dicom-web/studies?limit=1", timeout=10)
            DimsePacs.from_url(server.dimse_url, calling_aet=OUR_AET, timeout=10).echo()
            return
        except (OSError, urllib.error.URLError, PacsError) as exc:
            last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.5)
    raise RuntimeError(f"Orthanc at {server.base_url} not ready within {timeout:.0f} s ({last})")


@pytest.fixture(scope="session")
def pacs_tools() -> None:
    missing = missing_tools()
    if missing:
        pytest.skip(f"PACS tests need {', '.join(missing)}: {INSTALL_HINT}")


@pytest.fixture(scope="session")
def orthanc(pacs_tools, tmp_path_factory) -> Iterator[LoadedPacs]:  # noqa: ANN001
    """The session's Orthanc, loaded with the real data (skips when that is absent)."""
    root = data_root()
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set BREASTLAB_DATA)")
    files = pacs_files(root)
    if not files:
        pytest.skip(f"none of {PACS_DATA} under {root}")
    scp_port = free_port()
    server = OrthancServer(tmp_path_factory.mktemp("orthanc"), modalities={OUR_AET: ("127.0.0.1", scp_port)},
                           keep_alive=False)
    server.start(timeout=READY_TIMEOUT)
    try:
        wait_until_ready(server)
        accepted = server.upload_files(files)
        yield LoadedPacs(server, accepted, scp_port)
    finally:
        server.stop()


@pytest.fixture()
def pacs_env(orthanc: LoadedPacs, monkeypatch: pytest.MonkeyPatch) -> LoadedPacs:
    """Credentials for the test Orthanc in the environment (never on a command line)."""
    monkeypatch.setenv("BREASTLAB_PACS_USER", orthanc.server.username)
    monkeypatch.setenv("BREASTLAB_PACS_PASSWORD", orthanc.server.password)
    monkeypatch.delenv("BREASTLAB_PACS_TOKEN", raising=False)
    monkeypatch.setenv("NETRC", os.devnull)
    return orthanc
