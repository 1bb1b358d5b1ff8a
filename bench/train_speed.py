"""Training and inference speed of the product against bare torch, in the same run.

    nice -n 10 .venv/bin/python bench/train_speed.py [--cases 32] [--epochs 2] [--threads 1]

Data: synthetic four-view BSGI cases (``phantom.bsgi.write_bsgi_phantom``, 256×256 NM
DICOM, four views → 4 channels) written to a temporary folder, with a ``cases.csv``
(``case_id, patient_id, label, LCC, RCC, LMLO, RMLO``). Model: ``build_model("resnet18",
in_channels=4)``, batch 8, CPU, the same thread count for every measurement.

Training (images/s = cases × epochs / seconds):

* **pipeline**: ``CaseDataset(cases.csv, train=True)`` (cached; ``Augment`` per case)
  through ``train_classifier`` (its ``DataLoader``, loss, optimizer, checkpoint and
  history written every epoch, no validation set);
* **bare**: the same model, optimizer and memory layout in a plain loop over
  in-memory tensors (``randperm`` batches of a preloaded ``[N, 4, 256, 256]`` tensor),
  no augmentation, no checkpoints.

Inference (cases/s):

* **end to end**: from the files on disk: ``CaseDataset(cases.csv)`` (DICOM decode,
  robust normalisation, resize) → ``predict_proba`` → probabilities;
* **forward only**: ``model(x)`` under ``torch.inference_mode`` on the already
  preprocessed tensors, batch 8.

Each figure is the best of ``--repeat`` timings, interleaved (less noise from other
processes on a shared machine). Both wall-clock and CPU time of this process
(``time.process_time``, all threads; single-process pipeline, ``num_workers=0``) are
measured. The last line prints the CPU-time ratios (pipeline / bare), which do not
depend on what else runs on the machine, followed by the wall-clock ratios; on an idle
machine the two agree except for I/O wait (the checkpoint written every epoch).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from breastlab.core.provenance import library_versions
from breastlab.models.registry import build_model
from breastlab.multiview.dataset import CaseDataset
from breastlab.phantom.bsgi import write_bsgi_phantom
from breastlab.training.loop import TrainConfig, predict_proba, train_classifier

VIEWS = ("LCC", "RCC", "LMLO", "RMLO")


def write_cases(root: Path, n_cases: int, matrix: int) -> Path:
    """Phantom cases + a wide ``cases.csv`` (one path column per view)."""
    write_bsgi_phantom(root, n_cases=n_cases, matrix=matrix, seed=0)
    wide: dict[str, dict] = {}
    with open(root / "manifest.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            row = wide.setdefault(r["case_id"], {"case_id": r["case_id"],
                                                 "patient_id": r["case_id"],
                                                 "label": r["label"]})
            row[r["view"]] = r["path"]
    path = root / "cases.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, ["case_id", "patient_id", "label", *VIEWS])
        w.writeheader()
        w.writerows(wide.values())
    return path


class Timer:
    """Wall seconds and CPU seconds of this process (all its threads)."""

    def __enter__(self) -> Timer:  # noqa: PYI034
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0


def bare_train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainConfig,
               epochs: int) -> Timer:
    """Timer of ``epochs`` of a plain loop over in-memory tensors."""
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    model.train()
    g = torch.Generator().manual_seed(0)
    with Timer() as t:
        _bare_epochs(model, opt, x, y, config, epochs, g)
    return t


def _bare_epochs(model, opt, x, y, config, epochs, g) -> None:
    n, bs = len(x), config.batch_size
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            xb = x[idx]
            if config.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), y[idx])
            loss.backward()
            opt.step()


def forward_only(model: torch.nn.Module, x: torch.Tensor, bs: int, channels_last: bool) -> Timer:
    model.eval()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    with Timer() as t, torch.inference_mode():
        for i in range(0, len(x), bs):
            xb = x[i:i + bs]
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            torch.softmax(model(xb), 1)
    return t


def end_to_end(model: torch.nn.Module, cases_csv: Path, image_size: int, bs: int,
               **dataset_kwargs) -> tuple[Timer, np.ndarray]:
    with Timer() as t:
        ds = CaseDataset(cases_csv, views=VIEWS, image_size=image_size, **dataset_kwargs)
        prob = predict_proba(model, ds, bs)
    return t, prob


def rate(count: int, timers: list[Timer], attr: str) -> float:
    """count per second of the best (shortest) of the timings."""
    return count / min(getattr(t, attr) for t in timers)


def runs(timers: list[Timer]) -> str:
    return ", ".join(f"{t.wall:.1f}/{t.cpu:.1f}" for t in timers)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=32)
    ap.add_argument("--matrix", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=None, help="keep the phantom here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    size = args.matrix
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"batch {args.batch_size}, cases {args.cases}, {size}x{size}x4, epochs {args.epochs}")
    print("versions: " + json.dumps(library_versions()))

    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="breastlab_speed_")
        root = Path(tmp.name)
    else:
        root = args.workdir
    cases_csv = root / "cases.csv"
    if not cases_csv.is_file():
        t0 = time.perf_counter()
        cases_csv = write_cases(root, args.cases, args.matrix)
        print(f"phantom: {args.cases} cases written in {time.perf_counter() - t0:.1f} s")

    # ------------------------------------------------------------------ training
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=0,
                         num_threads=args.threads)
    t0 = time.perf_counter()
    train_ds = CaseDataset(cases_csv, views=VIEWS, image_size=size, train=True, cache=True)
    cache_s = time.perf_counter() - t0
    n = len(train_ds)
    print(f"CaseDataset cache: {n} cases in {cache_s:.2f} s")
    x_mem = torch.stack([train_ds.image(i) for i in range(n)]).contiguous()
    y_mem = train_ds.labels.clone()

    def make_model() -> torch.nn.Module:
        torch.manual_seed(0)
        return build_model("resnet18", in_channels=4, num_classes=2, image_size=size)

    bare_s, pipe_s = [], []
    for r in range(args.repeat):  # interleaved, so drifting load hits both alike
        bare_s.append(bare_train(make_model(), x_mem, y_mem, config, args.epochs))
        with tempfile.TemporaryDirectory(prefix="breastlab_speed_run_") as run_dir:
            with Timer() as t:
                train_classifier(make_model(), train_ds, None, config, run_dir, progress=False,
                                 resume=False)
            pipe_s.append(t)
    imgs = n * args.epochs
    print(f"training img/s, wall (CPU): bare loop {rate(imgs, bare_s, 'wall'):.2f} "
          f"({rate(imgs, bare_s, 'cpu'):.2f}); pipeline {rate(imgs, pipe_s, 'wall'):.2f} "
          f"({rate(imgs, pipe_s, 'cpu'):.2f})   [runs wall/cpu s: bare {runs(bare_s)}; "
          f"pipeline {runs(pipe_s)}]")

    # ----------------------------------------------------------------- inference
    model = make_model()
    model.eval()
    fwd_s, e2e_s = [], []
    prob = None
    for r in range(args.repeat):
        fwd_s.append(forward_only(model, x_mem, args.batch_size, config.channels_last))
        s, prob = end_to_end(model, cases_csv, size, args.batch_size)
        e2e_s.append(s)
    assert prob is not None and prob.shape == (n, 2)
    print(f"inference cases/s, wall (CPU): forward only {rate(n, fwd_s, 'wall'):.2f} "
          f"({rate(n, fwd_s, 'cpu'):.2f}); end to end {rate(n, e2e_s, 'wall'):.2f} "
          f"({rate(n, e2e_s, 'cpu'):.2f})   [runs wall/cpu s: forward {runs(fwd_s)}; "
          f"end to end {runs(e2e_s)}]")
    tr = {a: rate(imgs, pipe_s, a) / rate(imgs, bare_s, a) for a in ("wall", "cpu")}
    inf = {a: rate(n, e2e_s, a) / rate(n, fwd_s, a) for a in ("wall", "cpu")}
    load = os.getloadavg()[0]
    print(f"wall-clock ratios: training {tr['wall']:.3f}, inference {inf['wall']:.3f} "
          f"(1-min load average {load:.1f} on {os.cpu_count()} CPUs; on a busy machine the "
          f"wall ratios measure the scheduler more than the code)")
    print(f"speed training ratio={tr['cpu']:.3f} (target >= 0.9) "
          f"inference ratio={inf['cpu']:.3f} (target >= 0.8) [CPU time of this process; "
          f"wall: {tr['wall']:.3f} / {inf['wall']:.3f}]")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
