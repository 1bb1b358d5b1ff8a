"""Convert planned units with dcm2niix, check their geometry, enrich their sidecars.

Each unit is staged in its own temporary folder (:mod:`breastlab.convert.staging`),
converted, checked (:mod:`breastlab.convert.geometry`) and its sidecar enriched
(:mod:`breastlab.convert.sidecar`). A unit that fails is reported with dcm2niix's own
message; the others go on.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from breastlab.convert.dcm2niix import run_dcm2niix
from breastlab.convert.geometry import GeometryCheck, check_geometry
from breastlab.convert.sidecar import enrich
from breastlab.convert.staging import stage_records
from breastlab.convert.units import Unit, is_trace
from breastlab.core.labels import DCE_LABELS, Label


@dataclass
class ConvertedImage:
    """One NIfTI written for a unit (in the work folder until a layout places it)."""

    unit: Unit
    index: int  # 0 for the main image; dcm2niix may write more (e.g. the Philips trace, varying matrices)
    nifti: Path
    sidecar: dict[str, Any]
    bval: Path | None
    bvec: Path | None
    geometry: GeometryCheck
    role: str = "image"  # "image" | "extra:<dcm2niix suffix>"
    bval_note: str = ""  # set when dcm2niix's b-values differ from the header b-values breastlab read


@dataclass
class UnitResult:
    unit: Unit
    images: list[ConvertedImage] = field(default_factory=list)
    error: str | None = None
    message: str = ""  # dcm2niix warnings

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.images)

    @property
    def main(self) -> ConvertedImage | None:
        return self.images[0] if self.images else None


def _content_records(unit: Unit):
    """Records whose pixels must be in the main NIfTI (dcm2niix drops a scanner trace from a 4D DWI)."""
    if unit.kind == "dwi_acquisition":
        kept = [r for ls in unit.sets if not is_trace(ls) for r in ls.image_set.records]
        return kept or unit.records
    return unit.records


def convert_unit(unit: Unit, work: Path, *, keep_phi: bool = False, timeout: float | None = None) -> UnitResult:
    """Stage, convert and check one unit inside ``work/<unit_id>/``."""
    base = work / unit.unit_id
    src, out = base / "dicom", base / "nifti"
    try:
        stage_records(unit.records, src)
    except (OSError, ValueError) as exc:
        return UnitResult(unit, error=f"could not stage the files: {exc}"[:500])
    kwargs = {} if timeout is None else {"timeout": timeout}
    res = run_dcm2niix(src, out, keep_phi=keep_phi, **kwargs)
    shutil.rmtree(src, ignore_errors=True)
    if not res.ok:
        return UnitResult(unit, error=res.message or "dcm2niix wrote nothing", message=res.log[-500:])
    result = UnitResult(unit, message=res.message)
    content = _content_records(unit)
    outputs = sorted(res.outputs, key=lambda o: (o.nifti.name != "img.nii.gz", o.nifti.name))
    for o in outputs:
        raw = json.loads(o.json.read_text(encoding="utf-8")) if o.json else {}
        stem = o.nifti.name.split(".nii")[0]
        role = "image" if stem == "img" else "extra:" + stem.removeprefix("img").lstrip("_")
        if unit.kind == "dwi_acquisition" and role != "image" and "ADC" in role.upper():
            # dcm2niix moves a scanner trace/ADC volume out of the 4D (as in its reference output);
            # that set is converted on its own as well, so this copy is not kept
            result.message = "; ".join(x for x in (result.message, f"dcm2niix split off {o.nifti.name} "
                                                   "(scanner trace/ADC volume): not kept") if x)
            continue
        if role == "image" or len(outputs) == 1:
            expect = None if unit.kind == "dwi_acquisition" else _expected_volumes(unit)
            geo = check_geometry(o.nifti, unit.records, expect_volumes=expect, content_records=content)
        else:
            geo = GeometryCheck("not checked", f"dcm2niix wrote an extra image ({o.nifti.name}) for this set")
        note = check_bvals([x.bval for x in outputs if "ADC" not in x.nifti.name.upper()], unit) \
            if role == "image" else ""
        sidecar = enrich(raw, unit, keep_phi=keep_phi, geometry=geo.as_dict(), dcm2niix_output=o.nifti.name,
                         dcm2niix_messages=res.message or None, bval_check=note or None)
        result.images.append(ConvertedImage(unit, len(result.images), o.nifti, sidecar, o.bval, o.bvec, geo, role,
                                            note))
    return result


def read_bvals(path: Path) -> list[float]:
    """The b-values of a ``.bval`` file, in volume order."""
    return [float(v) for v in path.read_text(encoding="utf-8").split()]


def check_bvals(bvals: Sequence[Path | None], unit: Unit) -> str:
    """'' when dcm2niix's distinct b-values (over its images) are the header b-values breastlab read."""
    bvals = [b for b in bvals if b is not None]
    if not bvals or unit.kind != "dwi_acquisition":
        return ""
    every = {round(ls.b_value) for ls in unit.sets if ls.b_value is not None}
    needed = {round(ls.b_value) for ls in unit.sets if ls.b_value is not None and not is_trace(ls)}
    theirs = {round(b) for path in bvals for b in read_bvals(path)}
    if not every or needed <= theirs <= every:  # a scanner trace may be dropped from the 4D
        return ""
    return (f"b-value mismatch: dcm2niix wrote {sorted(theirs)}, the headers give {sorted(every)} "
            "(check the .bval before use)")


def _expected_volumes(unit: Unit) -> int | None:
    """A DCE phase, T2, T1, ... is one 3D volume; a DWI set may hold several directions."""
    if unit.first.label in (*DCE_LABELS, Label.T2WI, Label.T2WI_FS, Label.T1):
        return 1
    return None


def convert_units(
    units: Sequence[Unit],
    work: Path,
    *,
    keep_phi: bool = False,
    workers: int = 1,
    timeout: float | None = None,
    on_done: Callable[[UnitResult], None] | None = None,
) -> list[UnitResult]:
    """Convert every unit (``workers`` dcm2niix processes at a time); order of ``units`` kept."""
    work.mkdir(parents=True, exist_ok=True)

    def one(u: Unit) -> UnitResult:
        try:
            r = convert_unit(u, work, keep_phi=keep_phi, timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - one bad set must not stop the others
            r = UnitResult(u, error=f"{type(exc).__name__}: {exc}"[:500])
        if on_done:
            on_done(r)
        return r

    if workers <= 1 or len(units) <= 1:
        return [one(u) for u in units]
    pool = ThreadPoolExecutor(max_workers=workers)  # dcm2niix runs as a subprocess: threads suffice
    try:
        results = list(pool.map(one, units))
    except BaseException:  # Ctrl-C: do not start the queued sets; the running ones finish in seconds
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results
