"""Case assembly: one row per case, one column per view, from DICOM, a manifest, or class folders.

Three kinds of input (see ``docs/cases.md``):

* **DICOM** files or folders: read with :func:`breastlab.dicom.scan.scan_paths`; the view
  of each image comes from :func:`~breastlab.multiview.views.view_from_record`; images are
  grouped into cases by (PatientID, StudyInstanceUID) (``group_by="study"``), by PatientID
  (``"patient"``) or by folder (``"folder"``). Labels come from a labels CSV.
* A **manifest** CSV: one row per image with a path and (any of) case id, patient id, view,
  laterality, label. Relative paths are resolved against the manifest's folder.
* **Image folders** without a manifest: the top folder name is the class
  (``busi/benign/*.png`` → label 0). With a one-view set each image is a case; with a
  multi-view set the images of one folder are one case and their views come from file names.

Output: :class:`CaseTable`, written as ``cases.csv`` (``case_id, patient_id, label`` then one
path column per view) plus ``cases_problems.csv`` listing every problem with a reason.
Identifiers are pseudonymised (short salted SHA-256) unless ``keep_phi``.
"""
from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from breastlab.core import artefacts, atomic
from breastlab.core.errors import UsageError
from breastlab.core.privacy import hashed_id
from breastlab.core.vocab import DuplicatePolicy, GroupBy, MissingPolicy
from breastlab.multiview.conventions import (
    cbis_exclusion,
    is_vindr_manifest,
    parse_birads,
    parse_cbis_id,
    pixel_key,
    vindr_candidates,
)
from breastlab.multiview.views import (
    View,
    ViewSet,
    parse_view,
    parse_view_parts,
    resolve_view_set,
    strip_view_text,
    view_from_record,
)

MISSING_POLICIES = tuple(m.value for m in MissingPolicy)
DUPLICATE_POLICIES = tuple(m.value for m in DuplicatePolicy)
GROUP_BY = tuple(m.value for m in GroupBy)
BASE_COLUMNS = ("case_id", "patient_id", "label")
#: Optional per-breast label columns of ``cases.csv`` (1 malignant, 0 not, empty unknown).
BREAST_LABEL_COLUMNS = ("label_L", "label_R")
#: Optional columns of ``cases.csv`` that are not views: the public-set convention that
#: assembled the case, and the manufacturer of its images (DICOM Manufacturer, read with the
#: headers at assembly), for the evaluation's breakdowns.
INFO_COLUMNS = ("convention", "manufacturer")
WRITTEN_INFO_COLUMNS = INFO_COLUMNS  # manufacturer: from the DICOM headers read at assembly
NON_VIEW_COLUMNS = (*BASE_COLUMNS, *BREAST_LABEL_COLUMNS, *INFO_COLUMNS)
PROBLEM_COLUMNS = ("case_id", "view", "reason", "detail", "path")

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".npy"})
_IGNORED_SUFFIXES = frozenset({
    ".csv", ".tsv", ".json", ".txt", ".md", ".html", ".htm", ".xml", ".log", ".pdf", ".py",
    ".yaml", ".yml", ".zip", ".pt", ".pth", ".nii", ".gz", ".sh", ".ini", ".cfg",
})

#: The one label vocabulary of the diagnosis side (``parse_label``; ``dataset.parse_label``
#: reads words through it).
_POSITIVE = {"1", "1.0", "m", "malignant", "malignancy", "malign", "cancer", "carcinoma",
             "positive"}
_NEGATIVE = {"0", "0.0", "b", "benign", "negative"}


class CaseAssemblyError(UsageError):
    """Cases are incomplete or ambiguous under the chosen policy; ``table`` holds the
    partial result and every problem, so callers can still write ``cases_problems.csv``."""

    def __init__(self, message: str, table: CaseTable) -> None:
        super().__init__(message)
        self.table = table


@dataclass
class Case:
    """One case: its views' file paths (``None`` = blank view) and a label (1 malignant, 0 benign)."""

    case_id: str
    patient_id: str
    label: int | None
    paths: dict[str, str | None]
    filled: dict[str, str] = field(default_factory=dict)  # view -> how a missing view was filled
    breast_labels: dict[str, int] = field(default_factory=dict)  # "L"/"R" -> 1 malignant / 0 not
    convention: str = ""  # public-set convention that assembled the case (cbis-ddsm, cmmd, vindr)
    manufacturer: str = ""

    def row(self, extra: Sequence[str] = ()) -> dict[str, Any]:
        row: dict[str, Any] = {"case_id": self.case_id, "patient_id": self.patient_id,
                               "label": "" if self.label is None else self.label}
        for col in extra:
            if col in BREAST_LABEL_COLUMNS:
                row[col] = self.breast_labels.get(col[-1], "")
            else:
                row[col] = getattr(self, col, "") or ""
        row.update({k: (v or "") for k, v in self.paths.items()})
        return row


