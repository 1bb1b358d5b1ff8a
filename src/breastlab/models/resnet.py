"""ResNet-18 with torchvision-compatible layer names and N input channels.

Parameter names match ``torchvision.models.resnet18`` (``conv1``, ``bn1``,
``layer1``..``layer4``, ``fc``), so ImageNet weights load with a plain
``load_state_dict`` (see ``models.weights``) without torchvision installed.

Options:
- ``in_channels``: number of stacked views (4 for LCC, RCC, LMLO, RMLO).
- ``dropout``: dropout before the final ``fc`` (kept as a separate module so the
  parameter names stay torchvision's).
- ``fc_hidden``: if > 0, the head is ``Linear(512, fc_hidden) → ReLU → Dropout →
  Linear(fc_hidden, K)`` (the seed mentions "two fully-connected layers").
- ``small_input``: for tiny images (e.g. 28×28 BreastMNIST): ``conv1`` has stride 1
  and there is no max-pool, so the feature map is not reduced to 1×1 too early.
  The ``conv1`` weight shape is unchanged, so ImageNet weights still load.

Grad-CAM target layer: ``model.layer4``.
"""
from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 for ``in_channels``-channel input and ``num_classes`` logits."""

    feature_dim = 512

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1000,
        *,
        dropout: float = 0.0,
        fc_hidden: int = 0,
        small_input: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.small_input = small_input
        self.conv1 = nn.Conv2d(
            in_channels, 64, 7, stride=1 if small_input else 2, padding=3, bias=False
        )
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool: nn.Module = nn.Identity() if small_input else nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(64, 64, 1)
        self.layer2 = self._make_layer(64, 128, 2)
        self.layer3 = self._make_layer(128, 256, 2)
        self.layer4 = self._make_layer(256, 512, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        if num_classes <= 0:
            self.fc: nn.Module = nn.Identity()  # feature extractor (512-d output)
        elif fc_hidden > 0:
            self.fc = nn.Sequential(
                nn.Linear(512, fc_hidden), nn.ReLU(inplace=True),
                nn.Dropout(dropout), nn.Linear(fc_hidden, num_classes),
            )
        else:
            self.fc = nn.Linear(512, num_classes)
        self._init_weights()

    @staticmethod
    def _make_layer(inplanes: int, planes: int, stride: int) -> nn.Sequential:
        return nn.Sequential(BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes, 1))

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():  # zero-init last BN of each block (torchvision option)
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """Output of ``layer4`` (``[B, 512, h, w]``)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled 512-d features (before dropout and ``fc``)."""
        return torch.flatten(self.avgpool(self.feature_map(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x)))


def resnet18(in_channels: int = 3, num_classes: int = 1000, **kwargs) -> ResNet18:
    return ResNet18(in_channels, num_classes, **kwargs)
