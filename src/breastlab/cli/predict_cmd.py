"""CLI: ``breastlab predict MODEL INPUT --out DIR``: probabilities and heat maps for new
cases. See ``docs/evaluation.md``."""
from __future__ import annotations

from pathlib import Path

import typer

from breastlab.core.device import DEVICE_HELP


def _print_metrics(console, metrics: dict | None, out: Path) -> None:
    """Metrics on the labelled inputs (binary), with 95% CIs."""
    if not metrics:
        return
    from breastlab.evaluation.metrics import format_figure

    parts = [f"{name} {format_figure(metrics.get(key))}" for key, name in (
        ("accuracy", "accuracy"), ("sensitivity", "sensitivity"),
        ("specificity", "specificity"), ("auc", "AUC"))]
    console.print(f"labelled inputs (n = {metrics['n']}, {metrics['n_pos']} positive): "
                  + ", ".join(parts) + f" (95% CIs; {out / 'metrics.json'})")


def register(app: typer.Typer) -> None:
    """Add ``predict`` to the app."""

    @app.command("predict")
    def predict(
        model: Path = typer.Argument(..., exists=True, dir_okay=False, metavar="MODEL",
                                     help="A breastlab model file (model.pt)."),
        input_path: Path = typer.Argument(
            ..., exists=True, metavar="INPUT",
            help="cases.csv (from `breastlab cases`) or a folder of cases."),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
        heatmaps: bool = typer.Option(True, "--heatmaps/--no-heatmaps",
                                      help="Write a Grad-CAM overlay PNG per case."),
        threshold: float | None = typer.Option(
            None, "--threshold", min=0.0, max=1.0,
            help="Binary threshold on P(positive) "
                 "(default: the model's threshold.json, else its stored value)."),
        batch_size: int = typer.Option(16, "--batch-size", min=1, help="Cases per forward pass."),
        progress: bool = typer.Option(True, "--progress/--no-progress",
                                      help="Progress bar on stderr."),
        pacs: str | None = typer.Option(
            None, "--pacs", help="Also store the results in this PACS (DICOMweb URL or dicom://AET@host:port): "
            "an SR per study (probability, threshold) and the Grad-CAM overlays as Secondary Capture."),
        calling_aet: str = typer.Option("BREASTLAB", "--calling-aet", help="Our AE title for --pacs (DIMSE)."),
        device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
        cache: bool = typer.Option(False, "--cache/--no-cache",
                                   help="Read/write preprocessed views in the on-disk cache "
                                        "($BREASTLAB_CACHE, else ~/.cache/breastlab/views)."),
    ) -> None:
        """Predict new cases: OUT/predictions.csv and OUT/heatmaps/*.png."""
        from rich.console import Console

        from breastlab.core.device import resolve_device
        from breastlab.core.errors import UsageError
        from breastlab.inference.predict import predict_cases

        resolve_device(device)  # DeviceError: one line, exit 2, before any work
        try:
            res = predict_cases(model, input_path, out, heatmaps=heatmaps, threshold=threshold,
                                batch_size=batch_size, progress=progress, device=device,
                                disk_cache=True if cache else None)
        except (FileNotFoundError, ValueError) as exc:  # not a model file, unusable input
            raise UsageError(str(exc)) from exc
        console = Console(stderr=True)
        counts = ", ".join(f"{k}: {v}" for k, v in res["counts"].items())
        thr = (f"; threshold {res['threshold']:.3f} ({res['threshold_source']})"
               if len(res["class_names"]) == 2 else "; predicted class = most probable")
        console.print(f"{res['n_cases']} case(s) predicted ({counts}){thr}; "
                      f"{res['n_skipped']} skipped; file names relative to {res['input_root']}")
        _print_metrics(console, res.get("metrics"), out)
        if res.get("n_problems"):
            console.print(f"[yellow]{res['n_problems']} problem(s) while assembling cases "
                          f"(unreadable files, incomplete cases left out): see "
                          f"{out / 'problems.csv'}[/yellow]")
        if pacs:  # the write-back lives in breastlab.pacs.predict
            from breastlab.pacs.predict import write_predictions_to_pacs

            info = write_predictions_to_pacs(out, input_path, res, pacs, model_file=model,
                                             calling_aet=calling_aet)  # PacsError: exit 3
            changed = [s for s in info["studies"] if s["action"] != "unchanged"]
            n_sc = sum(s["n_overlays"] for s in changed)
            same = len(info["studies"]) - len(changed)
            console.print(f"stored {len(changed)} prediction SR(s) and {n_sc} overlay image(s) on "
                          f"{info['pacs']} (research output)"
                          + (f"; {same} unchanged: nothing written" if same else ""))
        typer.echo(str(res["predictions"]))
