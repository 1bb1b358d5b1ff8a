"""DICOMweb side: QIDO-RS study search, WADO-RS metadata (never pixels), STOW-RS.

Built on ``dicomweb-client`` with a :class:`breastlab.pacs.http.BoundedSession` that carries
the credentials of :func:`breastlab.pacs.address.credentials_for` and a CA bundle, and ends
every request within ``timeout`` seconds in total and a size cap (bulk data: the cap of
``metadata.MAX_BULK_BYTES``, applied while reading). Every answer is checked against the
shape it must have (:mod:`breastlab.pacs.dicomjson`). Every HTTP or network failure and
every unusable answer becomes a one-line :class:`PacsError`.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from breastlab.dicom.records import InstanceRecord, SkippedFile
from breastlab.pacs.address import Credentials, PacsAddress, ca_bundle, credentials_for
from breastlab.pacs.dicomjson import answer_items, problem, study_uid
from breastlab.pacs.errors import PacsError
from breastlab.pacs.http import AnswerTooLarge, BoundedSession, answer_cap
from breastlab.pacs.metadata import MAX_BULK_BYTES, fast_records_from_json, json_value

log = logging.getLogger(__name__)

#: at most this many studies per QIDO page, and this many pages (bounded loops)
PAGE_SIZE = 500
MAX_PAGES = 200


@dataclass(frozen=True)
class StudyFilter:
    """QIDO-RS study filters (all optional; an empty filter finds every study of ``modality``)."""

    study_uids: tuple[str, ...] = ()
    patient_id: str | None = None
    accession_number: str | None = None
    study_date: str | None = None  # YYYYMMDD or YYYYMMDD-YYYYMMDD
    modality: str | None = "MR"

    def qido(self) -> dict[str, str]:
        out = {}
        if self.patient_id:
            out["PatientID"] = self.patient_id
        if self.accession_number:
            out["AccessionNumber"] = self.accession_number
        if self.study_date:
            out["StudyDate"] = self.study_date
        if self.modality:
            out["ModalitiesInStudy"] = self.modality
        return out


@contextlib.contextmanager
def http_errors(what: str, url: str, timeout: float) -> Iterator[None]:
    """Turn requests/dicomweb-client failures into one-line ``PacsError`` (no credential, no traceback)."""
    import requests

    try:
        yield
    except requests.exceptions.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        hint = {401: "check BREASTLAB_PACS_USER/BREASTLAB_PACS_PASSWORD or the netrc entry",
                403: "the PACS account may not do this", 404: "no such resource on this server"}.get(status, "")
        raise PacsError(f"{what} failed: {url} answered HTTP {status}" + (f" ({hint})" if hint else "")) from None
    except requests.exceptions.SSLError:
        raise PacsError(f"{what} failed: TLS verification of {url} failed (set --ca-bundle or "
                        "BREASTLAB_PACS_CA_BUNDLE)") from None
    except requests.exceptions.Timeout:
        raise PacsError(f"{what} failed: {url} did not answer within {timeout:g} s") from None
    except requests.exceptions.ConnectionError:
        raise PacsError(f"{what} failed: cannot connect to {url} (connection refused or dropped)") from None
    except requests.exceptions.RequestException as exc:
        raise PacsError(f"{what} failed: {type(exc).__name__} talking to {url}") from None
    except ValueError as exc:  # undecodable JSON / multipart from the server
        raise PacsError(f"{what} failed: {url} sent an unusable answer ({(str(exc).splitlines() or [''])[0][:120]})"
                        ) from None
    except RecursionError:
        raise PacsError(f"{what} failed: {url} sent JSON nested too deeply") from None
    except PacsError:
        raise
    except Exception as exc:  # noqa: BLE001 - any other answer dicomweb-client cannot decode: one line
        raise PacsError(f"{what} failed: {url} sent an unusable answer ({type(exc).__name__})") from None


class DicomWebPacs:
    """A DICOMweb server (QIDO-RS, WADO-RS metadata, STOW-RS).

    Args:
        address: from :func:`breastlab.pacs.address.parse_pacs_url`.
        timeout: seconds per HTTP request, in total (connect to the last byte).
        ca_bundle_path: CA bundle for ``https`` (default ``$BREASTLAB_PACS_CA_BUNDLE``, else the system's).
        credentials: default from the environment or netrc.
    """

    def __init__(self, address: PacsAddress, *, timeout: float = 60.0, ca_bundle_path: str | None = None,
                 credentials: Credentials | None = None) -> None:
        from dicomweb_client.api import DICOMwebClient

        self.address, self.timeout = address, timeout
        self.credentials = credentials if credentials is not None else credentials_for(address.host)
        session = BoundedSession(deadline=timeout)
        session.verify = ca_bundle(ca_bundle_path)
        session.trust_env = False  # no proxy from the environment; netrc handled above
        headers = {}
        if self.credentials.token:
            headers["Authorization"] = f"Bearer {self.credentials.token}"
        elif self.credentials.username:
            session.auth = (self.credentials.username, self.credentials.password or "")
        self.session = session
        self.client = DICOMwebClient(address.url, session=session, headers=headers, timeout=timeout)
        # dicomweb-client retries every failed request 5 times with exponential back-off (timeouts
        # included): a hung server would take minutes to report. One attempt, one clear error.
        self.client.set_http_retry_params(retry=False)

    # ------------------------------------------------------------------ QIDO-RS
    def echo(self) -> None:
        """A one-result QIDO-RS query: the server answers and accepts the credentials."""
        with http_errors("QIDO-RS", self.address.url, self.timeout):
            self.client.search_for_studies(limit=1)

    def find_studies(self, filt: StudyFilter, *, max_studies: int = 100_000) -> list[str]:
        """StudyInstanceUIDs matching ``filt`` (explicit UIDs are checked to exist)."""
        if filt.study_uids:
            found = []
            for uid in filt.study_uids:
                with http_errors("QIDO-RS study search", self.address.url, self.timeout):
                    hits = answer_items(self.client.search_for_studies(search_filters={"StudyInstanceUID": uid},
                                                                       limit=1), "QIDO-RS", self.address.url)
                if not hits:
                    raise PacsError(f"study {uid} not found on {self.address.url}")
                found.append(uid)
            return found
        uids: list[str] = []
        for page in range(MAX_PAGES):
            with http_errors("QIDO-RS study search", self.address.url, self.timeout):
                hits = answer_items(self.client.search_for_studies(search_filters=filt.qido(), limit=PAGE_SIZE,
                                                                   offset=page * PAGE_SIZE),
                                    "QIDO-RS", self.address.url)
            found = [study_uid(h) for h in hits]
            if None in found:
                log.warning("QIDO-RS: %d answer(s) without a well-formed StudyInstanceUID ignored", found.count(None))
            uids.extend(u for u in found if u and u not in uids)
            if len(hits) < PAGE_SIZE or len(uids) >= max_studies:
                break
        return uids[:max_studies]

    # ------------------------------------------------------------------ WADO-RS
    def instance_url(self, study: str, series: str, sop: str) -> str:
        return f"{self.address.url}/studies/{study}/series/{series}/instances/{sop}"

    def study_metadata(self, study_uid: str) -> list[dict[str, Any]]:
        """DICOM JSON of every instance of a study (WADO-RS ``/metadata``: headers only)."""
        with http_errors(f"WADO-RS metadata of study {study_uid}", self.address.url, self.timeout):
            items = self.client.retrieve_study_metadata(study_uid)
        return answer_items(items, f"WADO-RS metadata of study {study_uid}", self.address.url)

    def fetch_bulk(self, uri: str) -> bytes:
        """One bulk data element, always from the configured server (its host is enforced)."""
        uri = self._same_server(uri)
        try:  # the cap applies while reading (multipart framing allowed for)
            with http_errors("WADO-RS bulk data", self.address.url, self.timeout), \
                    answer_cap(MAX_BULK_BYTES + (64 << 10)):
                parts = self.client.retrieve_bulkdata(uri, media_types=("application/octet-stream",))
        except AnswerTooLarge:
            log.warning("WADO-RS bulk data larger than %d bytes: left out", MAX_BULK_BYTES)
            return b""
        first = parts[0] if isinstance(parts, list) and parts else b""
        return bytes(first) if isinstance(first, (bytes, bytearray, memoryview)) else b""

    def _same_server(self, uri: str) -> str:
        """Servers behind proxies name themselves by an internal host: keep ours (and never send
        the credentials elsewhere)."""
        base, target = urlsplit(self.address.url), urlsplit(uri)
        if (target.scheme, target.netloc) == (base.scheme, base.netloc):
            return uri
        path = target.path
        root = base.path.rstrip("/")
        if root and root in path:
            path = root + path.split(root, 1)[1]
        return urlunsplit((base.scheme, base.netloc, path, target.query, ""))

    def study_records(self, study_uid: str) -> tuple[list[InstanceRecord], list[SkippedFile], list[Any]]:
        """Records (and skipped instances) of a study from its metadata, plus one study-level dataset
        (the first instance's header, for the result SR's patient and study modules)."""
        return self.records_from_items(study_uid, self.study_metadata(study_uid))

    def records_from_items(self, study_uid: str, items: list[dict[str, Any]]
                           ) -> tuple[list[InstanceRecord], list[SkippedFile], list[Any]]:
        """:meth:`study_records` of metadata already fetched (lets the caller overlap HTTP and parsing)."""
        from breastlab.pacs.metadata import dataset_from_json

        records: list[InstanceRecord] = []
        skipped: list[SkippedFile] = []
        first = None
        for i, item in enumerate(items):
            why = problem(item)
            if why is not None:
                skipped.append(SkippedFile(f"{self.address.url}/studies/{study_uid} (instance {i + 1})", "corrupt",
                                           f"DICOM JSON of unexpected shape: {why}"))
                continue
            path = self.instance_url(str(json_value(item, "0020000D") or study_uid),
                                     str(json_value(item, "0020000E") or ""), str(json_value(item, "00080018") or ""))
            try:
                got = fast_records_from_json(item, path, self.fetch_bulk)
            except PacsError:
                raise
            except Exception as exc:  # noqa: BLE001 - one odd instance must not stop the study
                got = SkippedFile(path, "corrupt", f"DICOM JSON could not be read: {type(exc).__name__}")
            if isinstance(got, SkippedFile):
                skipped.append(got)
                continue
            records.extend(got)
            if first is None:
                try:
                    first = dataset_from_json(item)
                except Exception:  # noqa: BLE001 - only the result SR's header; the next instance may do
                    first = None
        return records, skipped, [first] if first is not None else []

    # ------------------------------------------------------------------ STOW-RS
    def store(self, datasets: Sequence[Any]) -> None:
        """Store datasets (e.g. a result SR) with STOW-RS; any failed instance is an error."""
        with http_errors("STOW-RS", self.address.url, self.timeout):
            answer = self.client.store_instances(list(datasets))
        failed = getattr(answer, "FailedSOPSequence", None)  # (0008,1198) of the STOW-RS response
        if failed:
            raise PacsError(f"STOW-RS: {self.address.url} refused {len(failed)} instance(s)")

