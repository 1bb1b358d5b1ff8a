"""Generic classifier training with resume: ``train_classifier`` (prediction:
``training.predict``, re-exported here).

Works for any ``nn.Module`` returning logits ``[B, K]`` and any map-style dataset
returning data items ``{"image", "label", id}`` (``training.predict.unpack``) or
``(tensor, int label)`` pairs, with labels in ``0..K-1`` (four-view diagnosis,
BreastMNIST, MRI sequence or phase classifiers).

Output folder (``out_dir``):

- ``checkpoint.pt``: written atomically after every epoch; holds model, optimizer,
  scheduler, epoch, best score, early-stopping counter, history and all RNG states
  (Python, NumPy, torch, the shuffling generator), as plain tensors / lists so that
  it loads with ``torch.load(weights_only=True)``. On start, ``train_classifier``
  resumes from it (``resume=True``): a killed run continues with the next epoch and
  gives the same result as an uninterrupted one.
- ``model.pt``: the weights of the best epoch **on the validation data**
  (``select_metric``: ``auc``, ``accuracy`` or ``loss``; ties and undefined AUC fall
  back to the lower validation loss), written by ``models.files.save_model``. With no
  validation data the last epoch is kept.
- ``history.csv``: one row per epoch: ``epoch, train_loss, train_acc, val_loss,
  val_acc, val_auc, lr, seconds, best``.

Defaults are the seed's hyperparameters: SGD, learning rate 1e-3, momentum 0.9,
weight decay 5e-4, batch size 8, cross-entropy.

Devices and precision (``config.device``, ``config.precision``; ``core.device``,
``core.precision``): the model, the batches, the loss and the metrics' sums live on the
device; autocast for ``bf16`` / ``16`` (a gradient scaler for ``16``); the weights, the
optimizer state and the checkpoint stay fp32, and checkpoints load with ``map_location``,
so a run started on a GPU resumes on a CPU and the other way round. How batches reach
the device (resident tensors, sized DataLoaders, batched augmentation) is
``training.batches``. Inputs and weights use the channels-last memory layout
(``channels_last=True``; ~35 % faster inference for ResNet-18 on CPU, the tensor cores'
layout on GPUs). On a CPU without workers the loop is exactly the one before devices
existed (same results for a fixed seed).

Checkpoints are written by a background thread from a CPU copy of the state, so the
device keeps training while the file is written (one write at a time; an error in it is
raised in the loop).

Several processes (``torch.distributed`` initialised, see ``training.distributed``): the
model is wrapped in DistributedDataParallel, every rank trains on its share of each
global batch (``ShardedBatchSampler``), validation is computed on shards and gathered,
and only rank 0 writes ``checkpoint.pt``, ``model.pt`` and ``history.csv``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from breastlab.core.atomic import write_csv
from breastlab.core.provenance import seed_everything
from breastlab.core.rundir import CHECKPOINT, HISTORY, MODEL
from breastlab.evaluation.metrics import auc_point

from breastlab.core.device import configure, resolve_device
from breastlab.core.precision import Precision

from . import batches as B
from . import distributed as ddp
from .checkpoint import (BackgroundWriter, ModelSnapshot, cpu_copy, load_checkpoint, rng_state,
                         set_rng_state, write_epoch)
from .defaults import OPTIMIZERS, SCHEDULERS, SELECT_METRICS, TrainConfig
from .predict import (  # noqa: F401 - prediction lives in training/predict.py (re-exported)
    ITEM_IDS,
    _to_input,
    model_device,
    predict_items,
    predict_logits,
    predict_proba,
    softmax,
    unpack,
)

log = logging.getLogger(__name__)

HISTORY_COLUMNS = (
    "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_auc", "lr", "seconds", "best",
)
# Config fields that may change between a killed run and its resumption.
_RESUME_IGNORED = ("num_threads", "eval_batch_size", "device", "num_workers")




@dataclass
class TrainResult:
    """What ``train_classifier`` did; ``model`` holds the best weights on return."""

    out_dir: Path
    model_path: Path
    checkpoint_path: Path
    best_epoch: int
    best_metrics: dict[str, float]
    epochs_run: int
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from_epoch: int | None = None
    stopped_early: bool = False


# ------------------------------------------------------------------------- helpers
def binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC of ``score`` for the boolean ``positive`` (NaN when one class is absent):
    ``evaluation.metrics.auc_point``, the project's one AUC."""
    return auc_point(np.asarray(positive, dtype=bool).astype(int), score)


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Cross-entropy loss, accuracy and AUC (binary: of P(class 1); K>2: macro one-vs-rest)."""
    if len(labels) == 0:
        return {"loss": math.nan, "accuracy": math.nan, "auc": math.nan}
    t = torch.from_numpy(logits).float()
    y = torch.from_numpy(np.asarray(labels)).long()
    loss = float(F.cross_entropy(t, y))
    prob = torch.softmax(t, 1).numpy()
    acc = float((prob.argmax(1) == labels).mean())
    auc = math.nan
    present = np.unique(labels)
    if len(present) >= 2:
        if prob.shape[1] == 2:
            auc = binary_auc(labels == 1, prob[:, 1])
        elif len(present) == prob.shape[1]:
            auc = float(np.mean([binary_auc(labels == c, prob[:, c]) for c in range(prob.shape[1])]))
    return {"loss": loss, "accuracy": acc, "auc": auc}


def _validation_logits(model: nn.Module, val_ds: Dataset, batch_size: int,
                       channels_last: bool, precision: str = "32"
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Validation logits and labels; with several ranks each predicts a shard and the
    results are gathered in dataset order (identical on every rank)."""
    if not ddp.is_distributed():
        return predict_logits(model, val_ds, batch_size, channels_last=channels_last,
                              precision=precision)
    from torch.utils.data import Subset

    n = len(val_ds)
    idx = ddp.shard(n)
    logits, labels = predict_logits(model, Subset(val_ds, idx), batch_size,
                                    channels_last=channels_last,
                                    precision=precision) if idx else (None, None)
    local = [] if logits is None else list(zip(logits.tolist(), labels.tolist()))
    rows = ddp.gather_in_order(n, local)
    return (np.asarray([r[0] for r in rows], np.float32),
            np.asarray([r[1] for r in rows], np.int64))


