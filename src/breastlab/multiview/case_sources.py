"""The three sources of case assembly, each turned into items (one image with its view,
group and label): DICOM headers, a manifest CSV, image folders; and the labels table.
``multiview.cases.assemble_cases`` builds the cases from the items.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from breastlab.core import artefacts
from breastlab.multiview.case_table import (
    BREAST_LABEL_COLUMNS,
    IGNORED_SUFFIXES,
    IMAGE_SUFFIXES,
    Problem,
    parse_label,
)
from breastlab.multiview.conventions import (
    cbis_exclusion,
    is_vindr_manifest,
    parse_cbis_id,
    pixel_key,
    vindr_candidates,
)
from breastlab.multiview.views import (
    View,
    ViewSet,
    parse_view,
    parse_view_parts,
    strip_view_text,
    view_from_record,
)


def _norm_header(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "path": ("path", "file", "filename", "filepath", "file_path", "image", "imagepath", "imagefile",
             "imagefilepath", "img", "imgpath", "dicompath", "location", "fname"),
    "case_id": ("case_id", "case", "caseid", "exam", "examid", "study", "studyid", "accession",
                "accessionnumber", "studyinstanceuid", "studyuid"),
    "patient_id": ("patient_id", "patient", "patientid", "pid", "subject", "subjectid", "mrn",
                   "id1"),
    "view": ("view", "viewname", "views", "imageview", "viewposition", "projection", "position"),
    "laterality": ("laterality", "side", "leftorrightbreast", "breast", "breastside",
                   "imagelaterality", "leftright"),
    "label": ("label", "class", "classname", "diagnosis", "pathology", "malignant", "malignancy",
              "target", "outcome", "y", "groundtruth", "classification", "breastbirads",
              "birads"),
}


def _map_headers(fieldnames: Sequence[str]) -> dict[str, str]:
    """Canonical column name → the header actually used in the file."""
    normed = {_norm_header(f): f for f in fieldnames if f is not None}
    mapping: dict[str, str] = {}
    for canon, aliases in _HEADER_ALIASES.items():
        for alias in aliases:
            if _norm_header(alias) in normed:
                mapping[canon] = normed[_norm_header(alias)]
                break
    return mapping


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    rows = artefacts.read_table(path)  # the one tolerant CSV reader (core.artefacts)
    return rows.columns, list(rows)


# --------------------------------------------------------------------------- items

@dataclass
class Item:
    path: str
    slot: str | None
    view: View | None
    source: str
    group: tuple
    patient: str  # raw patient identity (for the patient column)
    display: str  # raw readable case name (used only with keep_phi)
    label: int | str | None = None
    label_raw: str = ""
    keys: tuple[str, ...] = ()  # raw values that a labels table may use to name this case
    uid: str | None = None  # SOPInstanceUID (DICOM) for exact-duplicate detection
    note: str = ""  # why no view was found
    convention: str = ""  # cbis-ddsm, vindr-mammo, ... (conventions.py)
    manufacturer: str = ""


def expand_inputs(inputs: Iterable[str | Path]) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """Split inputs into image files (with their root) and DICOM candidates."""
    images: list[tuple[Path, Path]] = []
    others: list[Path] = []
    for raw in inputs:
        root = Path(raw)
        if root.is_dir():
            files = sorted(p for p in root.rglob("*") if p.is_file())
        elif root.exists():
            files, root = [root], root.parent
        else:
            others.append(root)  # reported as unreadable by the scanner / by us
            continue
        for f in files:
            if any(part.startswith(".") for part in f.relative_to(root).parts):
                continue
            suffix = f.suffix.lower()
            if suffix in IMAGE_SUFFIXES:
                images.append((root, f))
            elif suffix not in IGNORED_SUFFIXES:
                others.append(f)
    return images, others


def _class_label(root: Path, file: Path, label_map: Mapping[str, Any] | None) -> tuple[Any, str]:
    rel = file.relative_to(root)
    candidates = ([rel.parts[0]] if len(rel.parts) > 1 else []) + [root.name]
    for name in candidates:
        label = parse_label(name, label_map)
        if label is not None:
            return label, name
    return None, candidates[0] if candidates else ""


def items_from_images(pairs: list[tuple[Path, Path]], vs: ViewSet,
                       label_map: Mapping[str, Any] | None,
                       problems: list[Problem]) -> list[Item]:
    items = []
    for root, f in pairs:
        rel = f.relative_to(root)
        label, label_raw = _class_label(root, f, label_map)
        if vs.any_image:
            view, source = parse_view(str(rel)), "path"
            name = f"{root.name}/{rel.as_posix()}"
            group: tuple = ("image", name)
            patient = name
        else:
            view = parse_view(f"{root.name}/{rel.as_posix()}")
            source = "path"
            parent = f.parent
            name = f"{root.name}/{parent.relative_to(root).as_posix()}".rstrip("/.")
            group = ("folder", str(parent.resolve()))
            patient = name
        slot = vs.slot(view)
        items.append(Item(str(f.resolve()), slot, view, source, group, patient,
                           name.replace("/", "_"), label, label_raw,
                           keys=(f.parent.name, f.stem), note="no view in the file name or folders"))
    return items


def items_from_dicom(files: list[Path], vs: ViewSet, group_by: str, workers: int | None,
                      progress: bool, problems: list[Problem]) -> list[Item]:
    if not files:
        return []
    from breastlab.dicom.scan import scan_paths  # local: pulls in the header parser

    result = scan_paths([str(f) for f in files], workers=workers, progress=progress)
    for skipped in result.skipped:
        problems.append(Problem("unreadable", f"{skipped.reason}: {skipped.detail}".rstrip(": "),
                                path=str(skipped.path)))
    items: list[Item] = []
    seen_paths: set[str] = set()
    for rec in sorted(result.records, key=lambda r: (str(r.path), r.frame_index or 0)):
        if rec.path in seen_paths:  # further frames of a multi-frame file
            continue
        seen_paths.add(rec.path)
        view, source = view_from_record(rec)
        patient = rec.patient_id or ""
        convention = ""
        cbis = parse_cbis_id(patient)
        if cbis is not None:
            why = cbis_exclusion(cbis, rec.series_description)
            if why:
                problems.append(Problem("excluded-series", why, path=str(rec.path)))
                continue
            convention, patient = "cbis-ddsm", cbis.woman
            if view is None or source != "tags":
                view, source = View(cbis.laterality, cbis.projection), "cbis-ddsm patient_id"
        elif source.endswith("patient_id") and patient:
            patient = strip_view_text(patient) or patient
        slot = vs.slot(view)
        study = rec.study_uid or ""
        folder = str(Path(rec.path).resolve().parent)
        if vs.any_image:
            group: tuple = ("image", rec.sop_instance_uid or str(Path(rec.path).resolve()))
        elif cbis is not None and group_by != "folder":
            # one StudyInstanceUID per image in CBIS-DDSM: the woman's images are the case
            group = ("woman", patient)
        elif group_by == "folder" or not (patient or study):
            group = ("folder", folder)
        elif group_by == "patient":
            group = ("patient", patient)
        else:
            group = ("study", patient, study)
        display = patient or Path(folder).name
        keys = tuple(k for k in (rec.patient_id, patient, study, Path(rec.path).parent.name,
                                 Path(rec.path).parent.parent.name) if k)
        items.append(Item(str(Path(rec.path).resolve()), slot, view, source, group,
                           patient or Path(folder).name, display, keys=keys,
                           uid=rec.sop_instance_uid,
                           note="no view in DICOM tags (ImageLaterality/Laterality, ViewPosition, "
                                "ViewCodeSequence), SeriesDescription, ProtocolName, PatientID or "
                                "file path",
                           convention=convention, manufacturer=rec.manufacturer or ""))
    return items


def items_from_manifest(manifest: Path, extra_roots: Sequence[Path], vs: ViewSet,
                         label_map: Mapping[str, Any] | None,
                         problems: list[Problem]) -> list[Item]:
    fieldnames, rows = _read_csv(manifest)
    cols = _map_headers(fieldnames)
    vindr = "path" not in cols and is_vindr_manifest(fieldnames)
    if vindr:  # VinDr-Mammo breast-level_annotations.csv: images/{study_id}/{image_id}.dicom
        lower = {f.strip().lower(): f for f in fieldnames if f}
        cols.update(case_id=lower["study_id"], patient_id=lower["study_id"],
                    laterality=lower["laterality"], view=lower["view_position"])
        if "breast_birads" in lower:
            cols["label"] = lower["breast_birads"]
    if "path" not in cols and not vindr:
        raise ValueError(
            f"manifest {manifest} has no path column (found: {', '.join(fieldnames)}); "
            f"accepted names: {', '.join(_HEADER_ALIASES['path'])}"
        )
    base = manifest.resolve().parent
    items: list[Item] = []
    for n, row in enumerate(rows, start=2):
        if vindr:
            study_id = (row.get(lower["study_id"]) or "").strip()
            image_id = (row.get(lower["image_id"]) or "").strip()
            candidates = [c for b in (base, *extra_roots) for c in vindr_candidates(b, study_id, image_id)]
            p = next((c for c in candidates if c.exists()), candidates[0])
        else:
            raw_path = (row.get(cols["path"]) or "").strip()
            if not raw_path:
                problems.append(Problem("missing-file", f"manifest line {n} has an empty path"))
                continue
            p = Path(raw_path).expanduser()
            if not p.is_absolute():
                candidates = [base / p, *(r / p for r in extra_roots)]
                p = next((c for c in candidates if c.exists()), candidates[0])
        if not p.is_file():
            problems.append(Problem("missing-file", f"manifest line {n}: file not found",
                                    path=str(p)))
            continue
        case_raw = (row.get(cols["case_id"], "") or "").strip() if "case_id" in cols else ""
        patient_raw = (row.get(cols["patient_id"], "") or "").strip() if "patient_id" in cols else ""
        view_text = (row.get(cols["view"], "") or "").strip() if "view" in cols else ""
        lat_text = (row.get(cols["laterality"], "") or "").strip() if "laterality" in cols else ""
        label_raw = (row.get(cols["label"], "") or "").strip() if "label" in cols else ""
        view: View | None = None
        source = "manifest"
        if not vs.any_image:
            lat, proj = parse_view_parts(f"{lat_text} {view_text}".strip()) if (lat_text or view_text) \
                else (None, None)
            if lat_text and not lat:
                lat, _ = parse_view_parts(lat_text)
            if not (lat and proj):
                plat, pproj = parse_view_parts(str(p))
                lat, proj = lat or plat, proj or pproj
                source = "manifest+path" if (lat_text or view_text) else "path"
            view = View(lat, proj) if lat and proj else None
        slot = vs.slot(view)
        note = (f"manifest line {n}: no view in {(lat_text + ' ' + view_text).strip()!r} "
                "nor in the file path") if view is None else ""
        if case_raw:
            group: tuple = ("case", patient_raw, case_raw)
        elif patient_raw:
            group = ("patient", patient_raw)
        elif vs.any_image:
            group = ("image", str(p.resolve()))
        else:
            group = ("folder", str(p.resolve().parent))
        patient = patient_raw or case_raw or (p.stem if vs.any_image else p.parent.name)
        display = case_raw or patient_raw or (p.stem if vs.any_image else p.parent.name)
        label = parse_label(label_raw, label_map)
        items.append(Item(str(p.resolve()), slot, view, source, group, patient, display,
                           label, label_raw, keys=tuple(k for k in (case_raw, patient_raw) if k),
                           note=note, convention="vindr-mammo" if vindr else ""))
    return items


@dataclass
class LabelEntry:
    """Labels of one id in a labels file: the exam label and, where the file names a
    breast (a laterality column, or ``label_L``/``label_R``), one label per breast."""

    label: Any = None
    breasts: dict[str, Any] = field(default_factory=dict)


def _combine(a: Any, b: Any) -> Any:
    """Several rows for one breast or exam: drop wins, then malignant (any malignant
    finding makes the breast malignant, as for CBIS-DDSM's one row per abnormality)."""
    if a == "drop" or b == "drop":
        return "drop"
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def read_labels(path: Path, label_map: Mapping[str, Any] | None) -> dict[str, LabelEntry]:
    fieldnames, rows = _read_csv(path)
    cols = _map_headers(fieldnames)
    breast_cols = {c[-1]: c for c in BREAST_LABEL_COLUMNS if c in fieldnames}
    if "label" not in cols and not breast_cols:
        raise ValueError(f"labels file {path} has no label column (found: {', '.join(fieldnames)})")
    id_cols = [cols[c] for c in ("case_id", "patient_id") if c in cols]
    id_cols += [f for f in fieldnames if _norm_header(f) in ("id", "name", "folder", "studyinstanceuid")
                and f not in id_cols]
    if not id_cols:
        raise ValueError(f"labels file {path} has no id column (case_id, patient_id, study_uid, ...)")
    table: dict[str, LabelEntry] = {}
    for row in rows:
        label = parse_label(row.get(cols["label"]), label_map) if "label" in cols else None
        side = None
        if "laterality" in cols:
            side, _ = parse_view_parts(row.get(cols["laterality"]) or "")
        breasts = {s: parse_label(row.get(c), label_map) for s, c in breast_cols.items()}
        if side and label is not None:
            breasts[side] = _combine(breasts.get(side), label)
        breasts = {s: v for s, v in breasts.items() if v is not None}
        for c in id_cols:
            key = (row.get(c) or "").strip()
            if not key:
                continue
            entry = table.setdefault(key, LabelEntry())
            entry.label = _combine(entry.label, label)
            for s_, v in breasts.items():
                entry.breasts[s_] = _combine(entry.breasts.get(s_), v)
                entry.label = _combine(entry.label, v)
    return table


def drop_pixel_duplicates(items: list[Item], problems: list[Problem]) -> None:
    """Drop images whose pixels repeat an earlier image (by path), with a reason.

    Public sets hold byte-identical images under different ids (CMMD; BUSI holds one image
    in both benign/ and malignant/); a copy in two cases would put the same image in
    training and test. The first by path is kept; when the copies carry different labels,
    both are dropped (neither label can be trusted).
    """
    seen: dict[str, Item] = {}
    dropped: set[int] = set()
    for it in sorted(items, key=lambda i: i.path):
        key = pixel_key(it.path)
        if key is None:
            continue
        other = seen.get(key)
        if other is None:
            seen[key] = it
            continue
        if it.uid and it.uid == other.uid:
            continue  # same instance twice: reported as duplicate-instance
        where = "another case" if other.group != it.group else "the same case"
        dropped.add(id(it))
        if other.label is not None and it.label is not None and other.label != it.label:
            dropped.add(id(other))
            problems.append(Problem("duplicate-image",
                                    f"pixel data identical to {other.path} ({where}) but labelled "
                                    f"{it.label_raw or it.label!r} there {other.label_raw or other.label!r}; "
                                    "both dropped", path=it.path))
            problems.append(Problem("duplicate-image",
                                    f"pixel data identical to {it.path} with another label; dropped",
                                    path=other.path))
        else:
            problems.append(Problem("duplicate-image",
                                    f"pixel data identical to {other.path} ({where}); dropped",
                                    path=it.path))
    items[:] = [it for it in items if id(it) not in dropped]
