"""``breastlab pacs sort``: sort PACS studies with the header rules, from metadata alone.

Over DICOMweb the records come from WADO-RS metadata (no pixel data crosses the network);
over DIMSE each study is fetched with C-GET into a temporary folder and read by the file
path. Either way the records go through the same ``sort_records`` and ``write_outputs``
as ``breastlab sort``, so ``series.csv``/``instances.csv`` equal a file sort of the same
instances, row for row; only ``path`` names the instance's PACS URL instead of a file.

Everything is fetched (and, with ``write_back``, stored) before the first output is
written, so a run that fails half-way leaves no outputs.
"""
from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from breastlab.core.privacy import redact_urls
from breastlab.dicom.records import InstanceRecord, SkippedFile
from breastlab.mri.classify import LabelledSet
from breastlab.mri.diffusion import DEFAULT_B_THRESHOLD
from breastlab.pacs.address import PacsAddress, parse_pacs_url
from breastlab.pacs.dicomweb import StudyFilter
from breastlab.pacs.errors import PacsError, PacsNothingFound

log = logging.getLogger(__name__)


@dataclass
class PacsSortResult:
    """What one ``pacs sort`` run found, sorted and stored."""

    address: PacsAddress
    studies: list[str]
    sets: list[LabelledSet]
    records: list[InstanceRecord]
    skipped: list[SkippedFile]
    outputs: dict[str, Path] = field(default_factory=dict)
    #: per study: study_uid, action (new | replaced | unchanged), series_uid, sop_instance_uid, replaces
    written_back: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def open_pacs(url: str, *, timeout: float = 60.0, ca_bundle_path: str | None = None,
              calling_aet: str | None = None):  # noqa: ANN201 - DicomWebPacs | DimsePacs
    """The client for ``url``: :class:`DicomWebPacs` or :class:`DimsePacs`."""
    address = parse_pacs_url(url)
    if address.kind == "dicomweb":
        from breastlab.pacs.dicomweb import DicomWebPacs

        return DicomWebPacs(address, timeout=timeout, ca_bundle_path=ca_bundle_path)
    from breastlab.pacs.dimse import DimsePacs

    return DimsePacs(address, timeout=timeout, calling_aet=calling_aet)


#: options whose values identify a patient: never written to provenance or logs
PHI_OPTIONS = ("--patient-id", "--accession")


