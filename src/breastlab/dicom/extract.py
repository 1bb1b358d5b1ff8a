"""Extraction: a walked header (:class:`Node`) -> :class:`InstanceRecord` s (one per frame).

Top-level fields (``common``), functional-group fields merged shared-then-per-frame
(``group_fields``), the few vendor private facts the rules read (``vendor_hints``) and
b-values (:mod:`breastlab.dicom.bvalues`).
"""
from __future__ import annotations

import re

from breastlab.dicom._parse import UNDEFINED, Node
from breastlab.dicom.bvalues import find_b_value
from breastlab.dicom.records import InstanceRecord, SkippedFile
from breastlab.dicom.tags import (
    FRAME_ANATOMY,
    FRAME_CONTENT,
    MR_DIFFUSION,
    MR_ECHO,
    MR_FRAME_TYPE,
    MR_MODIFIER,
    MR_TIMING,
    NON_IMAGE_CLASSES,
    NON_IMAGE_MODALITIES,
    PER_FRAME_FG,
    PIXEL_MEASURES,
    PLANE_ORIENTATION,
    PLANE_POSITION,
    SHARED_FG,
    VIEW_CODE,
)
from breastlab.dicom.times import datetime_time, parse_time

#: most frames (NumberOfFrames) accepted in one file
MAX_FRAMES = 100_000
_SIEMENS_TRACE_SEQ = re.compile(r"EP_B\d+T$")


def normalise_manufacturer(value: str | None) -> str | None:
    """SIEMENS, GE, PHILIPS, CANON (Toshiba too), UIH, or the raw value upper-cased."""
    if not value:
        return None
    upper = value.strip().upper()
    if "SIEMENS" in upper:
        return "SIEMENS"
    if upper == "GE" or upper.startswith(("GE ", "GE_", "GEMS")) or "GENERAL ELECTRIC" in upper:
        return "GE"
    if "PHILIPS" in upper:
        return "PHILIPS"
    if "CANON" in upper or "TOSHIBA" in upper:
        return "CANON"
    if upper == "UIH" or "UNITED IMAGING" in upper or upper.startswith("UIH"):
        return "UIH"
    return upper or None


def _floats(node: Node, tag: int, hint: str = "DS") -> tuple[float, ...] | None:
    values = node.numbers(tag, hint)
    return values or None


def _non_image_reason(node: Node, sop_class: str | None) -> str | None:
    if sop_class:
        for prefix, what in NON_IMAGE_CLASSES.items():
            if sop_class == prefix or (prefix.endswith(".") and sop_class.startswith(prefix)):
                return f"{what}, SOP class {sop_class}"
        if not sop_class.startswith("1.2.840.10008."):
            return f"private SOP class {sop_class}"
    modality = (node.str(0x00080060) or "").upper()
    if modality in NON_IMAGE_MODALITIES:
        return f"modality {modality} is not an image"
    return None



def _frame_problem(node: Node, pixel: tuple[int, int] | None) -> str | None:
    """Why the frame count cannot be trusted, or None.

    NumberOfFrames must be 1..MAX_FRAMES; an enhanced file needs one Per-Frame
    Functional Groups item per frame; native Pixel Data must hold every frame.
    """
    frames = node.seq(PER_FRAME_FG)
    declared = node.int(0x00280008)
    if declared is None and 0x00280008 in node:
        return "NumberOfFrames (0028,0008) is not a number"
    if declared is not None and not 1 <= declared <= MAX_FRAMES:
        return f"NumberOfFrames (0028,0008) = {declared} is outside 1..{MAX_FRAMES}"
    if frames and declared is None:
        return f"{len(frames)} Per-Frame Functional Groups items but no NumberOfFrames"
    if frames and len(frames) != declared:
        return f"{len(frames)} Per-Frame Functional Groups items but NumberOfFrames = {declared}"
    if pixel is not None and pixel[1] != UNDEFINED:
        rows, cols = node.int(0x00280010, "US") or 0, node.int(0x00280011, "US") or 0
        bits, samples = node.int(0x00280100, "US") or 0, node.int(0x00280002, "US") or 1
        if rows and cols and bits:
            need = (rows * cols * samples * bits * (declared or 1) + 7) // 8
            if pixel[1] < need:
                return (f"Pixel Data holds {pixel[1]} bytes; {declared or 1} frame(s) of "
                        f"{rows}x{cols}x{samples} at {bits} bits need {need}")
    return None



