"""Model registry: ``build_model(name, in_channels=..., num_classes=...)``.

| name | what | input |
|---|---|---|
| ``resnet18`` | the seed's model: ResNet-18, views stacked as N channels (early fusion) | ``[B, N, H, W]`` |
| ``mlp`` | the seed's "neural network" baseline (pooled, flattened, MLP) | ``[B, N, H, W]`` |
| ``autoencoder`` | the seed's autoencoder baseline (reconstruction pretraining + head) | ``[B, N, H, W]`` |
| ``viewwise`` | late fusion, one ResNet-18 trunk shared across views, per-view logits | ``[B, N, H, W]`` |

Every model returns logits ``[B, K]``. ``pretrained`` (ResNet models only):
``False`` (random init), ``True`` (ImageNet from the torch hub cache, else a
download) or a path to a torchvision ``resnet18`` state dict. No weights are
downloaded unless ``pretrained=True`` and the cache is empty.

The build arguments are recorded on the model as ``model.breastlab_build`` so that
``models.files.save_model`` can store them and ``load_model`` can rebuild the model.
"""
from __future__ import annotations

import os
from typing import Any

from torch import nn

from .names import MODEL_NAMES, PRETRAINABLE


def build_model(
    name: str,
    *,
    in_channels: int,
    num_classes: int = 2,
    image_size: int = 256,
    pretrained: bool | str | os.PathLike = False,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model.

    Args:
        name: one of :data:`MODEL_NAMES`.
        in_channels: views stacked as channels (4 for four-view diagnosis).
        num_classes: K, the width of the logits.
        image_size: input side in pixels (the MLP and autoencoder need it).
        pretrained: ImageNet weights for the ResNet models (see the module docstring).
        **kwargs: passed to the model class (e.g. ``dropout``).

    Returns:
        The model, with its build arguments in ``model.breastlab_build``.

    Example:
        >>> import torch
        >>> model = build_model("mlp", in_channels=4, num_classes=2, image_size=32)
        >>> model.eval()(torch.zeros(1, 4, 32, 32)).shape
        torch.Size([1, 2])
        >>> model.breastlab_build["name"], model.breastlab_build["in_channels"]
        ('mlp', 4)
    """
    name = name.lower()
    if name == "resnet18":
        from .resnet import ResNet18

        model: nn.Module = ResNet18(in_channels, num_classes, **kwargs)
        if pretrained:
            from .weights import load_pretrained

            load_pretrained(model, pretrained)
    elif name == "viewwise":
        from .viewwise import ViewwiseResNet

        model = ViewwiseResNet(in_channels, num_classes, **kwargs)
        if pretrained:
            from .weights import load_pretrained

            load_pretrained(model.trunk, pretrained)
    elif name == "mlp":
        from .mlp import MLP

        model = MLP(in_channels, num_classes, image_size, **kwargs)
    elif name == "autoencoder":
        from .autoencoder import ConvAutoencoder

        model = ConvAutoencoder(in_channels, num_classes, image_size, **kwargs)
    else:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
    model.breastlab_build = {
        "name": name,
        "in_channels": int(in_channels),
        "num_classes": int(num_classes),
        "image_size": int(image_size),
        "model_kwargs": {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()},
        "pretrained": (str(pretrained) if not isinstance(pretrained, bool) else pretrained)
        if name in PRETRAINABLE else False,
    }
    return model
