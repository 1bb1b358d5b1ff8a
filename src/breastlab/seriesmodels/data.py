"""Training inputs for the MRI image models: three DATA forms, slice sampling, a slice data set.

DATA is any of:

1. **A folder per class**: ``DATA/<class>/...`` holding DICOM, PNG/JPEG or NIfTI files.
   DICOM files are grouped into series by SeriesInstanceUID (patient from PatientID);
   a NIfTI file is one series; PNG/JPEG files in one folder below the class folder are
   one series (files directly in the class folder are one series each). For non-DICOM
   files the patient is the first folder below the class folder when the tree is
   ``<class>/<patient>/<series>/...``, else the series itself.
2. **A manifest CSV** with columns ``path, label`` and optionally ``patient_id``,
   ``series_id`` (rows with the same series id are one series; relative paths are
   relative to the CSV).
3. **A ``series.csv`` from ``breastlab sort``** whose ``label`` column the user has
   corrected (``--label-column`` picks another). The files of each image set are found
   in the ``instances.csv`` beside it.

Labels are matched to the task's classes case-insensitively, with the seed's names as
aliases (FS-T2WI, NoC, CEearly, CE ...). Series whose label is not a class are left out
and counted. Patient identifiers are replaced by a pseudonym
before they reach any table (an unsalted SHA-256 prefix: a pseudonym, not anonymisation).
"""
from __future__ import annotations

import csv
import functools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from breastlab.core.labels import Label
from breastlab.core.privacy import hashed_id
from breastlab.dicom.pixels import is_dicom
from breastlab.multiview.preprocess import IMAGE_SUFFIXES, NIFTI_SUFFIXES

from .train_config import TASK_CLASSES  # noqa: E402  (re-exported: one definition)

ALIASES: dict[str, str] = {
    "t2": Label.T2WI, "t2w": Label.T2WI, "t2wi": Label.T2WI,
    "fs-t2wi": Label.T2WI_FS, "fs_t2wi": Label.T2WI_FS, "fst2wi": Label.T2WI_FS, "t2wi-fs": Label.T2WI_FS,
    "t2_fs": Label.T2WI_FS, "t2fs": Label.T2WI_FS, "stir": Label.T2WI_FS,
    "adc": Label.ADC, "dwi": "DWI", "t1": Label.T1, "sub": Label.SUB, "mip": Label.MIP,
    "pre": Label.DCE_PRE, "noc": Label.DCE_PRE, "pre-contrast": Label.DCE_PRE, "precontrast": Label.DCE_PRE,
    "dce_pre": Label.DCE_PRE,
    "early": Label.DCE_EARLY, "ceearly": Label.DCE_EARLY, "ce_early": Label.DCE_EARLY, "dce_early": Label.DCE_EARLY,
    "delayed": Label.DCE_DELAYED, "ce": Label.DCE_DELAYED, "late": Label.DCE_DELAYED, "dce_delayed": Label.DCE_DELAYED,
}


def canonical_label(value: str | None, classes: Sequence[str]) -> str | None:
    """The class name matching ``value`` (case-insensitive, seed aliases), or ``None``."""
    if value is None:
        return None
    v = str(value).strip()
    by_lower = {c.lower(): c for c in classes}
    if v.lower() in by_lower:
        return by_lower[v.lower()]
    alias = ALIASES.get(v.lower().replace(" ", ""))
    if alias and alias.lower() in by_lower:
        return by_lower[alias.lower()]
    return None


def pseudonym(patient: str | None) -> str:
    """A short stable pseudonym for a patient identifier (never the identifier itself)."""
    if not patient:
        return ""
    return hashed_id(str(patient), "p-")


def file_kind(path: str | os.PathLike) -> str | None:
    p = Path(path)
    name = p.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if p.suffix.lower() in IMAGE_SUFFIXES:
        return "raster"
    if p.suffix.lower() in {".csv", ".json", ".txt", ".md"} or name.startswith("."):
        return None
    if is_dicom(p):
        return "dicom"
    return None


