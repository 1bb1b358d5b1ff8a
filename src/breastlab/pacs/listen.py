"""``breastlab listen``: a C-STORE SCP that keeps every instance it acknowledges and sorts studies as they arrive.

* Each instance is written to ``STORE/<study>/<series>/<sop>.dcm``: to a ``.part`` file first, flushed and
  fsync'ed, then hard-linked to its final name (``link`` never replaces a file, so nothing is ever
  overwritten) and the folder fsync'ed, all **before** the success status goes back. A duplicate SOP
  instance is logged and acknowledged without touching the stored file.
* Callers are restricted by AE title (``allowed_aets``) and address (``allowed_hosts``, loopback by default);
  an association must call our AE title (``check_called_aet``, on by default). Every refused association
  is logged in one line with the reason.
* A study is sorted once no instance of it has arrived for ``quiet_seconds``: ``OUT/<study pseudonym>/``
  gets the usual ``series.csv``/``instances.csv``/... and ``listen.json`` (what was sorted, forwarded,
  written back). New instances later make it sort again.
* Optionally the sorted study, or only its image sets with chosen labels, is forwarded (C-STORE) to
  another AE, and the result SR is stored to a PACS (DICOMweb or DIMSE) once per result
  (:mod:`breastlab.pacs.writeback`: an unchanged re-sort writes nothing, a changed one replaces
  the earlier SR); one log line per SR written back (or left unchanged).
* Restart-safe: leftover ``.part`` files (never acknowledged) are removed, and studies whose stored
  instances differ from their last sort are sorted again, whatever their StudyInstanceUID (studies are
  keyed by their folder name). Killing the process loses nothing acknowledged.
* Bounded memory per association: pynetdicom writes each incoming data set to a file in
  ``STORE/.incoming/`` as it arrives (``STORE_RECV_CHUNKED_DATASET``); only its identifying elements are
  read (large values deferred), and it is hard-linked (or copied in blocks) into place. An instance over
  ``max_instance_bytes`` is refused with ``0xA700`` (out of resources).
* A payload that is not a DICOM data set of the SOP instance the request names is refused: ``0xC000``
  (cannot understand) when it does not decode, ``0xA900`` (data set does not match SOP class) when its
  SOP Class/Instance UIDs differ from the request's. Nothing refused is stored.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("breastlab.listen")

_UID = re.compile(r"^[0-9][0-9.]{0,63}$")
#: C-STORE statuses
SUCCESS, NOT_AUTHORISED, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0000, 0x0124, 0xA700, 0xC000
DOES_NOT_MATCH = 0xA900
#: where pynetdicom writes incoming data sets (inside the store: same file system, never on tmpfs)
INCOMING = ".incoming"


def _safe(uid: str | None, kind: str) -> str:
    """A UID as a file name (UIDs are digits and dots); anything else is hashed."""
    if uid and _UID.match(uid) and ".." not in uid:
        return uid
    from breastlab.core.privacy import hashed_id

    return hashed_id(uid or "missing", f"{kind}-", 16)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class ListenConfig:
    """What ``breastlab listen`` does (see the module docstring)."""

    store_dir: Path
    out_dir: Path
    port: int = 11112
    host: str = "127.0.0.1"
    aet: str = "BREASTLAB"
    check_called_aet: bool = True  # refuse associations that call another AE title than ``aet``
    allowed_aets: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "::1")
    quiet_seconds: float = 10.0
    forward: str | None = None  # dicom://AET@host:port
    forward_labels: tuple[str, ...] = ()  # empty: the whole study
    write_back: str | None = None  # PACS URL for the result SR
    calling_aet: str = "BREASTLAB"  # our AE title when forwarding / writing back
    keep_phi: bool = False
    timeout: float = 60.0
    max_seconds: float | None = None  # stop after this long (None: until SIGTERM/SIGINT)
    max_instance_bytes: int = 4 << 30  # larger instances are refused (OUT_OF_RESOURCES)


def _worker_init(parent: int) -> None:
    """Sorting worker start-up: die with the listener, even when it is SIGKILLed (no stray process)."""
    import ctypes
    import sys

    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    def watch() -> None:  # elsewhere (and as a second line): poll the parent process id
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()
    if os.getppid() != parent:
        os._exit(0)


def _out_for(config: ListenConfig, study_folder: str) -> Path:
    from breastlab.mri.classify import study_pseudonym

    return config.out_dir / study_pseudonym(study_folder)


def study_folder(config: ListenConfig, study: str) -> str:
    """The store folder of ``study``: a folder name as the listener keys studies (recovered ones
    included), else a StudyInstanceUID made safe (never hashed twice)."""
    if study and "/" not in study and not study.startswith(".") and (config.store_dir / study).is_dir():
        return study
    return _safe(study, "study")


def sort_study(config: ListenConfig, study: str) -> dict[str, Any]:
    """Sort one stored study; forward and write back as configured. Returns what ``listen.json`` says.

    Runs in a worker process (spawned): the SCP process only receives and stores, so a CPU-heavy sort
    never delays a C-STORE response (pynetdicom misreads requests when its threads are starved).
    """
    from breastlab.core import atomic
    from breastlab.mri.sorter import sort_exam

    folder = config.store_dir / study_folder(config, study)
    files = sorted(folder.glob("*/*.dcm"))
    out = _out_for(config, folder.name)
    result = sort_exam([folder], out_dir=out, workers=1, keep_phi=config.keep_phi, progress=False)
    info: dict[str, Any] = {"study": out.name, "n_files": len(files), "n_images": result.n_records,
                            "n_image_sets": len(result.sets), "labels": sorted({s.label for s in result.sets}),
                            "sorted_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    problems = []
    if config.forward and result.sets:
        try:
            info["forwarded"] = forward(config, result.sets)
        except Exception as exc:  # noqa: BLE001 - reported in listen.json and the log
            problems.append(f"forwarding failed: {exc}")
    if config.write_back and result.sets:
        try:
            info["write_back"] = write_back(config, result.sets, files)
            info["written_back"] = [uid for w in info["write_back"] for uid in w["instances"]]
        except Exception as exc:  # noqa: BLE001
            problems.append(f"write-back failed: {exc}")
    if problems:
        info["problems"] = problems
    atomic.write_json(out / "listen.json", info)
    return info


def forward(config: ListenConfig, sets: Sequence[Any]) -> dict[str, Any]:
    """C-STORE the study's instances (or only the image sets with ``forward_labels``) to ``config.forward``."""
    from breastlab.pacs.dimse import DimsePacs

    labels = set(config.forward_labels)
    chosen = [ls for ls in sets if not labels or ls.label in labels]
    paths = sorted({r.path for ls in chosen for r in ls.image_set.records})
    from breastlab.pacs.errors import PacsError

    peer = DimsePacs.from_url(config.forward, timeout=config.timeout, calling_aet=config.calling_aet)
    try:
        peer.store(paths)
    except PacsError as exc:  # a dropped association or lost response: resend once on a new one,
        # as real SCUs do (C-STORE of the same SOP Instance UIDs is idempotent at the receiver)
        log.warning("forward to %s failed (%s); resending once on a new association", peer.address.url, exc)
        peer.store(paths)
    return {"to": peer.address.url, "labels": sorted({ls.label for ls in chosen}), "n_instances": len(paths)}


