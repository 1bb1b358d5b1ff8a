"""DIMSE side (pynetdicom): C-ECHO, C-FIND at study and series level, C-GET into a folder, C-STORE.

For PACS without DICOMweb. A study is fetched with C-GET (over our own association: no
inbound port needed) into a temporary folder and read by the file path, so its records
equal a file sort. The number of instances received is checked against the series-level
C-FIND counts; a short or failed retrieve is an error, not a partial sort.
"""
from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from breastlab.dicom.records import InstanceRecord, SkippedFile
from breastlab.pacs.address import DEFAULT_CALLING_AET, PacsAddress, parse_pacs_url
from breastlab.pacs.dicomweb import StudyFilter
from breastlab.pacs.errors import PacsError

log = logging.getLogger(__name__)

#: storage SOP classes accepted on a C-GET (pynetdicom's names); a study's other objects are reported
RETRIEVE_CLASSES = (
    "MRImageStorage", "EnhancedMRImageStorage", "EnhancedMRColorImageStorage", "MRSpectroscopyStorage",
    "CTImageStorage", "EnhancedCTImageStorage", "SecondaryCaptureImageStorage", "SegmentationStorage",
    "ComprehensiveSRStorage", "EnhancedSRStorage", "BasicTextSRStorage", "RawDataStorage",
    "DigitalMammographyXRayImageStorageForPresentation", "DigitalMammographyXRayImageStorageForProcessing",
    "BreastTomosynthesisImageStorage", "UltrasoundImageStorage", "UltrasoundMultiFrameImageStorage",
    "NuclearMedicineImageStorage", "PositronEmissionTomographyImageStorage", "ParametricMapStorage",
    "GrayscaleSoftcopyPresentationStateStorage", "KeyObjectSelectionDocumentStorage",
    "DigitalXRayImageStorageForPresentation", "ComputedRadiographyImageStorage",
)
#: bound on C-FIND answers (each loop over the server's responses stops there)
MAX_FIND_RESULTS = 100_000


def _sop_class(name: str) -> Any:
    from pynetdicom import sop_class

    return getattr(sop_class, name)


