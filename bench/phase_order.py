"""DCE phase without headers on a real exam (TCIA Breast-MRI-NACT-Pilot UCSF-BR-06, nact-dce).

    .venv/bin/python bench/phase_order.py [--data DIR] [--cnn] [--json OUT]

1. Writes a header-stripped copy of the 180 DCE files (pixel data + geometry only;
   random file names; one new series) to a temporary folder.
2. Regroups the slices into volumes from geometry alone (repeated slice positions,
   image continuity) and scores the grouping against the original headers.
3. Exam level: orders the three volumes by enhancement (``order_phases``); repeated
   for every input permutation and several strip seeds.
4. Slice level, relative: orders the three co-located slices of each position alone.
5. Slice level, absolute (``--cnn``): a ResNet-18 that sees one slice at a time, trained
   on one half of the slice positions and tested on the other half (2-fold, spatially
   separated), the single-image set-up of the seed.

The truth (pre, early, delayed) comes from the original ContentTime, read only for scoring.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from breastlab.core.labels import DCE_LABELS
from breastlab.core.settings import data_root
from breastlab.evaluation.metrics import multiclass_metrics, format_figure
from breastlab.seriesmodels.phase_order import order_by_position, order_phases
from breastlab.seriesmodels.strip import strip_headers
from breastlab.seriesmodels.volumes import read_volumes

CLASSES = list(DCE_LABELS)


def truth_by_file(files: list[Path]) -> dict[str, int]:
    """Phase index (0 pre, 1 early, 2 delayed) of each original file, from ContentTime."""
    import pydicom

    times = {str(f): float(pydicom.dcmread(f, stop_before_pixels=True).ContentTime) for f in files}
    distinct = sorted(set(times.values()))
    return {f: distinct.index(t) for f, t in times.items()}


def run_cnn(volumes_truth: np.ndarray, *, image_size: int = 96, epochs: int = 12, seed: int = 0) -> dict:
    """Single-slice ResNet-18, 2-fold over slice positions (halves with a 4-slice gap)."""
    import torch

    from breastlab.models.registry import build_model
    from breastlab.multiview.preprocess import preprocess_view
    from breastlab.training.loop import TrainConfig, predict_proba, train_classifier
    from breastlab.seriesmodels.data import SliceDataset, SliceRef, SliceTable

    torch.set_num_threads(1)
    n_phase, n_pos = volumes_truth.shape[:2]
    arrays = np.stack([[preprocess_view(volumes_truth[p, z], image_size=image_size) for z in range(n_pos)]
                       for p in range(n_phase)])
    half = n_pos // 2
    folds = [(list(range(0, half - 2)), list(range(half + 2, n_pos))),
             (list(range(half + 2, n_pos)), list(range(0, half - 2)))]
    y_all, p_all = [], []
    for k, (train_pos, test_pos) in enumerate(folds):
        def make(positions, augment):
            xs = np.stack([arrays[p, z] for p in range(n_phase) for z in positions])
            ys = [p for p in range(n_phase) for _ in positions]
            ids = [f"{p}-{z}" for p in range(n_phase) for z in positions]
            t = SliceTable([SliceRef(i) for i in ids], ys, ids, ids)
            return SliceDataset(t, image_size=image_size, arrays=xs, augment=augment, seed=seed)
        train_ds, test_ds = make(train_pos, True), make(test_pos, False)
        model = build_model("resnet18", in_channels=1, num_classes=n_phase, image_size=image_size)
        cfg = TrainConfig(epochs=epochs, batch_size=16, lr=1e-3, optimizer="adam", seed=seed + k)
        with tempfile.TemporaryDirectory() as tmp:  # no validation data: the last epoch is kept (no test peeking)
            train_classifier(model, train_ds, None, cfg, tmp, progress=False, resume=False)
        y_all.extend(test_ds.labels)
        p_all.append(predict_proba(model, test_ds))
    prob = np.concatenate(p_all)
    return multiclass_metrics(y_all, prob, CLASSES)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=data_root() / "nact-dce/UCSF-BR-06/image_dce_3dfgre_orig")
    ap.add_argument("--seeds", type=int, default=3, help="strip seeds (file order shuffles)")
    ap.add_argument("--cnn", action="store_true", help="also train the single-slice CNN baseline")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    files = sorted(args.data.glob("*.dcm"))
    if not files:
        sys.exit(f"no DICOM files in {args.data} (set BREASTLAB_DATA)")
    truth = truth_by_file(files)
    result: dict = {"data": str(args.data), "n_files": len(files)}

    exam_rows, grouping = [], []
    t0 = time.perf_counter()
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory() as tmp:
            stripped = strip_headers(files, tmp, seed=seed)
            back = {str(s): truth[str(f)] for f, s in zip(files, stripped)}
            volumes = read_volumes(stripped)
            # grouping purity: each volume's slices share one true phase
            vol_truth = []
            for v in volumes:
                phases = [back[p] for p in v.paths]
                major = max(set(phases), key=phases.count)
                grouping.append(phases.count(major) / len(phases))
                vol_truth.append(major)
            arrays = [v.array for v in volumes]
            for perm in itertools.permutations(range(len(arrays))):
                res = order_phases([arrays[i] for i in perm])
                pred = [CLASSES.index(lab) for lab in res.labels]
                exam_rows.append({"seed": seed, "perm": perm, "truth": [vol_truth[i] for i in perm], "pred": pred,
                                  "confidence": res.confidence, "details": res.details})
    elapsed = time.perf_counter() - t0
    y_exam = [t for r in exam_rows for t in r["truth"]]
    p_exam = [p for r in exam_rows for p in r["pred"]]
    result["grouping_purity_min"] = float(min(grouping))
    result["n_volumes"] = len(volumes)
    result["exam_runs"] = len(exam_rows)
    result["exam_all_correct"] = sum(r["truth"] == r["pred"] for r in exam_rows)
    result["exam_metrics_pooled"] = multiclass_metrics(y_exam, p_exam, CLASSES)
    first = exam_rows[0]
    result["exam_example"] = {k: first[k] for k in ("truth", "pred", "confidence", "details")}
    result["exam_seconds_total"] = elapsed

    # one exam = 3 volumes: the honest n for a CI is 3 (one permutation)
    one = exam_rows[0]
    result["exam_metrics_one_exam"] = multiclass_metrics(one["truth"], one["pred"], CLASSES)

    # slice level, relative: co-located slices of each position, on true volumes
    vols_true = np.zeros((3, 60) + (256, 256), dtype=np.float32)
    from breastlab.seriesmodels.volumes import read_slice, slice_positions

    slices = [read_slice(f) for f in files]
    coords = slice_positions(slices)
    order = sorted(set(coords.tolist()))
    for s, c in zip(slices, coords):
        vols_true[truth[s.path], order.index(float(c))] = s.pixels
    per_pos = order_by_position([vols_true[0], vols_true[1], vols_true[2]])
    y_pos = [p for _ in per_pos for p in range(3)]
    p_pos = [CLASSES.index(lab) for r in per_pos for lab in r.labels]
    result["position_metrics"] = multiclass_metrics(y_pos, p_pos, CLASSES)
    result["position_all_correct"] = sum(r.labels == CLASSES for r in per_pos)
    result["n_positions"] = len(per_pos)

    if args.cnn:
        result["cnn_single_slice_metrics"] = run_cnn(vols_true)

    def line(name: str, m: dict) -> str:
        pc = m["per_class"]
        return (f"| {name} | {m['n']} | {format_figure(m['accuracy'], percent=True)} | "
                + " | ".join(format_figure(pc[c]["accuracy"], percent=True) for c in CLASSES) + " |")

    print(f"grouping purity (min over volumes): {result['grouping_purity_min']:.3f}; "
          f"exam orderings correct: {result['exam_all_correct']}/{result['exam_runs']}; "
          f"positions fully correct: {result['position_all_correct']}/{result['n_positions']}")
    print("| method | n | overall | pre | early | delayed |")
    print("|---|---|---|---|---|---|")
    if args.cnn:
        print(line("single slice, CNN (2-fold by position)", result["cnn_single_slice_metrics"]))
    print(line("slice position, 3 co-located slices ordered", result["position_metrics"]))
    print(line("exam level, one exam (3 volumes)", result["exam_metrics_one_exam"]))
    print(f"exam level over {len(exam_rows)} runs ({args.seeds} strips x {len(exam_rows) // args.seeds} input orders, "
          f"not independent): {result['exam_all_correct']}/{len(exam_rows)} fully correct")
    d = first["details"]
    print(f"exam details: pre scores (p90 in changing voxels) {d['pre_scores']}; clock votes {d['clock_votes']}; "
          f"lesion-peak means {d['lesion_means']} (agrees: {d['lesion_agrees']}); heterogeneity CV "
          f"{d['heterogeneity_cv']} (agrees: {d['heterogeneity_agrees']}); confidence {first['confidence']:.2f}")
    print(f"strip + regroup + order: {elapsed / args.seeds:.1f} s per strip seed (all {len(exam_rows) // args.seeds} orders)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    main()