def _records_from_node(node: Node, path: str, meta: dict[int, str]) -> list[InstanceRecord] | SkippedFile:
    sop_class = node.str(0x00080016) or meta.get(0x0002)
    reason = _non_image_reason(node, sop_class)
    if reason:
        return SkippedFile(path, "non-image", reason)
    if node.int(0x00280010, "US") is None:
        return SkippedFile(path, "non-image", "no Rows (0028,0010): not an image")
    problem = _frame_problem(node, None)
    if problem:
        return SkippedFile(path, "corrupt", problem)
    try:
        return _build_records(path, node, meta)
    except Exception as exc:  # noqa: BLE001 - a bad value must not stop the batch
        return SkippedFile(path, "corrupt", f"header values could not be read: {type(exc).__name__}: {exc}")


# ----------------------------------------------------------------------------- extraction
def _common(node: Node, path: str, meta: dict[int, str]) -> dict:
    """Fields read from the top level of the data set."""
    s, st, f, i = node.str, node.strs, node.float, node.int
    manufacturer = normalise_manufacturer(s(0x00080070))
    image_type = st(0x00080008)
    sequence_name = s(0x00180024) or s(0x00189005)
    acq_dt = s(0x0008002A)
    view_code = None
    for item in node.seq(VIEW_CODE):
        view_code = item.str(0x00080104)
        if view_code:
            break
    laterality = s(0x00200062) or s(0x00200060)
    fields = {
        "path": path,
        "sop_class_uid": s(0x00080016) or meta.get(0x0002),
        "sop_instance_uid": s(0x00080018),
        "transfer_syntax_uid": meta.get(0x0010),
        "modality": (s(0x00080060) or "").upper() or None,
        "study_uid": s(0x0020000D),
        "series_uid": s(0x0020000E),
        "series_number": i(0x00200011),
        "instance_number": i(0x00200013),
        "acquisition_number": i(0x00200012),
        "patient_id": s(0x00100020),
        "patient_name": node.text(0x00100010),
        "study_date": s(0x00080020),
        "manufacturer": manufacturer,
        "manufacturer_model": s(0x00081090),
        "series_description": node.text(0x0008103E),
        "protocol_name": node.text(0x00181030),
        "sequence_name": sequence_name,
        "image_type": image_type,
        "body_part": (s(0x00180015) or "").upper() or None,
        "scanning_sequence": st(0x00180020),
        "sequence_variant": st(0x00180021),
        "scan_options": st(0x00180022),
        "repetition_time": f(0x00180080),
        "echo_time": f(0x00180081),
        "inversion_time": f(0x00180082),
        "flip_angle": f(0x00181314),
        "echo_train_length": i(0x00180091),
        "spectrally_selected_suppression": (s(0x00189025) or "").upper() or None,
        "magnetic_field_strength": f(0x00180087),
        "series_time": parse_time(s(0x00080031)),
        "acquisition_time": parse_time(s(0x00080032)) if 0x00080032 in node else datetime_time(acq_dt),
        "content_time": parse_time(s(0x00080033)),
        "acquisition_datetime": acq_dt,
        "trigger_time": f(0x00181060),
        "temporal_position_identifier": i(0x00200100),
        "number_of_temporal_positions": i(0x00200105),
        "contrast_agent": s(0x00180010),
        "contrast_start_time": parse_time(s(0x00181042)),
        "diffusion_directionality": (s(0x00189075) or "").upper() or None,
        "rows": i(0x00280010, "US"),
        "columns": i(0x00280011, "US"),
        "number_of_frames": i(0x00280008),
        "image_position": _floats(node, 0x00200032),
        "image_orientation": _floats(node, 0x00200037),
        "slice_location": f(0x00201041),
        "pixel_spacing": _floats(node, 0x00280030),
        "slice_thickness": f(0x00180050),
        "is_mosaic": "MOSAIC" in image_type,
        "laterality": laterality.upper() if laterality else None,
        "view_position": (s(0x00185101) or "").upper() or None,
        "view_code": view_code,
    }
    return fields


