"""The ``--convert DIR --layout bids|nnunet|odelia [--channels ...]`` part of ``breastlab sort``.

Kept here so that ``cli/sort_cmd.py`` only declares the options and makes one call.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer


def check_options(inputs: Sequence[Path], convert: Path | None, layout: str | None, channels: str | None) -> None:
    """Fail before the scan on options that cannot work (one-line errors)."""
    from breastlab.convert.layouts import LAYOUTS

    if convert is None:
        if layout is not None or channels is not None:
            raise typer.BadParameter("--layout and --channels need --convert DIR", param_hint="--convert")
        return
    if (layout or "bids") not in LAYOUTS:
        raise typer.BadParameter(f"choose one of {', '.join(LAYOUTS)}", param_hint="--layout")
    if channels is not None and (layout or "bids") != "nnunet":
        raise typer.BadParameter("--channels applies to --layout nnunet only", param_hint="--channels")
    if channels is not None:
        from breastlab.convert.layouts.nnunet import parse_channels

        try:
            parse_channels(channels)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--channels") from None
    target = convert.resolve()
    for p in inputs:
        r = p.resolve()
        if r.is_dir() and (target == r or r in target.parents):
            raise typer.BadParameter("the convert folder must not be inside an input folder", param_hint="--convert")
    from breastlab.core.publish import OutputError, check_target

    try:
        check_target(convert)
    except OutputError as exc:
        raise typer.BadParameter(str(exc), param_hint="--convert") from None
    from breastlab.convert.dcm2niix import Dcm2niixMissing, executable

    try:
        executable()
    except Dcm2niixMissing as exc:
        raise typer.BadParameter(str(exc), param_hint="--convert") from None


def run(result, convert: Path, *, layout: str | None, channels: str | None, keep_phi: bool,
        workers: int | None, progress: bool, console) -> int:
    """Convert a sort result and print what happened; returns the exit code (1: nothing converted)."""
    from breastlab.convert import convert_sorted
    from breastlab.core.publish import OutputError

    layout = layout or "bids"
    if not result.sets:
        console.print("breastlab sort: error: nothing to convert (no image sets were found)")
        return 1
    try:
        conv = convert_sorted(result, convert, layout=layout, channels=channels, keep_phi=keep_phi,
                              workers=min(workers or 2, 4), progress=progress)
    except OutputError as exc:
        console.print(f"breastlab sort: error: --convert: {exc}")
        return 1
    msg = (f"converted {conv.n_converted} of {len(conv.results)} image sets/acquisitions to {convert} "
           f"({layout} layout); {len(conv.left_out)} sets left out; see {convert / 'conversion.tsv'}")
    console.print(msg)
    for r in conv.failed:
        console.print(f"[yellow]convert failed:[/] {r.unit.unit_id} ({r.unit.label}): {r.error}")
    for unit_id in conv.geometry_mismatches:
        console.print(f"[yellow]geometry mismatch:[/] {unit_id} (see conversion.tsv)")
    if not conv.n_converted:
        console.print("breastlab sort: error: no image set was converted")
        return 1
    return 0
