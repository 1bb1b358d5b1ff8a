"""CLI: ``breastlab train CASES_CSV --out RUN_DIR`` (four-view diagnosis models).

Defaults come from ``training.defaults.DEFAULTS`` and ``training.defaults.TrainConfig``, the same
ones the Python API uses. Every option is checked before any image is read or folder made.
``--config FILE`` (TOML; YAML when PyYAML is installed) sets options; options given on the
command line win. ``--dry-run`` shows what would be trained and writes nothing.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal, Optional

import typer

from breastlab.training.defaults import DEFAULTS, TrainConfig

_TC = TrainConfig()
Split = Literal["holdout", "kfold"]
Optimizer = Literal["sgd", "adam", "adamw"]
Scheduler = Literal["none", "cosine", "step"]
SelectMetric = Literal["auc", "accuracy", "loss"]
Normalization = Literal["zscore", "minmax"]
Fusion = Literal["mean", "attention"]

#: ``--config`` keys (file) → ``train`` parameter names; the file may use either spelling.
CONFIG_KEYS = (
    "models", "repeats", "split", "folds", "resplit", "epochs", "batch_size", "lr", "optimizer",
    "scheduler", "select_metric", "patience", "image_size", "weights", "pretrained", "views",
    "seed", "flip_right", "normalization", "augment", "ae_pretrain_epochs", "fusion", "threads",
    "threshold_rule",
)


def _parse_list(text: str | None) -> list[str] | None:
    if not text:
        return None
    if isinstance(text, (list, tuple)):
        return [str(t).strip() for t in text if str(t).strip()]
    return [t.strip() for t in text.replace(";", ",").split(",") if t.strip()]


def read_config_file(path: Path) -> dict[str, Any]:
    """Options from a TOML (``tomllib``) or YAML (PyYAML, when installed) file; a ``[train]``
    table is used when present. Unknown keys are an error, so typos do not pass silently."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError as exc:
            raise ValueError(f"{path}: YAML needs PyYAML (pip install pyyaml); "
                             "or write the file as TOML") from exc
        data = yaml.safe_load(text) or {}
    else:
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a table of options")
    if isinstance(data.get("train"), dict):
        data = data["train"]
    out = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(out) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown option(s) {', '.join(unknown)}; "
                         f"known: {', '.join(CONFIG_KEYS)}")
    return out


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
    split: Split = typer.Option(DEFAULTS["split"], "--split",
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
                                           help="Early stopping (epochs without improvement)."),
    image_size: int = typer.Option(DEFAULTS["image_size"], "--image-size", min=8,
                                   help="Views are resized to SIZE×SIZE (seed: 256)."),
    weights: Optional[Path] = typer.Option(None, "--weights", exists=True, dir_okay=False,
                                           help="ImageNet resnet18 state dict (torchvision format)."),
    pretrained: bool = typer.Option(DEFAULTS["pretrained"], "--pretrained/--no-pretrained",
                                    help="ImageNet initialisation for resnet18/viewwise (seed: yes)."),
    views: Optional[str] = typer.Option(None, "--views",
                                        help="Comma-separated view columns in channel order (default: the table's)."),
    seed: int = typer.Option(DEFAULTS["seed"], "--seed", help="Split seed; repeat r trains with seed + r."),
    flip_right: bool = typer.Option(True, "--flip-right/--no-flip-right",
                                    help="Flip right-side views so all breasts face the same way."),
    normalization: Normalization = typer.Option(DEFAULTS["normalization"], "--normalization",
                                                help="Per-view intensity scaling after the percentile clip."),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="Training augmentation (affine, intensity)."),
    ae_pretrain_epochs: int = typer.Option(DEFAULTS["autoencoder_pretrain_epochs"], "--ae-pretrain-epochs", min=0,
                                           help="Reconstruction pretraining epochs of the autoencoder."),
    fusion: Fusion = typer.Option("mean", "--fusion", help="viewwise: how per-view logits are fused."),
    threshold_rule: Optional[str] = typer.Option(
        None, "--threshold-rule",
        help="Operating threshold rule, chosen on validation: youden (default), "
             "'sensitivity>=0.9' or 'fixed:0.5'."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch CPU threads (per process)."),
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
    from breastlab.core.progress import console
    from breastlab.evaluation.threshold import parse_rule
    from breastlab.models.weights import WeightsUnavailableError
    from breastlab.training.fourview import RunConfigError, check_options, run_fourview

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    opts: dict[str, Any] = dict(
        models=models, repeats=repeats, split=split, folds=folds, resplit=resplit, epochs=epochs,
        batch_size=batch_size, lr=lr, optimizer=optimizer, scheduler=scheduler,
        select_metric=select_metric, patience=patience, image_size=image_size, weights=weights,
        pretrained=pretrained, views=views, seed=seed, flip_right=flip_right,
        normalization=normalization, augment=augment, ae_pretrain_epochs=ae_pretrain_epochs,
        fusion=fusion, threads=threads, threshold_rule=threshold_rule)

    def fail(message: str) -> None:
        console.print(f"[red]error:[/red] {message}")
        raise typer.Exit(2)

    if config_file is not None:
        try:
            from_file = read_config_file(config_file)
        except (OSError, ValueError) as exc:
            fail(str(exc))
        for key, value in from_file.items():
            source_ = ctx.get_parameter_source(key)
            if getattr(source_, "name", None) != "COMMANDLINE":  # the command line wins
                opts[key] = value
    try:
        config = TrainConfig(
            epochs=int(opts["epochs"]), batch_size=int(opts["batch_size"]), lr=float(opts["lr"]),
            optimizer=str(opts["optimizer"]), scheduler=str(opts["scheduler"]),
            select_metric=str(opts["select_metric"]),
            patience=None if opts["patience"] is None else int(opts["patience"]),
            num_threads=None if opts["threads"] is None else int(opts["threads"]),
        )
        model_list = _parse_list(opts["models"]) or []
        kwargs = {"viewwise": {"fusion": opts["fusion"]}} if opts["fusion"] != "mean" else None
        check_options(models=[m.lower() for m in model_list], split=str(opts["split"]),
                      normalization=str(opts["normalization"]), image_size=int(opts["image_size"]),
                      repeats=int(opts["repeats"]), folds=int(opts["folds"]), val_fraction=0.2,
                      train_config=config, model_kwargs=kwargs or {})
        if opts["threshold_rule"]:
            parse_rule(str(opts["threshold_rule"]))
        if opts["weights"] and not Path(opts["weights"]).is_file():
            raise ValueError(f"weights file not found: {opts['weights']}")
        from breastlab.training.distributed import check_devices

        check_devices(devices, nodes)
    except (TypeError, ValueError) as exc:
        fail(str(exc))

    extra: dict[str, Any] = {}
    if config_file is not None:
        extra["config_file"] = str(config_file)
        extra["config_file_options"] = from_file
    if opts["threshold_rule"]:
        extra["threshold_rule"] = str(opts["threshold_rule"])
    if devices > 1 or nodes > 1:
        extra.update(devices=devices, nodes=nodes)
    source: bool | str = str(opts["weights"]) if opts["weights"] else bool(opts["pretrained"])
    from breastlab.training.distributed import DistributedRunError, launch, under_torchrun

    try:
        kwargs_run: dict[str, Any] = dict(
            models=model_list,
            views=_parse_list(opts["views"]),
            repeats=int(opts["repeats"]), split=str(opts["split"]), folds=int(opts["folds"]),
            resplit=bool(opts["resplit"]), seed=int(opts["seed"]),
            image_size=int(opts["image_size"]), train_config=config, pretrained=source,
            flip_right=bool(opts["flip_right"]), normalization=str(opts["normalization"]),
            augment=bool(opts["augment"]),
            autoencoder_pretrain_epochs=int(opts["ae_pretrain_epochs"]),
            model_kwargs=kwargs, force=force, progress=not quiet, evaluate=evaluate,
            extra_config=extra or None, dry_run=dry_run,
        )
        if dry_run or (devices == 1 and not under_torchrun()):
            result = run_fourview(cases_csv, out, **kwargs_run)
        else:
            result = launch(_run_fourview, (cases_csv, out, kwargs_run), devices=devices,
                            nodes=nodes, threads=opts["threads"])
            if result is None:  # another rank of a torchrun launch: rank 0 reports
                return
    except (WeightsUnavailableError, RunConfigError, ValueError, FileNotFoundError,
            DistributedRunError) as exc:
        fail(str(exc).splitlines()[0] if "\n" not in str(exc) else str(exc))
    if dry_run:  # a real run has printed its warnings already (and logged them)
        for w in result.warnings:
            console.print(f"[yellow]warning:[/yellow] {w}")
    for case_id, reason in result.bad_cases:
        console.print(f"[yellow]skipped case[/yellow] {case_id}: {reason}")
    if dry_run:
        _print_plan(result.plan)
        return
    console.print(
        f"trained {len(result.trained)}, already done {len(result.skipped)} "
        f"(model, repeat) runs → {result.run_dir}"
        + ("" if result.evaluated or not evaluate else " (evaluation not available)")
    )


def _run_fourview(cases_csv: Path, out: Path, kwargs: dict[str, Any]) -> Any:
    """One process of ``--devices N`` (module level, so that it pickles); rank 0 reports."""
    from breastlab.training import distributed as ddp
    from breastlab.training.fourview import run_fourview

    result = run_fourview(cases_csv, out, **kwargs)
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
