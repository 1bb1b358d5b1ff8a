"""Training defaults and hyperparameters, importable without torch.

The CLI builds its options and help from these, so ``breastlab sort`` and every other
command start without loading torch; ``training.loop`` and ``training.fourview``
re-export them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from breastlab.core.device import check_device_name
from breastlab.core.precision import PRECISIONS
from breastlab.models.names import MODEL_NAMES

SELECT_METRICS = ("auc", "accuracy", "loss")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "cosine", "step")

#: The one set of defaults shared by ``run_fourview`` and ``breastlab train`` (seed values
#: where the seed gives them; docs/training.md).
DEFAULTS: dict[str, Any] = {
    "models": MODEL_NAMES,
    "repeats": 5,
    "split": "holdout",
    "folds": 5,
    "val_fraction": 0.2,
    "seed": 0,
    "image_size": 256,
    "pretrained": True,
    "normalization": "zscore",
    "autoencoder_pretrain_epochs": 10,
}
SPLITS = ("holdout", "kfold")
NORMALIZATIONS = ("zscore", "minmax")
FUSIONS = ("mean", "attention")


@dataclass
class TrainConfig:
    """Training hyperparameters (defaults: the seed's).

    Attributes:
        epochs: number of epochs (the seed does not say; 30 is a CPU-friendly default).
        batch_size, lr, momentum, weight_decay: the seed's 8, 1e-3, 0.9, 5e-4.
        optimizer: ``"sgd"`` (seed), ``"adam"`` or ``"adamw"`` (``momentum`` ignored).
        scheduler: ``"none"`` (seed), ``"cosine"`` (to zero over ``epochs``) or ``"step"``
            (×0.1 every ``epochs // 3``).
        seed: seeds Python, NumPy, torch and the shuffling order.
        select_metric: validation metric for model selection: ``auc``, ``accuracy``, ``loss``.
        patience: stop after this many epochs without a better validation score (None: never).
        channels_last: use the channels-last memory layout (faster convolutions on CPU).
        num_threads: ``torch.set_num_threads`` for this run (None: leave as is).
        pretrain_epochs: epochs of ``model.pretrain`` (autoencoder) before training.
        pretrain_lr: learning rate of that pretraining (Adam).
        class_weight: ``None`` (seed: plain cross-entropy) or ``"balanced"``.
        label_smoothing: cross-entropy label smoothing (0 = seed).
        eval_batch_size: batch size for validation / prediction.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``
            (``core.device``); a run resumes on another device.
        precision: ``32`` (seed, default), ``bf16`` or ``16`` (``core.precision``).
        num_workers: DataLoader workers (None: sized from the machine, 0 for in-memory data).
        augment_on: ``auto``, ``item`` (per case in the data set) or ``batch`` (per batch on
            the device); auto is ``item`` on a CPU without workers (the results before
            devices existed) and ``batch`` otherwise.
    """

    epochs: int = 30
    batch_size: int = 8
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"
    scheduler: str = "none"
    seed: int = 0
    select_metric: str = "auc"
    patience: int | None = None
    channels_last: bool = True
    num_threads: int | None = None
    pretrain_epochs: int = 0
    pretrain_lr: float = 1e-3
    class_weight: str | None = None
    label_smoothing: float = 0.0
    eval_batch_size: int = 32
    device: str = "auto"
    precision: str = "32"
    num_workers: int | None = None
    augment_on: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> TrainConfig:
        """Raise ``ValueError`` naming the first bad setting (call before any work)."""
        checks = (
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}, "
                                           f"not {self.optimizer!r}"),
            ((self.scheduler or "none") in SCHEDULERS,
             f"scheduler must be one of {', '.join(SCHEDULERS)}, not {self.scheduler!r}"),
            (self.select_metric in SELECT_METRICS,
             f"select_metric must be one of {', '.join(SELECT_METRICS)}, not {self.select_metric!r}"),
            (self.class_weight in (None, "balanced"),
             f"class_weight must be None or 'balanced', not {self.class_weight!r}"),
            (int(self.epochs) >= 1, f"epochs must be at least 1, not {self.epochs}"),
            (int(self.batch_size) >= 1, f"batch_size must be at least 1, not {self.batch_size}"),
            (float(self.lr) > 0, f"lr must be positive, not {self.lr}"),
            (self.patience is None or int(self.patience) >= 1,
             f"patience must be at least 1, not {self.patience}"),
            (str(self.precision) in PRECISIONS,
             f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}"),
            (self.num_workers is None or int(self.num_workers) >= 0,
             f"num_workers must be at least 0, not {self.num_workers}"),
            (self.augment_on in ("auto", "item", "batch"),
             f"augment_on must be auto, item or batch, not {self.augment_on!r}"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        check_device_name(self.device)
        return self
