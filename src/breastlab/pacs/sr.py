"""Results written back as DICOM: a Comprehensive SR per sorted study, a prediction SR,
and Grad-CAM overlays as Secondary Capture, all built with ``highdicom``.

highdicom builds and validates the content tree (value types, relationships, and that
every referenced instance is in the evidence). Concepts that DICOM's code tables do not
have use the local coding scheme ``99BRSTLAB``; ``Series Instance UID`` uses DCM 112002.
Every object says that it is research output: ``SeriesDescription``, a TEXT item and,
for images, ``ImageComments``. The patient and study modules are copied from the study's
own header, so the new series joins the study it describes.

Content tree of a sort SR (``dsrdump`` shows it)::

    CONTAINER  Breast MRI series classification (research output)
      TEXT       Notice: research output, not for clinical use
      TEXT       Software: breastlab <version>
      CONTAINER  Image set           (one per image set)
        UIDREF     Series Instance UID
        CODE       Series label = DWI_high | DCE_early | ...
        NUM        Diffusion b-value [s/mm2]          (diffusion sets)
        NUM        DCE phase index [{index}]            (DCE sets)
        NUM        Seconds after pre-contrast [s]     (DCE sets)
        NUM        Confidence [1]
        TEXT       Evidence / Evidence source / Rule
        IMAGE      one per instance (frames listed for multi-frame)
"""
from __future__ import annotations

import contextlib
import warnings
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from breastlab.mri.classify import LabelledSet

SCHEME = "99BRSTLAB"
NOTICE = "RESEARCH OUTPUT - NOT FOR CLINICAL USE"
SORT_SERIES_NUMBER = 9901
PREDICT_SERIES_NUMBER = 9902
OVERLAY_SERIES_NUMBER = 9903
#: type 2 attributes highdicom reads from the first evidence item
_PATIENT_STUDY = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
                  "StudyDate", "StudyTime", "ReferringPhysicianName")


def _code(value: str, meaning: str, scheme: str = SCHEME):  # noqa: ANN202
    from highdicom.sr import CodedConcept

    return CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def _version() -> str:
    from breastlab import __version__

    return __version__


def _text(name: str, meaning: str, value: str):  # noqa: ANN202
    from highdicom.sr import RelationshipTypeValues, TextContentItem

    return TextContentItem(name=_code(name, meaning), value=value[:1024] or "-",
                           relationship_type=RelationshipTypeValues.CONTAINS)


def _num(name: str, meaning: str, value: float, unit: str, unit_meaning: str):  # noqa: ANN202
    from highdicom.sr import NumContentItem, RelationshipTypeValues

    return NumContentItem(name=_code(name, meaning), value=float(value), unit=_code(unit, unit_meaning, "UCUM"),
                          relationship_type=RelationshipTypeValues.CONTAINS)


def _evidence(study_header: Any, refs: Sequence[tuple[str, str, str, str]]) -> list[Any]:
    """Evidence datasets: (study, series, sop class, sop instance) per referenced instance; the first
    carries the patient and study modules of ``study_header``."""
    from pydicom import Dataset

    out = []
    for i, (study, series, sop_class, sop) in enumerate(refs):
        ds = Dataset()
        if i == 0:
            for kw in _PATIENT_STUDY + ("SpecificCharacterSet", "IssuerOfPatientID"):
                if kw in study_header:
                    setattr(ds, kw, study_header.get(kw))
            for kw in _PATIENT_STUDY:
                if kw not in ds:
                    setattr(ds, kw, None)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop
        out.append(ds)
    return out