def _score(metrics: dict[str, float], select: str, epoch: int, has_val: bool) -> list[float]:
    """Sortable score (higher is better): [primary, -val_loss]."""
    if not has_val:
        return [float(epoch), 0.0]
    loss = metrics["loss"]
    primary = -loss if select == "loss" else metrics[select]
    primary = -math.inf if primary is None or math.isnan(primary) else primary
    return [float(primary), -loss if not math.isnan(loss) else -math.inf]


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":  # decoupled weight decay (Loshchilov & Hutter)
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError("optimizer must be 'sgd', 'adam' or 'adamw'")


def _make_scheduler(opt: torch.optim.Optimizer, config: TrainConfig):
    if config.scheduler in (None, "", "none"):
        return None
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(config.epochs, 1))
    if config.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(config.epochs // 3, 1), gamma=0.1)
    raise ValueError("scheduler must be 'none', 'cosine' or 'step'")


def _class_weights(dataset: Dataset, k: int, mode: str | None) -> torch.Tensor | None:
    if mode is None:
        return None
    if mode != "balanced":
        raise ValueError("class_weight must be None or 'balanced'")
    labels = getattr(dataset, "labels", None)
    if labels is None:
        labels = [int(unpack(dataset[i])[1]) for i in range(len(dataset))]
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=k).astype(np.float64)
    w = counts.sum() / np.maximum(counts, 1) / k
    return torch.tensor(w, dtype=torch.float32)


def _num_classes(model: nn.Module) -> int | None:
    k = getattr(model, "num_classes", None)
    if k is None:
        k = getattr(model, "breastlab_build", {}).get("num_classes")
    return int(k) if k else None


class _Bars:
    """Rich progress (own or shared) or nothing."""

    def __init__(self, progress: Any, label: str) -> None:
        self.own = False
        self.progress = None
        if progress is True:
            from breastlab.core.progress import make_progress

            self.progress = make_progress(transient=True)
            self.progress.start()
            self.own = True
        elif progress not in (False, None):
            self.progress = progress
        self.label = label
        self.tasks: list[Any] = []

    def add(self, description: str, total: int) -> Any:
        if self.progress is None:
            return None
        task = self.progress.add_task(f"{self.label}{description}", total=total)
        self.tasks.append(task)
        return task

    def update(self, task: Any, **kwargs: Any) -> None:
        if self.progress is not None and task is not None:
            self.progress.update(task, **kwargs)

    def close(self) -> None:
        if self.progress is None:
            return
        if self.own:
            self.progress.stop()
        else:
            for t in self.tasks:
                self.progress.remove_task(t)


