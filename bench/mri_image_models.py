"""MRI image models on the synthetic phantom: cross-vendor test of the machinery (not a clinical claim).

    .venv/bin/python bench/mri_image_models.py [--epochs 8] [--train-seeds 6] [--out DIR]

Trains the sequence (T2WI, T2WI_FS, ADC) and phase (DCE_pre, DCE_early, DCE_delayed)
series classifiers on phantom exams in the SIEMENS and GE dialects and tests them on
held-out PHILIPS exams (other seeds = other anatomy). For the phase task the exam-level
ordering (``order_phases``, no model, no headers) is scored on the same test exams, with
the volumes given in a shuffled order, so single-slice, series-level CNN and exam-level
ordering appear side by side.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from breastlab.core.labels import Label
from breastlab.core.rundir import RunDir
from breastlab.evaluation.metrics import format_figure, multiclass_metrics
from breastlab.seriesmodels.data import TASK_CLASSES, read_data
from breastlab.seriesmodels.demo import phantom_class_folders
from breastlab.seriesmodels.model import MRITrainConfig, train_run
from breastlab.seriesmodels.phase_order import order_phases

TEST_SEEDS = (10, 11, 12)


def line(name: str, m: dict, classes: list[str]) -> str:
    pc = m["per_class"]
    return (f"| {name} | {m['n']} | {format_figure(m['accuracy'], percent=True)} | "
            + " | ".join(format_figure(pc[c]["accuracy"], percent=True) for c in classes) + " |")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--train-seeds", type=int, default=6)
    ap.add_argument("--out", type=Path, default=None, help="keep the run folders here")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    root = args.out or Path(tempfile.mkdtemp(prefix="breastlab-mri-bench-"))
    results: dict = {}
    for task in ("sequence", "phase"):
        classes = TASK_CLASSES[task]
        train = phantom_class_folders(root / task / "train", vendors=("SIEMENS", "GE"),
                                      seeds=range(args.train_seeds), classes=classes)
        test = phantom_class_folders(root / task / "test", vendors=("PHILIPS",), seeds=TEST_SEEDS, classes=classes)
        cfg = MRITrainConfig(task=task, image_size=64, slices_per_series=4, epochs=args.epochs, pretrained="no",
                             num_threads=args.threads, seed=0, synthetic=True)
        t0 = time.perf_counter()
        run = train_run(read_data(train, classes), root / task / "run", cfg, test_data=read_data(test, classes),
                        progress=False, resume=False)
        seconds = time.perf_counter() - t0
        metrics = json.loads(RunDir(run).metrics.read_text())["models"]["resnet18"]["repeats"]["repeat0"]["test"]
        slices = json.loads(RunDir(run).slice_metrics.read_text())["resnet18/repeat0"]
        results[task] = {"series": metrics, "slice": slices, "seconds": seconds, "run": str(run)}

    # exam-level ordering on the same held-out PHILIPS exams (all 5 phases; pre, post1, post4 scored)
    from breastlab.phantom.mri import render_volumes
    from breastlab.phantom.anatomy import build_breast_model

    y, p = [], []
    rng = np.random.default_rng(0)
    for seed in TEST_SEEDS:
        vols = render_volumes(build_breast_model(8, 64, seed=seed), "PHILIPS", seed)["DCE"]
        truth = [Label.DCE_PRE, Label.DCE_EARLY] + [Label.DCE_DELAYED] * (len(vols) - 2)
        perm = rng.permutation(len(vols))
        res = order_phases([vols[i] for i in perm])
        labels = {int(perm[i]): res.labels[i] for i in range(len(vols))}
        for i in (0, 1, len(vols) - 1):  # the three volumes the CNN test set holds
            y.append(TASK_CLASSES["phase"].index(truth[i]))
            p.append(TASK_CLASSES["phase"].index(labels[i]))
    results["phase"]["exam"] = multiclass_metrics(y, p, TASK_CLASSES["phase"])

    for task in ("sequence", "phase"):
        classes = TASK_CLASSES[task]
        r = results[task]
        print(f"\n{task} (train SIEMENS+GE seeds 0-{args.train_seeds - 1}, test PHILIPS seeds {list(TEST_SEEDS)}; "
              f"{r['seconds']:.0f} s)")
        print("| method | n | overall | " + " | ".join(classes) + " |")
        print("|---|---|" + "---|" * (len(classes) + 1))
        print(line("single slice, CNN", r["slice"], classes))
        print(line("series, CNN (slices aggregated)", r["series"], classes))
        if "exam" in r:
            print(line("exam level, enhancement ordering (no model)", r["exam"], classes))
        print("confusion matrix (series, rows = truth):", r["series"]["confusion_matrix"])
    return results


if __name__ == "__main__":
    main()
