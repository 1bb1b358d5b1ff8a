"""ImageNet weights for the ResNet-18 models, without torchvision.

Where the weights come from, in order:

1. ``weights=FILE`` (CLI ``--weights FILE``): a torchvision-style state dict
   (e.g. ``resnet18-f37072fd.pth``), loaded with ``torch.load(weights_only=True)``.
2. The torch hub cache (``$TORCH_HOME/hub/checkpoints/resnet18-f37072fd.pth``,
   default ``~/.cache/torch/hub/checkpoints``), where torchvision also keeps it.
3. A download from download.pytorch.org through
   ``torch.hub.load_state_dict_from_url`` (needs internet). Offline this fails at
   once with ``WeightsUnavailableError`` explaining the two alternatives above.
   Setting ``BREASTLAB_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``, as the tests do)
   skips the download attempt altogether.

The first convolution is adapted to N input channels (``adapt_conv1``): the mean of
the RGB kernels, repeated N times and scaled by 3/N, so a grey image replicated in
all N channels gives exactly the response the RGB network gives to that grey image.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from breastlab.core.errors import UsageError

log = logging.getLogger(__name__)

RESNET18_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
RESNET18_FILE = "resnet18-f37072fd.pth"


class WeightsUnavailableError(UsageError, RuntimeError):
    """Pretrained weights could not be found or downloaded."""


def hub_cache_path(filename: str = RESNET18_FILE) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _offline() -> bool:
    return any(os.environ.get(k, "").strip() not in ("", "0") for k in ("BREASTLAB_OFFLINE", "HF_HUB_OFFLINE"))


def _unwrap(obj: Any) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsUnavailableError("the weights file does not hold a state dict of tensors")
    # strip DataParallel / Lightning prefixes
    out = {}
    for k, v in obj.items():
        for prefix in ("module.", "model.", "backbone."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def load_imagenet_state_dict(weights: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """The ImageNet ResNet-18 state dict (torchvision names) from FILE, cache or download."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(f"weights file not found: {path}")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise WeightsUnavailableError(
                f"cannot load weights from {path} safely (weights_only=True): {exc}"
            ) from exc
        return _unwrap(obj)
    cached = hub_cache_path()
    if cached.is_file():
        return _unwrap(torch.load(cached, map_location="cpu", weights_only=True))
    hint = (
        f"ImageNet ResNet-18 weights are not available offline. Either pass "
        f"--weights FILE (weights=FILE) with a torchvision resnet18 state dict, or put "
        f"{RESNET18_FILE} (from {RESNET18_URL}) in the torch hub cache at {cached}, "
        f"or train from scratch with --no-pretrained."
    )
    if _offline():
        raise WeightsUnavailableError(hint + " (download skipped: offline mode is set)")
    try:
        obj = torch.hub.load_state_dict_from_url(
            RESNET18_URL, map_location="cpu", progress=True, check_hash=True, weights_only=True
        )
    except Exception as exc:  # URLError, socket errors, hash mismatch...
        raise WeightsUnavailableError(f"{hint} (download failed: {exc})") from exc
    return _unwrap(obj)


def resolve_pretrained(value: bool | str | os.PathLike | None) -> bool | str:
    """What ``pretrained`` means, the same in ``train``, ``train --dry-run``, ``demo``,
    ``mri train`` and the Python API (docs/training.md, "ImageNet weights"):

    * ``True`` / ``"yes"``: ImageNet weights are required: from the torch hub cache, else a
      download; when neither works, ``WeightsUnavailableError`` (exit 2) before any work,
      naming ``--weights FILE`` and ``--no-pretrained``;
    * ``"auto"``: ImageNet weights when they are in the torch hub cache, else random
      initialisation, with a warning (never a download);
    * ``False`` / ``"no"`` / ``None``: random initialisation;
    * a file path: that state dict (``WeightsUnavailableError`` when it is missing).

    Returns ``True``, ``False`` or the file path, for ``build_model(pretrained=...)``.
    """
    word = str(value).strip().lower() if isinstance(value, (str, bool)) or value is None else None
    if value is None or word in ("false", "no", "none", "0", ""):
        return False
    if word == "auto":
        if hub_cache_path().is_file():
            return True
        log.warning("ImageNet weights are not in the torch hub cache (%s): random "
                    "initialisation (pretrained=auto)", hub_cache_path())
        return False
    if value is True or word in ("true", "yes", "1", "imagenet"):
        load_imagenet_state_dict(None)  # raises WeightsUnavailableError with the remedies
        return True
    load_imagenet_state_dict(value)
    return os.fspath(value)


def adapt_conv1(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Adapt a ``[out, 3, k, k]`` RGB kernel to ``in_channels`` (mean × 3/N, repeated)."""
    if weight.shape[1] == in_channels:
        return weight.clone()
    mean = weight.mean(dim=1, keepdim=True)
    return mean.repeat(1, in_channels, 1, 1) * (weight.shape[1] / in_channels)


def load_pretrained(model: nn.Module, weights: str | os.PathLike | bool | None = True) -> list[str]:
    """Load ImageNet weights into a torchvision-named ResNet-18 (``model``).

    ``conv1`` is adapted to the model's input channels; the classifier (``fc``) is
    kept as initialised when its shape differs. Returns the keys left untouched.
    """
    source = None if weights is True or weights is None else weights
    state = load_imagenet_state_dict(source)
    own = model.state_dict()
    if "conv1.weight" in state and "conv1.weight" in own:
        state["conv1.weight"] = adapt_conv1(state["conv1.weight"], own["conv1.weight"].shape[1])
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    untouched = sorted(k for k in own if k not in usable)
    backbone_missing = [k for k in untouched if not k.startswith(("fc.", "dropout"))]
    if backbone_missing:
        raise WeightsUnavailableError(
            f"weights do not match ResNet-18 (missing or wrong shape: {backbone_missing[:5]}...)"
        )
    model.load_state_dict(usable, strict=False)
    log.info("loaded ImageNet weights (%d tensors; left as initialised: %s)", len(usable), untouched)
    return untouched
