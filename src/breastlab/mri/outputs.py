"""Sorting outputs: series.csv/json, instances.csv, skipped.csv, provenance.json, the summary table.

Every file is written atomically (``breastlab.core.atomic``). Patient name and ID
appear only with ``keep_phi=True``. Column names and label strings are a stable
contract (other tools read series.csv by them): add columns, never rename.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from breastlab.core import atomic
from breastlab.core.labels import Label
from breastlab.dicom.records import SkippedFile
from breastlab.mri.classify import LabelledSet
from breastlab.mri.grouping import format_tod
from breastlab.mri.rules import FAT_SUPPRESSED

# The issue's minimum, in its order, then the extras.
REQUIRED_COLUMNS = (
    "series_uid", "series_number", "series_description", "manufacturer", "n_images", "label",
    "b_value", "dce_phase", "dce_seconds", "confidence", "evidence",
)
SERIES_COLUMNS = REQUIRED_COLUMNS + (
    "evidence_source",  # header now; image / both once an image model is fused
    "rule",
    "study",  # pseudonym: study-<sha256(StudyInstanceUID)[:10]>
    "study_uid",
    "set_id",
    "image_set",  # 0-based index of the set within its series
    "n_sets_in_series",
    "split",  # what separated the set from the rest of its series
    "n_timepoints",  # time points of the dynamic acquisition (DCE sets)
    "dce_timing",  # header that ordered the DCE phases
    "b_values",  # distinct b-values of the acquisition (diffusion sets)
    "acquisition_key",
    "fat_suppression",
    "modality",
    "protocol_name",
    "sequence_name",
    "image_type",
    "scanning_sequence",
    "sequence_variant",
    "scan_options",
    "repetition_time",
    "echo_time",
    "inversion_time",
    "flip_angle",
    "series_time",
    "start_time",
    "contrast_agent",  # raw header value, NOT used by the rules (unreliable)
    "first_path",
)
PHI_COLUMNS = ("patient_id", "patient_name")
INSTANCE_COLUMNS = (
    "path", "frame_index", "set_id", "study", "series_uid", "series_number", "image_set", "label",
    "sop_instance_uid", "instance_number", "b_value", "dce_phase", "export_path",
)
SKIPPED_COLUMNS = ("path", "reason", "detail")


def _join(values) -> str:
    return "\\".join(str(v) for v in values)


def _num(v: float | None, digits: int = 3) -> float | int | None:
    if v is None:
        return None
    v = round(float(v), digits)
    return int(v) if v.is_integer() else v


def series_row(ls: LabelledSet, *, keep_phi: bool = False) -> dict[str, Any]:
    s, st, c = ls.summary, ls.image_set, ls.classification
    recs = st.records
    starts = [r.acquisition_time if r.acquisition_time is not None else r.content_time for r in recs]
    starts = [t for t in starts if t is not None]
    series_times = [r.series_time for r in recs if r.series_time is not None]
    diffusion_like = ls.b_value is not None or c.label == Label.ADC or c.rule == "dwi_b_unknown"
    row: dict[str, Any] = {
        "series_uid": st.series_uid,
        "series_number": st.series_number,
        "series_description": s.series_description,
        "manufacturer": s.manufacturer,
        "n_images": st.n_images,
        "label": c.label,
        "b_value": _num(ls.b_value),
        "dce_phase": s.dce_phase,
        "dce_seconds": _num(s.dce_seconds, 1),
        "confidence": round(c.confidence, 2),
        "evidence": c.evidence_text,
        "evidence_source": c.source,
        "rule": c.rule,
        "study": ls.study,
        "study_uid": st.study_uid,
        "set_id": ls.set_id,
        "image_set": st.index,
        "n_sets_in_series": st.n_sets_in_series,
        "split": st.split,
        "n_timepoints": s.dce_n_phases,
        "dce_timing": s.dce_timing,
        "b_values": _join(f"{b:g}" for b in s.series_b_values) if diffusion_like else None,
        "acquisition_key": ls.acquisition_key,
        "fat_suppression": FAT_SUPPRESSED(s),
        "modality": s.modality,
        "protocol_name": s.protocol_name,
        "sequence_name": s.sequence_name,
        "image_type": _join(s.image_type),
        "scanning_sequence": _join(s.scanning_sequence),
        "sequence_variant": _join(s.sequence_variant),
        "scan_options": _join(s.scan_options),
        "repetition_time": _num(s.repetition_time),
        "echo_time": _num(s.echo_time),
        "inversion_time": _num(s.inversion_time),
        "flip_angle": _num(s.flip_angle),
        "series_time": format_tod(min(series_times)) if series_times else None,
        "start_time": format_tod(min(starts)) if starts else None,
        "contrast_agent": s.contrast_agent,
        "first_path": recs[0].path,
    }
    if keep_phi:
        row["patient_id"] = recs[0].patient_id
        row["patient_name"] = recs[0].patient_name
    return row


def series_columns(keep_phi: bool) -> tuple[str, ...]:
    return SERIES_COLUMNS + (PHI_COLUMNS if keep_phi else ())


def instance_rows(sets: Sequence[LabelledSet], export_paths: dict[tuple[str, str], str] | None = None):
    export_paths = export_paths or {}
    for ls in sets:
        st = ls.image_set
        for r in st.records:
            yield {
                "path": r.path,
                "frame_index": r.frame_index,
                "set_id": ls.set_id,
                "study": ls.study,
                "series_uid": st.series_uid,
                "series_number": st.series_number,
                "image_set": st.index,
                "label": ls.label,
                "sop_instance_uid": r.sop_instance_uid,
                "instance_number": r.instance_number,
                "b_value": _num(r.b_value),
                "dce_phase": ls.summary.dce_phase,
                "export_path": export_paths.get((ls.set_id, r.path)),
            }


def write_outputs(
    out_dir: str | Path,
    sets: Sequence[LabelledSet],
    skipped: Sequence[SkippedFile],
    *,
    keep_phi: bool = False,
    manifest: dict[str, Any] | None = None,
    export_paths: dict[tuple[str, str], str] | None = None,
) -> dict[str, Path]:
    """Write every sorting output into ``out_dir``; returns name → path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [series_row(ls, keep_phi=keep_phi) for ls in sets]
    cols = series_columns(keep_phi)
    written = {
        "series.csv": atomic.write_csv(out / "series.csv", rows, cols),
        "series.json": atomic.write_json(out / "series.json", rows),
        "instances.csv": atomic.write_csv(out / "instances.csv", instance_rows(sets, export_paths), INSTANCE_COLUMNS),
        "skipped.csv": atomic.write_csv(
            out / "skipped.csv", ({"path": s.path, "reason": s.reason, "detail": s.detail} for s in skipped),
            SKIPPED_COLUMNS,
        ),
    }
    if manifest is not None:
        written["provenance.json"] = atomic.write_json(out / "provenance.json", manifest)
    return written