def write_back(config: ListenConfig, sets: Sequence[Any], files: Sequence[Path]) -> list[dict[str, Any]]:
    """Store the study's result SR to ``config.write_back`` (DICOMweb or DIMSE), once per result."""
    from breastlab.pacs.sort import open_pacs
    from breastlab.pacs.sr import header_from_file
    from breastlab.pacs.writeback import write_back_sorts

    study_uid = sets[0].image_set.study_uid or ""
    pacs = open_pacs(config.write_back, timeout=config.timeout, calling_aet=config.calling_aet)
    return write_back_sorts(pacs, sets, {study_uid: header_from_file(str(files[0]))})


def refusal_reason(config: ListenConfig, calling: str, called: str, n_active: int, limit: int) -> str:
    """Why an association request was refused (the checks pynetdicom made, in words)."""
    if config.check_called_aet and called != config.aet:
        return f"it called AE title {called!r}, we are {config.aet!r}"
    if config.allowed_aets and calling not in config.allowed_aets:
        return f"calling AE title {calling!r} is not in --allow-aet"
    if n_active > limit:
        return f"too many associations ({n_active} > {limit})"
    return "refused by the association negotiation (e.g. user identity)"


@dataclass
class _Study:
    last: float
    dirty: bool = True
    received: int = 0


