"""The option vocabularies of every command, as ``StrEnum``s (one definition each).

Typer renders an ``Enum``-typed option as a choice list in ``--help`` and rejects other
values with exit code 2; the typed configurations (``training.config``) store the members,
which compare equal to (and serialise as) their plain strings, so ``provenance.json``
holds ``"sgd"``, not ``"Optimizer.SGD"``.

>>> Optimizer("adam") is Optimizer.ADAM, Optimizer.ADAM == "adam", str(Optimizer.ADAM)
(True, True, 'adam')
>>> choices(Split)
'holdout, kfold'
"""
from __future__ import annotations

from enum import StrEnum


class Split(StrEnum):
    """Patient-level split: one 8:2 hold-out (the seed's) or k folds."""

    HOLDOUT = "holdout"
    KFOLD = "kfold"


class Optimizer(StrEnum):
    SGD = "sgd"
    ADAM = "adam"
    ADAMW = "adamw"


class Scheduler(StrEnum):
    NONE = "none"
    COSINE = "cosine"
    STEP = "step"


class SelectMetric(StrEnum):
    """Validation metric for model selection."""

    AUC = "auc"
    ACCURACY = "accuracy"
    LOSS = "loss"


class Normalization(StrEnum):
    """Per-view intensity scaling after the percentile clip."""

    ZSCORE = "zscore"
    MINMAX = "minmax"


class Fusion(StrEnum):
    """How the ``viewwise`` model fuses its per-view logits."""

    MEAN = "mean"
    ATTENTION = "attention"


class SeriesTask(StrEnum):
    """MRI image-model tasks (their classes: ``seriesmodels.data.TASK_CLASSES``)."""

    SEQUENCE = "sequence"
    PHASE = "phase"


class Aggregation(StrEnum):
    """Slice probabilities → one series label."""

    LOGMEAN = "logmean"
    MEAN = "mean"
    VOTE = "vote"


class Precision(StrEnum):
    """Numeric precision of training and inference (``core.precision``)."""

    FP32 = "32"
    BF16 = "bf16"
    FP16 = "16"


class Engine(StrEnum):
    """Header scanning engine of ``sort``: worker processes here, or a Dask cluster."""

    DEFAULT = "default"
    DASK = "dask"


class Layout(StrEnum):
    """NIfTI layouts of ``sort --convert`` (``convert/layouts``)."""

    BIDS = "bids"
    NNUNET = "nnunet"
    ODELIA = "odelia"


class DceLayout(StrEnum):
    """How the MRI phantom writes its dynamic series."""

    AUTO = "auto"
    SINGLE = "single"
    SEPARATE = "separate"


def choices(enum: type[StrEnum]) -> str:
    """``"a, b, c"``: the values of ``enum`` for messages."""
    return ", ".join(m.value for m in enum)


def member(enum: type[StrEnum], value: object, what: str) -> StrEnum:
    """``enum(value)``, or ``ValueError`` naming ``what`` and the choices.

    >>> member(Split, "kfold", "split")
    <Split.KFOLD: 'kfold'>
    >>> member(Split, "holdup", "split")
    Traceback (most recent call last):
    ...
    ValueError: split must be one of holdout, kfold, not 'holdup'
    """
    try:
        return enum(str(value).lower() if isinstance(value, str) else value)
    except ValueError:
        raise ValueError(f"{what} must be one of {choices(enum)}, not {value!r}") from None


class ViewSetName(StrEnum):
    """View-set presets of ``cases`` (``multiview.views.PRESETS``)."""

    BSGI4 = "bsgi4"
    MAMMO4 = "mammo4"
    FOUR = "four"
    CC2 = "cc2"
    MLO2 = "mlo2"
    SINGLE = "single"


class MissingPolicy(StrEnum):
    """A case lacks a view."""

    ERROR = "error"
    DROP = "drop"
    DUPLICATE_CONTRALATERAL = "duplicate-contralateral"
    BLANK = "blank"


class DuplicatePolicy(StrEnum):
    """Two files for one view of a case."""

    ERROR = "error"
    FIRST = "first"
    DROP = "drop"


class GroupBy(StrEnum):
    """What makes a DICOM case: a study, a patient or a folder."""

    STUDY = "study"
    PATIENT = "patient"
    FOLDER = "folder"


class PhantomStyle(StrEnum):
    """Where the BSGI phantom writes the view."""

    DICOM_TAGS = "dicom-tags"
    SERIES_DESCRIPTION = "series-description"
    FILE_NAMES = "file-names"
    MIXED = "mixed"


class Vendor(StrEnum):
    """MRI phantom dialects."""

    SIEMENS = "siemens"
    GE = "ge"
    PHILIPS = "philips"


class ProportionCi(StrEnum):
    """Confidence interval of a proportion (exact = Clopper-Pearson)."""

    WILSON = "wilson"
    EXACT = "exact"


class AucCi(StrEnum):
    """Confidence interval of an AUC."""

    DELONG = "delong"
    BOOTSTRAP = "bootstrap"
