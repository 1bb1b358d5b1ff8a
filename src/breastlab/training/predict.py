"""Prediction with a trained classifier: data items in, logits or probabilities out, with
the ids the items carry (``{"image", "label", "case_id"}``, as TorchIO and MONAI carry data).

Prediction runs on the model's device (``model_device``), in batches resident there when
the data fit (``training.batches``), under the given precision (``core.precision``).

Evaluation data sets do not augment; they are built separately from the training data set
(``CaseDataset.subset(train=False)``, ``SliceDataset.subset(augment=False)``), so nothing is
switched off here.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from breastlab.core.precision import Precision

from . import batches as B


def _to_input(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    x = x.float()  # a no-op for float32 data; autocast casts inside the model
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


#: keys of a data item that name it (``multiview.dataset``: cases and breasts;
#: ``seriesmodels.data``: slices, by their series)
ITEM_IDS = ("case_id", "series_id")


def unpack(batch: Any) -> tuple[torch.Tensor, torch.Tensor, list[str] | None]:
    """``(images, labels, ids)`` of a batch of dict items (``{"image", "label", "case_id"}``,
    as TorchIO's ``Subject`` and MONAI's dictionary transforms carry them) or of
    ``(x, y)`` pairs (plain tensor data sets; ids are then ``None``)."""
    if isinstance(batch, Mapping):
        ids = next((list(batch[k]) for k in ITEM_IDS if k in batch), None)
        return batch["image"], torch.as_tensor(batch["label"]), ids
    x, y = batch
    return x, torch.as_tensor(y), None


def model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s parameters are (the CPU for a model without any)."""
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def predict_items(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = 32,
    *,
    channels_last: bool = True,
    precision: str = "32",
) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """``(logits [N, K], labels [N], ids)`` in dataset order (inference mode), on the
    model's device under ``precision``. ``dataset`` is an evaluation data set: it does not
    augment (training and evaluation data sets are built separately, never switched)."""
    was_training = model.training
    model.eval()
    device = model_device(model)
    amp = Precision.make(precision, device)
    logits, labels, ids = [], [], []
    try:
        loader = B.make_batches(dataset, batch_size, device, generator=None, shuffle=False)
        with torch.inference_mode(), amp.autocast():
            for batch in loader:
                x, y, bid = unpack(batch)
                logits.append(model(_to_input(x, channels_last)).float())
                labels.append(y)
                ids.extend(bid or [])
        logits = [torch.cat(logits).cpu()] if logits else []  # one copy back, one sync
        labels = [torch.cat(labels).cpu()] if labels else []
    finally:
        model.train(was_training)
    if not logits:
        return np.zeros((0, 0), np.float32), np.zeros((0,), np.int64), []
    return (torch.cat(logits).numpy(), torch.cat(labels).numpy(),
            ids if len(ids) == len(dataset) else None)


def predict_logits(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = 32,
    *,
    channels_last: bool = True,
    precision: str = "32",
) -> tuple[np.ndarray, np.ndarray]:
    """``(logits [N, K], labels [N])`` in dataset order (``predict_items`` without ids)."""
    logits, labels, _ = predict_items(model, dataset, batch_size, channels_last=channels_last,
                                      precision=precision)
    return logits, labels


def softmax(logits: np.ndarray) -> np.ndarray:
    if logits.size == 0:
        return logits
    return torch.softmax(torch.from_numpy(logits), dim=1).numpy()


def predict_proba(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = 32,
    *,
    channels_last: bool = True,
    precision: str = "32",
) -> np.ndarray:
    """Softmax probabilities ``[N, K]`` for ``dataset`` (inference mode)."""
    logits, _ = predict_logits(model, dataset, batch_size, channels_last=channels_last,
                               precision=precision)
    return softmax(logits)