@dataclass
class SeriesItem:
    """One labelled series: its files, kind, patient pseudonym and label."""

    series_id: str
    patient_id: str
    label: str | None
    files: list[str] = field(default_factory=list)
    kind: str = "dicom"  # dicom | raster | nifti | mixed
    frames: list[int | None] | None = None  # per file, for multi-frame DICOM (from instances.csv)


@dataclass
class Dataset:
    """Items plus what was left out and why."""

    items: list[SeriesItem]
    classes: list[str]
    source: str
    dropped: dict[str, int] = field(default_factory=dict)
    path: str = ""

    def labels(self) -> list[int]:
        return [self.classes.index(i.label) for i in self.items]


# --------------------------------------------------------------------------- DICOM grouping
def _dicom_groups(files: Iterable[Path]) -> dict[str, tuple[str, list[str]]]:
    """SeriesInstanceUID → (patient id, files); unreadable headers form their own series."""
    import pydicom

    groups: dict[str, tuple[str, list[str]]] = {}
    for f in files:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True,
                                 specific_tags=["SeriesInstanceUID", "PatientID", "StudyInstanceUID"])
            uid = str(ds.get("SeriesInstanceUID") or f"file:{f}")
            patient = str(ds.get("PatientID") or ds.get("StudyInstanceUID") or uid)
        except Exception:  # noqa: BLE001 - a bad file is its own (single-file) series
            uid, patient = f"file:{f}", f"file:{f}"
        groups.setdefault(uid, (patient, []))[1].append(str(f))
    return groups


def _items_from_files(files: list[Path], root: Path, label: str) -> list[SeriesItem]:
    """Group the files of one class folder into series items."""
    items: list[SeriesItem] = []
    dicom = [f for f in files if file_kind(f) == "dicom"]
    for uid, (patient, fs) in _dicom_groups(dicom).items():
        items.append(SeriesItem(series_id=uid, patient_id=pseudonym(patient), label=label,
                                files=sorted(fs), kind="dicom"))
    raster_groups: dict[Path, list[str]] = {}
    for f in files:
        kind = file_kind(f)
        rel = f.relative_to(root)
        parts = rel.parts
        if kind == "nifti":
            patient = parts[0] if len(parts) > 1 else str(rel)
            items.append(SeriesItem(series_id=f"{label}/{rel.as_posix()}", patient_id=pseudonym(patient),
                                    label=label, files=[str(f)], kind="nifti"))
        elif kind == "raster":
            key = f.parent if len(parts) > 1 else f
            raster_groups.setdefault(key, []).append(str(f))
    for key, fs in raster_groups.items():
        rel = key.relative_to(root)
        # <class>/<patient>/<series>/img.png or <class>/<series>/img.png: the first folder is the
        # patient; a file directly in the class folder is its own series and patient
        patient = rel.parts[0] if key.is_dir() else rel.as_posix()
        items.append(SeriesItem(series_id=f"{label}/{rel.as_posix()}", patient_id=pseudonym(patient),
                                label=label, files=sorted(fs), kind="raster"))
    return items


def read_class_folders(root: str | os.PathLike, classes: Sequence[str]) -> Dataset:
    """Form 1: ``root/<class>/...``; folders that are not a class are counted as dropped."""
    root = Path(root)
    items: list[SeriesItem] = []
    dropped: dict[str, int] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        label = canonical_label(sub.name, classes)
        files = sorted(p for p in sub.rglob("*") if p.is_file() and file_kind(p))
        if label is None:
            dropped[f"folder {sub.name!r} is not a class"] = len(files)
            continue
        items.extend(_items_from_files(files, sub, label))
    return Dataset(items=items, classes=list(classes), source="class-folders", dropped=dropped)


# --------------------------------------------------------------------------- CSV forms
def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(fh)]


