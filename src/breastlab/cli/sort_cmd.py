"""CLI: ``breastlab sort INPUT... --out DIR`` labels breast MRI image sets from their headers.

Heavy work is imported inside the command (no torch import): ``breastlab sort``
starts fast.
"""
from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add ``sort`` to the app."""

    @app.command("sort")
    def sort(
        inputs: list[Path] = typer.Argument(..., help="DICOM files, folders (searched recursively) or list files."),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder: series.csv/json, instances.csv, skipped.csv."),
        export: Path | None = typer.Option(
            None, "--export", help="Also arrange files as EXPORT/<study>/<label>[_b<value>]/ (inputs untouched)."
        ),
        link: bool = typer.Option(
            True, "--link/--copy", help="Export by hard link (falls back to copy) or always copy."
        ),
        keep_phi: bool = typer.Option(False, "--keep-phi", help="Write patient name and ID into the outputs."),
        workers: int | None = typer.Option(None, "--workers", "-j", min=1, help="Header-reading processes."),
        b_threshold: float = typer.Option(
            400.0, "--b-threshold", min=0.0,
            help="A lone b-value at or above this is DWI_high, below it DWI_low (s/mm²).",
        ),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr."),
        model: list[Path] | None = typer.Option(
            None, "--model", help="Image model file(s) from `breastlab mri train` (repeatable; default: the user "
            "config). Labels UNKNOWN/low-confidence sets and PNG/JPEG/NIfTI inputs, and cross-checks the header rules.",
        ),
        convert: Path | None = typer.Option(
            None, "--convert", help="Also convert every image set to NIfTI + JSON sidecar (dcm2niix) into CONVERT."
        ),
        layout: str | None = typer.Option(None, "--layout", help="Layout of CONVERT: bids (default), nnunet, odelia."),
        channels: str | None = typer.Option(
            None, "--channels", help="nnunet channels: dce (default), dce:N, t2, dwi_low, dwi_high, adc (comma list)."
        ),
    ) -> None:
        """Sort breast MRI DICOM into labelled image sets (T2WI, DWI_low/high, ADC, DCE phases, ...)."""
        from rich.console import Console

        from breastlab.mri.outputs import summary_table
        from breastlab.mri.sorter import sort_exam

        for p in inputs:
            if not p.exists():
                raise typer.BadParameter(f"no such file or folder: {p}", param_hint="INPUT")
        if export is not None:
            resolved = [p.resolve() for p in inputs]
            ex = export.resolve()
            if any(ex == r or r in ex.parents for r in resolved if r.is_dir()):
                raise typer.BadParameter("the export folder must not be inside an input folder", param_hint="--export")
        from breastlab.convert.cli import check_options as check_convert_options

        check_convert_options(inputs, convert, layout, channels)
        from breastlab.mri.imaging.config import configured_models

        model_files = list(model or []) or configured_models()
        image_models = []
        if model_files:  # loaded before the scan so that a bad model file fails at once
            from breastlab.mri.imaging.fusion import load_models

            try:
                image_models = load_models(model_files)
            except (OSError, ValueError) as exc:
                raise typer.BadParameter(str(exc), param_hint="--model") from exc
        result = sort_exam(
            inputs,
            out_dir=out,
            workers=workers,
            b_threshold=b_threshold,
            keep_phi=keep_phi,
            export_dir=export,
            export_mode="link" if link else "copy",
            progress=progress,
            image_models=image_models or None,
        )
        console = Console()
        if not console.is_terminal:  # piped or captured: do not squeeze the table to 80 columns
            console = Console(width=160)
        if image_models:  # image-model fusion ran inside sort_exam; show what it did
            from breastlab.mri.imaging.fusion import report_fusion

            report_fusion(console, result, result.fusion)
        console.print(summary_table(result.sets, title=f"breastlab sort: {len(result.sets)} image sets"))
        msg = (
            f"{result.n_records} images in {len(result.sets)} image sets; "
            f"{len(result.skipped)} files skipped (see skipped.csv). Outputs in {out}"
        )
        if export is not None:
            c = result.export_counts
            msg += f"; exported to {export} ({c.get('link', 0)} linked, {c.get('copy', 0)} copied)"
        console.print(msg)
        if convert is not None:
            from breastlab.convert.cli import run as run_convert

            code = run_convert(result, convert, layout=layout, channels=channels, keep_phi=keep_phi,
                               workers=workers, progress=progress, console=console)
            if code:
                raise typer.Exit(code)
        if not result.n_records:
            Console(stderr=True).print(
                "[yellow]warning:[/] no readable DICOM images found in "
                + ", ".join(str(p) for p in inputs)
                + ("; see skipped.csv for the files that were skipped" if result.skipped else "")
            )