@dataclass(frozen=True)
class Problem:
    """Something that kept a file or case out, or changed it (one row of ``cases_problems.csv``)."""

    reason: str  # missing-view, duplicate-view, unreadable, missing-file, unparseable-view, ...
    detail: str
    path: str = ""
    case_id: str = ""
    view: str = ""

    def row(self) -> dict[str, str]:
        return {"case_id": self.case_id, "view": self.view, "reason": self.reason,
                "detail": self.detail, "path": self.path}


@dataclass
class CaseTable:
    """Assembled cases plus every problem met on the way."""

    view_set: ViewSet
    cases: list[Case]
    problems: list[Problem] = field(default_factory=list)
    view_sources: Counter = field(default_factory=Counter)

    @property
    def view_names(self) -> tuple[str, ...]:
        return self.view_set.views

    @property
    def extra_columns(self) -> list[str]:
        """Per-breast label and info columns, present only when some case has them."""
        cols = []
        if any(c.breast_labels for c in self.cases):
            cols += list(BREAST_LABEL_COLUMNS)
        cols += [c for c in WRITTEN_INFO_COLUMNS if any(getattr(k, c, "") for k in self.cases)]
        return cols

    @property
    def columns(self) -> list[str]:
        return [*BASE_COLUMNS, *self.extra_columns, *self.view_names]

    def rows(self) -> list[dict[str, Any]]:
        extra = self.extra_columns
        return [c.row(extra) for c in self.cases]

    def label_counts(self) -> Counter:
        return Counter(c.label for c in self.cases)

    def problem_counts(self) -> Counter:
        return Counter(p.reason for p in self.problems)

    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self):
        return iter(self.cases)

    def write(self, path: str | Path) -> tuple[Path, Path]:
        return write_cases(self, path)


# --------------------------------------------------------------------------- helpers

def problems_path(cases_csv: str | Path) -> Path:
    """``cases.csv`` → ``cases_problems.csv`` (same folder)."""
    p = Path(cases_csv)
    return p.with_name(f"{p.stem}_problems.csv")


def write_cases(table: CaseTable, path: str | Path) -> tuple[Path, Path]:
    """Write ``cases.csv`` and ``cases_problems.csv`` atomically; returns both paths."""
    out = artefacts.write_cases(path, table.rows(), table.columns)
    prob = atomic.write_csv(problems_path(path), (p.row() for p in table.problems), PROBLEM_COLUMNS)
    return out, prob


def pseudonym(*parts: str, prefix: str = "C", salt: str = "", length: int = 12) -> str:
    """``prefix`` + the first ``length`` hex digits of SHA-256(salt, parts).

    The prefix keeps spreadsheet tools from reading ids like ``12e456`` as numbers.
    """
    return hashed_id(salt + "".join(f"\x1f{part}" for part in parts), prefix, length)


def parse_label(value: Any, label_map: Mapping[str, Any] | None = None) -> int | str | None:
    """1 (malignant), 0 (benign), ``None`` (unknown/empty) or ``"drop"`` (excluded by the map).

    ``label_map`` keys are matched case-insensitively before the defaults
    (``malignant/m/1/cancer`` → 1, ``benign/b/0`` and ``BENIGN_WITHOUT_CALLBACK`` → 0).
    """
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    key = text.lower()
    norm = re.sub(r"[\s\-]+", "_", key)
    if label_map:
        lowered = {str(k).strip().lower(): v for k, v in label_map.items()}
        for k in (key, norm):
            if k in lowered:
                mapped = lowered[k]
                if mapped in ("drop", "skip", "exclude"):
                    return "drop"
                if mapped in (None, "", "none", "unknown"):
                    return None
                return int(mapped)
    birads = parse_birads(text)  # "BI-RADS 4" (VinDr-Mammo breast_birads)
    if birads is not None:
        return birads
    if norm in _POSITIVE or norm.startswith("malignan"):
        return 1
    if norm in _NEGATIVE or norm.startswith("benign"):
        return 0
    return None


