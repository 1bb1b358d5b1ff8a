"""Helpers for the ``breastlab listen`` tests: start/stop the listener, send studies, copy studies."""
from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pydicom
from pydicom.uid import generate_uid

from breastlab.pacs.orthanc import free_port

SENDER_AET = "SENDER"


class ListenProcess:
    """``breastlab listen`` in a subprocess on a free loopback port; stopped by its own pid."""

    def __init__(self, store: Path, out: Path, *extra: str, port: int | None = None, quiet: float = 1.0) -> None:
        self.port = port or free_port()
        self.store, self.out = store, out
        self.args = [sys.executable, "-m", "breastlab.cli.main", "listen", "--store", str(store), "--out", str(out),
                     "--port", str(self.port), "--aet", "BREASTLAB", "--allow-aet", SENDER_AET,
                     "--quiet-seconds", str(quiet), "--max-seconds", "600", *extra]
        self.log = out.parent / f"listen-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> ListenProcess:  # bounded, generous on a loaded machine
        from pynetdicom import AE
        from pynetdicom.sop_class import Verification

        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(self.args, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"listen exited: {self.log.read_text()[-2000:]}")
            ae = AE(ae_title=SENDER_AET)
            ae.add_requested_context(Verification)
            ae.acse_timeout = ae.network_timeout = 2
            assoc = ae.associate("127.0.0.1", self.port, ae_title="BREASTLAB")
            if assoc.is_established:
                assoc.release()
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("listen did not answer C-ECHO in time")

    def children(self) -> list[int]:
        """Process ids whose parent is the listener (its sorting worker)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if self.proc is not None and int(fields[1]) == self.proc.pid:
                found.append(int(stat.parent.name))
        return found

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""


def send(port: int, datasets: Sequence[Any], *, aet: str = SENDER_AET, acked: list[str] | None = None,
         on_ack: Callable[[int], None] | None = None, timeout: float = 30.0, retries: int = 0,
         attempts: list[int] | None = None, called: str = "BREASTLAB") -> list[str]:
    """C-STORE ``datasets``; returns the SOP UIDs acknowledged with success.

    Like a real SCU, with ``retries`` a failed association (no response in ``timeout``, dropped) is
    replaced by a new one that sends the instances not acknowledged yet (the one in flight is sent
    again: the listener logs it as a duplicate). ``attempts`` collects how many associations each took.
    """
    from pynetdicom import AE

    acked = [] if acked is None else acked
    todo = list(datasets)
    for attempt in range(retries + 1):
        ae = AE(ae_title=aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
        for cls in sorted({str(ds.SOPClassUID) for ds in todo}):
            ae.add_requested_context(cls)
        assoc = ae.associate("127.0.0.1", port, ae_title=called)
        if not assoc.is_established:
            break
        sent = 0
        try:
            for ds in todo:
                if not assoc.is_established:
                    break
                try:
                    status = assoc.send_c_store(ds)
                except RuntimeError:  # the peer went away (killed) between two requests
                    break
                if not status or not assoc.is_established:
                    break
                sent += 1
                if status.Status == 0x0000:
                    acked.append(str(ds.SOPInstanceUID))
                    if on_ack is not None:
                        on_ack(len(acked))
        finally:
            if assoc.is_established:
                assoc.release()
        todo = todo[sent:]
        if not todo:
            break
        if attempts is not None:
            attempts.append(attempt + 1)
    return acked


def send_concurrently(port: int, batches: Sequence[Sequence[Any]], *, retries: int = 0, timeout: float = 30.0,
                      attempts: list[int] | None = None) -> list[str]:
    """One association per batch, all at once; returns every acknowledged SOP UID."""
    results: list[list[str]] = [[] for _ in batches]
    threads = [threading.Thread(target=send, args=(port, batch),
                                kwargs={"acked": results[i], "retries": retries, "timeout": timeout,
                                        "attempts": attempts})
               for i, batch in enumerate(batches)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    return [uid for r in results for uid in r]


def read_study(paths: Sequence[Path]) -> list[Any]:
    return [pydicom.dcmread(p) for p in paths]


def copy_study(datasets: Sequence[Any]) -> list[Any]:
    """The same images under new Study/Series/SOP instance UIDs (a new study for the PACS)."""
    study = generate_uid()
    series: dict[str, str] = {}
    out = []
    for ds in datasets:
        new = copy.deepcopy(ds)  # Dataset.copy() is shallow: the copies would share their elements
        new.StudyInstanceUID = study
        new.SeriesInstanceUID = series.setdefault(str(ds.SeriesInstanceUID), generate_uid())
        new.SOPInstanceUID = generate_uid()
        if hasattr(new, "file_meta"):
            new.file_meta.MediaStorageSOPInstanceUID = new.SOPInstanceUID
        out.append(new)
    return out


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
