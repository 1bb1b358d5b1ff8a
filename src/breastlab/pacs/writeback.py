"""Write results back to a PACS once: an unchanged result writes nothing, a changed one replaces its SR.

Every result object (the sort SR of a study, a prediction SR and its overlays) has a *digest*:
a SHA-256 over what it says (labels, b-values, phases, confidences, evidence, the instances it
references; or the cases, probabilities, threshold and model). Its UIDs are derived from the
study, the series number, the digest and the instance number (``2.25.`` UIDs, PS3.5 B.2), so:

* before storing, the study's earlier results of the same kind are found (QIDO-RS or C-FIND:
  Modality SR and our series number) and the latest (highest InstanceNumber) is taken;
* when its SOP Instance UID is the one this digest gives at its instance number, the result
  is **unchanged**: nothing is written, and the log says so;
* otherwise a new SR is stored in the same series, InstanceNumber + 1, whose Predecessor
  Documents Sequence (built by highdicom) references the SR it replaces; the log says so;
* two identical runs, even at once, derive the same UIDs: the PACS keeps one copy.

An SR written before this scheme (random UIDs) is replaced once, then left alone.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from breastlab.pacs.errors import PacsError

log = logging.getLogger("breastlab.pacs")

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


@dataclass(frozen=True)
class PriorResult:
    """A result SR already on the PACS."""

    study_uid: str
    series_uid: str
    sop_uid: str
    instance_number: int
    sop_class_uid: str = COMPREHENSIVE_SR

    def reference(self):  # noqa: ANN201 - pydicom Dataset
        """What highdicom needs to list it in the Predecessor Documents Sequence."""
        from pydicom import Dataset

        ds = Dataset()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = self.study_uid, self.series_uid
        ds.SOPClassUID, ds.SOPInstanceUID = self.sop_class_uid, self.sop_uid
        return ds


@dataclass(frozen=True)
class Placement:
    """Where a new result goes: its UIDs, its instance number and the SR it replaces (if any)."""

    series_uid: str
    sop_uid: str
    instance_number: int
    replaces: PriorResult | None

    @property
    def previous(self) -> list[Any]:
        return [self.replaces.reference()] if self.replaces else []

    def derived_uid(self, *parts: object) -> str:
        """Another UID of this result (e.g. an overlay series), stable for the same result."""
        return derived_uid(self.sop_uid, *parts)


def derived_uid(sop_uid: str, *parts: object) -> str:
    """A UID derived from a result SR's SOP Instance UID (its overlay series and images)."""
    return _uid(sop_uid, *parts)


def digest(content: Any) -> str:
    """SHA-256 of a JSON-serialisable description of a result (keys sorted, floats rounded by the caller)."""
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def _uid(*parts: object) -> str:
    """A ``2.25.`` UID from a name-based (SHA-1, version 5) UUID of ``parts`` (PS3.5 B.2): the same parts give
    the same UID. (pydicom's ``generate_uid`` ignores ``entropy_srcs`` under the 2.25 root, hence uuid5.)"""
    import uuid

    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, '|'.join(str(p) for p in parts)).int}"


def sop_uid_for(study_uid: str, series_number: int, result_digest: str, instance_number: int) -> str:
    return _uid("breastlab-result", study_uid, series_number, result_digest, instance_number)


def sort_digest(sets: Sequence[Any]) -> str:
    """The digest of one study's sort result (what its SR says)."""
    rows = []
    for ls in sets:
        s, c = ls.summary, ls.classification
        rows.append([ls.image_set.series_uid, str(c.label), ls.b_value, s.dce_phase,
                     None if s.dce_seconds is None else round(s.dce_seconds, 3), round(c.confidence, 4), c.rule,
                     c.evidence_text, sorted({(r.sop_instance_uid or "", r.frame_index) for r in ls.image_set.records},
                                             key=str)])
    return digest(sorted(rows, key=str))