def parse_label_map(text: str | None) -> dict[str, Any]:
    """``"normal=0,benign=0,malignant=1,other=drop"`` → dict (for the CLI)."""
    result: dict[str, Any] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise ValueError(f"label map entry {item!r} is not NAME=VALUE")
        k, v = (s.strip() for s in item.split("=", 1))
        v_low = v.lower()
        if v_low in ("drop", "skip", "exclude"):
            result[k] = "drop"
        elif v_low in ("", "none", "unknown"):
            result[k] = None
        else:
            parsed = parse_label(v)
            if parsed is None:
                raise ValueError(f"label map value {v!r} is not 0, 1, malignant, benign, none or drop")
            result[k] = parsed
    return result


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
class _Item:
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


def _expand_inputs(inputs: Iterable[str | Path]) -> tuple[list[tuple[Path, Path]], list[Path]]:
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
            elif suffix not in _IGNORED_SUFFIXES:
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


def _items_from_images(pairs: list[tuple[Path, Path]], vs: ViewSet,
                       label_map: Mapping[str, Any] | None,
                       problems: list[Problem]) -> list[_Item]:
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
        items.append(_Item(str(f.resolve()), slot, view, source, group, patient,
                           name.replace("/", "_"), label, label_raw,
                           keys=(f.parent.name, f.stem), note="no view in the file name or folders"))
    return items


def _items_from_dicom(files: list[Path], vs: ViewSet, group_by: str, workers: int | None,
                      progress: bool, problems: list[Problem]) -> list[_Item]:
    if not files:
        return []
    from breastlab.dicom.scan import scan_paths  # local: pulls in the header parser

    result = scan_paths([str(f) for f in files], workers=workers, progress=progress)
    for skipped in result.skipped:
        problems.append(Problem("unreadable", f"{skipped.reason}: {skipped.detail}".rstrip(": "),
                                path=str(skipped.path)))
    items: list[_Item] = []
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
        items.append(_Item(str(Path(rec.path).resolve()), slot, view, source, group,
                           patient or Path(folder).name, display, keys=keys,
                           uid=rec.sop_instance_uid,
                           note="no view in DICOM tags (ImageLaterality/Laterality, ViewPosition, "
                                "ViewCodeSequence), SeriesDescription, ProtocolName, PatientID or "
                                "file path",
                           convention=convention, manufacturer=rec.manufacturer or ""))
    return items


def _items_from_manifest(manifest: Path, extra_roots: Sequence[Path], vs: ViewSet,
                         label_map: Mapping[str, Any] | None,
                         problems: list[Problem]) -> list[_Item]:
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
    items: list[_Item] = []
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
        items.append(_Item(str(p.resolve()), slot, view, source, group, patient, display,
                           label, label_raw, keys=tuple(k for k in (case_raw, patient_raw) if k),
                           note=note, convention="vindr-mammo" if vindr else ""))
    return items


@dataclass
class _LabelEntry:
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


def _read_labels(path: Path, label_map: Mapping[str, Any] | None) -> dict[str, _LabelEntry]:
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
    table: dict[str, _LabelEntry] = {}
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
            entry = table.setdefault(key, _LabelEntry())
            entry.label = _combine(entry.label, label)
            for s_, v in breasts.items():
                entry.breasts[s_] = _combine(entry.breasts.get(s_), v)
                entry.label = _combine(entry.label, v)
    return table


def _drop_pixel_duplicates(items: list[_Item], problems: list[Problem]) -> None:
    """Drop images whose pixels repeat an earlier image (by path), with a reason.

    Public sets hold byte-identical images under different ids (CMMD; BUSI holds one image
    in both benign/ and malignant/); a copy in two cases would put the same image in
    training and test. The first by path is kept; when the copies carry different labels,
    both are dropped (neither label can be trusted).
    """
    seen: dict[str, _Item] = {}
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


# --------------------------------------------------------------------------- assembly