# -------------------------------------------------------------------------- training
def train_classifier(
    model: nn.Module,
    train_ds: Dataset,
    val_ds: Dataset | None,
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    progress: Any = True,
    resume: bool = True,
    meta: dict[str, Any] | None = None,
    label: str = "",
    on_epoch: Any = None,
) -> TrainResult:
    """Train ``model`` on ``train_ds``, select on ``val_ds``, write to ``out_dir``.

    Args:
        model: returns logits ``[B, K]``; build it with ``models.build_model`` so
            ``model.pt`` can be rebuilt by ``models.files.load_model``.
        train_ds: map-style dataset of ``(tensor, int)``; augmentation is its business
            (``CaseDataset(train=True)``). Shuffled with a seeded generator.
        val_ds: validation dataset (no augmentation) for model selection, or None.
        config: ``TrainConfig``.
        out_dir: gets ``checkpoint.pt``, ``model.pt`` and ``history.csv``.
        progress: True (own Rich bars on stderr), False, or a running
            ``rich.progress.Progress`` to add bars to.
        resume: continue from ``out_dir/checkpoint.pt`` if present (its config must
            match); ``False`` starts over and overwrites.
        meta: extra JSON metadata for ``model.pt`` (views, preprocessing, class_names...).
        label: prefix for progress-bar descriptions.
        on_epoch: called with each epoch's history row (a dict) after it is saved, e.g.
            to write log lines when no terminal shows the bars.

    Returns:
        ``TrainResult``; ``model`` is left in eval mode holding the best weights.
    """
    out = Path(out_dir)
    main = ddp.is_main()
    if main:
        out.mkdir(parents=True, exist_ok=True)
    ckpt_path, model_path, hist_path = out / CHECKPOINT, out / MODEL, out / HISTORY
    # config: a TrainConfig, validated when it was built (frozen: nothing to check again)
    if config.num_threads:
        torch.set_num_threads(int(config.num_threads))
    seed_everything(config.seed)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    device = resolve_device(config.device)
    configure(device)
    amp = Precision.make(config.precision, device)
    scaler = amp.grad_scaler()

    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    opt = _make_optimizer(model, config)
    sched = _make_scheduler(opt, config)
    k = _num_classes(model) or 2
    weights = _class_weights(train_ds, k, config.class_weight)
    if weights is not None:
        weights = weights.to(device)
    has_val = val_ds is not None and len(val_ds) > 0

    history: list[dict[str, Any]] = []
    best_score: list[float] | None = None
    best_epoch, bad_epochs, start_epoch = -1, 0, 0
    best_metrics: dict[str, float] = {}
    resumed_from = None
    finished = False
    pretrain_losses: list[float] = []

    if resume and ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path)
        saved = TrainConfig().to_dict() | dict(ckpt.get("config", {}))  # older: defaults
        old = {k_: v for k_, v in saved.items() if k_ not in _RESUME_IGNORED}
        new = {k_: v for k_, v in config.to_dict().items() if k_ not in _RESUME_IGNORED}
        if old != new:
            diff = sorted(k_ for k_ in set(old) | set(new) if old.get(k_) != new.get(k_))
            raise ValueError(
                f"{ckpt_path} was written with a different configuration ({', '.join(diff)}); "
                f"use another output folder or resume=False to start over"
            )
        model.load_state_dict(ckpt["model"])
        if config.channels_last:
            model.to(memory_format=torch.channels_last)
        opt.load_state_dict(ckpt["optimizer"])  # moves its state to the parameters' device
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        if sched is not None and ckpt.get("scheduler"):
            sched.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"], generator)
        history = list(ckpt["history"])
        best_score = ckpt["best_score"]
        best_epoch = int(ckpt["best_epoch"])
        best_metrics = dict(ckpt.get("best_metrics", {}))
        bad_epochs = int(ckpt["bad_epochs"])
        pretrain_losses = list(ckpt.get("pretrain_losses", []))
        start_epoch = int(ckpt["epoch"]) + 1
        finished = bool(ckpt.get("finished"))
        resumed_from = start_epoch
        log.info("resuming %s from epoch %d", out, start_epoch)

    n = len(train_ds)
    drop_last = config.batch_size > 1 and n % config.batch_size == 1  # BatchNorm needs >1
    settings = B.loader_settings(train_ds, device, config.num_workers, world=ddp.world_size())
    mode = B.augment_mode(config.augment_on, device, settings.num_workers)
    sampler = None
    if ddp.is_distributed():  # the same global batches as one process, shared out
        sampler = ddp.ShardedBatchSampler(n, config.batch_size, generator, drop_last=drop_last)
        # the generator as in one process: the loader draws its base seed from it too
    bars = _Bars(progress if main else False, label)
    writer = BackgroundWriter()
    net: nn.Module = model
    stack = contextlib.ExitStack()
    try:
        batch_augment = stack.enter_context(B.augmentation_off(train_ds)) if mode == "batch" else None
        loader = B.make_batches(train_ds, config.batch_size, device, generator=generator,
                                drop_last=drop_last, settings=settings, batch_sampler=sampler)
        if start_epoch == 0 and not finished and config.pretrain_epochs > 0 and hasattr(model, "pretrain"):
            task = bars.add("pretrain", config.pretrain_epochs)
            pretrain_losses = model.pretrain(
                loader, config.pretrain_epochs, lr=config.pretrain_lr,
                channels_last=config.channels_last,
                on_epoch=lambda e, l: bars.update(task, advance=1),
            )
        if ddp.is_distributed():  # after pretraining: DDP starts every rank from rank 0's weights
            from torch.nn.parallel import DistributedDataParallel

            # the autoencoder's decoder takes no part in classification
            net = DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=hasattr(model, "pretrain"))
        epoch_task = bars.add("epochs", config.epochs)
        bars.update(epoch_task, completed=start_epoch)
        epoch = start_epoch
        for epoch in range(start_epoch, config.epochs):
            if finished:
                break
            t0 = time.perf_counter()
            net.train()
            batch_task = bars.add(f"epoch {epoch + 1}", len(loader))
            # sums on the device (float64 for the loss, as the Python floats before):
            # no host synchronisation inside the epoch
            sums = torch.zeros(2, dtype=torch.float64, device=device)
            seen = 0
            for batch in loader:
                x, y, _ = unpack(batch)
                if batch_augment is not None:
                    x = B.augment_batch(batch_augment, x.float())
                x = _to_input(x, config.channels_last)
                y = y.long()
                opt.zero_grad(set_to_none=True)
                with amp.autocast():
                    logits = net(x)
                    loss = F.cross_entropy(logits.float(), y, weight=weights,
                                           label_smoothing=config.label_smoothing)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                sums[0] += loss.detach().double() * len(y)
                sums[1] += (logits.detach().argmax(1) == y).sum()
                seen += len(y)
                bars.update(batch_task, advance=1)
            total_loss, correct = sums.tolist()
            if bars.progress is not None and batch_task is not None:
                bars.progress.remove_task(batch_task)
                bars.tasks.remove(batch_task)
            lr_now = opt.param_groups[0]["lr"]
            if sched is not None:
                sched.step()
            total_loss, correct, seen = ddp.all_reduce_sum([total_loss, correct, seen])
            if has_val:
                vlogits, vlabels = _validation_logits(model, val_ds, config.eval_batch_size,
                                                      config.channels_last, config.precision)
                vm = classification_metrics(vlogits, vlabels)
            else:
                vm = {"loss": math.nan, "accuracy": math.nan, "auc": math.nan}
            score = _score(vm, config.select_metric, epoch, has_val)
            model_file = None
            improved = best_score is None or score > best_score
            if improved:
                best_score, best_epoch, bad_epochs = score, epoch, 0
                best_metrics = {f"val_{k_}": float(v) for k_, v in vm.items()}
                training = config.to_dict() | {"best_epoch": epoch, **best_metrics}
                if main:  # written with the checkpoint, below
                    model_file = (model_path, ModelSnapshot(model), {**(meta or {}), "training": training})
            else:
                bad_epochs += 1
            history.append({
                "epoch": epoch,
                "train_loss": total_loss / max(seen, 1),
                "train_acc": correct / max(seen, 1),
                "val_loss": vm["loss"], "val_acc": vm["accuracy"], "val_auc": vm["auc"],
                "lr": lr_now,
                "seconds": round(time.perf_counter() - t0, 3),
                "best": int(improved),
            })
            finished = (epoch + 1 >= config.epochs) or (
                config.patience is not None and bad_epochs >= config.patience
            )
            if main:
                write_csv(hist_path, history, HISTORY_COLUMNS)
                writer.submit(write_epoch, model_file, ckpt_path, {
                    "format": "breastlab-checkpoint",
                    "epoch": epoch,
                    "model": cpu_copy(model.state_dict()),
                    "optimizer": cpu_copy(opt.state_dict()),
                    "scheduler": sched.state_dict() if sched is not None else None,
                    "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                    "best_score": best_score,
                    "best_epoch": best_epoch,
                    "best_metrics": best_metrics,
                    "bad_epochs": bad_epochs,
                    "history": list(history),  # the loop appends while it is written
                    "pretrain_losses": list(pretrain_losses),
                    "rng": rng_state(generator),
                    "config": config.to_dict(),
                    "finished": finished,
                })
            bars.update(epoch_task, advance=1)
            if on_epoch is not None:
                on_epoch({**history[-1], "epochs": config.epochs})
    finally:
        stack.close()
        bars.close()
        writer.close()  # waits for the last write; raises its error

    ddp.barrier()  # rank 0 has written model.pt
    if model_path.is_file():
        state = torch.load(model_path, map_location=device, weights_only=True)["state_dict"]
        model.load_state_dict(state)
    model.eval()
    stopped_early = len(history) < config.epochs
    return TrainResult(
        out_dir=out, model_path=model_path, checkpoint_path=ckpt_path,
        best_epoch=best_epoch, best_metrics=best_metrics, epochs_run=len(history),
        history=history, resumed_from_epoch=resumed_from, stopped_early=stopped_early,
    )
