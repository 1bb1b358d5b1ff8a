"""Safe model files: weights plus JSON metadata, loaded with ``weights_only=True``.

A breastlab model file is a ``torch.save`` of a plain dict::

    {"format": "breastlab-model", "format_version": 1,
     "state_dict": {name: tensor}, "meta_json": "<JSON text>"}

Metadata is stored as JSON text, so loading never needs pickle: ``load_model`` uses
``torch.load(weights_only=True)`` only, and any file carrying Python objects
(a pickle payload) is refused with ``ModelFileError``. The metadata always holds
``name, in_channels, num_classes, image_size, model_kwargs`` (to rebuild the model),
plus what the caller adds: ``views, class_names, preprocessing, threshold,
training, demo`` and the breastlab version.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from breastlab import __version__
from breastlab.core.atomic import save_torch
from breastlab.core.errors import UsageError

FORMAT = "breastlab-model"
FORMAT_VERSION = 1
META_DEFAULTS: dict[str, Any] = {
    "views": None,
    "class_names": ["benign", "malignant"],
    "preprocessing": None,
    "threshold": 0.5,
    "training": None,
    "demo": False,
}


class ModelFileError(UsageError):
    """The file is not a (safe) breastlab model file."""


def save_model(path: str | os.PathLike, model: nn.Module, meta: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights and JSON-serialisable ``meta`` atomically to ``path``."""
    full = dict(META_DEFAULTS)
    full.update(getattr(model, "breastlab_build", {}))
    full.update(meta or {})
    for key in ("name", "in_channels", "num_classes"):
        if full.get(key) is None:
            raise ValueError(f"model metadata needs {key!r} (build the model with build_model)")
    full["breastlab_version"] = __version__
    try:
        meta_json = json.dumps(full, allow_nan=True)
    except TypeError as exc:
        raise ValueError(f"model metadata must be JSON-serialisable: {exc}") from exc
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "state_dict": state,
        "meta_json": meta_json,
    }
    return save_torch(path, payload)


def _load_error_detail(exc: Exception) -> str:
    """The informative part of a ``torch.load`` error, without torch's advice to retry
    with ``weights_only=False`` (which would run the file's pickle code) or ANSI codes."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", ln).strip() for ln in str(exc).splitlines()]
    lines = [ln for ln in lines if ln]
    useful = [ln for ln in lines if "GLOBAL" in ln or "Unsupported" in ln]
    if useful:
        detail = useful[0].split(". Please use")[0]
    elif lines and "weights_only" not in lines[0]:
        detail = lines[0]
    elif isinstance(exc, EOFError):
        detail = "the file is empty or truncated"
    else:
        detail = "it is not a plain tensor/dict file"
    if len(detail) > 200:
        detail = detail[:200] + "..."
    return f"{type(exc).__name__}: {detail}"


def _read(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"model file not found: {p}")
    try:
        obj = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # UnpicklingError for pickled objects, zip errors...
        raise ModelFileError(
            f"{p} is not a breastlab model file, or it holds Python objects that are "
            f"refused for safety (torch.load weights_only=True): {_load_error_detail(exc)}"
        ) from exc
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ModelFileError(f"{p} is not a breastlab model file (no '{FORMAT}' marker)")
    if int(obj.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelFileError(f"{p} was written by a newer breastlab (format {obj['format_version']})")
    return obj


def read_model_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a model file (safe; does not build the model)."""
    return json.loads(_read(path)["meta_json"])


def load_model(path: str | os.PathLike, map_location: Any = "cpu"
               ) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model from a breastlab model file; returns ``(model.eval(), meta)``.

    ``map_location`` (a ``torch.device`` or its name): where the weights are loaded and the
    model is moved; a file written on a GPU loads on a CPU and the other way round.
    """
    from .registry import MODEL_NAMES, build_model

    obj = _read(path, map_location)
    try:  # a damaged or hand-edited file: one line naming what is wrong, never a traceback
        meta = json.loads(obj["meta_json"])
        if not isinstance(meta, dict):
            raise TypeError("its metadata is not an object")
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise KeyError("name")
        if name not in MODEL_NAMES:
            raise ValueError(f"unknown model {name[:40]!r}")
        kwargs = meta.get("model_kwargs") or {}
        if not isinstance(kwargs, dict):
            raise TypeError("model_kwargs is not an object")
        model = build_model(
            name,
            in_channels=int(meta["in_channels"]),
            num_classes=int(meta["num_classes"]),
            image_size=int(meta.get("image_size") or 256),
            pretrained=False,
            **kwargs,
        )
    except KeyError as exc:
        raise ModelFileError(f"{path}: the model metadata has no usable {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        said = (str(exc).splitlines() or [""])[0][:200]
        raise ModelFileError(f"{path}: the model metadata cannot build a model ({type(exc).__name__}: {said})") from None
    try:
        model.load_state_dict(obj["state_dict"], strict=True)
    except (RuntimeError, KeyError, TypeError, AttributeError) as exc:
        said = (str(exc).splitlines() or [""])[0][:200]
        raise ModelFileError(f"{path}: weights do not match model {name!r}: {said}") from None
    return model.to(map_location).eval(), meta