@dataclass
class Listener:
    """The running SCP; :meth:`run` blocks until stopped."""

    config: ListenConfig
    studies: dict[str, _Study] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop_event: threading.Event = field(default_factory=threading.Event)
    n_stored: int = 0
    n_duplicates: int = 0

    # ------------------------------------------------------------------ storage
    def store(self, study: str, series: str, sop: str, data: bytes | Path) -> bool:
        """Write one instance durably (bytes, or a received file linked or copied in blocks);
        ``False`` when it was already stored (a duplicate)."""
        folder = self.config.store_dir / _safe(study, "study") / _safe(series, "series")
        final = folder / f"{_safe(sop, 'sop')}.dcm"
        if final.exists():
            return False
        folder.mkdir(parents=True, exist_ok=True)
        if isinstance(data, Path):
            return _store_file(data, folder, final)
        tmp = folder / f".{final.name}.{uuid.uuid4().hex}.part"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the user's umask applies
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, final)  # never replaces an existing file
            except FileExistsError:
                return False
            _fsync_dir(folder)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def handle_store(self, event: Any) -> int:
        """pynetdicom ``EVT_C_STORE`` handler: the status goes back only after the file is on disk."""
        address = event.assoc.requestor.address
        if self.config.allowed_hosts and address not in self.config.allowed_hosts:
            log.warning("refused C-STORE from %s (address not allowed)", address)
            return NOT_AUTHORISED
        got = received(event, self.config.max_instance_bytes)
        if isinstance(got, int):
            return got
        study, series, sop, data = got
        began = time.monotonic()
        try:
            fresh = self.store(study, series, sop, data)
        except OSError as exc:
            log.error("cannot store %s: %s", sop, exc.strerror or exc)
            return OUT_OF_RESOURCES
        took = time.monotonic() - began
        if took > 2.0:
            log.warning("storing %s took %.1f s (slow disk?)", sop, took)
        with self.lock:
            state = self.studies.setdefault(_safe(study, "study"), _Study(time.monotonic()))
            state.last = time.monotonic()
            if fresh:
                state.dirty = True
                state.received += 1
                self.n_stored += 1
            else:
                self.n_duplicates += 1
        if not fresh:
            log.info("duplicate SOP instance %s (kept the stored file)", sop)
        return SUCCESS

    def handle_rejected(self, event: Any) -> None:
        """pynetdicom ``EVT_REJECTED``: one clear log line per refused association."""
        rq = event.assoc.requestor
        primitive = getattr(rq, "primitive", None)
        calling = str(getattr(primitive, "calling_ae_title", "") or rq.ae_title or "").strip()
        called = str(getattr(primitive, "called_ae_title", "") or "").strip()
        n_active = sum(1 for a in event.assoc.ae.active_associations if a.is_acceptor)
        reason = refusal_reason(self.config, calling, called, n_active, event.assoc.ae.maximum_associations)
        log.warning("refused association from %r at %s: %s", calling, rq.address, reason)

    # ------------------------------------------------------------------ recovery
    def recover(self) -> None:
        """After a restart: drop unacknowledged ``.part`` files, re-queue studies not sorted as stored."""
        root = self.config.store_dir
        root.mkdir(parents=True, exist_ok=True)
        for part in [*root.glob("*/*/.*.part"), *root.glob(f"{INCOMING}/*")]:
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                part.unlink()
        for study_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            count = sum(1 for _ in study_dir.glob("*/*.dcm"))
            marker = _out_for(self.config, study_dir.name) / "listen.json"
            done = None
            with contextlib.suppress(OSError, ValueError):
                done = json.loads(marker.read_text(encoding="utf-8")).get("n_files")
            if count and done != count:
                self.studies[study_dir.name] = _Study(time.monotonic(), dirty=True)
                log.info("study %s: %d stored instances not sorted yet (recovered)", study_dir.name, count)

    # ------------------------------------------------------------------ sorting
    def due(self, now: float) -> list[str]:
        with self.lock:
            ready = [uid for uid, s in self.studies.items() if s.dirty and now - s.last >= self.config.quiet_seconds]
            for uid in ready:
                self.studies[uid].dirty = False
        return ready

    # ------------------------------------------------------------------ main loop
    def run(self) -> int:
        """Serve until SIGTERM/SIGINT or ``max_seconds``; returns the number of studies sorted."""
        from pynetdicom import AE, AllStoragePresentationContexts, evt
        from pynetdicom.sop_class import Verification

        import multiprocessing
        from concurrent.futures import Future, ProcessPoolExecutor

        self.recover()
        restore = _receive_to_files(self.config.store_dir / INCOMING)
        # the sorting worker is spawned before any network thread exists
        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_init, initargs=(os.getpid(),))
        pending: dict[str, Future[dict[str, Any]]] = {}
        ae = AE(ae_title=self.config.aet)
        ae.supported_contexts = storage_contexts(AllStoragePresentationContexts)
        ae.add_supported_context(Verification)
        if self.config.allowed_aets:
            ae.require_calling_aet = list(self.config.allowed_aets)
        ae.require_called_aet = self.config.check_called_aet
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.config.timeout
        ae.maximum_associations = 16
        server = ae.start_server((self.config.host, self.config.port), block=False,
                                 evt_handlers=[(evt.EVT_C_STORE, self.handle_store),
                                               (evt.EVT_REJECTED, self.handle_rejected)])
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not the main thread (tests)
                signal.signal(sig, lambda *_: self.stop_event.set())
        if hasattr(signal, "SIGUSR1"):  # `kill -USR1 PID` dumps every thread's stack to stderr (diagnosis)
            import faulthandler

            with contextlib.suppress(ValueError, RuntimeError):
                faulthandler.register(signal.SIGUSR1, all_threads=True)
        log.info("listening as %s on %s:%d (store %s, quiet %.1f s, called AE title %s)", self.config.aet,
                 self.config.host, self.config.port, self.config.store_dir, self.config.quiet_seconds,
                 "checked" if self.config.check_called_aet else "not checked")
        started = time.monotonic()
        sorted_count = 0
        try:
            while not self.stop_event.wait(0.2):
                now = time.monotonic()
                for study, fut in list(pending.items()):
                    if not fut.done():
                        continue
                    del pending[study]
                    try:
                        info = fut.result()
                    except Exception as exc:  # noqa: BLE001 - one study must not stop the listener
                        log.error("study %s could not be sorted: %s: %s", study, type(exc).__name__, exc)
                        continue
                    sorted_count += 1
                    log.info("study %s sorted: %d images in %d image sets (%s)", info["study"], info["n_images"],
                             info["n_image_sets"], ", ".join(info["labels"]))
                    for w in info.get("write_back", ()):
                        if w["action"] == "unchanged":
                            log.info("study %s: result SR unchanged (%s): nothing written back", info["study"],
                                     w["sop_instance_uid"])
                        else:
                            log.info("study %s: result SR %s written back to %s%s", info["study"],
                                     w["sop_instance_uid"], self.config.write_back,
                                     f", replacing {w['replaces']}" if w["replaces"] else "")
                    for problem in info.get("problems", ()):
                        log.error("study %s: %s", info["study"], problem)
                for study in self.due(now):
                    if study in pending:  # still sorting an earlier state: sort again afterwards
                        with self.lock:
                            self.studies[study].dirty = True
                        continue
                    pending[study] = pool.submit(sort_study, self.config, study)
                if self.config.max_seconds is not None and now - started >= self.config.max_seconds:
                    break
        finally:
            server.shutdown()
            pool.shutdown(wait=True, cancel_futures=True)
            restore()
        return sorted_count


