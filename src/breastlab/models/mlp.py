"""The seed's "neural network" baseline: a multilayer perceptron on the stacked views.

The ``[N, H, W]`` input is first reduced to ``pool_size × pool_size`` by area
averaging (adaptive average pooling) and then flattened. Flattening 4 × 256 × 256
directly would need 134 M weights in the first layer alone, which is neither
practical on a CPU nor sensible for ~200 training cases; the seed does not give
the baseline's input size.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class MLP(nn.Module):
    def __init__(
        self,
        in_channels: int,
        num_classes: int = 2,
        image_size: int = 256,
        *,
        pool_size: int = 32,
        hidden: Sequence[int] = (256, 64),
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.in_channels, self.num_classes = in_channels, num_classes
        p = min(pool_size, image_size)
        self.pool = nn.AdaptiveAvgPool2d(p)
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_channels * p * p
        for h in hidden:
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.pool(x))
