"""BUSI, benign vs malignant, one view, 5-fold cross-validation grouped by near-duplicates.

    nice -n 10 .venv/bin/python bench/busi.py [--image-size 64] [--epochs 12] [--folds 0 1 2 3 4]

BUSI (Al-Dhabyani et al., Data in Brief 2020) has several images per patient but no
patient IDs. A plain stratified k-fold would put images of the same lesion in the
training and the test folds, which inflates the AUC. So, before splitting:

1. **Near-duplicate search.** Every image (grey, 256²) is shrunk to 32×32 (area
   average), z-scored, and compared with every other image by Pearson correlation.
   Pairs with r >= ``--dup-threshold`` (0.93) are linked; linked images form one
   group (union-find, i.e. connected components). The threshold sits in the gap of the
   pair distribution (168 pairs >= 0.95, 176 >= 0.93, 216 >= 0.90, 1,091 >= 0.85) and
   was checked by eye on pairs just above and below it: above 0.93 nearly all pairs
   show the same lesion (often the same frame with and without calipers/text); below
   0.92 many pairs are different patients with a similar texture. The 8×8 dHash
   Hamming distance of each linked pair is reported as a second opinion.
2. **Grouped, stratified 5-fold** with the project's ``training.splits.kfold_splits``
   (``StratifiedGroupKFold``): a near-duplicate group never straddles folds; each
   fold's training part gives a validation part (20 %, also grouped) used for
   checkpoint selection and the operating threshold (Youden on val).
3. Training and prediction through the product: ``CaseDataset`` (PNG loading, robust
   z-score, resize, cache, ``Augment`` with horizontal flip), ``build_model("resnet18")``,
   ``train_classifier``, ``predict_proba``, ``binary_metrics`` (DeLong AUC CI).

Caveat (printed too): images of one patient that are *not* near-identical (another
plane, another lesion) cannot be found this way, so some patient-level leakage may
remain; the figures are an upper bound on patient-level performance. The "normal"
folder is not used (benign vs malignant only). Label 1 = malignant (project convention).

Data: ``breastlab.core.settings.data_root()/busi`` (env ``BREASTLAB_DATA``). The last
line printed is ``busi 5fold AUC=<pooled out-of-fold AUC> ...``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from breastlab.core.atomic import write_csv, write_json
from breastlab.core.provenance import fingerprint_files, library_versions, run_manifest
from breastlab.core.settings import data_root
from breastlab.evaluation.metrics import auc_ci, binary_metrics
from breastlab.evaluation.threshold import choose_threshold
from breastlab.models.registry import build_model
from breastlab.multiview.dataset import CaseDataset
from breastlab.multiview.preprocess import Augment, load_image
from breastlab.training.loop import TrainConfig, predict_proba, train_classifier
from breastlab.training.splits import kfold_splits

CLASSES = {"benign": 0, "malignant": 1}


def list_images(root: Path) -> list[dict]:
    rows = []
    for cls, label in CLASSES.items():
        files = sorted((root / cls).glob("*.png"),
                       key=lambda p: int("".join(c for c in p.stem if c.isdigit()) or 0))
        for p in files:
            if "mask" in p.name:
                continue
            rows.append({"case_id": f"{cls}_{p.stem.split('(')[-1].rstrip(')')}",
                         "label": label, "US": str(p), "file": f"{cls}/{p.name}"})
    return rows


def thumbnails(rows: list[dict], size: int = 32) -> np.ndarray:
    """Grey images shrunk to ``size``² by area averaging (256 / size must be whole)."""
    out = []
    for r in rows:
        img = load_image(r["US"])
        t = torch.from_numpy(img)[None, None]
        out.append(torch.nn.functional.adaptive_avg_pool2d(t, size)[0, 0].numpy())
    return np.stack(out).astype(np.float64)


def dhash(rows: list[dict]) -> np.ndarray:
    """64-bit difference hash (9×8 area-averaged grey, horizontal gradient sign)."""
    out = []
    for r in rows:
        t = torch.from_numpy(load_image(r["US"]))[None, None]
        s = torch.nn.functional.adaptive_avg_pool2d(t, (8, 9))[0, 0].numpy()
        out.append((s[:, 1:] > s[:, :-1]).ravel())
    return np.stack(out)


def near_duplicate_groups(thumbs: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray,
                                                                         list[tuple[int, int]]]:
    """(group index per image, correlation matrix, linked pairs) by union-find."""
    z = thumbs.reshape(len(thumbs), -1)
    z = (z - z.mean(1, keepdims=True)) / (z.std(1, keepdims=True) + 1e-9)
    corr = z @ z.T / z.shape[1]
    n = len(z)
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    pairs = [(int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(corr >= threshold, 1)))]
    for i, j in pairs:
        parent[find(i)] = find(j)
    roots = [find(i) for i in range(n)]
    ids = {r: k for k, r in enumerate(dict.fromkeys(roots))}
    return np.array([ids[r] for r in roots]), corr, pairs


def straddling_pairs(pairs: list[tuple[int, int]], fold_of: np.ndarray) -> int:
    return sum(fold_of[i] != fold_of[j] for i, j in pairs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="BUSI folder (default data_root()/busi)")
    ap.add_argument("--out", type=Path, default=Path("bench/out/busi"))
    ap.add_argument("--dup-threshold", type=float, default=0.93)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--folds", type=int, nargs="*", default=None,
                    help="train only these folds (to split the work across processes)")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--optimizer", default="adamw", choices=["sgd", "adam", "adamw"])
    ap.add_argument("--scheduler", default="cosine", choices=["none", "cosine", "step"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dups-only", action="store_true", help="stop after the duplicate report")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    root = args.data or data_root() / "busi"
    if not (root / "benign").is_dir():
        print(f"BUSI not found at {root} (set BREASTLAB_DATA)", file=sys.stderr)
        return 2
    rows = list_images(root)
    labels = np.array([r["label"] for r in rows])
    fp = fingerprint_files([r["US"] for r in rows])
    print(f"data: {root}  images: {len(rows)} (benign {int((labels == 0).sum())}, "
          f"malignant {int((labels == 1).sum())})  fingerprint sha256={fp}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in library_versions().items()))

    # ---------------------------------------------------------------- near-duplicates
    groups, corr, pairs = near_duplicate_groups(thumbnails(rows), args.dup_threshold)
    hashes = dhash(rows)
    ham = [int((hashes[i] != hashes[j]).sum()) for i, j in pairs]
    members = defaultdict(list)
    for i, g in enumerate(groups):
        members[int(g)].append(i)
    multi = [m for m in members.values() if len(m) > 1]
    mixed = [m for m in multi if len({int(labels[i]) for i in m}) > 1]
    iu = np.triu_indices(len(rows), 1)
    c = corr[iu]
    print(f"near-duplicates (32x32 correlation >= {args.dup_threshold}): {len(pairs)} linked "
          f"pairs -> {len(multi)} groups of 2+ images holding {sum(map(len, multi))} images "
          f"(largest {max(map(len, multi)) if multi else 0}); {len(rows)} images -> "
          f"{len(members)} groups; dHash distance of linked pairs: median {np.median(ham):.0f}, "
          f"max {max(ham) if ham else 0}")
    print("pair counts by correlation: " + ", ".join(
        f">={t}: {int((c >= t).sum())}" for t in (0.99, 0.95, 0.93, 0.90, 0.85)))
    print(f"groups mixing benign and malignant labels: {len(mixed)} "
          + "; ".join("+".join(rows[i]["file"] for i in m) for m in mixed))
    for r, g in zip(rows, groups):
        r["patient_id"] = f"g{int(g):04d}"
    out = args.out / (f"s{args.image_size}_e{args.epochs}_bs{args.batch_size}_{args.optimizer}"
                      f"{args.lr:g}_wd{args.weight_decay:g}_{args.scheduler}_dup{args.dup_threshold:g}")
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "groups.csv", ({"file": r["file"], "label": r["label"], "group": r["patient_id"]}
                                   for r in rows), ["file", "label", "group"])

    case_ids = [r["case_id"] for r in rows]
    splits = kfold_splits(case_ids, labels, [r["patient_id"] for r in rows], k=args.k,
                          val_fraction=0.2, seed=args.split_seed)
    pos = {cid: i for i, cid in enumerate(case_ids)}
    fold_of = np.zeros(len(rows), int)
    for f, s in enumerate(splits):
        fold_of[[pos[c] for c in s["test"]]] = f
    from sklearn.model_selection import StratifiedKFold

    naive = np.zeros(len(rows), int)
    for f, (_, te) in enumerate(StratifiedKFold(args.k, shuffle=True, random_state=args.split_seed)
                                .split(np.zeros(len(rows)), labels)):
        naive[te] = f
    print(f"linked pairs split across test folds: grouped {straddling_pairs(pairs, fold_of)}, "
          f"plain StratifiedKFold would have {straddling_pairs(pairs, naive)} of {len(pairs)}")
    for f, s in enumerate(splits):
        yt = labels[[pos[c] for c in s["test"]]]
        print(f"fold {f}: train {len(s['train'])}, val {len(s['val'])}, test {len(s['test'])} "
              f"(test malignant {int(yt.sum())})")
    if args.dups_only:
        return 0

    # ------------------------------------------------------------------- training
    recipe = {
        "model": "resnet18", "in_channels": 1, "image_size": args.image_size,
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "weight_decay": args.weight_decay, "optimizer": args.optimizer,
        "scheduler": args.scheduler, "seed": args.seed, "split_seed": args.split_seed,
        "dup_threshold": args.dup_threshold, "k": args.k, "augment": None,
        "select_metric": "auc (val)", "threshold_rule": "youden (val)",
    }
    augment = Augment(rotate_deg=10.0, scale=(0.9, 1.1), translate=0.05, hflip_prob=0.5)
    recipe["augment"] = augment.to_dict()
    print("recipe: " + json.dumps(recipe, sort_keys=True))
    t0 = time.perf_counter()
    full = CaseDataset(rows, views=("US",), image_size=args.image_size, augment=augment,
                       cache=True, progress=args.progress)
    print(f"CaseDataset: {len(full)} images cached in {time.perf_counter() - t0:.1f} s, "
          f"skipped {len(full.skipped)}")
    write_json(out / "provenance.json", run_manifest(recipe, data_fingerprint=fp))
    todo = range(args.k) if args.folds is None else args.folds
    for f in todo:
        s = splits[f]
        model = build_model("resnet18", in_channels=1, num_classes=2,
                            image_size=args.image_size)
        config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                             weight_decay=args.weight_decay, optimizer=args.optimizer,
                             scheduler=args.scheduler, seed=args.seed + f, select_metric="auc",
                             num_threads=args.threads, eval_batch_size=64)
        t1 = time.perf_counter()
        res = train_classifier(model, full.select(s["train"], train=True),
                               full.select(s["val"], train=False), config, out / f"fold{f}",
                               progress=args.progress, meta={"views": ["US"]})
        pv = predict_proba(model, full.select(s["val"], train=False), 64)[:, 1]
        pt = predict_proba(model, full.select(s["test"], train=False), 64)[:, 1]
        yv = labels[[pos[c] for c in s["val"]]]
        thr = choose_threshold(yv, pv, "youden")["threshold"]
        write_csv(out / f"fold{f}" / "predictions.csv",
                  ({"case_id": c, "split": sp, "label": int(labels[pos[c]]), "prob": float(p),
                    "threshold": thr}
                   for sp, ids, ps in (("val", s["val"], pv), ("test", s["test"], pt))
                   for c, p in zip(ids, ps)),
                  ["case_id", "split", "label", "prob", "threshold"])
        print(f"fold {f}: best epoch {res.best_epoch} (val AUC {res.best_metrics['val_auc']:.3f}), "
              f"{time.perf_counter() - t1:.0f} s", flush=True)

    # --------------------------------------------------------------- pooled results
    preds = []
    for f in range(args.k):
        p = out / f"fold{f}" / "predictions.csv"
        if not p.is_file():
            print(f"fold {f} not trained yet; pooled figures need all {args.k} folds")
            return 0
        import csv

        with open(p, newline="") as fh:
            preds += [dict(r, fold=f) for r in csv.DictReader(fh) if r["split"] == "test"]
    y = np.array([int(r["label"]) for r in preds])
    prob = np.array([float(r["prob"]) for r in preds])
    pred = np.array([float(r["prob"]) >= float(r["threshold"]) for r in preds]).astype(int)
    folds = np.array([r["fold"] for r in preds])
    per_fold = [binary_metrics(y[folds == f], prob[folds == f], pred=pred[folds == f])
                for f in range(args.k)]
    pooled = binary_metrics(y, prob, pred=pred)
    aucs = np.array([m["auc"]["value"] for m in per_fold])
    print("per-fold test AUC: " + ", ".join(f"{a:.3f}" for a in aucs)
          + f"; mean ± sd {aucs.mean():.3f} ± {aucs.std(ddof=1):.3f}")
    a = pooled["auc"]
    print(f"pooled out-of-fold (n={pooled['n']}, malignant {pooled['n_pos']}): AUC {a['value']:.3f} "
          f"(DeLong 95% CI {a['ci_low']:.3f}-{a['ci_high']:.3f}); at the val-chosen (Youden) "
          f"thresholds: ACC {pooled['accuracy']['value']:.3f}, sensitivity "
          f"{pooled['sensitivity']['value']:.3f}, specificity {pooled['specificity']['value']:.3f}")
    print("caveat: BUSI has no patient IDs; only near-identical images were grouped, so other "
          "images of the same patient may still sit in different folds.")
    write_json(out / "results.json", {"per_fold": per_fold, "pooled": pooled,
                                      "auc_bootstrap": auc_ci(y, prob, "bootstrap"),
                                      "near_duplicate_pairs": len(pairs),
                                      "merged_groups": len(multi), "mixed_label_groups": len(mixed)})
    print(f"busi {args.k}fold AUC={a['value']:.4f} fold_mean={aucs.mean():.4f} "
          f"fold_sd={aucs.std(ddof=1):.4f} ACC={pooled['accuracy']['value']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
