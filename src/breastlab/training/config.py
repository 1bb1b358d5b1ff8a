"""One typed configuration per training run, importable without torch.

``FourViewConfig`` is everything that defines a four-view run, in frozen groups:

* ``train`` (``TrainConfig``): the optimiser and its schedule, the seed's hyperparameters;
* ``preprocessing`` (``Preprocessing``): image size, views, flip, normalisation, augmentation;
* ``split`` (``SplitConfig``): hold-out or k-fold, patient-level;
* ``run`` (``RunSettings``): how the run is carried out (resume, evaluation, processes),
  not what it computes.

It is validated once, when built; ``breastlab train`` builds it from its flags and the
``--config`` file (``from_dict`` takes both the flat option names and the nested groups),
``run_fourview(cases, run_dir, config)`` takes it whole, ``provenance.json`` records
``to_dict()`` under ``config.settings`` and ``from_dict`` reads it back:

>>> cfg = FourViewConfig.from_dict({"models": "mlp,autoencoder", "epochs": 2, "split": "kfold"})
>>> cfg.models, cfg.train.epochs, cfg.split.method, cfg.train.optimizer
(('mlp', 'autoencoder'), 2, <Split.KFOLD: 'kfold'>, <Optimizer.SGD: 'sgd'>)
>>> FourViewConfig.from_dict(cfg.to_dict()) == cfg
True
>>> FourViewConfig.from_dict({"optimiser": "sgd"})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: unknown option(s) optimiser; known: ...

To add a setting: add a field (with its default) to the group it belongs to; ``to_dict``
and ``from_dict`` follow, and its flat name works in ``from_dict`` when it is unique.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from breastlab.core.device import check_device_name
from breastlab.core.precision import check_precision
from breastlab.core.vocab import (Fusion, Normalization, Optimizer, Scheduler, SelectMetric,
                                  Split, member)
from breastlab.models.names import MODEL_NAMES, PRETRAINABLE

__all__ = ["FourViewConfig", "Preprocessing", "RunSettings", "SplitConfig", "TrainConfig",
           "config_from_file"]


def _plain(value: Any) -> Any:
    """JSON-able: enum members as their strings, tuples as lists."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "value") and isinstance(value, str):
        return str(value)
    return value


def _names(value: Any) -> tuple[str, ...] | None:
    """``"a, b"`` or ``["a", "b"]`` → ``("a", "b")``; empty → ``None``."""
    if value is None:
        return None
    items = value.replace(";", ",").split(",") if isinstance(value, str) else list(value)
    out = tuple(str(v).strip() for v in items if str(v).strip())
    return out or None


