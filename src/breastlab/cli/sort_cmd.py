"""CLI: ``breastlab sort INPUT... --out DIR`` labels breast MRI image sets from their headers.

Heavy work is imported inside the command (no torch import): ``breastlab sort``
starts fast.

Exit codes: 0 sorted (at least one image); 1 nothing to sort (no readable DICOM image;
the outputs still say why, in skipped.csv); 2 bad usage (an option, a path, an output
folder in use by another run); 3 the run failed (e.g. the disk filled up): the output
folders keep their previous content. Every error is one line on stderr, never a
traceback (``BREASTLAB_DEBUG=1`` re-raises for developers).
"""
from __future__ import annotations

import math
from pathlib import Path

import typer

from breastlab.core.device import DEVICE_HELP
from breastlab.core.errors import EXIT_DONE as EXIT_SORTED
from breastlab.core.errors import EXIT_FAILED, EXIT_NOTHING, EXIT_USAGE, UsageError
from breastlab.core.vocab import Engine, Layout

__all__ = ["EXIT_FAILED", "EXIT_NOTHING", "EXIT_SORTED", "EXIT_USAGE", "register"]


def _fail(message: str) -> UsageError:
    """The error to raise for bad usage (``cli/main.py`` prints ``breastlab sort: error: ...``)."""
    return UsageError(" ".join(str(message).split()))


def register(app: typer.Typer) -> None:
    """Add ``sort`` to the app."""

    @app.command("sort")
    def sort(
        inputs: list[Path] = typer.Argument(..., help="DICOM files, folders (searched recursively) or list files."),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder: series.csv/json, instances.csv, skipped.csv."),
        export: Path | None = typer.Option(
            None, "--export", help="Also arrange files as EXPORT/<study>/<label>[_b<value>]/ (inputs untouched)."
        ),
        link: bool = typer.Option(False, "--link", help="Export by hard link, falling back to a copy (default)."),
        copy: bool = typer.Option(False, "--copy", help="Export by copying every file."),
        keep_phi: bool = typer.Option(False, "--keep-phi", help="Write patient name and ID into the outputs."),
        workers: int | None = typer.Option(None, "--workers", "-j", min=1,
                                           help="Header-reading processes [default: one per CPU]."),
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
        layout: Layout | None = typer.Option(None, "--layout", help="Layout of CONVERT [default: bids]."),
        channels: str | None = typer.Option(
            None, "--channels", help="nnunet channels: dce (default), dce:N, t2, dwi_low, dwi_high, adc (comma list)."
        ),
        full: bool = typer.Option(
            False, "--full", help="Read every file again (default: only files new or changed since the last run "
            "into OUT, by path, size and mtime, from OUT's header index)."
        ),
        engine: Engine = typer.Option(
            Engine.DEFAULT, "--engine", help="default (worker processes on this machine) or dask (a Dask cluster)."
        ),
        scheduler: str | None = typer.Option(
            None, "--scheduler", help="With --engine dask: address of a running Dask scheduler (default: a local "
            "cluster of --workers processes)."
        ),
        review: bool = typer.Option(
            False, "--review", help="Also write OUT/review.html: every image set with a thumbnail, its label and "
            "evidence, to confirm or correct in a browser and export as a truth table."
        ),
        truth: Path | None = typer.Option(
            None, "--truth", help="A truth table (CSV from review.html): print the agreement per label and write "
            "it into series.json, agreement.json and the review page."
        ),
        device: str = typer.Option("auto", "--device", help="With --model: " + DEVICE_HELP),
    ) -> None:
        """Sort breast MRI DICOM into labelled image sets (T2WI, DWI_low/high, ADC, DCE phases, ...)."""
        # errors (exit 2, 3, 130) are reported by the one handler in cli/main.py
        code = _run(inputs, out, export, link, copy, keep_phi, workers, b_threshold, progress, model,
                    convert, layout, channels, full, engine, scheduler, review, truth, device)
        raise typer.Exit(code)


