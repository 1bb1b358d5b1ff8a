"""CLI: ``breastlab demo`` runs the whole product on built-in phantom data.

1. MRI sorting: a synthetic Siemens/GE/Philips breast MRI exam is written as DICOM and
   sorted by the header rules (the terminal shows the table).
2. Four-view diagnosis: synthetic BSGI cases are assembled, the seed's ResNet18 is
   trained and compared with the MLP and autoencoder baselines over repeated runs, and a
   self-contained HTML report is written.
3. Hybrid sorting: a small DEMO image model is trained on phantom exams and used by
   ``sort --model`` on a header-stripped exam.

Phantom data never backs an accuracy claim: it exercises the machinery end to end.
"""
from __future__ import annotations

import time
from pathlib import Path

import typer


def _step(console, title: str) -> float:
    console.rule(f"[bold cyan]{title}")
    return time.perf_counter()


def _match_truth(result, phantom_dir: Path) -> tuple[int, int]:
    """Image sets whose label matches the phantom's ground truth, counted per series."""
    from collections import Counter

    from breastlab.phantom.mri import read_truth

    truth: dict[str, Counter] = {}
    for row in read_truth(phantom_dir):
        truth.setdefault(row["series_uid"], Counter())[row["label"]] += 1
    predicted: dict[str, Counter] = {}
    for ls in result.sets:
        predicted.setdefault(ls.image_set.series_uid or "", Counter())[ls.label] += 1
    matched = sum(sum((truth[uid] & predicted.get(uid, Counter())).values()) for uid in truth)
    return matched, sum(sum(c.values()) for c in truth.values())


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the app."""

    @app.command("demo")
    def demo(
        out: Path = typer.Option(Path("demo-output"), "--out", "-o", help="Folder for every demo output."),
        cases: int = typer.Option(80, "--cases", min=20, help="Synthetic BSGI cases."),
        repeats: int = typer.Option(5, "--repeats", min=1, help="Repeated runs per model (5, as in the seed)."),
        epochs: int = typer.Option(10, "--epochs", min=1, help="Training epochs per run."),
        image_size: int = typer.Option(128, "--image-size", min=32, help="Input size (the seed: 256; smaller keeps the CPU demo short)."),
        models: str = typer.Option("resnet18,mlp,autoencoder", "--models", help="Comma-separated model names."),
        skip_hybrid: bool = typer.Option(False, "--skip-hybrid", help="Skip the image-model sorting step."),
    ) -> None:
        """Run sorting, four-view training/evaluation/report and hybrid sorting on phantom data."""
        from rich.console import Console

        console = Console()
        if not console.is_terminal:  # piped or captured: do not squeeze the tables to 80 columns
            console = Console(width=160)
        out.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        console.print(
            "[yellow]All data in this demo is synthetic (breastlab phantoms). "
            "Its figures test the machinery and make no clinical or accuracy claim.[/]"
        )

        # 1. MRI sorting on the header rules ------------------------------------------------
        t = _step(console, "1/3  Breast MRI series sorting (header rules)")
        from breastlab.mri.outputs import summary_table
        from breastlab.mri.sorter import sort_exam
        from breastlab.phantom.mri import write_mri_phantom

        mri_dir = out / "mri-phantom"
        write_mri_phantom(mri_dir)
        result = sort_exam([mri_dir], out_dir=out / "mri-sorted", progress=True)
        console.print(summary_table(result.sets, title=f"breastlab sort: {len(result.sets)} image sets"))
        console.print(f"series.csv → {out / 'mri-sorted' / 'series.csv'}  ({time.perf_counter() - t:.0f} s)")

        # 2. Four-view BSGI diagnosis -------------------------------------------------------
        t = _step(console, "2/3  Four-view BSGI diagnosis (ResNet18 vs MLP vs autoencoder)")
        from breastlab.multiview.cases import assemble_cases, write_cases
        from breastlab.phantom.bsgi import write_bsgi_phantom
        from breastlab.reporting.build import build_report
        from breastlab.training.config import FourViewConfig
        from breastlab.training.fourview import run_fourview

        bsgi_dir = out / "bsgi-phantom"
        write_bsgi_phantom(bsgi_dir, n_cases=cases, seed=0, progress=True)
        table = assemble_cases([bsgi_dir])
        cases_csv, _ = write_cases(table, out / "bsgi-cases.csv")
        console.print(f"{len(table.cases)} cases assembled → {cases_csv}")
        run_dir = out / "bsgi-run"
        from breastlab.models.weights import hub_cache_path

        # pretrained="auto": ImageNet weights when already cached, else random; never a download
        console.print("ResNet18 initialisation: "
                      + ("ImageNet (hub cache)" if hub_cache_path().is_file() else
                         "random (no ImageNet weights in the torch hub cache)"))
        run_fourview(cases_csv, run_dir, FourViewConfig.from_dict(dict(
            models=models, repeats=repeats, image_size=image_size, epochs=epochs,
            autoencoder_pretrain_epochs=max(2, epochs // 2), pretrained="auto", demo=True)))
        report = build_report(run_dir)
        console.print(f"HTML report → [bold]{report}[/]  ({time.perf_counter() - t:.0f} s)")

        # 3. Hybrid sorting with a DEMO image model -----------------------------------------
        if not skip_hybrid:
            t = _step(console, "3/3  Hybrid sorting: DEMO image model on a header-stripped exam")
            from breastlab.seriesmodels.demo import make_demo_model
            from breastlab.seriesmodels.fusion import load_models, report_fusion

            model_file = make_demo_model(out / "demo-sequence-model.pt", task="sequence", progress=True)
            stripped = out / "mri-phantom-stripped"
            write_mri_phantom(stripped, vendors=("GE",), seed=7, strip_headers=True)
            hybrid = sort_exam([stripped], out_dir=out / "mri-sorted-hybrid", progress=True,
                               image_models=load_models([model_file]))
            report_fusion(console, hybrid, hybrid.fusion)
            console.print(summary_table(hybrid.sets, title="header-stripped exam, header rules + DEMO image model"))
            header_only = sort_exam([stripped], progress=False)
            matched, total = _match_truth(hybrid, stripped)
            console.print(
                f"Image sets matching the phantom's truth.csv: header rules alone "
                f"{_match_truth(header_only, stripped)[0]} of {total}; with the DEMO image model {matched} of {total} "
                "(a check of the machinery, not an accuracy claim)."
            )
            console.print(f"({time.perf_counter() - t:.0f} s)")

        console.rule("[bold green]demo finished")
        console.print(f"Everything is in {out}/  (total {time.perf_counter() - started:.0f} s)")
