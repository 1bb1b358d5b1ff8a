"""Batches for the training loop on a device: loaders sized from the machine,
device-resident data, batched augmentation on the device.

Three ways a batch reaches the model (``make_batches``):

* **resident**: the data set is a decoded in-memory tensor (``CaseDataset`` with its cache;
  the four-view path) and the device is a GPU: the whole tensor is copied to the device
  once, and every batch is an index into it (as MONAI's ``CacheDataset`` + ``ToDeviced``
  or FFCV do), so no process decodes, collates or copies per batch. The bare loop of
  ``bench/train_speed.py`` reads the same way.
* **loader**: any other data set: a ``DataLoader`` with workers, pinned memory, prefetch
  sized from the machine (``loader_settings``; ``num_workers`` overrides), copied with
  ``non_blocking=True``. Workers are not persistent: a ``DataLoader`` draws its workers'
  base seed from the shuffling generator at each epoch's start only when they are started
  afresh, so a resumed run draws the same stream as an uninterrupted one.
* **legacy** (CPU, no workers, augmentation per case): exactly the loop before devices
  existed, so CPU results for a fixed seed do not change.

Augmentation (``Augment``) runs per case inside the data set on that legacy path, and per
batch on the device otherwise (``augment_batch``): one ``grid_sample`` over ``B x views``
images instead of ``B`` small ones on the CPU. The random draws come from torch's global
generator in the main process, so the batches do not depend on the number of workers.
"""
from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

#: Share of the device's free memory a resident data set may take.
RESIDENT_FRACTION = 0.5
#: Device copies of in-memory data tensors, kept while the tensor lives (a data set trained
#: again, as in repeats of a sweep or a benchmark, is not copied again). Keyed by the tensor
#: object: subsets have tensors of their own, and ``_data`` is never changed in place.
_DEVICE_COPIES: dict[int, dict[str, torch.Tensor]] = {}
AUGMENT_MODES = ("auto", "item", "batch")


@dataclass(frozen=True)
class LoaderSettings:
    """What ``DataLoader`` gets (``loader_settings`` chooses; JSON-able for provenance)."""

    num_workers: int = 0
    pin_memory: bool = False
    prefetch_factor: int | None = None
    persistent_workers: bool = False

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"num_workers": self.num_workers, "pin_memory": self.pin_memory}
        if self.num_workers > 0:
            out.update(prefetch_factor=self.prefetch_factor or 2,
                       persistent_workers=self.persistent_workers)
        return out


def in_memory(dataset: Dataset) -> bool:
    """True when ``dataset`` holds its decoded tensors in memory (``CaseDataset`` cache)."""
    return isinstance(getattr(dataset, "_data", None), torch.Tensor)