def _image_set_container(ls: LabelledSet):  # noqa: ANN202
    from highdicom.sr import (
        CodeContentItem,
        ContainerContentItem,
        ImageContentItem,
        RelationshipTypeValues,
        UIDRefContentItem,
    )

    contains = RelationshipTypeValues.CONTAINS
    st, s, c = ls.image_set, ls.summary, ls.classification
    container = ContainerContentItem(name=_code("IMAGE_SET", "Image set"), relationship_type=contains)
    items = [
        UIDRefContentItem(name=_code("112002", "Series Instance UID", "DCM"), value=st.series_uid,
                          relationship_type=contains),
        CodeContentItem(name=_code("SERIES_LABEL", "Series label"), value=_code(c.label, c.label),
                        relationship_type=contains),
    ]
    if ls.b_value is not None:
        items.append(_num("B_VALUE", "Diffusion b-value", ls.b_value, "s/mm2", "s/mm2"))
    if s.dce_phase is not None:
        items.append(_num("DCE_PHASE", "DCE phase index", s.dce_phase, "{index}", "index"))
    if s.dce_seconds is not None:
        items.append(_num("DCE_SECONDS", "Seconds after pre-contrast", s.dce_seconds, "s", "second"))
    items += [
        _num("CONFIDENCE", "Confidence", c.confidence, "1", "no units"),
        _text("EVIDENCE", "Evidence", c.evidence_text),
        _text("EVIDENCE_SOURCE", "Evidence source", c.source or "header"),
        _text("RULE", "Rule", c.rule or ""),
    ]
    frames: dict[tuple[str, str], list[int]] = defaultdict(list)
    for r in st.records:
        key = (r.sop_class_uid or "", r.sop_instance_uid or "")
        if r.frame_index is not None:
            frames[key].append(r.frame_index + 1)
        else:
            frames.setdefault(key, [])
    for (sop_class, sop), numbers in frames.items():
        items.append(ImageContentItem(
            name=_code("260753009", "Source", "SCT"), referenced_sop_class_uid=sop_class,
            referenced_sop_instance_uid=sop, referenced_frame_numbers=sorted(numbers) or None,
            relationship_type=contains))
    container.ContentSequence = items
    return container


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """highdicom warns about one-component patient names copied from the study: not ours to fix."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="highdicom")
        yield


def _placed(place: Any) -> dict[str, Any]:
    """Series/SOP UIDs, instance number and predecessors from a ``writeback.Placement`` (fresh UIDs without)."""
    from highdicom import UID

    if place is None:
        return {"series_instance_uid": UID(), "sop_instance_uid": UID(), "instance_number": 1}
    return {"series_instance_uid": place.series_uid, "sop_instance_uid": place.sop_uid,
            "instance_number": place.instance_number, "previous_versions": place.previous or None}


def sort_sr(sets: Sequence[LabelledSet], study_header: Any, *, place: Any = None):  # noqa: ANN201 - ComprehensiveSR
    """The result SR of one study's image sets (all from ``study_header``'s study).

    ``place`` (a :class:`breastlab.pacs.writeback.Placement`) gives its UIDs, instance number and the
    SR it replaces (Predecessor Documents Sequence); without it the UIDs are new.
    """
    with _quiet():
        return _sort_sr(sets, study_header, place)


def _sort_sr(sets: Sequence[LabelledSet], study_header: Any, place: Any = None):  # noqa: ANN202
    from highdicom.sr import ComprehensiveSR, ContainerContentItem

    root = ContainerContentItem(name=_code("BREAST_MRI_SORT", "Breast MRI series classification"))
    content = [_text("NOTICE", "Notice", NOTICE), _text("SOFTWARE", "Software", f"breastlab {_version()}")]
    refs: dict[str, tuple[str, str, str, str]] = {}
    for ls in sets:
        content.append(_image_set_container(ls))
        for r in ls.image_set.records:
            refs.setdefault(r.sop_instance_uid or "", (r.study_uid or "", r.series_uid or "", r.sop_class_uid or "",
                                                       r.sop_instance_uid or ""))
    root.ContentSequence = content
    sr = ComprehensiveSR(
        evidence=_evidence(study_header, list(refs.values())), content=root, series_number=SORT_SERIES_NUMBER,
        manufacturer="breastlab", is_complete=True, series_description="breastlab series sort (research)",
        **_placed(place),
    )
    return sr


def header_from_file(path: str):  # noqa: ANN201 - pydicom Dataset
    """The header of one DICOM file (no pixel data), for the SR's patient and study modules."""
    import pydicom

    return pydicom.dcmread(path, stop_before_pixels=True)


