"""CLI: ``breastlab mri train|evaluate|order-phases|demo-model``: image models for MRI sequence and DCE phase.

Heavy libraries are imported inside the commands.
"""
from __future__ import annotations

from pathlib import Path

import typer

from breastlab.core.device import DEVICE_HELP
from breastlab.core.precision import PRECISION_HELP
from breastlab.core.vocab import Aggregation, Precision, SeriesTask, Split

mri_app = typer.Typer(
    name="mri",
    help="Image models for breast MRI sequence and DCE phase (train, evaluate, header-free phase ordering).",
    no_args_is_help=True,
)


def _print_metrics(run: Path) -> None:
    import json

    from rich.console import Console
    from rich.table import Table

    from breastlab.core.rundir import RunDir
    from breastlab.evaluation.metrics import format_figure

    rd = RunDir(run)
    metrics = json.loads(rd.metrics.read_text())
    slice_level = json.loads(rd.slice_metrics.read_text()) if rd.slice_metrics.is_file() else {}
    names = metrics["class_names"]
    console = Console()
    for model, m in metrics["models"].items():
        test = m.get("pooled") or {}
        if not test:
            continue
        table = Table(title=f"{model}: series-level test results (pooled over repeats)")
        table.add_column("true \\ predicted")
        for n in names:
            table.add_column(n, justify="right")
        table.add_column("accuracy (95% CI)", justify="right")
        for i, n in enumerate(names):
            row = test["confusion_matrix"][i]
            pc = (test.get("per_class") or {}).get(n)  # two classes: binary metrics, no per_class
            acc = (format_figure(pc["accuracy"], percent=True) if pc else
                   f"{100 * row[i] / sum(row):.1f}%" if sum(row) else "n/a")
            table.add_row(n, *[str(v) for v in row], acc)
        table.add_row("overall", *[""] * len(names), format_figure(test["accuracy"], percent=True))
        console.print(table)
        for key, sm in slice_level.items():
            if key.startswith(model + "/"):
                console.print(f"single-slice accuracy ({key}, before aggregation): "
                              f"{format_figure(sm['accuracy'], percent=True)}")
    for w in metrics.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}")