# ----------------------------------------------------------------------------- receiving (bounded memory)
def _receive_to_files(folder: Path):  # noqa: ANN202 - returns the function that undoes it
    """Make pynetdicom write incoming data sets to files in ``folder`` (not memory, not tmpfs)."""
    import tempfile

    from pynetdicom import _config

    folder.mkdir(parents=True, exist_ok=True)
    old = (_config.STORE_RECV_CHUNKED_DATASET, tempfile.tempdir)
    _config.STORE_RECV_CHUNKED_DATASET = True
    tempfile.tempdir = str(folder)  # pynetdicom's NamedTemporaryFile: the store's file system

    def restore() -> None:
        _config.STORE_RECV_CHUNKED_DATASET, tempfile.tempdir = old

    return restore


_IDENTITY = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")


def received(event: Any, max_bytes: int) -> tuple[str, str, str, bytes | Path] | int:
    """(study, series, sop, data or file) of a C-STORE request, or the refusal status.

    Reads only the identifying elements (values over 64 KiB are deferred, never loaded), and
    requires the data set's SOP Class and Instance UIDs to be the request's.
    """
    who = getattr(event.assoc.requestor, "ae_title", "?")
    path = None
    try:
        path = event.dataset_path
    except AttributeError:  # not received to a file (pynetdicom default, or a test's event)
        pass
    try:
        if path is not None:
            path = Path(path)
            size = path.stat().st_size
            if size > max_bytes:
                log.warning("refused a C-STORE from %s: %d bytes, over the %d-byte limit", who, size, max_bytes)
                return OUT_OF_RESOURCES
            from pydicom import dcmread

            ds = dcmread(path, stop_before_pixels=True, defer_size=1 << 16, specific_tags=list(_IDENTITY))
            data: bytes | Path = path
        else:
            ds = event.dataset
            data = event.encoded_dataset()
            if len(data) > max_bytes:
                return OUT_OF_RESOURCES
        ident = [str(ds.get(k, "") or "") for k in _IDENTITY]
    except Exception as exc:  # noqa: BLE001 - a payload that does not decode is refused, the listener goes on
        log.warning("cannot decode a C-STORE from %s: %s", who, type(exc).__name__)
        return CANNOT_UNDERSTAND
    study, series, sop, sop_class = ident
    request = event.request
    if sop != str(request.AffectedSOPInstanceUID) or sop_class != str(getattr(request, "AffectedSOPClassUID", "")):
        log.warning("refused a C-STORE from %s: the data set is not the SOP instance the request names", who)
        return DOES_NOT_MATCH
    return study, series, sop, data