# ----------------------------------------------------------------------------- four-view prediction
def prediction_sr(cases: Sequence[Mapping[str, Any]], study_header: Any, refs: Sequence[tuple[str, str, str, str]],
                  *, threshold: float, threshold_source: str, model_name: str, model_sha256: str,
                  place: Any = None):  # noqa: ANN201
    """An SR with the probability of malignancy per case and the operating threshold.

    ``cases``: rows with ``case_id``, ``prob`` and ``predicted``; ``refs``: the views' instances;
    ``place``: as for :func:`sort_sr`.
    """
    from highdicom.sr import ComprehensiveSR, ContainerContentItem, ImageContentItem, RelationshipTypeValues

    contains = RelationshipTypeValues.CONTAINS
    root = ContainerContentItem(name=_code("FOURVIEW_PREDICTION", "Four-view malignancy prediction"))
    content = [
        _text("NOTICE", "Notice", NOTICE),
        _text("SOFTWARE", "Software", f"breastlab {_version()}"),
        _text("MODEL", "Model", f"{model_name} sha256:{model_sha256[:16]}"),
        _num("THRESHOLD", "Operating threshold", threshold, "1", "no units"),
        _text("THRESHOLD_SOURCE", "Threshold source", threshold_source),
    ]
    for case in cases:
        box = ContainerContentItem(name=_code("CASE", "Case"), relationship_type=contains)
        items = [
            _text("CASE_ID", "Case", str(case["case_id"])),
            _num("P_MALIGNANT", "Probability of malignancy", float(case["prob"]), "1", "no units"),
            _text("PREDICTED", "Predicted class", str(case.get("predicted", ""))),
        ]
        for sop_class, sop in case.get("refs", ()):
            items.append(ImageContentItem(name=_code("260753009", "Source", "SCT"), referenced_sop_class_uid=sop_class,
                                          referenced_sop_instance_uid=sop, relationship_type=contains))
        box.ContentSequence = items
        content.append(box)
    root.ContentSequence = content
    return ComprehensiveSR(
        evidence=_evidence(study_header, refs), content=root, series_number=PREDICT_SERIES_NUMBER,
        manufacturer="breastlab", is_complete=True, series_description="breastlab four-view prediction (research)",
        **_placed(place),
    )


def overlay_secondary_captures(images: Sequence[Any], study_header: Any, *, place: Any = None) -> list[Any]:
    """Grad-CAM overlay pictures (H x W x 3 uint8 arrays) as one Secondary Capture series.

    With ``place`` (the prediction SR's :class:`breastlab.pacs.writeback.Placement`) their UIDs derive
    from it: the same prediction gives the same overlays."""
    import numpy as np
    from highdicom import UID
    from highdicom.sc import SCImage

    series_uid = place.derived_uid("overlays") if place is not None else UID()
    ref = study_header.copy()
    for kw in _PATIENT_STUDY:
        if kw not in ref:
            setattr(ref, kw, None)
    out = []
    for i, picture in enumerate(images, start=1):
        pixels = np.ascontiguousarray(np.asarray(picture, dtype=np.uint8)[..., :3])
        sc = SCImage.from_ref_dataset(
            ref_dataset=ref, pixel_array=pixels, photometric_interpretation="RGB", bits_allocated=8,
            coordinate_system="PATIENT", patient_orientation=("L", "F"), series_instance_uid=series_uid,
            sop_instance_uid=place.derived_uid("overlay", i) if place is not None else UID(),
            series_number=OVERLAY_SERIES_NUMBER, instance_number=i, manufacturer="breastlab",
            series_description="breastlab Grad-CAM overlays (RESEARCH)",
        )
        sc.PatientOrientation = None  # a figure of four views: no single orientation (type 2, left empty)
        sc.ImageComments = f"{NOTICE}: Grad-CAM heat map, not a finding"
        sc.BurnedInAnnotation = "NO"
        sc.ConversionType = "WSD"
        out.append(sc)
    return out