def redact_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` with the values of :data:`PHI_OPTIONS` replaced by ``<given>``."""
    out: list[str] = []
    hide = False
    for arg in argv:
        if hide:
            out.append("<given>")
            hide = False
        elif arg in PHI_OPTIONS:
            out.append(arg)
            hide = True
        elif arg.split("=", 1)[0] in PHI_OPTIONS and "=" in arg:
            out.append(arg.split("=", 1)[0] + "=<given>")
        else:
            out.append(arg)
    return out


def write_sort_outputs(out_dir: str | os.PathLike, sets: Sequence[LabelledSet], skipped: Sequence[SkippedFile],
                       records: Sequence[InstanceRecord], *, keep_phi: bool, config: dict[str, Any],
                       summary: dict[str, Any] | None = None) -> dict[str, Path]:
    """series.csv/json, instances.csv, skipped.csv and provenance.json, as ``breastlab sort`` writes them.

    The data fingerprint hashes the SOP instance UIDs (the instances have no local files).
    """
    from breastlab.core.provenance import run_manifest
    from breastlab.mri.outputs import label_counts, write_outputs

    digest = hashlib.sha256()
    for uid in sorted({r.sop_instance_uid or r.path for r in records}):
        digest.update(uid.encode())
    manifest = run_manifest(config, data_fingerprint=digest.hexdigest())
    manifest["command"] = redact_urls(" ".join(redact_argv(sys.argv)))
    manifest["summary"] = {
        "n_records": len(records), "n_image_sets": len(sets), "n_skipped": len(skipped),
        "labels": label_counts(sets), **(summary or {}),
    }
    return write_outputs(out_dir, sets, skipped, keep_phi=keep_phi, manifest=manifest)


def pacs_sort(
    url: str,
    out_dir: str | os.PathLike | None,
    *,
    filt: StudyFilter | None = None,
    write_back: bool = False,
    keep_phi: bool = False,
    b_threshold: float = DEFAULT_B_THRESHOLD,
    timeout: float = 60.0,
    ca_bundle_path: str | None = None,
    calling_aet: str | None = None,
    max_studies: int = 10_000,
    progress: bool = True,
) -> PacsSortResult:
    """Find studies on the PACS at ``url``, sort them, write the outputs (and the result SRs).

    Raises:
        PacsError: the PACS could not be reached, refused, or found no study.
    """
    from breastlab.core.progress import make_progress
    from breastlab.mri.sorter import sort_records

    start = time.perf_counter()
    filt = filt or StudyFilter()
    pacs = open_pacs(url, timeout=timeout, ca_bundle_path=ca_bundle_path, calling_aet=calling_aet)
    studies = pacs.find_studies(filt, max_studies=max_studies)
    if not studies:
        wanted = ", ".join(sorted(filt.qido())) or "the filters"  # names only: a PatientID is PHI
        raise PacsNothingFound(f"no study on {pacs.address.url} matches {wanted}")
    records: list[InstanceRecord] = []
    skipped: list[SkippedFile] = []
    headers: dict[str, Any] = {}  # study uid -> one header dataset (patient/study modules for the SR)
    with make_progress(disable=not progress) as bar, ThreadPoolExecutor(max_workers=1) as prefetch:
        task = bar.add_task("pacs sort", total=len(studies))
        # DICOMweb: the next study's metadata is fetched while this one is parsed (the server works
        # in its own process); at most one request ahead, so memory stays bounded
        fetch = getattr(pacs, "study_metadata", None)
        ahead = prefetch.submit(fetch, studies[0]) if fetch else None
        for i, uid in enumerate(studies):
            if ahead is not None:
                items = ahead.result()
                ahead = prefetch.submit(fetch, studies[i + 1]) if i + 1 < len(studies) else None
                recs, skip, first = pacs.records_from_items(uid, items)
            else:
                recs, skip, first = pacs.study_records(uid)
            records.extend(recs)
            skipped.extend(skip)
            if first:
                headers[uid] = first[0]
            bar.advance(task)
            log.info("study %s: %d images, %d skipped", uid, len(recs), len(skip))
    sets = sort_records(records, b_threshold=b_threshold)
    result = PacsSortResult(pacs.address, studies, sets, records, skipped)
    if write_back:  # once per result: an unchanged study writes nothing (breastlab.pacs.writeback)
        from breastlab.pacs.writeback import write_back_sorts

        written = write_back_sorts(pacs, sets, headers)
        if not written:
            raise PacsError("nothing to write back: no image set was sorted")
        result.written_back = [{k: w[k] for k in ("study_uid", "action", "series_uid", "sop_instance_uid",
                                                  "replaces")} for w in written]
    if out_dir is not None:
        config = {
            "pacs": pacs.address.url, "protocol": pacs.address.kind,
            "credentials": getattr(getattr(pacs, "credentials", None), "source", "none"),
            "filters": {"study_uids": list(filt.study_uids), "patient_id": "given" if filt.patient_id else None,
                        "accession_number": "given" if filt.accession_number else None,
                        "study_date": filt.study_date, "modality": filt.modality},
            "b_threshold": b_threshold, "keep_phi": keep_phi, "classifier": "header rules",
            "source": "WADO-RS metadata (no pixel data)" if pacs.address.kind == "dicomweb"
            else "C-GET into a temporary folder",
        }
        result.outputs = write_sort_outputs(
            out_dir, sets, skipped, records, keep_phi=keep_phi, config=config,
            summary={"n_studies": len(studies), "written_back": result.written_back or None})
    result.seconds = time.perf_counter() - start
    return result