def loader_settings(dataset: Dataset, device: torch.device, num_workers: int | None = None,
                    *, world: int = 1) -> LoaderSettings:
    """Loader settings from the machine. ``num_workers=None`` gives 0 for in-memory data (an
    index is all a worker would do) and on a CPU (the training's own threads use the cores,
    and the batches stay those of the loop before devices existed); feeding a GPU, the CPU
    cores this process may use, shared between the ``world`` processes of a multi-GPU run,
    less one, at most 8. Pinned memory when a GPU is fed, prefetch 4 batches per worker;
    never persistent workers (module docstring: exact resume)."""
    if num_workers is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        feeds_gpu = device.type == "cuda" and not in_memory(dataset)
        num_workers = max(0, min(8, cores // max(world, 1) - 1)) if feeds_gpu else 0
    gpu = device.type == "cuda"
    return LoaderSettings(num_workers=int(num_workers), pin_memory=gpu,
                          prefetch_factor=4 if num_workers else None,
                          persistent_workers=False)


def augment_mode(mode: str, device: torch.device, num_workers: int) -> str:
    """``item`` (in the data set, per case) or ``batch`` (per batch, on the device)."""
    if mode not in AUGMENT_MODES:
        raise ValueError(f"augment_on must be one of {', '.join(AUGMENT_MODES)}, not {mode!r}")
    if mode != "auto":
        return mode
    return "item" if device.type == "cpu" and num_workers == 0 else "batch"


def augment_batch(augment: Any, x: torch.Tensor) -> torch.Tensor:
    """``augment`` (an ``Augment``, per view) on a batch ``[B, V, H, W]``, where ``x`` lies."""
    b, v = x.shape[:2]
    return augment(x.reshape(b * v, *x.shape[2:])).reshape(x.shape)


@contextlib.contextmanager
def augmentation_off(dataset: Dataset) -> Iterator[Any]:
    """Switch a data set's own augmentation off for a while; yields its ``augment`` (or
    None when it does not augment)."""
    if not getattr(dataset, "train", False) or getattr(dataset, "augment", None) is None:
        yield None
        return
    dataset.train = False
    try:
        yield dataset.augment
    finally:
        dataset.train = True


def fits_on_device(dataset: Dataset, device: torch.device) -> bool:
    """A GPU, in-memory data, and the tensor takes under ``RESIDENT_FRACTION`` of free memory."""
    if device.type != "cuda" or not in_memory(dataset):
        return False
    data = dataset._data  # type: ignore[attr-defined]
    free, _ = torch.cuda.mem_get_info(device)
    return data.numel() * data.element_size() < RESIDENT_FRACTION * free


class ResidentBatches:
    """Batches indexed out of a device-resident copy of an in-memory data set, as dict
    items (``{"image", "label", "case_id"}``, the data set's own item keys).

    ``sampler`` yields lists of indices (a ``BatchSampler`` or ``ShardedBatchSampler``)."""

    def __init__(self, dataset: Dataset, device: torch.device, sampler: Any) -> None:
        data = dataset._data  # type: ignore[attr-defined]
        # keyed by id (a WeakKeyDictionary compares tensor keys with ==, which is elementwise),
        # the entry dropped when the tensor is collected
        copies = _DEVICE_COPIES.get(id(data))
        if copies is None:
            copies = _DEVICE_COPIES[id(data)] = {}
            weakref.finalize(data, _DEVICE_COPIES.pop, id(data), None)
        if str(device) not in copies:  # once per data tensor and device
            copies[str(device)] = data.to(device, non_blocking=True)
        self.x = copies[str(device)]
        self.y = torch.as_tensor(dataset.labels).long().to(device)  # type: ignore[attr-defined]
        self.ids = list(getattr(dataset, "case_ids", None) or []) or None
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for idx in self.sampler:
            index = torch.as_tensor(idx, dtype=torch.long)
            if self.x.device.type == "cuda":  # pinned: the copy does not wait for the GPU
                index = index.pin_memory()
            index = index.to(self.x.device, non_blocking=True)
            item = {"image": self.x.index_select(0, index), "label": self.y.index_select(0, index)}
            if self.ids is not None:
                item["case_id"] = [self.ids[i] for i in idx]
            yield item


class DeviceLoader:
    """A ``DataLoader``'s batches moved to ``device`` (asynchronously from pinned memory)."""

    def __init__(self, loader: DataLoader, device: torch.device) -> None:
        self.loader, self.device = loader, device

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            if isinstance(batch, dict):
                yield {k: (v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor)
                           else v) for k, v in batch.items()}
            else:
                x, y = batch
                yield (x.to(self.device, non_blocking=True),
                       torch.as_tensor(y).to(self.device, non_blocking=True))


def make_batches(dataset: Dataset, batch_size: int, device: torch.device, *,
                 generator: torch.Generator | None, drop_last: bool = False,
                 settings: LoaderSettings | None = None, batch_sampler: Any = None,
                 shuffle: bool = True) -> Any:
    """The batches of one epoch-iterable source (module docstring): resident on a GPU when
    the data fit, else a (device) ``DataLoader``. ``batch_sampler`` replaces the shuffled
    one (multi-process training)."""
    settings = settings or LoaderSettings()
    if fits_on_device(dataset, device):
        if batch_sampler is None:
            base = (RandomSampler(range(len(dataset)), generator=generator) if shuffle
                    else range(len(dataset)))
            batch_sampler = BatchSampler(base, batch_size, drop_last)
        return ResidentBatches(dataset, device, batch_sampler)
    kwargs = settings.kwargs()
    if batch_sampler is not None:
        loader = DataLoader(dataset, batch_sampler=batch_sampler, generator=generator, **kwargs)
    else:
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                            drop_last=drop_last, **kwargs)
    return loader if device.type == "cpu" else DeviceLoader(loader, device)