class DimsePacs:
    """A DIMSE peer (``dicom://AET@host:port``); ``calling_aet`` is our AE title."""

    def __init__(self, address: PacsAddress, *, timeout: float = 60.0, calling_aet: str | None = None) -> None:
        self.address = address
        self.timeout = timeout
        self.calling_aet = calling_aet or DEFAULT_CALLING_AET

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> DimsePacs:
        return cls(parse_pacs_url(url), **kwargs)

    # ------------------------------------------------------------------ associations
    def _ae(self):  # noqa: ANN202
        from pynetdicom import AE

        ae = AE(ae_title=self.calling_aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        ae.connection_timeout = self.timeout
        return ae

    @contextlib.contextmanager
    def association(self, contexts: Sequence[Any], *, ext_neg: Sequence[Any] = (), handlers: Sequence[Any] = ()
                    ) -> Iterator[Any]:
        ae = self._ae()
        for cx in contexts:
            ae.add_requested_context(cx)
        assoc = ae.associate(self.address.host, self.address.port, ae_title=self.address.called_aet,
                             ext_neg=list(ext_neg) or None, evt_handlers=list(handlers) or None)
        if assoc.is_rejected:
            raise PacsError(f"{self.address.url} rejected the association from AE {self.calling_aet!r} "
                            "(is it a known modality there?)")
        if not assoc.is_established:
            raise PacsError(f"cannot associate with {self.address.url} (refused, timed out or aborted)")
        try:
            yield assoc
        finally:
            if assoc.is_established:
                assoc.release()
            elif not assoc.is_aborted:
                assoc.abort()

    def _dropped(self, assoc: Any, what: str) -> None:
        if not assoc.is_established:
            raise PacsError(f"{what}: {self.address.url} dropped the association")

    # ------------------------------------------------------------------ C-ECHO
    def echo(self) -> None:
        with self.association([_sop_class("Verification")]) as assoc:
            status = assoc.send_c_echo()
            if not status or status.Status != 0:
                raise PacsError(f"C-ECHO to {self.address.url} failed")

    # ------------------------------------------------------------------ C-FIND
    def _find(self, query: Any, what: str) -> list[Any]:
        model = _sop_class("StudyRootQueryRetrieveInformationModelFind")
        found = []
        with self.association([model]) as assoc:
            for n, (status, identifier) in enumerate(assoc.send_c_find(query, model)):
                if not status:
                    raise PacsError(f"{what}: {self.address.url} did not answer within {self.timeout:g} s "
                                    "or dropped the association")
                code = status.Status
                if code in (0xFF00, 0xFF01) and identifier is not None:
                    found.append(identifier)
                elif code != 0x0000:
                    raise PacsError(f"{what}: {self.address.url} answered status 0x{code:04X}")
                if n > MAX_FIND_RESULTS:
                    raise PacsError(f"{what}: more than {MAX_FIND_RESULTS} answers")
        return found

    def find_studies(self, filt: StudyFilter, *, max_studies: int = 100_000) -> list[str]:
        """StudyInstanceUIDs matching ``filt`` (C-FIND, study level)."""
        from pydicom import Dataset

        uids: list[str] = []
        for uid in filt.study_uids or ("",):
            q = Dataset()
            q.QueryRetrieveLevel = "STUDY"
            q.StudyInstanceUID = uid
            q.PatientID = filt.patient_id or ""
            q.AccessionNumber = filt.accession_number or ""
            q.StudyDate = filt.study_date or ""
            q.ModalitiesInStudy = "" if filt.study_uids else (filt.modality or "")
            hits = self._find(q, "C-FIND (study)")
            if uid and not hits:
                raise PacsError(f"study {uid} not found on {self.address.url}")
            uids.extend(u for u in (str(h.get("StudyInstanceUID", "")) for h in hits) if u and u not in uids)
        return uids[:max_studies]

    def find_series(self, study_uid: str) -> list[Any]:
        """Series of a study (C-FIND, series level) with their instance counts."""
        from pydicom import Dataset

        q = Dataset()
        q.QueryRetrieveLevel = "SERIES"
        q.StudyInstanceUID = study_uid
        q.SeriesInstanceUID = ""
        q.Modality = ""
        q.SeriesNumber = ""
        q.NumberOfSeriesRelatedInstances = ""
        return self._find(q, "C-FIND (series)")

    def find_instances(self, study_uid: str, *, modality: str, series_number: int) -> list[Any]:
        """Instances (SOP Instance UID, class, InstanceNumber, series) of the study's series with this
        Modality and SeriesNumber (C-FIND, series then image level): e.g. our earlier result SRs."""
        from pydicom import Dataset

        out = []
        for series in self.find_series(study_uid):
            if str(series.get("Modality", "")) != modality or str(series.get("SeriesNumber", "")) != str(series_number):
                continue
            q = Dataset()
            q.QueryRetrieveLevel = "IMAGE"
            q.StudyInstanceUID, q.SeriesInstanceUID = study_uid, str(series.SeriesInstanceUID)
            q.SOPInstanceUID = q.SOPClassUID = q.InstanceNumber = ""
            for hit in self._find(q, "C-FIND (image)"):
                hit.SeriesInstanceUID = series.SeriesInstanceUID
                out.append(hit)
        return out

    # ------------------------------------------------------------------ C-GET
    def get_study(self, study_uid: str, folder: str | os.PathLike) -> list[Path]:
        """C-GET every instance of a study into ``folder``; returns the files written."""
        from pydicom import Dataset
        from pynetdicom import build_role, evt

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        model = _sop_class("StudyRootQueryRetrieveInformationModelGet")
        storage = [_sop_class(n) for n in RETRIEVE_CLASSES]

        def on_store(event: Any) -> int:
            sop = event.request.AffectedSOPInstanceUID
            path = folder / f"{len(written):06d}_{sop}.dcm"
            with open(path, "wb") as fh:
                fh.write(event.encoded_dataset())
            written.append(path)
            return 0x0000

        q = Dataset()
        q.QueryRetrieveLevel = "STUDY"
        q.StudyInstanceUID = study_uid
        roles = [build_role(cx, scp_role=True) for cx in storage]
        with self.association([model, *storage], ext_neg=roles, handlers=[(evt.EVT_C_STORE, on_store)]) as assoc:
            final = None
            for n, (status, _identifier) in enumerate(assoc.send_c_get(q, model)):
                if not status:
                    raise PacsError(f"C-GET of study {study_uid}: {self.address.url} did not answer within "
                                    f"{self.timeout:g} s or dropped the association")
                final = status
                if n > MAX_FIND_RESULTS:
                    raise PacsError("C-GET: too many responses")
            code = final.Status if final is not None else None
            if code not in (0x0000, 0xB000):
                raise PacsError(f"C-GET of study {study_uid}: {self.address.url} answered status "
                                f"{'none' if code is None else f'0x{code:04X}'}")
            failed = int(final.get("NumberOfFailedSuboperations", 0) or 0)
            if failed:
                log.warning("C-GET of study %s: %d sub-operations failed (unsupported SOP classes?)", study_uid,
                            failed)
        return written

    def study_records(self, study_uid: str) -> tuple[list[InstanceRecord], list[SkippedFile], list[Any]]:
        """Records of a study fetched with C-GET into a temporary folder (deleted afterwards).

        Each record's ``path`` names the instance on the PACS
        (``dicom://AET@host:port/studies/S/series/R/instances/I``), as over DICOMweb.
        """
        from breastlab.dicom.scan import scan_paths
        from breastlab.pacs.sr import header_from_file

        expected = sum(int(s.get("NumberOfSeriesRelatedInstances", 0) or 0) for s in self.find_series(study_uid))
        with tempfile.TemporaryDirectory(prefix="breastlab-cget-") as tmp:
            files = self.get_study(study_uid, tmp)
            if expected and len(files) < expected:
                raise PacsError(f"C-GET of study {study_uid}: received {len(files)} of {expected} instances")
            scan = scan_paths([tmp], workers=1, progress=False)
            header = header_from_file(str(files[0])) if files else None
            records = [replace(r, path=self._url(r)) for r in scan.records]
            skipped = [replace(s, path=f"{self.address.url}/studies/{study_uid}/file/{Path(s.path).name}")
                       for s in scan.skipped]
        return records, skipped, [header] if header is not None else []

    def _url(self, r: InstanceRecord) -> str:
        return f"{self.address.url}/studies/{r.study_uid}/series/{r.series_uid}/instances/{r.sop_instance_uid}"

    # ------------------------------------------------------------------ C-STORE
    def store(self, datasets: Sequence[Any]) -> None:
        """C-STORE datasets (pydicom ``Dataset`` or file paths); any refused instance is an error."""
        import pydicom

        items = [pydicom.dcmread(d) if isinstance(d, (str, os.PathLike)) else d for d in datasets]
        if not items:
            return
        classes = sorted({str(ds.SOPClassUID) for ds in items})
        if len(classes) > 120:
            raise PacsError("C-STORE: too many SOP classes for one association")
        with self.association(classes) as assoc:
            for ds in items:
                status = assoc.send_c_store(ds)
                self._dropped(assoc, "C-STORE")
                if not status or status.Status not in (0x0000, 0xB000, 0xB007, 0xB006):
                    code = "none" if not status else f"0x{status.Status:04X}"
                    raise PacsError(f"C-STORE of {ds.SOPInstanceUID} to {self.address.url}: status {code}")