@mri_app.command("train")
def train(
    data: Path = typer.Argument(..., help="A folder per class (DICOM/PNG/NIfTI), a manifest CSV (path,label[,patient_id,series_id]) "
                                          "or a corrected series.csv from breastlab sort."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (models, predictions, metrics.json, report.html)."),
    task: SeriesTask = typer.Option(SeriesTask.SEQUENCE, "--task", help="sequence (T2WI, T2WI_FS, ADC) or phase (DCE_pre, DCE_early, DCE_delayed)."),
    classes: str | None = typer.Option(None, "--classes", help="Comma-separated class names (e.g. add DWI, T1, SUB, MIP)."),
    test: Path | None = typer.Option(None, "--test", help="External test DATA (e.g. another site or vendor); DATA is then train/val only."),
    label_column: str = typer.Option("label", "--label-column", help="Label column of a manifest or series.csv."),
    truth: Path | None = typer.Option(None, "--truth", help="A truth table from review.html: its labels for the "
                                      "image sets of DATA, the --out folder of breastlab sort (or its series.csv)."),
    model: str = typer.Option("resnet18", "--model", help="Model from the registry."),
    pretrained: str = typer.Option("auto", "--pretrained", help="auto (ImageNet if cached, else random weights, with a warning), yes, no, or a weights file."),
    image_size: int = typer.Option(128, "--image-size", min=16, help="Slices are resized to SIZE×SIZE."),
    slices: int = typer.Option(8, "--slices", min=1, help="Slices sampled per series."),
    aggregation: Aggregation = typer.Option(Aggregation.LOGMEAN, "--aggregation", help="Slice probabilities → series label."),
    epochs: int = typer.Option(15, "--epochs", min=1, help="Training epochs per repeat."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Slices per batch."),
    lr: float = typer.Option(1e-3, "--lr", min=0.0, help="Learning rate (Adam)."),
    repeats: int = typer.Option(1, "--repeats", min=1, help="Repeats of the experiment (repeat r trains with seed + r)."),
    split: Split = typer.Option(Split.HOLDOUT, "--split", help="holdout (8:2 by patient) or kfold."),
    folds: int = typer.Option(5, "--folds", min=2, help="Folds for --split kfold."),
    seed: int = typer.Option(0, "--seed", help="Split and training seed."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch CPU threads (per process) [default: torch's, all cores]."),
    synthetic: bool = typer.Option(False, "--synthetic", help="Mark the data as phantom/synthetic (the report warns)."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.html when training ends."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue an interrupted run in --out (--no-resume starts every model over)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars on a terminal, one line per epoch otherwise."),
    devices: int = typer.Option(1, "--devices", min=1,
                                help="Training processes on this machine (DistributedDataParallel)."),
    nodes: int = typer.Option(1, "--nodes", min=1, help="Machines; more than 1 only under torchrun."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    precision: Precision = typer.Option(Precision.FP32, "--precision", help=PRECISION_HELP),
) -> None:
    """Train a slice CNN whose slice probabilities aggregate to one label per series (patient-level splits)."""
    from breastlab.seriesmodels.train_config import MRITrainConfig
    from breastlab.seriesmodels.data import read_data
    from breastlab.seriesmodels.model import train_run
    from breastlab.training.distributed import under_torchrun

    from breastlab.core.errors import NothingToDo, UsageError

    try:
        cfg = MRITrainConfig(task=task, classes=classes or (), model=model, pretrained=pretrained,
                             image_size=image_size, slices_per_series=slices, aggregation=aggregation,
                             epochs=epochs, batch_size=batch_size, lr=lr, repeats=repeats, split=split,
                             folds=folds, seed=seed, num_threads=threads, synthetic=synthetic,
                             device=device, precision=precision)
        if not under_torchrun():
            from breastlab.core.device import resolve_device

            resolve_device(cfg.device)  # DeviceError: one line, exit 2, before any work
        names = list(cfg.classes)
        if truth is not None:  # labels from a review page's truth table: seriesmodels/truth_labels.py
            from breastlab.seriesmodels.truth_labels import read_truth_data

            dataset = read_truth_data(data, truth, names)
        else:
            dataset = read_data(data, names, label_column=label_column)
        test_data = read_data(test, names, label_column=label_column) if test else None
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    typer.echo(f"{len(dataset.items)} labelled series from {dataset.source}"
               + (f"; left out: {dataset.dropped}" if dataset.dropped else ""), err=True)
    if len(dataset.items) < 2:  # e.g. a series.csv whose label column is empty
        raise NothingToDo(f"{data}: {len(dataset.items)} labelled series in column "
                          f"{label_column!r} (need at least 2 of {', '.join(names)}); label the "
                          "series first or choose --label-column")
    from breastlab.training.distributed import check_devices, launch

    try:
        check_devices(devices, nodes, cfg.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    kwargs = dict(test_data=test_data, progress=progress, resume=resume, report=report)
    if devices == 1 and not under_torchrun():
        run = train_run(dataset, out, cfg, **kwargs)
    else:
        run = launch(_train_run, (dataset, out, cfg, kwargs), devices=devices, nodes=nodes,
                     threads=threads, device=cfg.device)
        if run is None:  # another rank of a torchrun launch: rank 0 reports
            return
    _print_metrics(run)
    from breastlab.core.rundir import RunDir

    typer.echo(f"run folder: {run}; model for `breastlab sort --model`: {RunDir(run).run_model}")


def _train_run(dataset, out, cfg, kwargs):
    """One process of ``--devices N`` (module level, so that it pickles); rank 0 reports."""
    from breastlab.seriesmodels.model import train_run
    from breastlab.training import distributed as ddp

    run = train_run(dataset, out, cfg, **kwargs)
    return run if ddp.is_main() else None


@mri_app.command("evaluate")
def evaluate(
    target: Path = typer.Argument(..., help="A run folder from `mri train`, or (with --model) labelled DATA."),
    model: Path | None = typer.Option(None, "--model", help="Validate this model file on DATA (external validation)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Run folder for the external validation."),
    task: str = typer.Option("", "--task", help="Ignored with --model (the model knows its classes)."),
    label_column: str = typer.Option("label", "--label-column", help="Label column of a manifest or series.csv."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.html."),
) -> None:
    """Confusion matrix, overall and per-class accuracy with 95% CIs, and the HTML report."""
    from breastlab.core.errors import UsageError
    from breastlab.seriesmodels.model import SeriesModel, evaluate_model_on, finish_run

    if model is None:
        from breastlab.core.rundir import RunDir

        if not RunDir(target).models_dir.is_dir():
            raise UsageError(f"{target} is not a run folder (no models/)")
        finish_run(target, report=report)
        _print_metrics(target)
        return
    if out is None:
        raise UsageError("--out is required with --model")
    from breastlab.seriesmodels.data import read_data

    sm = SeriesModel(model)
    if sm.demo:
        from breastlab.seriesmodels.model import DEMO_NOTICE

        typer.echo(f"note: {DEMO_NOTICE}", err=True)
    dataset = read_data(target, sm.class_names, label_column=label_column)
    run = evaluate_model_on(model, dataset, out, report=report)
    _print_metrics(run)


@mri_app.command("order-phases")
def order_phases_cmd(
    inputs: list[Path] = typer.Argument(..., help="DICOM files/folders of ONE dynamic exam (headers may be stripped), "
                                                 "or one NIfTI file per phase."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write phases.csv (file → volume → label) here."),
) -> None:
    """Label DCE phases from the images alone: group slices by geometry, order volumes by enhancement."""
    import numpy as np

    from breastlab.core import atomic
    from breastlab.seriesmodels.phase_order import order_phases
    from breastlab.seriesmodels.volumes import read_volumes

    if out is not None and out.exists() and not out.is_dir():
        typer.echo(f"error: --out {out} exists and is not a folder", err=True)
        raise typer.Exit(2)
    files: list[Path] = []
    for p in inputs:
        files.extend(sorted(q for q in p.rglob("*") if q.is_file() and not q.name.startswith("."))
                     if p.is_dir() else [p])
    nifti = [f for f in files if f.name.lower().endswith((".nii", ".nii.gz"))]
    if nifti:
        import nibabel as nib

        arrays = [np.asanyarray(nib.load(str(f)).dataobj).astype(np.float32) for f in nifti]
        names = [[str(f)] for f in nifti]
    else:
        try:
            volumes = read_volumes(files)
        except ValueError as exc:  # a file that is no DICOM image: one line, no traceback
            typer.echo(f"error: {(str(exc).splitlines() or [''])[0]}", err=True)
            raise typer.Exit(1) from None
        arrays = [v.array for v in volumes]
        names = [v.paths for v in volumes]
    res = order_phases(arrays)
    for i, (label, rank) in enumerate(zip(res.labels, res.rank)):
        typer.echo(f"volume {i}: {label} (rank {rank}, {len(names[i])} images, first {names[i][0]})")
    typer.echo(f"confidence {res.confidence:.2f}; lesion-peak cue {'agrees' if res.details['lesion_agrees'] else 'differs'}")
    if out is not None:
        rows = [{"path": p, "volume": i, "label": res.labels[i], "rank": res.rank[i], "confidence": round(res.confidence, 3)}
                for i in range(len(names)) for p in names[i]]
        atomic.write_csv(out / "phases.csv", rows, ["path", "volume", "label", "rank", "confidence"])
        atomic.write_json(out / "phases.json", {"labels": res.labels, "order": res.order, "confidence": res.confidence,
                                                "details": res.details})


@mri_app.command("demo-model")
def demo_model(
    out: Path = typer.Option(Path("demo-mri-model.pt"), "--out", "-o", help="Model file to write."),
    task: SeriesTask = typer.Option(SeriesTask.SEQUENCE, "--task", help="The classes the demo model learns."),
    epochs: int = typer.Option(6, "--epochs", min=1, help="Training epochs."),
) -> None:
    """Train a small DEMO model on synthetic phantom exams (no clinical validity)."""
    from breastlab.seriesmodels.demo import make_demo_model
    from breastlab.seriesmodels.model import DEMO_NOTICE

    path = make_demo_model(out, task=str(task), epochs=epochs, progress=True)
    typer.echo(f"{path}: {DEMO_NOTICE}")


def register(app: typer.Typer) -> None:
    """Add the ``mri`` command group to app."""
    app.add_typer(mri_app, name="mri")