def assemble_cases(
    inputs: Sequence[str | Path] | str | Path = (),
    *,
    view_set: str | Sequence[str] | ViewSet | None = None,
    manifest: str | Path | None = None,
    labels: str | Path | None = "auto",
    label_map: Mapping[str, Any] | None = None,
    missing: MissingPolicy | str = MissingPolicy.ERROR,
    duplicates: DuplicatePolicy | str = DuplicatePolicy.ERROR,
    group_by: str = "study",
    keep_phi: bool = False,
    salt: str = "",
    workers: int | None = None,
    progress: bool = False,
) -> CaseTable:
    """Assemble cases from DICOM, a manifest, or image folders (module docstring).

    ``missing``: ``error`` (raise :class:`CaseAssemblyError`), ``drop`` (leave the case out),
    ``duplicate-contralateral`` (copy the other breast's same projection; drop when that is
    missing too) or ``blank`` (empty path: the loader feeds a blank image).
    ``duplicates`` (two files for one view of one case): ``error``, ``first`` (keep the first
    by path) or ``drop`` (leave the case out). ``labels``: a CSV (id column + label) matched
    against case ids, PatientIDs, StudyInstanceUIDs, manifest case ids or case folder names;
    ``"auto"`` uses ``labels.csv`` at the top of a single input folder when present.
    Every problem is in ``table.problems``; with ``error`` policies the exception carries it.

    Example:
        One-view images in class folders (the BUSI form): each image is a case.

        >>> import tempfile
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp()) / "us"
        >>> for cls in ("benign", "malignant"):
        ...     (root / cls).mkdir(parents=True)
        ...     Image.new("L", (8, 8)).save(root / cls / f"{cls}_1.png")
        >>> table = assemble_cases(root, view_set="single")
        >>> table.columns, sorted(table.label_counts().items())
        (['case_id', 'patient_id', 'label', 'image'], [(0, 1), (1, 1)])
    """
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing must be one of {', '.join(MISSING_POLICIES)}, not {missing!r}")
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicates must be one of {', '.join(DUPLICATE_POLICIES)}, not {duplicates!r}")
    if group_by not in GROUP_BY:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BY)}, not {group_by!r}")
    vs = resolve_view_set(view_set)
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    input_paths = [Path(p) for p in inputs]
    problems: list[Problem] = []

    if manifest is not None:
        roots = [p if p.is_dir() else p.parent for p in input_paths]
        items = _items_from_manifest(Path(manifest), roots, vs, label_map, problems)
    else:
        if not input_paths:
            raise ValueError("no inputs: give DICOM/image folders or a manifest")
        images, others = _expand_inputs(input_paths)
        for p in others:
            if not p.exists():
                problems.append(Problem("missing-file", "input not found", path=str(p)))
        others = [p for p in others if p.exists()]
        items = _items_from_images(images, vs, label_map, problems)
        items += _items_from_dicom(others, vs, group_by, workers, progress, problems)

    _drop_pixel_duplicates(items, problems)
    label_table: dict[str, _LabelEntry] | None = None
    if labels == "auto":
        labels = None
        if manifest is None and len(input_paths) == 1 and (input_paths[0] / "labels.csv").is_file():
            labels = input_paths[0] / "labels.csv"
    if labels is not None:
        label_table = _read_labels(Path(labels), label_map)

    table, fatal = _build(items, vs, problems, missing=missing, duplicates=duplicates,
                          keep_phi=keep_phi, salt=salt, label_table=label_table)
    if fatal:
        shown = "\n".join(f"  - {line}" for line in fatal[:12])
        more = f"\n  ... and {len(fatal) - 12} more" if len(fatal) > 12 else ""
        raise CaseAssemblyError(
            f"{len(fatal)} case problem(s) under missing={missing!r}, duplicates={duplicates!r}:\n"
            f"{shown}{more}\nChoose a policy (--missing drop|duplicate-contralateral|blank, "
            "--duplicates first|drop) or fix the inputs; see docs/cases.md.",
            table,
        )
    return table


