"""Training, data-path and inference speed of the product against bare torch, in one run.

    nice -n 10 .venv/bin/python bench/train_speed.py [--cases 32] [--epochs 2] [--threads 1]
        [--device auto|cpu|cuda|cuda:N] [--precision 32|bf16|16] [--batch-size 8] [--tile 1]

Data: synthetic four-view BSGI cases (``phantom.bsgi.write_bsgi_phantom``, 256×256 NM
DICOM, four views → 4 channels) in a temporary folder with a ``cases.csv``. ``--tile K``
repeats the training cases K times per epoch (a GPU trains 96 cases in milliseconds, so the
per-epoch checkpoint would otherwise dominate). Model: ``build_model("resnet18",
in_channels=4)``; the same device, batch size, precision and memory layout for every
measurement.

Training (images/s = cases × tile × epochs / seconds; one image = one four-view case):

* **product**: ``CaseDataset(cases.csv, train=True)`` through ``train_classifier`` (on a
  GPU the cases are resident on the device and augmented there in batches; checkpoint,
  model file and history written every epoch; no validation set);
* **bare**: the same model, optimizer, precision and layout in a plain loop over
  preloaded device tensors (``randperm`` batches), no augmentation, no checkpoints.

Data path (cases/s; each case is four DICOM views decoded, normalised and resized):

* **cold**: ``CaseDataset`` from the DICOM files (no cache), one process;
* **fill**: the same, writing the on-disk cache (``multiview.cache``);
* **cache**: from the on-disk cache (memory-mapped ``.npy``), one process, and through a
  ``DataLoader`` with ``--workers`` processes (what a data set too large for memory uses),
  against the **product training rate** (the data path must be at least as fast).

Inference (cases/s): **end to end** from the files on disk (``CaseDataset`` →
``predict_proba`` on the device) against **forward only** (``model(x)`` on preloaded device
tensors).

Each figure is the best of ``--repeat`` timings, interleaved. On a CPU both wall-clock and
CPU time of this process are measured (the CPU-time ratios do not depend on other load);
on a GPU the timers synchronise the device and wall-clock time is what counts. The last
lines print the ratios.
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

from breastlab.core.device import configure, device_info, resolve_device
from breastlab.core.precision import Precision
from breastlab.core.provenance import library_versions
from breastlab.models.registry import build_model
from breastlab.multiview.cache import ViewCache
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
    """Wall seconds and CPU seconds of this process; synchronises ``device`` (CUDA)."""

    def __init__(self, device: torch.device | None = None) -> None:
        self.device = device

    def _sync(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __enter__(self) -> Timer:  # noqa: PYI034
        self._sync()
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sync()
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0


def bare_train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainConfig,
               epochs: int, device: torch.device) -> Timer:
    """Timer of ``epochs`` of a plain loop over preloaded device tensors."""
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay)
    amp = Precision.make(config.precision, device)
    scaler = amp.grad_scaler()
    model.train()
    g = torch.Generator().manual_seed(0)
    n, bs = len(x), config.batch_size
    with Timer(device) as t:
        for _ in range(epochs):
            perm = torch.randperm(n, generator=g).to(device)
            for i in range(0, n, bs):
                idx = perm[i:i + bs]
                xb = x.index_select(0, idx)
                if config.channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                opt.zero_grad(set_to_none=True)
                with amp.autocast():
                    loss = F.cross_entropy(model(xb).float(), y.index_select(0, idx))
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
    return t


def forward_only(model: torch.nn.Module, x: torch.Tensor, bs: int, config: TrainConfig,
                 device: torch.device) -> Timer:
    model.eval()
    amp = Precision.make(config.precision, device)
    with Timer(device) as t, torch.inference_mode(), amp.autocast():
        out = []
        for i in range(0, len(x), bs):
            xb = x[i:i + bs]
            if config.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            out.append(torch.softmax(model(xb).float(), 1))
        torch.cat(out).cpu()
    return t


def end_to_end(model: torch.nn.Module, cases_csv: Path, image_size: int, config: TrainConfig,
               device: torch.device) -> tuple[Timer, np.ndarray]:
    with Timer(device) as t:
        ds = CaseDataset(cases_csv, views=VIEWS, image_size=image_size)
        prob = predict_proba(model, ds, config.batch_size, precision=config.precision)
    return t, prob


def data_path(cases_csv: Path, size: int, cache_dir: Path, bs: int, workers: int,
              repeat: int) -> dict[str, list[Timer]]:
    """Timers of the data path: cold, fill (writing the cache), from the cache (one
    process), from the cache through ``workers`` DataLoader processes."""
    out: dict[str, list[Timer]] = {"cold": [], "fill": [], "cache": [], "workers": []}
    for r in range(repeat):
        with Timer() as t:
            CaseDataset(cases_csv, views=VIEWS, image_size=size)
        out["cold"].append(t)
        fresh = cache_dir / f"fill{r}"
        with Timer() as t:
            CaseDataset(cases_csv, views=VIEWS, image_size=size, disk_cache=ViewCache(fresh))
        out["fill"].append(t)
        with Timer() as t:
            ds = CaseDataset(cases_csv, views=VIEWS, image_size=size, disk_cache=ViewCache(fresh))
        assert ds.disk_cache.misses == 0, "the cache was not hit"
        out["cache"].append(t)
        lazy = CaseDataset(cases_csv, views=VIEWS, image_size=size, cache=False,
                           disk_cache=ViewCache(fresh))
        loader = torch.utils.data.DataLoader(lazy, batch_size=bs, num_workers=workers,
                                             pin_memory=torch.cuda.is_available())
        with Timer() as t:  # worker start-up included, as in a first epoch
            for _batch in loader:
                pass
        out["workers"].append(t)
    return out


def rate(count: int, timers: list[Timer], attr: str = "wall") -> float:
    """count per second of the best (shortest) of the timings."""
    return count / max(min(getattr(t, attr) for t in timers), 1e-9)


def runs(timers: list[Timer]) -> str:
    return ", ".join(f"{t.wall:.2f}/{t.cpu:.2f}" for t in timers)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=32)
    ap.add_argument("--matrix", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--tile", type=int, default=1, help="training cases repeated K times per epoch")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="32")
    ap.add_argument("--workers", type=int, default=min(8, max(1, (os.cpu_count() or 2) - 1)),
                    help="DataLoader workers of the cached data path")
    ap.add_argument("--skip-data", action="store_true", help="leave out the data-path figures")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the phantom here")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    configure(device)
    size, bs = args.matrix, args.batch_size
    config = TrainConfig(epochs=args.epochs, batch_size=bs, seed=0, num_threads=args.threads,
                         device=str(device), precision=args.precision)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {bs}, "
          f"precision {config.precision}, cases {args.cases} x tile {args.tile}, "
          f"{size}x{size}x4, epochs {args.epochs}")
    print("device: " + json.dumps(device_info(device, config.precision)))
    print("versions: " + json.dumps(library_versions()))

    tmp = tempfile.TemporaryDirectory(prefix="breastlab_speed_")
    root = args.workdir or Path(tmp.name)
    cases_csv = root / "cases.csv"
    if not cases_csv.is_file():
        t0 = time.perf_counter()
        cases_csv = write_cases(root, args.cases, args.matrix)
        print(f"phantom: {args.cases} cases written in {time.perf_counter() - t0:.1f} s")

    # ------------------------------------------------------------------ training
    base = CaseDataset(cases_csv, views=VIEWS, image_size=size, train=True, cache=True)
    n0 = len(base)
    train_ds = base.subset(list(range(n0)) * args.tile, train=True)
    n = len(train_ds)
    x_dev = train_ds._data.to(device).contiguous()
    y_dev = train_ds.labels.to(device)

    def make_model() -> torch.nn.Module:
        torch.manual_seed(0)
        return build_model("resnet18", in_channels=4, num_classes=2, image_size=size)

    bare_s, prod_s = [], []
    for _ in range(args.repeat):  # interleaved, so drifting load hits both alike
        bare_s.append(bare_train(make_model(), x_dev, y_dev, config, args.epochs, device))
        with tempfile.TemporaryDirectory(prefix="breastlab_speed_run_") as run_dir:
            with Timer(device) as t:
                train_classifier(make_model(), train_ds, None, config, run_dir, progress=False,
                                 resume=False)
            prod_s.append(t)
    imgs = n * args.epochs
    print(f"training img/s, wall (CPU): bare loop {rate(imgs, bare_s):.1f} "
          f"({rate(imgs, bare_s, 'cpu'):.1f}); product {rate(imgs, prod_s):.1f} "
          f"({rate(imgs, prod_s, 'cpu'):.1f})   [runs wall/cpu s: bare {runs(bare_s)}; "
          f"product {runs(prod_s)}]")

    # ----------------------------------------------------------------- data path
    data = None
    if not args.skip_data:
        data = data_path(cases_csv, size, root / "cache", bs, args.workers, args.repeat)
        print(f"data path cases/s, wall: cold {rate(n0, data['cold']):.1f}; filling the cache "
              f"{rate(n0, data['fill']):.1f}; from the cache {rate(n0, data['cache']):.1f} "
              f"(1 process), {rate(n0, data['workers']):.1f} ({args.workers} DataLoader "
              f"workers); cache {ViewCache(root / 'cache' / 'fill0').size_bytes() / 2**20:.1f} "
              f"MiB for {n0} cases")

    # ----------------------------------------------------------------- inference
    model = make_model().to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    model.eval()
    x_inf = base._data.to(device)
    fwd_s, e2e_s = [], []
    prob = None
    for _ in range(args.repeat):
        fwd_s.append(forward_only(model, x_inf, bs, config, device))
        s, prob = end_to_end(model, cases_csv, size, config, device)
        e2e_s.append(s)
    assert prob is not None and prob.shape == (n0, 2)
    print(f"inference cases/s, wall (CPU): forward only {rate(n0, fwd_s):.1f} "
          f"({rate(n0, fwd_s, 'cpu'):.1f}); end to end {rate(n0, e2e_s):.1f} "
          f"({rate(n0, e2e_s, 'cpu'):.1f})")

    # ------------------------------------------------------------------ ratios
    tr = {a: rate(imgs, prod_s, a) / rate(imgs, bare_s, a) for a in ("wall", "cpu")}
    inf = {a: rate(n0, e2e_s, a) / rate(n0, fwd_s, a) for a in ("wall", "cpu")}
    load = os.getloadavg()[0]
    print(f"wall-clock ratios: training {tr['wall']:.3f}, inference {inf['wall']:.3f} "
          f"(1-min load average {load:.1f} on {os.cpu_count()} CPUs)")
    if data is not None:
        train_rate = rate(imgs, prod_s)
        print(f"data path / product training rate: cold {rate(n0, data['cold']) / train_rate:.3f}, "
              f"from the cache {rate(n0, data['cache']) / train_rate:.3f} (1 process), "
              f"{rate(n0, data['workers']) / train_rate:.3f} ({args.workers} workers) "
              f"(target >= 1 from the cache)")
    ratio = tr["wall"] if device.type == "cuda" else tr["cpu"]
    print(f"speed device={device} precision={config.precision} batch={bs} "
          f"training ratio={ratio:.3f} (product/bare; target >= 0.8 on a GPU at batch 64 bf16, "
          f">= 0.9 on CPU) inference ratio={inf['wall' if device.type == 'cuda' else 'cpu']:.3f} "
          f"[{'wall' if device.type == 'cuda' else 'CPU'} time]")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
