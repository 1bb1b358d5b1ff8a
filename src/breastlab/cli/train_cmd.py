"""CLI: ``breastlab train CASES_CSV --out RUN_DIR`` (four-view diagnosis models)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer


def _parse_list(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [t.strip() for t in text.replace(";", ",").split(",") if t.strip()]


def train(
    cases_csv: Path = typer.Argument(..., exists=True, dir_okay=False,
                                     help="Case table from `breastlab cases` (cases.csv)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (created; resumed if it exists)."),
    models: str = typer.Option("resnet18,mlp,autoencoder,viewwise", "--models",
                               help="Comma-separated models: resnet18, mlp, autoencoder, viewwise."),
    repeats: int = typer.Option(5, "--repeats", min=1, help="Repeats of the experiment (seed: 5)."),
    split: str = typer.Option("holdout", "--split",
                              help="holdout (8:2 by patient, as in the seed) or kfold."),
    folds: int = typer.Option(5, "--folds", min=2, help="Folds for --split kfold."),
    resplit: bool = typer.Option(False, "--resplit/--same-split",
                                 help="Hold-out: new split per repeat (default: one split, as in the seed)."),
    epochs: int = typer.Option(30, "--epochs", min=1, help="Training epochs per model and repeat."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Batch size (seed: 8)."),
    lr: float = typer.Option(1e-3, "--lr", help="Learning rate (seed: 1e-3)."),
    optimizer: str = typer.Option("sgd", "--optimizer", help="sgd (seed; momentum 0.9, wd 5e-4) or adam."),
    scheduler: str = typer.Option("none", "--scheduler", help="none (seed), cosine or step."),
    select_metric: str = typer.Option("auc", "--select-metric",
                                      help="Validation metric for model selection: auc, accuracy, loss."),
    patience: Optional[int] = typer.Option(None, "--patience", help="Early stopping (epochs without improvement)."),
    image_size: int = typer.Option(256, "--image-size", min=8, help="Views are resized to SIZE×SIZE (seed: 256)."),
    weights: Optional[Path] = typer.Option(None, "--weights", exists=True, dir_okay=False,
                                           help="ImageNet resnet18 state dict (torchvision format)."),
    pretrained: bool = typer.Option(True, "--pretrained/--no-pretrained",
                                    help="ImageNet initialisation for resnet18/viewwise (seed: yes)."),
    views: Optional[str] = typer.Option(None, "--views",
                                        help="Comma-separated view columns in channel order (default: the table's)."),
    seed: int = typer.Option(0, "--seed", help="Split seed; repeat r trains with seed + r."),
    flip_right: bool = typer.Option(True, "--flip-right/--no-flip-right",
                                    help="Flip right-side views so all breasts face the same way."),
    normalization: str = typer.Option("zscore", "--normalization", help="zscore or minmax (after percentile clip)."),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="Training augmentation (affine, intensity)."),
    ae_pretrain_epochs: int = typer.Option(10, "--ae-pretrain-epochs", min=0,
                                           help="Reconstruction pretraining epochs of the autoencoder."),
    fusion: str = typer.Option("mean", "--fusion", help="viewwise fusion: mean or attention."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch CPU threads."),
    force: bool = typer.Option(False, "--force", help="Discard a previous run in --out with another configuration."),
    evaluate: bool = typer.Option(True, "--evaluate/--no-evaluate", help="Evaluate the run when training ends."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Train four-view diagnosis models (seed: ResNet-18 on LCC, RCC, LMLO, RMLO stacked
    as 4 channels; SGD lr 1e-3, momentum 0.9, weight decay 5e-4, batch 8) with
    patient-level stratified splits, repeats, and resume after interruption.

    Writes RUN_DIR/provenance.json, cases.csv, splits/, models/{model}/repeat{r}/
    (checkpoint.pt, model.pt, history.csv, predictions.csv). Re-running the same command
    resumes where it stopped.
    """
    from breastlab.core.progress import console
    from breastlab.models.weights import WeightsUnavailableError
    from breastlab.training.fourview import RunConfigError, run_fourview
    from breastlab.training.loop import TrainConfig

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if split not in ("holdout", "kfold"):
        raise typer.BadParameter("--split must be holdout or kfold")
    config = TrainConfig(
        epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, scheduler=scheduler,
        select_metric=select_metric, patience=patience, num_threads=threads,
    )
    source: bool | str = str(weights) if weights else pretrained
    try:
        result = run_fourview(
            cases_csv, out,
            models=_parse_list(models) or [],
            views=_parse_list(views),
            repeats=repeats, split=split, folds=folds, resplit=resplit, seed=seed,
            image_size=image_size, train_config=config, pretrained=source,
            flip_right=flip_right, normalization=normalization, augment=augment,
            autoencoder_pretrain_epochs=ae_pretrain_epochs,
            model_kwargs={"viewwise": {"fusion": fusion}} if fusion != "mean" else None,
            force=force, progress=not quiet, evaluate=evaluate,
        )
    except (WeightsUnavailableError, RunConfigError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    for case_id, reason in result.bad_cases:
        console.print(f"[yellow]skipped case[/yellow] {case_id}: {reason}")
    console.print(
        f"trained {len(result.trained)}, already done {len(result.skipped)} "
        f"(model, repeat) runs → {result.run_dir}"
        + ("" if result.evaluated or not evaluate else " (evaluation not available)")
    )


def register(app: typer.Typer) -> None:
    """Add ``breastlab train``."""
    app.command("train")(train)