def _store_file(received_file: Path, folder: Path, final: Path) -> bool:
    """Put a received file at ``final`` durably: hard link when on the same file system, else a
    block-wise copy through a ``.part`` file; never replaces an existing file."""
    from breastlab.core.atomic import default_file_mode

    fd = os.open(received_file, os.O_RDONLY)
    try:
        os.fchmod(fd, default_file_mode())  # the user's umask, not the temporary file's 0600
        os.fsync(fd)  # pynetdicom flushed it; make it durable before the success status
    finally:
        os.close(fd)
    try:
        os.link(received_file, final)
    except FileExistsError:
        return False
    except OSError:  # another file system (EXDEV) or no hard links: copy
        import shutil

        tmp = folder / f".{final.name}.{uuid.uuid4().hex}.part"
        try:
            with open(received_file, "rb") as src, open(tmp, "xb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(dst.fileno())
            try:
                os.link(tmp, final)
            except FileExistsError:
                return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    _fsync_dir(folder)
    return True


def storage_contexts(contexts: Sequence[Any]) -> list[Any]:
    """The storage contexts without Deflated Explicit VR Little Endian: a deflated data set would be
    inflated in memory to read its UIDs (a deflate bomb); senders fall back to another syntax."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian
    from pynetdicom.presentation import build_context

    return [build_context(cx.abstract_syntax, [ts for ts in cx.transfer_syntax if ts != DeflatedExplicitVRLittleEndian])
            for cx in contexts]