class _Group:
    """``to_dict``/``from_dict`` for a frozen dataclass group (unknown keys refused)."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):  # type: ignore[no-untyped-def]
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} setting(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        return cls(**dict(data))

    def replace(self, **changes: Any):  # type: ignore[no-untyped-def]
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class TrainConfig(_Group):
    """Training hyperparameters (defaults: the seed's).

    Attributes:
        epochs: number of epochs (the seed does not say; 30 is a CPU-friendly default).
        batch_size, lr, momentum, weight_decay: the seed's 8, 1e-3, 0.9, 5e-4.
        optimizer: ``sgd`` (seed), ``adam`` or ``adamw`` (``momentum`` ignored).
        scheduler: ``none`` (seed), ``cosine`` (to zero over ``epochs``) or ``step``
            (×0.1 every ``epochs // 3``).
        seed: seeds Python, NumPy, torch and the shuffling order (a four-view run sets
            ``seed + r`` per repeat).
        select_metric: validation metric for model selection: ``auc``, ``accuracy``, ``loss``.
        patience: stop after this many epochs without a better validation score (None: never).
        channels_last: use the channels-last memory layout (faster convolutions on CPU).
        num_threads: ``torch.set_num_threads`` for this run (None: leave as is).
        pretrain_epochs: epochs of ``model.pretrain`` (autoencoder) before training.
        pretrain_lr: learning rate of that pretraining (Adam).
        class_weight: ``None`` (seed: plain cross-entropy) or ``"balanced"``.
        label_smoothing: cross-entropy label smoothing (0 = seed).
        eval_batch_size: batch size for validation / prediction.
        device: ``auto`` (CUDA when present, else MPS, else CPU), ``cpu``, ``cuda``,
            ``cuda:N`` or ``mps`` (``core.device``); a run resumes on another device.
        precision: ``32`` (the seed's fp32; the default), ``bf16`` or ``16``
            (``core.precision``: autocast, a gradient scaler for ``16``).
        num_workers: DataLoader workers (None: sized from the machine; 0 for in-memory
            data, ``training.batches.loader_settings``).
        augment_on: ``auto``, ``item`` (per case in the data set) or ``batch`` (per batch on
            the device); ``auto`` is ``item`` on a CPU without workers (the results before
            devices existed) and ``batch`` otherwise.
    """

    epochs: int = 30
    batch_size: int = 8
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: Optimizer = Optimizer.SGD
    scheduler: Scheduler = Scheduler.NONE
    seed: int = 0
    select_metric: SelectMetric = SelectMetric.AUC
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

    def __post_init__(self) -> None:
        _set(self, "optimizer", member(Optimizer, self.optimizer, "optimizer"))
        _set(self, "device", check_device_name(self.device))
        _set(self, "precision", check_precision(self.precision))
        _set(self, "scheduler", member(Scheduler, self.scheduler or "none", "scheduler"))
        _set(self, "select_metric", member(SelectMetric, self.select_metric, "select_metric"))
        self.validate()

    def validate(self) -> TrainConfig:
        """Raise ``ValueError`` naming the first bad setting (done when built)."""
        checks = (
            (self.class_weight in (None, "balanced"),
             f"class_weight must be None or 'balanced', not {self.class_weight!r}"),
            (int(self.epochs) >= 1, f"epochs must be at least 1, not {self.epochs}"),
            (int(self.batch_size) >= 1, f"batch_size must be at least 1, not {self.batch_size}"),
            (float(self.lr) > 0, f"lr must be positive, not {self.lr}"),
            (self.patience is None or int(self.patience) >= 1,
             f"patience must be at least 1, not {self.patience}"),
            (self.num_threads is None or int(self.num_threads) >= 1,
             f"threads must be at least 1, not {self.num_threads}"),
            (self.num_workers is None or int(self.num_workers) >= 0,
             f"workers must be at least 0, not {self.num_workers}"),
            (self.augment_on in ("auto", "item", "batch"),
             f"augment_on must be auto, item or batch, not {self.augment_on!r}"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        return self


@dataclass(frozen=True)
class Preprocessing(_Group):
    """How views become tensors (``multiview.preprocess``)."""

    image_size: int = 256
    views: tuple[str, ...] | None = None  # channel order; None: the case table's views
    flip_right: bool = True
    normalization: Normalization = Normalization.ZSCORE
    augment: bool = True
    crop_breast: bool = False  # cut full-field views to the breast first (multiview.crop)

    def __post_init__(self) -> None:
        _set(self, "normalization", member(Normalization, self.normalization, "normalization"))
        _set(self, "views", _names(self.views))
        if int(self.image_size) < 8:
            raise ValueError(f"image_size must be at least 8, not {self.image_size}")


@dataclass(frozen=True)
class SplitConfig(_Group):
    """Patient-level, stratified split of each repeat (``training.splits``)."""

    method: Split = Split.HOLDOUT
    folds: int = 5
    resplit: bool = False  # hold-out: a new split per repeat (default: one, as in the seed)
    val_fraction: float = 0.2

    def __post_init__(self) -> None:
        _set(self, "method", member(Split, self.method, "split"))
        if int(self.folds) < 2:
            raise ValueError(f"folds must be at least 2, not {self.folds}")
        if not 0 < float(self.val_fraction) < 1:
            raise ValueError(f"val_fraction must be between 0 and 1, not {self.val_fraction}")


@dataclass(frozen=True)
class RunSettings(_Group):
    """How a run is carried out; none of it changes the predictions."""

    force: bool = False      # discard a previous run in RUN_DIR with another configuration
    evaluate: bool = True    # evaluate_run when training ends
    progress: bool = True    # bars on a terminal, per-epoch lines otherwise (train.log always)
    dry_run: bool = False    # read cases, make splits, write nothing
    devices: int = 1         # training processes on this machine (DistributedDataParallel)
    nodes: int = 1           # machines (under torchrun)
    config_file: str | None = None  # the --config file the settings came from
    cache: bool = True       # preprocessed views on disk (multiview.cache), read on re-runs
    cache_dir: str | None = None  # its folder (None: $BREASTLAB_CACHE or ~/.cache/breastlab/views)

    def __post_init__(self) -> None:
        if int(self.devices) < 1 or int(self.nodes) < 1:
            raise ValueError("devices and nodes must be at least 1")
        if self.cache_dir is not None:
            _set(self, "cache_dir", os.fspath(self.cache_dir))


_GROUPS: dict[str, type[_Group]] = {"train": TrainConfig, "preprocessing": Preprocessing,
                                    "split": SplitConfig, "run": RunSettings}
#: flat option names (CLI, config file) that differ from their field name
_ALIASES = {"threads": ("train", "num_threads"), "workers": ("train", "num_workers"), "ae_pretrain_epochs": ("", "autoencoder_pretrain_epochs"),
            "weights": ("", "pretrained"), "split_method": ("split", "method")}


@dataclass(frozen=True)
class FourViewConfig(_Group):
    """Everything that defines a four-view run (module docstring)."""

    models: tuple[str, ...] = MODEL_NAMES
    repeats: int = 5
    seed: int = 0  # split seed; repeat r trains with seed + r
    pretrained: bool | str = True  # ImageNet for resnet18/viewwise: True, "auto", False or a file
    autoencoder_pretrain_epochs: int = 10
    fusion: Fusion = Fusion.MEAN  # viewwise: how per-view logits are fused
    threshold_rule: str | None = None  # evaluation: youden (default), sensitivity>=x, fixed:x
    demo: bool = False  # a demo run on synthetic data: model files and the report say so
    train: TrainConfig = field(default_factory=TrainConfig)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    split: SplitConfig = field(default_factory=SplitConfig)
    run: RunSettings = field(default_factory=RunSettings)

    def __post_init__(self) -> None:
        models = tuple(m.lower() for m in (_names(self.models) or ()))
        unknown = [m for m in models if m not in MODEL_NAMES]
        if unknown or not models:
            raise ValueError(f"unknown model(s) {', '.join(unknown) or '(none given)'}; "
                             f"choose from {', '.join(MODEL_NAMES)}")
        _set(self, "models", models)
        _set(self, "fusion", member(Fusion, self.fusion, "fusion"))
        if int(self.repeats) < 1:
            raise ValueError(f"repeats must be at least 1, not {self.repeats}")
        if int(self.autoencoder_pretrain_epochs) < 0:
            raise ValueError("autoencoder_pretrain_epochs must be at least 0")
        if isinstance(self.pretrained, os.PathLike):
            _set(self, "pretrained", os.fspath(self.pretrained))
        if isinstance(self.pretrained, str):
            word = self.pretrained.strip().lower()
            if word in ("true", "yes", "imagenet", "false", "no"):
                _set(self, "pretrained", word in ("true", "yes", "imagenet"))
            elif word == "auto":
                _set(self, "pretrained", "auto")
            else:
                _set(self, "pretrained", str(self.pretrained))
        if self.threshold_rule:
            from breastlab.evaluation.threshold import parse_rule

            parse_rule(str(self.threshold_rule))

    # ------------------------------------------------------------------ derived settings
    @property
    def wants_imagenet(self) -> bool:
        """ImageNet weights are needed (a pretrainable model and ``pretrained`` not False)."""
        return bool(self.pretrained) and any(m in PRETRAINABLE for m in self.models)

    @property
    def model_kwargs(self) -> dict[str, dict[str, Any]]:
        """Extra build arguments per model (``models.registry.build_model``)."""
        return {"viewwise": {"fusion": str(self.fusion)}} if self.fusion != Fusion.MEAN else {}

    def train_config(self, model: str, repeat: int) -> TrainConfig:
        """The ``TrainConfig`` of one model and repeat: seed ``seed + repeat``; the
        autoencoder's reconstruction pretraining epochs."""
        return self.train.replace(
            seed=int(self.seed) + int(repeat),
            pretrain_epochs=int(self.autoencoder_pretrain_epochs) if model == "autoencoder" else 0)

    # ------------------------------------------------------------------ dict form
    def to_dict(self) -> dict[str, Any]:
        out = {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name not in _GROUPS}
        out.update({g: getattr(self, g).to_dict() for g in _GROUPS})
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FourViewConfig:
        """From ``to_dict()`` output, flat option names (``epochs``, ``image_size``,
        ``split="kfold"``, ``threads``...) or a mix; ``ValueError`` on an unknown key or a bad
        value (the first one, named)."""
        top: dict[str, Any] = {}
        groups: dict[str, dict[str, Any]] = {g: {} for g in _GROUPS}
        owner = {f.name: g for g, c in _GROUPS.items() for f in fields(c)}
        top_names = {f.name for f in fields(cls)} - set(_GROUPS)
        unknown = []
        for raw_key, value in data.items():
            key = str(raw_key).replace("-", "_")
            if key in _GROUPS and isinstance(value, Mapping):
                groups[key].update({str(k).replace("-", "_"): v for k, v in value.items()})
            elif key == "split":  # the flat ``split = "kfold"``
                groups["split"]["method"] = value
            elif key in top_names:
                top[key] = value
            elif key in _ALIASES:
                group, name = _ALIASES[key]
                if key == "weights" and not value:
                    continue
                (groups[group] if group else top)[name] = value
            elif key in owner and key != "seed":
                groups[owner[key]][key] = value
            else:
                unknown.append(key)
        if unknown:
            known = sorted(top_names | set(_ALIASES) | set(owner) | set(_GROUPS))
            raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(known)}")
        built = {g: c.from_dict(groups[g]) for g, c in _GROUPS.items()}
        return cls(**top, **built)


def config_from_file(path: Any) -> dict[str, Any]:
    """Options from a TOML (``tomllib``) or YAML (PyYAML, when installed) file; a ``[train]``
    table is used when present. Returns the flat/nested options for ``from_dict``."""
    from pathlib import Path

    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError as exc:
            raise ValueError(f"{path}: YAML needs PyYAML (pip install pyyaml); "
                             "or write the file as TOML") from exc
        data = yaml.safe_load(text) or {}
    else:
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a table of options")
    inner = data.get("train")
    if set(data) == {"train"} and isinstance(inner, dict) and not (
            set(inner) <= {f.name for f in fields(TrainConfig)}):
        data = inner  # a ``[train]`` table of flat options (not the ``train`` group)
    return {str(k).replace("-", "_"): v for k, v in data.items()}