def _build(items: list[_Item], vs: ViewSet, problems: list[Problem], *, missing: str,
           duplicates: str, keep_phi: bool, salt: str,
           label_table: dict[str, _LabelEntry] | None) -> tuple[CaseTable, list[str]]:
    groups: dict[tuple, list[_Item]] = defaultdict(list)
    for item in items:
        groups[item.group].append(item)

    fatal: list[str] = []
    cases: list[Case] = []
    sources: Counter = Counter()
    used_ids: dict[str, tuple] = {}
    display_count: Counter = Counter(g[0].display for g in groups.values())
    display_seen: Counter = Counter()

    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        group = sorted(groups[key], key=lambda it: it.path)
        first = group[0]
        if keep_phi:
            display_seen[first.display] += 1
            case_id = first.display or "case"
            if display_count[first.display] > 1:
                case_id = f"{case_id}_{display_seen[first.display]}"
            patient_id = first.patient
        else:
            case_id = pseudonym(*key, prefix="C", salt=salt)
            patient_id = pseudonym(first.patient, prefix="P", salt=salt)
        if case_id in used_ids and used_ids[case_id] != key:  # pragma: no cover - 48-bit clash
            case_id = pseudonym(*key, prefix="C", salt=salt, length=24)
        used_ids[case_id] = key

        # exact duplicate instances (same SOPInstanceUID in two files)
        by_uid: dict[str, _Item] = {}
        kept: list[_Item] = []
        for it in group:
            if it.uid and it.uid in by_uid:
                problems.append(Problem("duplicate-instance",
                                        f"same SOPInstanceUID as {by_uid[it.uid].path}; ignored",
                                        path=it.path, case_id=case_id))
                continue
            if it.uid:
                by_uid[it.uid] = it
            kept.append(it)

        slots: dict[str, list[_Item]] = defaultdict(list)
        odd: list[_Item] = []
        for it in kept:
            if it.slot is None:
                odd.append(it)
                if it.view is not None:
                    problems.append(Problem("view-not-in-set",
                                            f"view {it.view.name} is not in the view set "
                                            f"({','.join(vs.views)}); ignored",
                                            path=it.path, case_id=case_id, view=it.view.name))
                else:
                    problems.append(Problem("unparseable-view", it.note or "no recognisable view",
                                            path=it.path, case_id=case_id))
            else:
                slots[it.slot].append(it)
        if not slots:
            problems.append(Problem("no-usable-view", f"{len(kept)} file(s), none in the view set; "
                                    "no case made", case_id=case_id, path=first.path))
            continue

        drop = False
        paths: dict[str, str | None] = {}
        for slot, its in slots.items():
            if len(its) > 1:
                names = " and ".join(i.path for i in its[:3])
                if duplicates == "error":
                    fatal.append(f"case {case_id}: {len(its)} files for {slot}: {names}")
                    problems.append(Problem("duplicate-view", f"{len(its)} files for {slot}: {names}",
                                            path=its[1].path, case_id=case_id, view=slot))
                elif duplicates == "drop":
                    drop = True
                    problems.append(Problem("duplicate-view",
                                            f"{len(its)} files for {slot}: {names}; case dropped",
                                            path=its[1].path, case_id=case_id, view=slot))
                else:
                    for extra in its[1:]:
                        problems.append(Problem("duplicate-view",
                                                f"kept {its[0].path}, ignored this file",
                                                path=extra.path, case_id=case_id, view=slot))
            paths[slot] = its[0].path
            sources[its[0].source] += 1

        filled: dict[str, str] = {}
        absent = [v for v in vs.views if v not in paths]
        if absent:
            have = ", ".join(v for v in vs.views if v in paths)
            odd_note = (f"; {len(odd)} file(s) in this case had no usable view, e.g. {odd[0].path}"
                        if odd else "")
            for v in absent:
                if missing == "error":
                    fatal.append(f"case {case_id}: missing {v} (has {have}){odd_note}")
                    problems.append(Problem("missing-view", f"missing {v} (has {have}){odd_note}",
                                            case_id=case_id, view=v, path=first.path))
                elif missing == "drop":
                    drop = True
                    problems.append(Problem("missing-view", f"missing {v} (has {have}); case dropped",
                                            case_id=case_id, view=v, path=first.path))
                elif missing == "blank":
                    filled[v] = "blank"
                    problems.append(Problem("missing-view", f"missing {v} (has {have}); left blank",
                                            case_id=case_id, view=v, path=first.path))
                else:  # duplicate-contralateral
                    other = View.from_name(v).contralateral().name
                    if paths.get(other):
                        filled[v] = f"contralateral:{other}"
                        problems.append(Problem("missing-view",
                                                f"missing {v}; filled with {other} (contralateral copy)",
                                                case_id=case_id, view=v, path=paths[other] or ""))
                    else:
                        drop = True
                        problems.append(Problem("missing-view",
                                                f"missing {v} and its contralateral {other}; case dropped",
                                                case_id=case_id, view=v, path=first.path))
            for v, how in filled.items():
                paths[v] = paths[how.split(":", 1)[1]] if how.startswith("contralateral:") else None
        if drop:
            continue

        # labels: per breast where the images name one, the exam label is the worst breast
        labels_found = {it.label for it in group if it.label is not None}
        label: Any = None
        breast_labels: dict[str, Any] = {}
        if "drop" in labels_found:
            problems.append(Problem("excluded-label",
                                    f"label {first.label_raw!r} is mapped to drop; case left out",
                                    case_id=case_id, path=first.path))
            continue
        by_side: dict[str, set] = defaultdict(set)
        for it in group:
            if it.label is not None and it.view is not None and not vs.any_image:
                by_side[it.view.laterality].add(it.label)
        if len(labels_found) > 1 and by_side and all(len(v) == 1 for v in by_side.values()):
            breast_labels = {side: next(iter(v)) for side, v in by_side.items()}
            label = max(breast_labels.values())
        elif len(labels_found) > 1:
            problems.append(Problem("label-conflict",
                                    f"files of this case carry labels {sorted(labels_found)}; label left empty",
                                    case_id=case_id, path=first.path))
        elif labels_found:
            label = labels_found.pop()
            if by_side:
                breast_labels = {side: label for side in by_side}
        if label_table is not None:
            keys = [case_id, *(k for it in group for k in it.keys)]
            match = next((k for k in keys if k in label_table), None)
            if match is None:
                problems.append(Problem("no-label", "case not found in the labels file",
                                        case_id=case_id, path=first.path))
            else:
                entry = label_table[match]
                label = entry.label
                if label == "drop" or "drop" in entry.breasts.values():
                    problems.append(Problem("excluded-label", "labels file maps this case to drop",
                                            case_id=case_id, path=first.path))
                    continue
                breast_labels = dict(entry.breasts)
        elif label is None and any(it.label_raw for it in group):
            raw = next(it.label_raw for it in group if it.label_raw)
            problems.append(Problem("unknown-label",
                                    f"label {raw!r} is neither malignant nor benign; left empty "
                                    "(use a label map, e.g. --label-map normal=0)",
                                    case_id=case_id, path=first.path))
        if vs.any_image:
            breast_labels = {}
        makers = sorted({it.manufacturer for it in group if it.manufacturer})
        case = Case(case_id, patient_id, label, {v: paths.get(v) for v in vs.views}, filled,
                    breast_labels={k_: int(v) for k_, v in breast_labels.items()},
                    convention=first.convention, manufacturer="/".join(makers))
        cases.append(case)

    return CaseTable(vs, cases, problems, sources), fatal