def read_manifest(path: str | os.PathLike, classes: Sequence[str], *, label_column: str = "label") -> Dataset:
    """Form 2: a CSV with ``path, label[, patient_id][, series_id]``."""
    path = Path(path)
    rows = _read_csv(path)
    groups: dict[str, SeriesItem] = {}
    dropped: dict[str, int] = {}
    for row in rows:
        file = Path(row["path"])
        if not file.is_absolute():
            file = (path.parent / file).resolve()
        label = canonical_label(row.get(label_column), classes)
        if label is None:
            key = f"label {row.get(label_column)!r} is not a class"
            dropped[key] = dropped.get(key, 0) + 1
            continue
        sid = row.get("series_id") or str(file)
        patient = row.get("patient_id") or sid
        kind = file_kind(file) or "dicom"
        item = groups.get(sid)
        if item is None:
            item = groups[sid] = SeriesItem(series_id=sid, patient_id=pseudonym(patient), label=label, kind=kind)
        elif item.label != label:
            raise ValueError(f"{path}: series {sid!r} has two labels ({item.label}, {label})")
        if item.kind != kind:
            item.kind = "mixed"
        item.files.append(str(file))
    return Dataset(items=list(groups.values()), classes=list(classes), source="manifest", dropped=dropped)


_SET_KEYS = ("set_id", "image_set_id", "series_key", "series_uid")
_PATIENT_KEYS = ("patient_pseudonym", "patient", "patient_id", "study", "study_uid", "study_instance_uid")


def read_sort_series(path: str | os.PathLike, classes: Sequence[str], *, label_column: str = "label") -> Dataset:
    """Form 3: a corrected ``series.csv`` from ``breastlab sort``, with ``instances.csv`` beside it."""
    path = Path(path)
    series_rows = _read_csv(path)
    inst_path = path.with_name("instances.csv")
    if not inst_path.is_file():
        raise FileNotFoundError(f"{inst_path} not found: a sort series.csv needs its instances.csv")
    inst_rows = _read_csv(inst_path)
    if not series_rows:
        return Dataset(items=[], classes=list(classes), source="sort-series")
    key = next((k for k in _SET_KEYS if k in series_rows[0] and inst_rows and k in inst_rows[0]), None)
    if key is None:
        raise ValueError(f"{path}: no image-set id column shared with instances.csv (tried {_SET_KEYS})")
    path_col = next((c for c in ("path", "file", "filename") if inst_rows and c in inst_rows[0]), "path")
    files: dict[str, list[tuple[str, int | None]]] = {}
    for row in inst_rows:
        f = Path(row[path_col])
        if not f.is_absolute():
            f = (path.parent / f).resolve() if (path.parent / f).exists() else f
        frame = row.get("frame_index")
        files.setdefault(row[key], []).append((str(f), int(frame) if frame not in (None, "") else None))
    items: list[SeriesItem] = []
    dropped: dict[str, int] = {}
    for row in series_rows:
        label = canonical_label(row.get(label_column), classes)
        if label is None:
            k = f"label {row.get(label_column)!r} is not a class"
            dropped[k] = dropped.get(k, 0) + 1
            continue
        entries = files.get(row[key], [])
        if not entries:
            dropped["no files in instances.csv"] = dropped.get("no files in instances.csv", 0) + 1
            continue
        patient_col = next((c for c in _PATIENT_KEYS if row.get(c)), None)
        patient = row[patient_col] if patient_col else row[key]
        items.append(SeriesItem(
            series_id=row[key], patient_id=pseudonym(patient), label=label,
            files=[e[0] for e in entries], frames=[e[1] for e in entries], kind="dicom",
        ))
    return Dataset(items=items, classes=list(classes), source="sort-series", dropped=dropped)


def read_data(data: str | os.PathLike, classes: Sequence[str], *, label_column: str = "label") -> Dataset:
    """Read any of the three DATA forms (see the module docstring)."""
    p = Path(data)
    ds = _read_data(p, classes, label_column)
    ds.path = str(p)
    return ds


def _read_data(p: Path, classes: Sequence[str], label_column: str) -> Dataset:
    if p.is_dir():
        return read_class_folders(p, classes)
    if p.suffix.lower() == ".csv":
        header = _read_csv(p)[:1]
        cols = set(header[0]) if header else set()
        if "path" in cols and "series_uid" not in cols:
            return read_manifest(p, classes, label_column=label_column)
        if p.with_name("instances.csv").is_file() and any(k in cols for k in _SET_KEYS):
            return read_sort_series(p, classes, label_column=label_column)
        if "path" in cols:
            return read_manifest(p, classes, label_column=label_column)
        raise ValueError(f"{p}: neither a manifest (path, label) nor a sort series.csv with instances.csv")
    raise FileNotFoundError(f"{p}: DATA must be a folder of class folders or a CSV file")


