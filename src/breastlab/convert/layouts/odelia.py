"""``--layout odelia``: ``data/<case>/T2.nii.gz, Pre.nii.gz, Post_1.nii.gz, Post_2.nii.gz, ...``.

The folder the ODELIA preprocessing starts from (it computes the subtractions
``Sub_1 = Post_1 - Pre`` and the left/right split itself). ``T2`` is the T2WI set, else
the T2WI_FS set. Every image has its sidecar beside it (``Pre.json``, ...);
``metadata/cases.csv`` maps cases to studies and files to image sets.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from breastlab.convert.layouts.cases import by_case, dce_phases, pick_t2
from breastlab.convert.layouts.common import Plan, TreeWriter
from breastlab.convert.pipeline import UnitResult
from breastlab.convert.units import plan_units
from breastlab.mri.classify import LabelledSet


def _names(sets: Sequence[LabelledSet]) -> tuple[list[tuple[str, LabelledSet]], dict[str, str]]:
    phases, unused = dce_phases(sets)
    names = [("Pre" if i == 0 else f"Post_{i}", ls) for i, ls in enumerate(phases)]
    t2 = pick_t2(sets)
    if t2 is not None and phases:
        names.insert(0, ("T2", t2))
    why = {ls.set_id: "another dynamic acquisition of the study has more phases" for ls in unused}
    return names, why


def plan(sets: Sequence[LabelledSet], **_: Any) -> Plan:
    wanted: set[str] = set()
    left: dict[str, str] = {}
    for case, csets in by_case(sets).items():
        names, why = _names(csets)
        left.update(why)
        if not any(n == "Pre" for n, _ in names):
            for ls in csets:
                left.setdefault(ls.set_id, f"case {case} has no DCE acquisition: left out of the ODELIA layout")
            continue
        wanted |= {ls.set_id for _, ls in names}
    for ls in sets:
        if ls.set_id not in wanted:
            left.setdefault(ls.set_id, "not used by the ODELIA layout (T2, Pre, Post_N only)")
    return Plan(plan_units(sets, want=lambda ls: ls.set_id in wanted, acquisitions=False), left)


def write(results: Sequence[UnitResult], writer: TreeWriter, **_: Any) -> dict:
    ok = {r.unit.first.set_id: r for r in results if r.ok and r.unit.kind == "set"}
    sets = [r.unit.first for r in results if r.unit.kind == "set"]
    rows = []
    notes: dict[str, str] = {}
    for case, csets in sorted(by_case(sets).items()):
        names, _ = _names(csets)
        if "Pre" not in {n for n, ls in names if ls.set_id in ok}:
            for _, ls in names:
                notes[ls.set_id] = f"case {case} left out: its pre-contrast phase did not convert"
            continue
        for name, ls in names:
            if ls.set_id not in ok:
                notes[ls.set_id] = f"{name} of case {case} missing: conversion failed"
                continue
            img = ok[ls.set_id].main
            sidecar = dict(img.sidecar)
            sidecar["Breastlab"] = {**sidecar["Breastlab"], "odelia_name": name}
            nii = writer.put_image(img, f"data/{case}/{name}", sidecar=sidecar, diffusion=False)
            rows.append({"UID": case, "StudyInstanceUID": ls.image_set.study_uid, "name": name, "set_id": ls.set_id, "label": ls.label,
                         "dce_phase": ls.summary.dce_phase, "dce_seconds": ls.summary.dce_seconds, "file": nii})
    import csv
    import io

    buf = io.StringIO()
    cols = ["UID", "StudyInstanceUID", "name", "set_id", "label", "dce_phase", "dce_seconds", "file"]
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    from breastlab.core.csvcells import row_cells

    w.writerows(row_cells(r) for r in rows)
    writer.write_text("metadata/cases.csv", buf.getvalue())
    return notes