def label_counts(sets: Sequence[LabelledSet]) -> dict[str, int]:
    return dict(Counter(ls.label for ls in sets))


def summary_table(sets: Sequence[LabelledSet], *, title: str = "breastlab sort"):
    """A Rich table: one row per image set (no patient identity)."""
    from rich.table import Table
    from rich.text import Text

    from breastlab.core.progress import terminal_safe

    def cell(value: object) -> Text:  # header text: no control characters, no Rich markup
        return Text(terminal_safe(value))

    table = Table(title=Text(terminal_safe(title)), show_lines=False)
    for name, kw in (
        ("study", {"no_wrap": True}), ("series", {"justify": "right"}), ("set", {"justify": "right"}),
        ("description", {"max_width": 32, "overflow": "ellipsis", "no_wrap": True}), ("images", {"justify": "right"}),
        ("label", {"style": "bold", "no_wrap": True, "min_width": 11}),
        ("b", {"justify": "right"}), ("phase", {"justify": "right"}), ("s", {"justify": "right"}),
        ("conf", {"justify": "right"}), ("rule", {"no_wrap": True}),
    ):
        table.add_column(name, **kw)
    for ls in sets:
        s, st, c = ls.summary, ls.image_set, ls.classification
        table.add_row(*map(cell, (
            ls.study.removeprefix("study-")[:6], str(st.series_number if st.series_number is not None else ""),
            str(st.index), (s.series_description or "")[:40], str(st.n_images), c.label,
            "" if ls.b_value is None else f"{ls.b_value:g}",
            "" if s.dce_phase is None else str(s.dce_phase),
            "" if s.dce_seconds is None else f"{s.dce_seconds:.0f}",
            f"{c.confidence:.2f}", c.rule,
        )))
    return table