# --------------------------------------------------------------------------- slice sampling
@dataclass(frozen=True)
class SliceRef:
    """One 2D slice to score: a file and, for volumes/multi-frame files, the slice index."""

    path: str
    index: int | None = None


def _dicom_order(files: Sequence[str], frames: Sequence[int | None] | None) -> list[SliceRef]:
    """Order DICOM slices along the slice normal (InstanceNumber, then name, as fallbacks)."""
    import pydicom

    keyed = []
    for i, f in enumerate(files):
        frame = frames[i] if frames else None
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=[
                "ImagePositionPatient", "ImageOrientationPatient", "InstanceNumber", "NumberOfFrames"])
            n_frames = int(ds.get("NumberOfFrames") or 1)
            pos, ori = ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient")
            if pos is not None and ori is not None and len(ori) == 6:
                normal = np.cross(np.asarray(ori[:3], float), np.asarray(ori[3:], float))
                key = (0, float(np.dot(np.asarray(pos, float), normal)))
            else:
                key = (1, float(ds.get("InstanceNumber") or 0))
        except Exception:  # noqa: BLE001
            n_frames, key = 1, (2, 0.0)
        if n_frames > 1 and frame is None:
            keyed.extend(((key[0], key[1] + j * 1e-6), f, SliceRef(f, j)) for j in range(n_frames))
        else:
            keyed.append((key, f, SliceRef(f, frame)))
    keyed.sort(key=lambda t: (t[0], t[1]))
    return [t[2] for t in keyed]


def _nifti_slices(path: str) -> list[SliceRef]:
    import nibabel as nib

    shape = nib.load(path).shape
    n = shape[2] if len(shape) >= 3 else 1
    return [SliceRef(path, k) for k in range(n)] if len(shape) >= 3 else [SliceRef(path, None)]


def all_slices(item: SeriesItem) -> list[SliceRef]:
    """Every slice of a series in spatial order."""
    if item.kind == "nifti":
        return [s for f in item.files for s in _nifti_slices(f)]
    if item.kind == "raster":
        return [SliceRef(f) for f in sorted(item.files)]
    if item.kind == "dicom":
        return _dicom_order(item.files, item.frames)
    out: list[SliceRef] = []
    for f in item.files:  # mixed manifest series
        kind = file_kind(f)
        out.extend(_nifti_slices(f) if kind == "nifti" else [SliceRef(f)])
    return out


def sample_slices(slices: Sequence[SliceRef], k: int, *, central_fraction: float = 0.6) -> list[SliceRef]:
    """``k`` evenly spaced slices from the central ``central_fraction`` of the series.

    The ends of a breast volume (air, chest wall, coil edge) say little about the
    sequence or phase; the central part holds the breast tissue.
    """
    n = len(slices)
    if n <= k:
        return list(slices)
    lo = int(np.floor(n * (1 - central_fraction) / 2))
    hi = max(lo + 1, int(np.ceil(n * (1 + central_fraction) / 2)))
    span = list(range(lo, hi))
    if len(span) <= k:
        return [slices[i] for i in span]
    picks = np.linspace(0, len(span) - 1, k).round().astype(int)
    return [slices[span[i]] for i in sorted(set(picks.tolist()))]


# --------------------------------------------------------------------------- slice data set
@dataclass
class SliceTable:
    """The flat slice list behind a data set: one row per sampled slice."""

    refs: list[SliceRef]
    labels: list[int]
    series_ids: list[str]
    patient_ids: list[str]


def slice_table(items: Sequence[SeriesItem], classes: Sequence[str], *, slices_per_series: int = 8,
                central_fraction: float = 0.6) -> SliceTable:
    """Sample slices of every series; unlabelled series get label -1."""
    refs, labels, sids, pids = [], [], [], []
    for item in items:
        picked = sample_slices(all_slices(item), slices_per_series, central_fraction=central_fraction)
        for ref in picked:
            refs.append(ref)
            labels.append(classes.index(item.label) if item.label in classes else -1)
            sids.append(item.series_id)
            pids.append(item.patient_id)
    return SliceTable(refs, labels, sids, pids)