def _group_fields(group: Node, out: dict, vendor: dict[str, str]) -> None:
    """Fields of one functional-groups item (shared or per-frame), merged into ``out``."""
    for item in group.seq(PIXEL_MEASURES):
        if 0x00280030 in item:
            out["pixel_spacing"] = _floats(item, 0x00280030)
        if 0x00180050 in item:
            out["slice_thickness"] = item.float(0x00180050)
    for item in group.seq(PLANE_POSITION):
        if 0x00200032 in item:
            out["image_position"] = _floats(item, 0x00200032)
    for item in group.seq(PLANE_ORIENTATION):
        if 0x00200037 in item:
            out["image_orientation"] = _floats(item, 0x00200037)
    for item in group.seq(FRAME_CONTENT):
        if 0x00209128 in item:
            out["temporal_position_index"] = item.int(0x00209128, "UL")
        dt = item.str(0x00189074)
        if dt:
            out["acquisition_datetime"] = dt
            out["acquisition_time"] = datetime_time(dt)
    for item in group.seq(MR_FRAME_TYPE):
        frame_type = item.strs(0x00089007)
        if frame_type:
            out["image_type"] = frame_type
        contrast = item.str(0x00089209)
        if contrast:
            vendor["AcquisitionContrast"] = contrast.upper()
        component = item.str(0x00089208)  # ComplexImageComponent: MAGNITUDE, PHASE, REAL, IMAGINARY, MIXED
        if component:
            vendor["ComplexImageComponent"] = component.upper()
    for item in group.seq(MR_TIMING):
        if 0x00180080 in item:
            out["repetition_time"] = item.float(0x00180080)
        if 0x00181314 in item:
            out["flip_angle"] = item.float(0x00181314)
        if 0x00180091 in item:
            out["echo_train_length"] = item.int(0x00180091)
    for item in group.seq(MR_ECHO):
        if 0x00189082 in item:
            out["echo_time"] = item.float(0x00189082, "FD")
    for item in group.seq(MR_MODIFIER):
        inversion = item.str(0x00189009)
        if inversion:
            vendor["InversionRecovery"] = inversion.upper()
        times = item.numbers(0x00189079, "FD")
        if times:
            out["inversion_time"] = times[0]
        excitation = item.str(0x00189026)
        if excitation:
            vendor["SpectrallySelectedExcitation"] = excitation.upper()
    for item in group.seq(MR_DIFFUSION):
        directionality = item.str(0x00189075)
        if directionality:
            out["diffusion_directionality"] = directionality.upper()
    for item in group.seq(FRAME_ANATOMY):
        lat = item.str(0x00209072)
        if lat and not out.get("laterality"):
            out["laterality"] = lat.upper()