def prior_results(pacs: Any, study_uid: str, series_number: int) -> list[PriorResult]:
    """The study's SR instances in series with ``series_number`` (our result series), over DICOMweb or DIMSE."""
    if hasattr(pacs, "client"):  # DICOMweb
        from breastlab.pacs.dicomweb import http_errors
        from breastlab.pacs.metadata import json_value

        with http_errors(f"QIDO-RS series search in study {study_uid}", pacs.address.url, pacs.timeout):
            series = pacs.client.search_for_series(study_uid, search_filters={"Modality": "SR"})
        out = []
        for hit in series:
            if str(json_value(hit, "00200011") or "") != str(series_number):
                continue
            series_uid = json_value(hit, "0020000E") or ""
            with http_errors(f"QIDO-RS instance search in series {series_uid}", pacs.address.url, pacs.timeout):
                instances = pacs.client.search_for_instances(study_uid, series_uid)
            out += [PriorResult(study_uid, series_uid, json_value(i, "00080018") or "",
                                int(json_value(i, "00200013") or 0), json_value(i, "00080016") or COMPREHENSIVE_SR)
                    for i in instances]
        return [p for p in out if p.sop_uid]
    return [PriorResult(study_uid, str(ds.get("SeriesInstanceUID", "")), str(ds.get("SOPInstanceUID", "")),
                        int(ds.get("InstanceNumber", 0) or 0), str(ds.get("SOPClassUID", "")) or COMPREHENSIVE_SR)
            for ds in pacs.find_instances(study_uid, modality="SR", series_number=series_number)
            if ds.get("SOPInstanceUID")]


def write_once(pacs: Any, study_uid: str, series_number: int, result_digest: str,
               build: Callable[[Placement], Sequence[Any]], *, what: str = "result SR") -> dict[str, Any]:
    """Store the result ``build`` makes unless the study's latest result has this digest.

    Args:
        pacs: a :class:`~breastlab.pacs.dicomweb.DicomWebPacs` or :class:`~breastlab.pacs.dimse.DimsePacs`.
        study_uid: the study the result describes.
        series_number: our series number for this kind of result (9901 sort, 9902 prediction).
        result_digest: :func:`digest` of what the result says.
        build: makes the datasets (the SR first) for a :class:`Placement`.
        what: how the log names the result.

    Returns:
        ``{"study_uid", "action": "unchanged" | "new" | "replaced", "series_uid", "sop_instance_uid",
        "replaces", "instances"}`` (``instances``: SOP Instance UIDs stored, empty when unchanged).
    """
    prior = prior_results(pacs, study_uid, series_number)
    latest = max(prior, key=lambda p: (p.instance_number, p.sop_uid)) if prior else None
    entry: dict[str, Any] = {"study_uid": study_uid, "replaces": None, "instances": []}
    if latest is not None and latest.sop_uid == sop_uid_for(study_uid, series_number, result_digest,
                                                            latest.instance_number):
        log.info("study %s: %s unchanged (SR %s already on %s): nothing written", study_uid, what, latest.sop_uid,
                 pacs.address.url)
        return entry | {"action": "unchanged", "series_uid": latest.series_uid, "sop_instance_uid": latest.sop_uid}
    number = (latest.instance_number if latest else 0) + 1
    place = Placement(latest.series_uid if latest else _uid("breastlab-series", study_uid, series_number),
                      sop_uid_for(study_uid, series_number, result_digest, number), number, latest)
    datasets = list(build(place))
    if not datasets:
        raise PacsError(f"study {study_uid}: nothing to write back")
    pacs.store(datasets)
    entry |= {"series_uid": place.series_uid, "sop_instance_uid": place.sop_uid,
              "instances": [str(ds.SOPInstanceUID) for ds in datasets]}
    if latest is None:
        log.info("study %s: %s %s written to %s", study_uid, what, place.sop_uid, pacs.address.url)
        return entry | {"action": "new"}
    log.info("study %s: %s changed: SR %s written to %s, replacing SR %s (Predecessor Documents Sequence)",
             study_uid, what, place.sop_uid, pacs.address.url, latest.sop_uid)
    return entry | {"action": "replaced", "replaces": latest.sop_uid}


def write_back_sorts(pacs: Any, sets: Sequence[Any], headers: dict[str, Any]) -> list[dict[str, Any]]:
    """One sort SR per study that has a header in ``headers``, each written once (:func:`write_once`)."""
    from collections import defaultdict

    from breastlab.pacs.sr import SORT_SERIES_NUMBER, sort_sr

    by_study: dict[str, list[Any]] = defaultdict(list)
    for ls in sets:
        by_study[ls.image_set.study_uid or ""].append(ls)
    out = []
    for uid, group in by_study.items():
        if uid not in headers:
            continue
        header = headers[uid]
        out.append(write_once(pacs, uid, SORT_SERIES_NUMBER, sort_digest(group),
                              lambda place, group=group, header=header: [sort_sr(group, header, place=place)],
                              what="sort result SR"))
    return out