@functools.lru_cache(maxsize=4)
def _nifti_volume(path: str) -> np.ndarray:
    """A NIfTI volume as float32 ``(x, y, z)`` (first volume of a 4D file), cached for slice sampling."""
    import nibabel as nib

    data = np.asanyarray(nib.load(path).dataobj).astype(np.float32)
    while data.ndim > 3:
        data = data[..., 0]
    return data


def load_slice(ref: SliceRef, *, image_size: int = 128, normalization: str = "zscore") -> np.ndarray:
    """Read and preprocess one slice to ``[image_size, image_size]`` float32."""
    from breastlab.multiview.preprocess import load_image, preprocess_view

    if file_kind(ref.path) == "nifti":
        vol = _nifti_volume(str(ref.path))
        img = vol if vol.ndim == 2 else vol[:, :, vol.shape[2] // 2 if ref.index is None else ref.index]
        img = np.ascontiguousarray(img.T)  # (x, y) -> rows = y, as multiview.preprocess shows NIfTI
    else:
        img = load_image(ref.path, slice_index=ref.index)
    return preprocess_view(img, image_size=image_size, normalization=normalization)


class SliceDataset:
    """A torch-style data set of items ``{"image": tensor[1, H, W], "label", "series_id"}``,
    one per sampled slice (cached in memory).

    ``series_ids`` and ``patient_ids`` give each slice's series and patient for
    aggregation and splits. ``augment`` adds small random intensity and shift changes.
    """

    def __init__(self, table: SliceTable, *, image_size: int = 128, normalization: str = "zscore",
                 augment: bool = False, seed: int = 0, arrays: np.ndarray | None = None) -> None:
        self.table = table
        self.image_size = image_size
        self.train = augment  # a training data set; evaluation uses subset(augment=False)
        self._rng = np.random.default_rng(seed)
        if arrays is None:
            arrays = np.stack([load_slice(r, image_size=image_size, normalization=normalization)
                               for r in table.refs]) if table.refs else np.zeros((0, image_size, image_size), np.float32)
        self.arrays = arrays.astype(np.float32, copy=False)
        self.labels = list(table.labels)
        self.series_ids = list(table.series_ids)
        self.patient_ids = list(table.patient_ids)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Sequence[int], *, augment: bool | None = None) -> "SliceDataset":
        idx = list(indices)
        t = SliceTable([self.table.refs[i] for i in idx], [self.labels[i] for i in idx],
                       [self.series_ids[i] for i in idx], [self.patient_ids[i] for i in idx])
        return SliceDataset(t, image_size=self.image_size, augment=self.train if augment is None else augment,
                            arrays=self.arrays[idx] if idx else self.arrays[:0])

    def __getitem__(self, i: int):
        import torch

        x = torch.from_numpy(np.ascontiguousarray(self.arrays[i], dtype=np.float32))[None]
        if self.train:
            x = _augment(x, self._rng)
        return {"image": x, "label": int(self.labels[i]), "series_id": self.series_ids[i]}


def _augment(x, rng: np.random.Generator):
    """Small random affine (rotation ±10°, zoom 0.85–1.15, shift ±6%) and intensity scale/offset."""
    import math

    import torch
    import torch.nn.functional as F

    angle = math.radians(float(rng.uniform(-10, 10)))
    zoom = float(rng.uniform(0.85, 1.15))
    tx, ty = (float(v) for v in rng.uniform(-0.12, 0.12, size=2))
    cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
    theta = torch.tensor([[[cos, -sin, tx], [sin, cos, ty]]], dtype=torch.float32)
    grid = F.affine_grid(theta, [1, *x.shape], align_corners=False)
    background = float(x.min())
    out = F.grid_sample(x[None] - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    out = out + background
    return out * float(rng.uniform(0.9, 1.1)) + float(rng.normal(0, 0.05))