# --------------------------------------------------------------------------- reading

def read_cases(path: str | Path) -> CaseTable:
    """Load a ``cases.csv``: every column other than ``case_id, patient_id, label`` and the
    optional ``label_L, label_R, convention, manufacturer`` is a view.

    Relative paths are resolved against the CSV's folder; empty cells are blank views
    (``None``); the label is 1, 0 or ``None``.
    """
    path = Path(path)
    rows = artefacts.read_cases(path)
    fieldnames = rows.columns
    missing_cols = [c for c in BASE_COLUMNS if c not in fieldnames]
    if missing_cols:
        raise ValueError(f"{path} is not a case table: missing column(s) {', '.join(missing_cols)}")
    views = tuple(c for c in fieldnames if c not in NON_VIEW_COLUMNS)
    if not views:
        raise ValueError(f"{path} has no view columns")
    if views == ("image",):
        vs = resolve_view_set("single")
    else:
        try:
            vs = resolve_view_set(list(views))
        except ValueError:
            vs = ViewSet("custom", views, any_image=len(views) == 1)
        if vs.views != views:  # columns named loosely (l_cc): keep the file's names
            vs = ViewSet("custom", views, any_image=False) if all(
                _is_view_name(v) for v in views) else ViewSet("custom", views, any_image=len(views) == 1)
    base = path.resolve().parent
    cases = []
    for row in rows:
        paths: dict[str, str | None] = {}
        for v in views:
            cell = (row.get(v) or "").strip()
            if not cell:
                paths[v] = None
            else:
                p = Path(cell).expanduser()
                paths[v] = str(p if p.is_absolute() else (base / p))
        label = parse_label(row.get("label"))
        breasts = {c[-1]: parse_label(row.get(c)) for c in BREAST_LABEL_COLUMNS}
        cases.append(Case(row["case_id"], row.get("patient_id") or "",
                          label if isinstance(label, int) else None, paths,
                          breast_labels={k: v for k, v in breasts.items() if isinstance(v, int)},
                          convention=row.get("convention") or "",
                          manufacturer=row.get("manufacturer") or ""))
    return CaseTable(vs, cases)


def _is_view_name(name: str) -> bool:
    try:
        View.from_name(name)
        return True
    except ValueError:
        return False