def _vendor_hints(node: Node, manufacturer: str | None) -> dict[str, str]:
    """Cheap vendor-specific facts the rules read (all values strings).

    Only what the rules or the DCE pass read is kept here (and the Siemens mosaic
    count, see below); b-values come from :mod:`breastlab.dicom.bvalues`, which reads
    its tags itself.
    """
    hints: dict[str, str] = {}

    def put(key: str, group: int, creator: str, element: int, raw_tag: int, vendor: str,
            hint: str | None = None) -> None:
        tag = node.private_tag(group, creator, element)
        if tag is None and manufacturer == vendor and raw_tag in node:
            tag = raw_tag
        if tag is None or tag not in node:
            return
        vr = node.vr(tag)
        if hint is not None and vr in (None, "UN", "OB") or vr in ("SS", "US", "SL", "UL", "FL", "FD"):
            numbers = node.numbers(tag, hint or "SS")
            value = "\\".join(f"{v:g}" for v in numbers) if numbers else None
        else:
            value = node.text(tag)
        if value is not None:
            hints[key] = value

    component = node.str(0x00089208)  # ComplexImageComponent at the top level (enhanced MR)
    if component:
        hints["ComplexImageComponent"] = component.upper()
    if manufacturer == "PHILIPS" or 0x20010010 in node:
        put("(2001,1004)", 0x2001, "Philips Imaging DD 001", 0x04, 0x20011004, "PHILIPS")
        put("(2001,1020)", 0x2001, "Philips Imaging DD 001", 0x20, 0x20011020, "PHILIPS")
    if manufacturer == "GE" or 0x00430010 in node:
        put("(0019,109C)", 0x0019, "GEMS_ACQU_01", 0x9C, 0x0019109C, "GE")  # pulse sequence name
        put("(0043,102F)", 0x0043, "GEMS_PARM_01", 0x2F, 0x0043102F, "GE", "SS")  # 0 mag, 1 phase, 2 real, 3 imag
    if manufacturer == "SIEMENS":
        put("(0019,100A)", 0x0019, "SIEMENS MR HEADER", 0x0A, 0x0019100A, "SIEMENS", "US")
        # NumberOfImagesInMosaic: read by no rule; it checks that an implicit-VR private
        # US value decodes (tests/test_dicom_realdata.py)
    return hints


def _build_records(path: str, node: Node, meta: dict[int, str]) -> list[InstanceRecord]:
    node.charset = node.text(0x00080005)
    common = _common(node, path, meta)
    manufacturer = common["manufacturer"]
    vendor = _vendor_hints(node, manufacturer)
    shared = node.seq(SHARED_FG)
    frames = node.seq(PER_FRAME_FG)
    if not frames:
        groups: list[tuple[int | None, list[Node]]] = [(None, shared[:1])]
    else:
        groups = [(index, [frame] + shared[:1]) for index, frame in enumerate(frames)]

    records = []
    for frame_index, group_nodes in groups:
        fields = dict(common)
        hints = dict(vendor)
        for group in reversed(group_nodes):  # shared first, per-frame wins
            _group_fields(group, fields, hints)
        fields["frame_index"] = frame_index
        b_value, b_source = find_b_value(node, group_nodes, manufacturer)
        fields["b_value"] = b_value
        fields["b_value_source"] = b_source
        fields["is_derived_trace"] = _is_trace(fields, hints, b_value)
        if manufacturer == "CANON" and b_value is None:
            hints["canon_b_absent"] = "1"
        fields["vendor"] = hints
        records.append(InstanceRecord(**fields))
    return records


def _is_trace(fields: dict, hints: dict[str, str], b_value: float | None) -> bool:
    """Isotropic / trace-weighted (derived) diffusion image."""
    if fields.get("diffusion_directionality") == "ISOTROPIC":
        return True
    manufacturer = fields.get("manufacturer")
    if manufacturer == "PHILIPS":
        # 'I' marks the isotropic trace only on b>0 images (Philips also writes 'I' on b=0)
        return hints.get("(2001,1004)", "").upper() == "I" and bool(b_value)
    if manufacturer == "SIEMENS":
        if "TRACEW" in fields.get("image_type", ()):
            return True
        name = (fields.get("sequence_name") or "").upper()
        return bool(_SIEMENS_TRACE_SEQ.search(name))
    return False
