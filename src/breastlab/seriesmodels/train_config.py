"""The typed configuration of an MRI series run (``breastlab mri train``), importable
without torch: the same shape as the four-view ``training.config.FourViewConfig`` (a frozen
dataclass, validated when built, one ``to_dict``/``from_dict``, vocabularies as ``StrEnum``).

>>> cfg = MRITrainConfig.from_dict({"task": "phase", "epochs": 2, "aggregation": "vote"})
>>> cfg.classes, cfg.aggregation
(('DCE_pre', 'DCE_early', 'DCE_delayed'), <Aggregation.VOTE: 'vote'>)
>>> MRITrainConfig.from_dict(cfg.to_dict()) == cfg
True
"""
from __future__ import annotations

from dataclasses import dataclass

from breastlab.core.labels import Label
from breastlab.core.vocab import Aggregation, Normalization, Optimizer, SeriesTask, Split, member
from breastlab.training.config import _Group, _names, _set

#: The classes of each task (``--classes`` may name others).
TASK_CLASSES: dict[str, list[str]] = {
    "sequence": [Label.T2WI, Label.T2WI_FS, Label.ADC],
    "phase": [Label.DCE_PRE, Label.DCE_EARLY, Label.DCE_DELAYED],
}


@dataclass(frozen=True)
class MRITrainConfig(_Group):
    """Everything that defines an MRI image-model run (saved in provenance and model.pt)."""

    task: SeriesTask = SeriesTask.SEQUENCE
    classes: tuple[str, ...] = ()      # empty: the task's classes
    model: str = "resnet18"
    pretrained: str = "auto"  # auto (ImageNet if cached), yes, no, or a weights file
    image_size: int = 128
    normalization: Normalization = Normalization.ZSCORE
    slices_per_series: int = 8
    central_fraction: float = 0.6
    aggregation: Aggregation = Aggregation.LOGMEAN
    epochs: int = 15
    batch_size: int = 16
    lr: float = 1e-3
    optimizer: Optimizer = Optimizer.ADAM
    repeats: int = 1
    split: Split = Split.HOLDOUT
    folds: int = 5
    seed: int = 0
    num_threads: int | None = None
    demo: bool = False
    synthetic: bool = False  # phantom data: the report then carries the phantom/demo warning
    device: str = "auto"     # core.device: auto (CUDA when present), cpu, cuda, cuda:N, mps
    precision: str = "32"    # core.precision: 32, bf16 or 16

    def __post_init__(self) -> None:
        classes = _names(self.classes)
        if classes is None:
            if str(self.task) not in TASK_CLASSES:
                raise ValueError(f"task must be one of {', '.join(TASK_CLASSES)} or give classes")
            classes = tuple(str(c) for c in TASK_CLASSES[str(self.task)])
        else:
            _set(self, "task", str(self.task))  # any name with --classes
        _set(self, "classes", classes)
        if str(self.task) in TASK_CLASSES:
            _set(self, "task", member(SeriesTask, self.task, "task"))
        for name, enum in (("normalization", Normalization), ("aggregation", Aggregation),
                           ("optimizer", Optimizer), ("split", Split)):
            _set(self, name, member(enum, getattr(self, name), name))
        _set(self, "pretrained", str(self.pretrained))
        from breastlab.core.device import check_device_name
        from breastlab.core.precision import check_precision

        _set(self, "device", check_device_name(self.device))
        _set(self, "precision", check_precision(self.precision))
        checks = ((int(self.image_size) >= 16, f"image_size must be at least 16, not {self.image_size}"),
                  (int(self.slices_per_series) >= 1, "slices must be at least 1"),
                  (int(self.epochs) >= 1, f"epochs must be at least 1, not {self.epochs}"),
                  (int(self.batch_size) >= 1, "batch_size must be at least 1"),
                  (float(self.lr) > 0, f"lr must be positive, not {self.lr}"),
                  (int(self.repeats) >= 1, "repeats must be at least 1"),
                  (int(self.folds) >= 2, "folds must be at least 2"),
                  (len(set(classes)) >= 2, "at least 2 classes are needed"))
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