def _run(inputs: list[Path], out: Path, export: Path | None, link: bool, copy: bool, keep_phi: bool,
         workers: int | None, b_threshold: float, progress: bool, model: list[Path] | None,
         convert: Path | None = None, layout: str | None = None, channels: str | None = None,
         full: bool = False, engine: str = "default", scheduler: str | None = None,
         review: bool = False, truth: Path | None = None, device: str = "auto") -> int:
    """Check every option, then sort; returns the exit code."""
    from rich.console import Console
    from rich.text import Text

    from breastlab.core.progress import terminal_safe
    from breastlab.mri.outputs import summary_table
    from breastlab.mri.sorter import check_paths, sort_exam

    # -- options, all checked before any work ------------------------------------------
    if link and copy:
        raise _fail("--link and --copy exclude each other")
    engine = str(engine)
    layout = str(layout) if layout is not None else None
    if scheduler is not None and engine != "dask":
        raise _fail("--scheduler needs --engine dask")
    if engine == "dask":
        import importlib.util

        if importlib.util.find_spec("distributed") is None:
            raise _fail("--engine dask needs Dask distributed: pip install 'breastlab[dask]'")
    from breastlab.core.device import DeviceError, check_device_name

    try:
        check_device_name(device)
    except DeviceError as exc:
        raise _fail(str(exc)) from None
    if not math.isfinite(b_threshold):
        raise _fail(f"--b-threshold must be a finite number, not {b_threshold}")
    try:
        check_paths(inputs, out, export, convert)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    from breastlab.convert.cli import check_options as check_convert_options

    try:
        check_convert_options(inputs, convert, layout, channels)
    except typer.BadParameter as exc:
        raise _fail(f"{exc.param_hint}: {exc.message}") from None
    from breastlab.seriesmodels.config import configured_models

    try:
        model_files = list(model or []) or configured_models()
    except (OSError, ValueError, TypeError) as exc:  # unreadable or invalid config.toml
        from breastlab.seriesmodels.config import config_path

        raise _fail(f"cannot read the user config {config_path()}: {exc}") from None
    image_models = []
    if model_files:  # loaded before the scan so that a bad model file fails at once
        from breastlab.seriesmodels.fusion import load_models

        try:
            image_models = load_models(model_files, device=device)
        except Exception as exc:  # noqa: BLE001 - any unusable model file is a usage error
            raise _fail(f"--model: {exc}") from None

    review_step = None
    if review or truth is not None:  # the review page and truth agreement: cli/review_cmd.py
        from breastlab.cli.review_cmd import load_truth
        from breastlab.review.sortstep import ReviewStep
        from breastlab.review.truth import TruthTableError

        try:
            review_step = ReviewStep(review=review, truth=load_truth(truth), workers=workers)
        except TruthTableError as exc:
            raise _fail(f"--truth: {exc}") from None

    # -- the work ----------------------------------------------------------------------
    result = sort_exam(
        inputs,
        out_dir=out,
        workers=workers,
        b_threshold=b_threshold,
        keep_phi=keep_phi,
        export_dir=export,
        export_mode="copy" if copy else "link",
        progress=progress,
        image_models=image_models or None,
        full=full,
        keep_records=convert is not None,  # the conversion needs every record; the table only a summary
        open_archives=convert is None,  # dcm2niix converts files on disk: archives are listed as skipped
        engine=engine,
        scheduler=scheduler,
        finish=review_step,
    )
    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze the table to 80 columns
        console = Console(width=160)
    if image_models:  # image-model fusion ran inside sort_exam; show what it did
        from breastlab.seriesmodels.fusion import report_fusion

        report_fusion(console, result, result.fusion)
    for warning in result.index.get("warnings", ()):  # untrusted index parts, ignored (docs/scale.md)
        typer.echo(f"breastlab sort: warning: {terminal_safe(warning)}", err=True)
    n_sets = max(result.n_sets, len(result.sets))
    shown = "" if len(result.sets) == n_sets else f" (the first {len(result.sets)}; all in series.csv)"
    console.print(summary_table(result.sets, title=f"breastlab sort: {n_sets} image sets{shown}"))
    if shown:  # a large archive: what was found, per label
        console.print(Text("image sets per label: " + ", ".join(
            f"{label} {n}" for label, n in sorted(result.labels.items(), key=lambda kv: (-kv[1], str(kv[0]))))))
    msg = (
        f"{result.n_records} images in {n_sets} image sets; "
        f"{len(result.skipped)} files skipped (see skipped.csv). Outputs in {out}"
    )
    if export is not None:
        c = result.export_counts
        msg += f"; exported to {export} ({c.get('link', 0)} linked, {c.get('copy', 0)} copied)"
    console.print(Text(terminal_safe(msg)))
    if review_step is not None:
        from breastlab.cli.review_cmd import report

        report(console, review_step, out)
    if not result.n_records and not result.sets and not result.image_rows:  # image rows: PNG/NIfTI via --model
        typer.echo(terminal_safe(
            "breastlab sort: error: nothing to sort: no readable DICOM images found in "
            + ", ".join(str(p) for p in inputs)
            + ("; see skipped.csv for the files that were skipped" if result.skipped else "")
            + ("; nothing to convert" if convert is not None else "")
        ), err=True)
        return EXIT_NOTHING
    if convert is not None:
        from breastlab.convert.cli import run as run_convert

        code = run_convert(result, convert, layout=layout, channels=channels, keep_phi=keep_phi,
                           workers=workers, progress=progress, console=console)
        if code:
            return EXIT_NOTHING
    return EXIT_SORTED
