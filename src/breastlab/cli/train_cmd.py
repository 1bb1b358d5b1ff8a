"""CLI: ``breastlab train CASES_CSV --out RUN_DIR`` (four-view diagnosis models).

The options become one ``training.config.FourViewConfig`` (the Python API's; its defaults
are the help's), validated once before any image is read or folder made, and
``run_fourview(cases, run_dir, config)`` takes it whole. ``--config FILE`` (TOML; YAML when
PyYAML is installed) sets options; options given on the command line win. ``--dry-run``
shows what would be trained and writes nothing. Errors: ``cli/main.py`` (exit codes).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import typer

from breastlab.core.device import DEVICE_HELP
from breastlab.core.precision import PRECISION_HELP
from breastlab.core.vocab import (Fusion, Normalization, Optimizer, Precision, Scheduler,
                                  SelectMetric, Split)
from breastlab.training.defaults import DEFAULTS, TrainConfig

_TC = TrainConfig()
log = logging.getLogger("breastlab.cli.train")

#: ``train`` parameters that are not settings of the run's configuration
_NOT_SETTINGS = ("ctx", "cases_csv", "out", "config_file", "quiet")


def train(
    ctx: typer.Context,
    cases_csv: Path = typer.Argument(..., exists=True, dir_okay=False, metavar="CASES_CSV",
                                     help="Case table from `breastlab cases` (cases.csv)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (created; resumed if it exists)."),
    config_file: Optional[Path] = typer.Option(
        None, "--config", exists=True, dir_okay=False,
        help="Options from a TOML file (YAML with PyYAML); command-line options win. "
             "Recorded in provenance.json."),
    models: str = typer.Option(",".join(DEFAULTS["models"]), "--models",
                               help="Comma-separated models: resnet18, mlp, autoencoder, viewwise."),
    repeats: int = typer.Option(DEFAULTS["repeats"], "--repeats", min=1,
                                help="Repeats of the experiment (seed: 5)."),
    split: Split = typer.Option(Split(DEFAULTS["split"]), "--split",
                                help="holdout (8:2 by patient, as in the seed) or kfold."),
    folds: int = typer.Option(DEFAULTS["folds"], "--folds", min=2, help="Folds for --split kfold."),
    resplit: bool = typer.Option(False, "--resplit/--same-split",
                                 help="Hold-out: new split per repeat (default: one split, as in the seed)."),
    epochs: int = typer.Option(_TC.epochs, "--epochs", min=1, help="Training epochs per model and repeat."),
    batch_size: int = typer.Option(_TC.batch_size, "--batch-size", min=1, help="Batch size (seed: 8)."),
    lr: float = typer.Option(_TC.lr, "--lr", min=0.0, help="Learning rate (seed: 1e-3)."),
    optimizer: Optimizer = typer.Option(_TC.optimizer, "--optimizer",
                                        help="sgd (seed; momentum 0.9, wd 5e-4), adam or adamw."),
    scheduler: Scheduler = typer.Option(_TC.scheduler, "--scheduler", help="Learning-rate schedule (seed: none)."),
    select_metric: SelectMetric = typer.Option(_TC.select_metric, "--select-metric",
                                               help="Validation metric for model selection."),
    patience: Optional[int] = typer.Option(None, "--patience", min=1,
                                           help="Early stopping (epochs without improvement) [default: none, all epochs]."),
    image_size: int = typer.Option(DEFAULTS["image_size"], "--image-size", min=8,
                                   help="Views are resized to SIZE×SIZE (seed: 256)."),
    weights: Optional[Path] = typer.Option(None, "--weights", exists=True, dir_okay=False,
                                           help="ImageNet resnet18 state dict (torchvision format)."),
    pretrained: bool = typer.Option(DEFAULTS["pretrained"], "--pretrained/--no-pretrained",
                                    help="ImageNet initialisation for resnet18/viewwise (seed: yes)."),
    views: Optional[str] = typer.Option(None, "--views",
                                        help="Comma-separated view columns in channel order (default: the table's)."),
    seed: int = typer.Option(DEFAULTS["seed"], "--seed", help="Split seed; repeat r trains with seed + r."),
    crop_breast: bool = typer.Option(
        False, "--crop-breast/--no-crop-breast",
        help="Cut each view to the breast (largest bright region) before normalising and "
             "resizing: full-field mammograms keep more of the breast's resolution."),
    flip_right: bool = typer.Option(True, "--flip-right/--no-flip-right",
                                    help="Flip right-side views so all breasts face the same way."),
    normalization: Normalization = typer.Option(Normalization(DEFAULTS["normalization"]), "--normalization",
                                                help="Per-view intensity scaling after the percentile clip."),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="Training augmentation (affine, intensity)."),
    ae_pretrain_epochs: int = typer.Option(DEFAULTS["autoencoder_pretrain_epochs"], "--ae-pretrain-epochs", min=0,
                                           help="Reconstruction pretraining epochs of the autoencoder."),
    fusion: Fusion = typer.Option(Fusion.MEAN, "--fusion", help="viewwise: how per-view logits are fused."),
    threshold_rule: Optional[str] = typer.Option(
        None, "--threshold-rule",
        help="Operating threshold rule, chosen on validation: youden (default), "
             "'sensitivity>=0.9' or 'fixed:0.5'."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch CPU threads (per process) [default: torch's, all cores]."),
    device: str = typer.Option(_TC.device, "--device", help=DEVICE_HELP),
    precision: Precision = typer.Option(Precision(_TC.precision), "--precision", help=PRECISION_HELP),
    cache: bool = typer.Option(True, "--cache/--no-cache",
                               help="Keep preprocessed views on disk, so re-runs decode nothing."),
    cache_dir: Optional[Path] = typer.Option(
        None, "--cache-dir", file_okay=False,
        help="Folder of that cache (default: $BREASTLAB_CACHE, else ~/.cache/breastlab/views)."),
    workers: Optional[int] = typer.Option(
        None, "--workers", min=0,
        help="DataLoader worker processes (default: 0 on a CPU and for the decoded in-memory "
             "cases; feeding a GPU, sized from the machine)."),
    devices: int = typer.Option(1, "--devices", min=1,
                                help="Training processes on this machine (DistributedDataParallel: "
                                     "gloo on CPU, NCCL on GPUs); the result does not depend on it."),
    nodes: int = typer.Option(1, "--nodes", min=1,
                              help="Machines; more than 1 only under torchrun (docs/training.md)."),
    force: bool = typer.Option(False, "--force", help="Discard a previous run in --out with another configuration."),
    evaluate: bool = typer.Option(True, "--evaluate/--no-evaluate", help="Evaluate the run when training ends."),
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="Show cases, split sizes, class balance and what would be "
                                      "trained; write nothing."),
    quiet: bool = typer.Option(False, "--quiet", "-q",
                               help="No progress bars or per-epoch lines (train.log still written)."),
) -> None:
    """Train four-view diagnosis models (seed: ResNet-18 on LCC, RCC, LMLO, RMLO stacked
    as 4 channels; SGD lr 1e-3, momentum 0.9, weight decay 5e-4, batch 8) with
    patient-level stratified splits, repeats, and resume after interruption.

    Writes RUN_DIR/provenance.json, cases.csv, splits/, train.log, train_log.jsonl,
    models/{model}/repeat{r}/ (checkpoint.pt, model.pt, history.csv, predictions.csv;
    breast/ too when labels are per breast). Re-running the same command resumes.
    """
    from breastlab.core.errors import UsageError
    from breastlab.core.progress import console
    from breastlab.training.config import FourViewConfig, config_from_file
    from breastlab.training.distributed import check_devices, launch, under_torchrun
    from breastlab.training.fourview import run_fourview

    # the settings: the --config file, then every option given on the command line
    options = {k: v for k, v in ctx.params.items() if k not in _NOT_SETTINGS}
    given = {k: v for k, v in options.items()
             if getattr(ctx.get_parameter_source(k), "name", "") == "COMMANDLINE"}
    try:
        from_file = config_from_file(config_file) if config_file is not None else {}
        config = FourViewConfig.from_dict(
            {**{k: v for k, v in options.items() if k not in given}, **from_file, **given,
             "progress": not quiet,
             **({"config_file": str(config_file)} if config_file is not None else {})})
        check_devices(config.run.devices, config.run.nodes, config.train.device)
        if not under_torchrun():  # --device cuda where there is none: one line, before any work
            from breastlab.core.device import resolve_device

            resolve_device(config.train.device)
    except (OSError, TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    run = config.run
    if run.dry_run or (run.devices == 1 and not under_torchrun()):
        result = run_fourview(cases_csv, out, config)
    else:
        result = launch(_run_fourview, (cases_csv, out, config), devices=run.devices,
                        nodes=run.nodes, threads=config.train.num_threads,
                        device=config.train.device)
        if result is None:  # another rank of a torchrun launch: rank 0 reports
            return
    # skipped cases and split warnings have been logged (and, in a run, kept in train.log)
    if config.run.dry_run:
        for w in result.warnings:
            log.warning(w)
        _print_plan(result.plan)
        return
    console.print(f"trained {len(result.trained)}, already done {len(result.skipped)} "
                  f"(model, repeat) runs → {result.run_dir}")
    from breastlab.core.rundir import RunDir

    if result.evaluated:
        from breastlab.core.artefacts import read_metrics

        from ._tables import print_fourview_metrics

        print_fourview_metrics(read_metrics(RunDir(out).metrics))
        console.print(f"metrics: {RunDir(out).metrics}; report: breastlab report {out}")
    else:
        console.print(f"not evaluated (--no-evaluate): breastlab evaluate {out} writes "
                      f"{RunDir(out).metrics} and prints the test metrics")


def _run_fourview(cases_csv: Path, out: Path, config: Any) -> Any:
    """One process of ``--devices N`` (module level, so that it pickles); rank 0 reports."""
    from breastlab.training import distributed as ddp
    from breastlab.training.fourview import run_fourview

    result = run_fourview(cases_csv, out, config)
    return result if ddp.is_main() else None


def _print_plan(plan: dict[str, Any]) -> None:
    """``--dry-run``: what would be trained, on stdout."""
    lines = [
        f"dry run: nothing written; run folder would be {plan['run_dir']}",
        f"cases: {plan['n_cases']} ({plan['n_patients']} patients); classes: "
        + ", ".join(f"{k} {v}" for k, v in plan["class_balance"].items()),
        f"views (channels): {', '.join(plan['views'])}; image size {plan['image_size']}",
        f"split: {plan['split']}, by {plan['split_unit']}",
    ]
    for r, sp in enumerate(plan["splits"]):
        lines.append(f"  repeat {r}: " + "; ".join(
            f"{part} {sum(c.values())} (" + ", ".join(f"{k} {v}" for k, v in c.items()) + ")"
            for part, c in sp.items()))
    t = plan["train"]
    lines.append(f"would train: {', '.join(plan['models'])} × {plan['repeats']} repeat(s), "
                 f"levels: {', '.join(plan['levels'])}"
                 + (f" ({plan['n_breasts']} labelled breasts)" if plan["n_breasts"] else ""))
    lines.append(f"  {t['optimizer']} lr {t['lr']} momentum {t['momentum']} weight decay "
                 f"{t['weight_decay']}, batch {t['batch_size']}, {t['epochs']} epochs, "
                 f"select on val {t['select_metric']}; ImageNet weights: {plan['pretrained']}")
    typer.echo("\n".join(lines))


def register(app: typer.Typer) -> None:
    """Add ``breastlab train``."""
    app.command("train")(train)
