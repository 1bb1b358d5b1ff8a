"""``convert_sorted``: plan → convert (dcm2niix) → check → place in a layout → report → publish."""
from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from breastlab.convert.layouts import LAYOUTS, get_layout
from breastlab.convert.layouts.common import TreeWriter
from breastlab.convert.pipeline import UnitResult, convert_units
from breastlab.mri.classify import LabelledSet

REPORT_COLUMNS = ("unit_id", "kind", "set_ids", "label", "status", "outputs", "geometry", "message")


@dataclass
class ConversionResult:
    dest: Path
    layout: str
    results: list[UnitResult]
    left_out: dict[str, str]
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_converted(self) -> int:
        return sum(r.ok for r in self.results)

    @property
    def failed(self) -> list[UnitResult]:
        return [r for r in self.results if not r.ok]

    @property
    def geometry_mismatches(self) -> list[str]:
        return [r.unit.unit_id for r in self.results for i in r.images if i.geometry.status == "mismatch"]


def _report_rows(results: Sequence[UnitResult], writer: TreeWriter, left_out: dict[str, str],
                 sets: Sequence[LabelledSet], layout_notes: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        u = r.unit
        placed = writer.placed.get(u.unit_id, [])
        if not r.ok:
            status = "failed"
        elif not placed:
            status = "converted, not used"
        elif any(i.geometry.status == "mismatch" for i in r.images):
            status = "geometry mismatch"
        elif any(i.bval_note for i in r.images):
            status = "b-value mismatch"
        else:
            status = "converted"
        notes = [r.error or "", *(i.bval_note for i in r.images), r.message if r.ok else "", layout_notes.get(u.unit_id, ""),
                 *writer.notes.get(u.unit_id, [])]
        rows.append({
            "unit_id": u.unit_id, "kind": u.kind, "set_ids": ";".join(ls.set_id for ls in u.sets),
            "label": u.label, "status": status, "outputs": ";".join(p for p in placed if p.endswith(".nii.gz")),
            "geometry": "; ".join(f"{i.geometry.status}: {i.geometry.message}" for i in r.images),
            "message": " | ".join(n for n in notes if n)[:2000],
        })
    by_id = {ls.set_id: ls for ls in sets}
    inside = {ls.set_id: r.unit.unit_id for r in results if r.unit.kind == "dwi_acquisition" for ls in r.unit.sets}
    for set_id, why in left_out.items():
        ls = by_id[set_id]
        holder = writer.placed.get(inside.get(set_id, ""), [])  # the 4D DWI that holds this set, if any
        rows.append({"unit_id": set_id, "kind": "set", "set_ids": set_id, "label": ls.label, "status": "left out",
                     "outputs": ";".join(p for p in holder if p.endswith(".nii.gz")), "geometry": "",
                     "message": why})
    return rows


def convert_sorted(
    sorted_sets: Any,
    dest: str | os.PathLike,
    *,
    layout: str = "bids",
    keep_phi: bool = False,
    workers: int | None = None,
    channels: str | None = None,
    progress: bool = False,
    timeout: float | None = None,
) -> ConversionResult:
    """Convert the labelled image sets of a sort (a ``SortResult`` or its ``.sets``) into ``dest``.

    Args:
        sorted_sets: ``breastlab.mri.sorter.SortResult`` or a sequence of ``LabelledSet``.
        dest: the converted tree (published whole; an existing tree written by breastlab is replaced).
        layout: ``bids``, ``nnunet`` or ``odelia``.
        keep_phi: keep dcm2niix's identity fields in the sidecars (pseudonyms still name everything).
        workers: dcm2niix processes at a time (default: 2 at most).
        channels: nnU-Net channels, e.g. ``"dce"`` (default), ``"dce:2,t2,dwi_high"``.
        progress: a progress bar on stderr.
        timeout: seconds allowed per dcm2niix call.

    Raises:
        breastlab.core.publish.OutputError: ``dest`` is not a folder breastlab may replace.
        ValueError: unknown layout or channel.
    """
    from breastlab.core import atomic
    from breastlab.core.provenance import run_manifest
    from breastlab.core.publish import staged_outputs
    from breastlab.convert.dcm2niix import executable, version

    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    sets: list[LabelledSet] = list(getattr(sorted_sets, "sets", sorted_sets))
    mod = get_layout(layout)
    options = {"channels": channels} if layout == "nnunet" else {}
    plan = mod.plan(sets, **options)  # raises ValueError for bad channels before anything is written
    executable()  # fail at once when dcm2niix is missing
    workers = workers or min(2, os.cpu_count() or 1)
    dest = Path(dest)
    with staged_outputs(dest, manifest=True) as stage:
        work = stage / ".work"
        from breastlab.core.progress import make_progress

        with make_progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("dcm2niix", total=len(plan.units))
            results = convert_units(plan.units, work, keep_phi=keep_phi, workers=workers, timeout=timeout,
                                    on_done=lambda _r: bar.advance(task))
        writer = TreeWriter(stage)
        layout_notes = mod.write(results, writer, **options) or {}
        rows = _report_rows(results, writer, plan.left_out, sets, layout_notes)
        shutil.rmtree(work, ignore_errors=True)
        writer.write_tsv("conversion.tsv", rows, list(REPORT_COLUMNS))
        config = {"layout": layout, "keep_phi": keep_phi, "channels": channels, "workers": workers,
                  "dcm2niix": version(), "n_sets": len(sets), "n_units": len(plan.units)}
        from breastlab.core.provenance import fingerprint_files

        files = sorted({r.path for u in plan.units for r in u.records})
        manifest = run_manifest(config, data_fingerprint=fingerprint_files(files, content=False))
        manifest["summary"] = {
            "converted": sum(r.ok for r in results), "failed": sum(not r.ok for r in results),
            "left_out": len(plan.left_out),
            "geometry": {s: sum(i.geometry.status == s for r in results for i in r.images)
                         for s in ("ok", "mismatch", "not checked")},
        }
        atomic.write_json(stage / "provenance.json", manifest)
        atomic.write_json(stage / "conversion.json", rows)
    return ConversionResult(dest, layout, results, plan.left_out, rows)
