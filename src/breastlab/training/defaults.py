"""Training defaults and hyperparameters, importable without torch.

The CLI builds its options and help from these, so ``breastlab sort`` and every other
command start without loading torch. The settings themselves live in the typed
configuration (``training.config``); ``DEFAULTS`` is its default values by option name.
"""
from __future__ import annotations

from typing import Any

from breastlab.core.vocab import Fusion, Normalization, Optimizer, Scheduler, SelectMetric, Split

from .config import FourViewConfig, TrainConfig

__all__ = ["DEFAULTS", "FUSIONS", "NORMALIZATIONS", "OPTIMIZERS", "SCHEDULERS",
           "SELECT_METRICS", "SPLITS", "TrainConfig"]

SELECT_METRICS = tuple(m.value for m in SelectMetric)
OPTIMIZERS = tuple(m.value for m in Optimizer)
SCHEDULERS = tuple(m.value for m in Scheduler)
SPLITS = tuple(m.value for m in Split)
NORMALIZATIONS = tuple(m.value for m in Normalization)
FUSIONS = tuple(m.value for m in Fusion)

_D = FourViewConfig()
#: The defaults of ``FourViewConfig`` by option name (seed values where the seed gives them;
#: docs/training.md), for help texts and docs.
DEFAULTS: dict[str, Any] = {
    "models": _D.models,
    "repeats": _D.repeats,
    "split": str(_D.split.method),
    "folds": _D.split.folds,
    "val_fraction": _D.split.val_fraction,
    "seed": _D.seed,
    "image_size": _D.preprocessing.image_size,
    "pretrained": _D.pretrained,
    "normalization": str(_D.preprocessing.normalization),
    "autoencoder_pretrain_epochs": _D.autoencoder_pretrain_epochs,
}
