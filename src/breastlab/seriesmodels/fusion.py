"""Fuse the image models with the header rules of ``breastlab sort`` (the hybrid path).

``sort_exam(..., image_models=load_models(files))`` calls :func:`fuse_study` on the
labelled sets of each study, before export and before any output is written, with one
or more image models (``--model FILE``, repeatable, or a model in the user
configuration); :class:`FusionTotals` gathers the run's summary and the header-less
sets into the ``SortResult``, and the outputs are then written once:

1. **fills in** image sets whose header label is ``UNKNOWN`` or whose rule confidence is
   below ``low_confidence``: the image model's label is used when its probability is at
   least ``min_image_confidence`` (``evidence_source = image``);
2. **cross-checks** every image set whose header label is one of a model's classes: when
   image and header agree the source becomes ``both``; when they disagree the header
   label stays (the rules are more reliable than an uncalibrated CNN) and the set is
   **flagged** (``image_agrees = no``, and the evidence says so);
3. **labels header-less inputs** (PNG, JPEG, NIfTI files that the DICOM scan skipped)
   with the image models alone: a NIfTI file is one image set, PNG/JPEG files in one
   folder are one image set.

Evidence: ``evidence_source`` is ``header``, ``image`` or ``both``; with a model, the
``evidence`` text is written after the same word (``both: ...``). series.csv/json gain the columns
``header_label, header_confidence, image_label, image_confidence, image_agrees,
image_model``. A demo model is named as such in every row it touched and in the
provenance. Without a model none of this runs and sort's outputs are unchanged.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from breastlab.core.labels import DCE_LABELS, Label
from breastlab.core.privacy import hashed_id

from .config import configured_models  # noqa: F401  (re-exported)
from .data import SeriesItem, file_kind
from .model import DEMO_NOTICE, SeriesModel

IMAGE_COLUMNS = ("header_label", "header_confidence", "image_label", "image_confidence", "image_agrees",
                 "image_model")
LOW_CONFIDENCE = 0.6
MIN_IMAGE_CONFIDENCE = 0.5


# --------------------------------------------------------------------------- opinions
@dataclass
class ImageOpinion:
    label: str
    confidence: float
    model: SeriesModel
    probs: dict[str, float]

    @property
    def model_name(self) -> str:
        return self.model.path.name + (" (DEMO)" if self.model.demo else "")


def _best(models: Sequence[SeriesModel], probs: dict[int, dict[str, np.ndarray]], key: str,
          only: str | None = None) -> ImageOpinion | None:
    """The most confident opinion among the models that scored ``key`` (``only``: models that know this label)."""
    best: ImageOpinion | None = None
    for m_idx, model in enumerate(models):
        p = probs.get(m_idx, {}).get(key)
        if p is None or (only is not None and only not in model.class_names):
            continue
        j = int(np.argmax(p))
        op = ImageOpinion(model.class_names[j], float(p[j]), model,
                          {c: round(float(v), 4) for c, v in zip(model.class_names, p)})
        if best is None or op.confidence > best.confidence:
            best = op
    return best


def _dce_family(op: ImageOpinion) -> float:
    """Probability that the set is one of the DCE phases (whichever)."""
    return float(sum(op.probs.get(c, 0.0) for c in DCE_LABELS))


def _set_item(ls: Any) -> SeriesItem:
    recs = ls.image_set.records
    return SeriesItem(series_id=ls.set_id, patient_id="", label=None, files=[r.path for r in recs],
                      frames=[r.frame_index for r in recs], kind="dicom")


def fuse_sets(sets: Sequence[Any], models: Sequence[SeriesModel], *, low_confidence: float = LOW_CONFIDENCE,
              min_image_confidence: float = MIN_IMAGE_CONFIDENCE) -> tuple[list[Any], dict[str, dict[str, Any]]]:
    """Fuse header-labelled sets (``LabelledSet``) with the image models.

    Returns the new sets (same order; classification replaced where the image model
    was used) and, per set id, the extra image columns.
    """
    from breastlab.mri.classify import Classification

    all_classes = {c for m in models for c in m.class_names}
    wanted = [ls for ls in sets
              if ls.label in all_classes or ls.label == Label.UNKNOWN or ls.classification.confidence < low_confidence]
    probs: dict[int, dict[str, np.ndarray]] = {}
    for m_idx, model in enumerate(models):
        items = [_set_item(ls) for ls in wanted
                 if ls.label in model.class_names or ls.label == Label.UNKNOWN
                 or ls.classification.confidence < low_confidence]
        probs[m_idx] = model.predict_items(items)

    out, extra = [], {}
    for ls in sets:
        c = ls.classification
        header_known = ls.label != Label.UNKNOWN and c.confidence >= low_confidence
        # cross-check against a model that knows the header label; fill-in with any model
        op = _best(models, probs, ls.set_id, only=ls.label if header_known else None)
        if op is None:
            extra[ls.set_id] = {"header_label": ls.label, "header_confidence": round(c.confidence, 2)}
            out.append(ls)
            continue
        row = {"header_label": ls.label, "header_confidence": round(c.confidence, 2), "image_label": op.label,
               "image_confidence": round(op.confidence, 3), "image_model": op.model_name}
        note = f"image model {op.model_name} says {op.label} (p={op.confidence:.2f})"
        if header_known:
            agree = op.label == ls.label
            row["image_agrees"] = "yes" if agree else "no"
            if agree:
                new = replace(c, confidence=max(c.confidence, op.confidence), source="both",
                              evidence=f"{c.evidence}; {note}, agrees")
            elif op.confidence < min_image_confidence:  # an unsure image model is not a disagreement
                row["image_agrees"] = "unsure"
                new = replace(c, source="header",
                              evidence=f"{c.evidence}; {note}, below {min_image_confidence:.2f}: no cross-check")
            else:
                new = replace(c, source="header",
                              evidence=f"{c.evidence}; IMAGE/HEADER DISAGREE: {note}; header label kept, please review")
        elif op.confidence < min_image_confidence and _dce_family(op) >= min_image_confidence:
            # sure it is dynamic, unsure which phase: keep the best phase; exam-level ordering decides later
            p_dce = _dce_family(op)
            phase = max((c for c in DCE_LABELS if c in op.probs), key=lambda c: op.probs[c])
            row.update(image_label=phase, image_confidence=round(p_dce, 3), image_agrees="")
            new = Classification(phase, round(p_dce, 3),
                                 f"image model {op.model_name} says a DCE phase (p={p_dce:.2f}), "
                                 f"phase uncertain (best {phase}, p={op.probs[phase]:.2f}); header rules gave {ls.label}",
                                 f"image:{op.model.path.name}", "image")
        elif op.confidence >= min_image_confidence:
            row["image_agrees"] = "" if ls.label == Label.UNKNOWN else ("yes" if op.label == ls.label else "no")
            src = "both" if op.label == ls.label else "image"
            new = Classification(op.label, round(op.confidence, 3),
                                 f"{note}; header rules gave {ls.label} (confidence {c.confidence:.2f}, {c.rule})",
                                 f"image:{op.model.path.name}", src)
        else:
            row["image_agrees"] = ""
            new = replace(c, evidence=f"{c.evidence}; {note}, below {min_image_confidence:.2f}: not used")
        extra[ls.set_id] = row
        out.append(replace(ls, classification=new))
    return out, extra


# --------------------------------------------------------------------------- exam-level DCE ordering


def _repeats(records: Sequence[Any]) -> int:
    """Number of volumes in a set whose slice positions repeat equally often (1 when they do not)."""
    positions = [tuple(round(float(v), 2) for v in r.image_position) for r in records if r.image_position]
    if len(positions) != len(records) or not positions:
        return 1
    counts = {p: positions.count(p) for p in set(positions)}
    k = min(counts.values())
    return k if k >= 2 and all(c == k for c in counts.values()) else 1


def _volume_of(records: Sequence[Any]) -> np.ndarray:
    from breastlab.multiview.preprocess import load_image

    from .volumes import Slice, slice_positions

    slices = [Slice(r.path, load_image(r.path, slice_index=r.frame_index), r.image_position, r.image_orientation)
              for r in records]
    order = np.argsort(slice_positions(slices), kind="stable")
    return np.stack([slices[i].pixels for i in order])


def order_dce_sets(sets: Sequence[Any], extra: dict[str, dict[str, Any]], *,
                   low_confidence: float = LOW_CONFIDENCE) -> list[Any]:
    """Exam-level phase labels for DCE image sets that the headers could not time.

    Candidates are sets whose header label is UNKNOWN or uncertain and that the image
    model called a DCE phase. A candidate whose slice positions repeat (several phases in
    one series, e.g. a stripped GE/Philips dynamic) is first split into volumes by
    geometry and image continuity. When a study then holds two or more such volumes of
    one shape they are ordered by enhancement (:func:`.phase_order.order_phases`) and
    relabelled; the evidence names the exam-level ordering.
    """
    from breastlab.mri.classify import Classification

    from .phase_order import order_phases
    from .volumes import Slice, group_by_geometry

    def candidate(ls: Any) -> bool:
        row = extra.get(ls.set_id, {})
        header_known = row.get("header_label", ls.label) != Label.UNKNOWN and \
            float(row.get("header_confidence", 1.0) or 0.0) >= low_confidence
        return not header_known and ls.label in DCE_LABELS

    out: list[Any] = []
    groups: dict[str, list[int]] = {}
    for ls in sets:
        if not candidate(ls):
            out.append(ls)
            continue
        k = _repeats(ls.image_set.records)
        if k == 1:
            groups.setdefault(ls.study, []).append(len(out))
            out.append(ls)
            continue
        recs = ls.image_set.records
        from breastlab.multiview.preprocess import load_image

        bag = [Slice(f"{i}", load_image(r.path, slice_index=r.frame_index), r.image_position, r.image_orientation)
               for i, r in enumerate(recs)]
        for v_idx, vol in enumerate(group_by_geometry(bag)):
            part = tuple(recs[int(s.path)] for s in vol.slices)
            st = replace(ls.image_set, records=part, split=_join_split(ls.image_set.split, f"image volume {v_idx}"),
                         n_sets_in_series=ls.image_set.n_sets_in_series + k - 1)
            new = replace(ls, image_set=st, set_id=f"{ls.set_id}_v{v_idx}")
            extra[new.set_id] = dict(extra.get(ls.set_id, {}))
            groups.setdefault(ls.study, []).append(len(out))
            out.append(new)
        extra.pop(ls.set_id, None)

    for study, idx in groups.items():
        by_shape: dict[tuple, list[int]] = {}
        volumes: dict[int, np.ndarray] = {}
        for i in idx:
            volumes[i] = _volume_of(out[i].image_set.records)
            by_shape.setdefault(volumes[i].shape, []).append(i)
        for members in by_shape.values():
            if len(members) < 2:
                continue
            res = order_phases([volumes[i] for i in members])
            for i, label, rank in zip(members, res.labels, res.rank):
                ls = out[i]
                said = extra.get(ls.set_id, {}).get("image_label", ls.label)
                ev = (f"exam-level enhancement ordering of {len(members)} volumes, rank {rank} "
                      f"(confidence {res.confidence:.2f}); slice model said {said}")
                out[i] = replace(ls, classification=Classification(label, round(res.confidence, 3), ev,
                                                                   "image:phase_order", "image"))
                extra.setdefault(ls.set_id, {})["image_label"] = label
    return out


def _join_split(a: str, b: str) -> str:
    return f"{a}/{b}" if a and b else (a or b)


# --------------------------------------------------------------------------- header-less inputs
def headerless_items(paths: Sequence[str]) -> list[SeriesItem]:
    """PNG/JPEG/NIfTI files → image sets (NIfTI file = one set; raster files of one folder = one set)."""
    items: list[SeriesItem] = []
    folders: dict[str, list[str]] = {}
    for p in sorted(paths):
        kind = file_kind(p)
        if kind == "nifti":
            items.append(SeriesItem(series_id=_image_set_id(p), patient_id="", label=None, files=[p], kind="nifti"))
        elif kind == "raster":
            folders.setdefault(str(Path(p).parent), []).append(p)
    for folder, files in folders.items():
        items.append(SeriesItem(series_id=_image_set_id(folder), patient_id="", label=None, files=files,
                                kind="raster"))
    return items


def _image_set_id(path: str) -> str:
    return hashed_id(str(path), "image-")


def headerless_rows(items: Sequence[SeriesItem], models: Sequence[SeriesModel], columns: Sequence[str], *,
                    min_image_confidence: float = MIN_IMAGE_CONFIDENCE) -> tuple[list[dict], list[dict]]:
    """series.csv rows and instances.csv rows for header-less image sets labelled by the models alone."""
    probs = {i: m.predict_items(items) for i, m in enumerate(models)}
    series_rows, inst_rows = [], []
    for item in items:
        op = _best(models, probs, item.series_id)
        label = op.label if op and op.confidence >= min_image_confidence else Label.UNKNOWN
        note = (f"image model {op.model_name} says {op.label} (p={op.confidence:.2f})" if op else "no model")
        if op and label == Label.UNKNOWN:
            note += f", below {min_image_confidence:.2f}"
        kind = "NIfTI volume" if item.kind == "nifti" else f"{len(item.files)} {Path(item.files[0]).suffix.lower()} image(s)"
        row = {c: None for c in columns}
        row.update({
            "series_uid": "", "series_description": "", "n_images": len(item.files) if item.kind != "nifti" else
            _nifti_slices(item.files[0]), "label": label, "confidence": round(op.confidence, 3) if op else 0.0,
            "evidence": f"image: {note}; no DICOM header ({kind})", "evidence_source": "image",
            "rule": f"image:{op.model.path.name}" if op else "none", "set_id": item.series_id,
            "study": "study-unknown", "modality": "", "first_path": item.files[0],
            "header_label": "", "header_confidence": "", "image_label": op.label if op else "",
            "image_confidence": round(op.confidence, 3) if op else "", "image_agrees": "",
            "image_model": op.model_name if op else "",
        })
        series_rows.append(row)
        for f in item.files:
            inst_rows.append({"path": f, "frame_index": None, "set_id": item.series_id, "study": "study-unknown",
                              "series_uid": "", "series_number": None, "image_set": 0, "label": label,
                              "sop_instance_uid": None, "instance_number": None, "b_value": None,
                              "export_path": None})
    return series_rows, inst_rows


def _nifti_slices(path: str) -> int:
    import nibabel as nib

    shape = nib.load(path).shape
    return int(shape[2]) if len(shape) >= 3 else 1


# --------------------------------------------------------------------------- sort integration
def load_models(paths: Sequence[str | os.PathLike], device: str = "auto") -> list[SeriesModel]:
    """Load image models (``weights_only``) onto ``device`` (``core.device``); a missing
    file raises ``FileNotFoundError``, a device that is not here ``DeviceError``."""
    for p in paths:
        if not Path(p).is_file():
            raise FileNotFoundError(f"image model not found: {p}")
    return [SeriesModel(p, device=device) for p in paths]


def _fused_columns(keep_phi: bool) -> tuple[str, ...]:
    from breastlab.mri import outputs

    return tuple(outputs.series_columns(keep_phi)) + IMAGE_COLUMNS


def report_fusion(console: Any, result: Any, summary: dict[str, Any]) -> None:
    """Print what the image models did (demo notice first, then disagreements and image-only sets)."""
    if summary.get("notice"):
        console.print(f"[bold red]{summary['notice']}[/]")
    for m in summary["models"]:
        console.print(f"image model: {m['path']} ({m['task']}: {', '.join(m['classes'])})" + (" DEMO" if m["demo"] else ""))
    console.print("evidence: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["evidence_source"].items())))
    if summary["disagreements"]:
        console.print(f"[yellow]image and header disagree on {len(summary['disagreements'])} image set(s): "
                      f"{', '.join(summary['disagreements'])} (header label kept; see series.csv image_agrees)[/]")
    for row in result.image_rows:
        console.print(f"no DICOM header: {row['first_path']} -> {row['label']} ({row['evidence']})")


# --------------------------------------------------------------------------- streaming (one study at a time)
@dataclass
class StudyFusion:
    """Image-model results of one study, before anything is written."""

    sets: list[Any]  # LabelledSet, fused
    image_columns: dict[str, dict[str, Any]]  # set_id -> IMAGE_COLUMNS values
    disagreements: list[str]
    split_disagreements: list[str]  # of sets that the exam-level DCE ordering split (listed last, as before)


def fuse_study(sets: Sequence[Any], models: Sequence[SeriesModel], *, low_confidence: float = LOW_CONFIDENCE,
               min_image_confidence: float = MIN_IMAGE_CONFIDENCE) -> StudyFusion:
    """Fuse the labelled sets of one study with the image models (what ``fuse_result`` does per study)."""
    fused, extra = fuse_sets(sets, models, low_confidence=low_confidence, min_image_confidence=min_image_confidence)
    before = list(extra)
    if any(c in DCE_LABELS for m in models for c in m.class_names):
        fused = order_dce_sets(fused, extra, low_confidence=low_confidence)
    seen = set(before)
    base = [k for k in before if k in extra and extra[k].get("image_agrees") == "no"]
    tail = [k for k in extra if k not in seen and extra[k].get("image_agrees") == "no"]
    return StudyFusion(fused, extra, base, tail)


@dataclass
class FusionTotals:
    """Fusion over a whole sort, accumulated study by study; ``summary`` gives what provenance records."""

    models: Sequence[SeriesModel]
    low_confidence: float = LOW_CONFIDENCE
    min_image_confidence: float = MIN_IMAGE_CONFIDENCE
    evidence_source: dict[str, int] | None = None
    disagreements: list[str] | None = None
    split_disagreements: list[str] | None = None
    image_rows: list[dict[str, Any]] | None = None
    image_instances: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        self.evidence_source, self.disagreements, self.split_disagreements = {}, [], []
        self.image_rows, self.image_instances = [], []

    def add(self, study: StudyFusion) -> None:
        for ls in study.sets:
            src = ls.classification.source
            self.evidence_source[src] = self.evidence_source.get(src, 0) + 1
        self.disagreements += study.disagreements
        self.split_disagreements += study.split_disagreements

    def headerless(self, skipped: Sequence[Any]) -> list[Any]:
        """Label the header-less PNG/JPEG/NIfTI files among ``skipped``; returns the skipped left."""
        handled = [s.path for s in skipped if s.reason == "not-dicom" and file_kind(s.path) in ("nifti", "raster")]
        items = headerless_items(handled)
        if items:
            self.image_rows, self.image_instances = headerless_rows(
                items, self.models, _fused_columns(False), min_image_confidence=self.min_image_confidence)
        used = {f for i in items for f in i.files}
        return [s for s in skipped if s.path not in used]

    def summary(self) -> dict[str, Any]:
        out = {
            "models": [{"path": str(m.path), "task": m.task, "classes": m.class_names, "demo": m.demo}
                       for m in self.models],
            "evidence_source": dict(self.evidence_source),
            "disagreements": self.disagreements + self.split_disagreements,
            "image_only_sets": len(self.image_rows),
            "low_confidence": self.low_confidence,
            "min_image_confidence": self.min_image_confidence,
        }
        if self.image_rows:
            out["evidence_source"]["image"] = out["evidence_source"].get("image", 0) + len(self.image_rows)
        if any(m.demo for m in self.models):
            out["notice"] = DEMO_NOTICE
        return out

    def series_rows(self, columns: Sequence[str]) -> list[dict[str, Any]]:
        return [{c: r.get(c) for c in columns} for r in self.image_rows]


def fused_columns(keep_phi: bool) -> tuple[str, ...]:
    """series.csv columns with image models: the header columns, then :data:`IMAGE_COLUMNS`."""
    return _fused_columns(keep_phi)


def provenance_with_models(manifest: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """The provenance of a sort with image models (classifier named, models and their summary added)."""
    demo = "notice" in summary
    manifest.setdefault("config", {})["classifier"] = "header rules + image model" + (" (DEMO)" if demo else "")
    manifest["config"]["image_models"] = summary.get("models")
    manifest["image_model_summary"] = summary
    return manifest
