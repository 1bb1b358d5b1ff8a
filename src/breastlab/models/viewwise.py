"""``viewwise``: late fusion with one ResNet-18 trunk shared across views.

Goes beyond the seed's early fusion (all views stacked as channels of one
network): each view ``[1, H, W]`` (or replicated to 3 channels with
``trunk_channels=3``, which uses the ImageNet ``conv1`` unchanged) runs through the
same trunk, a shared linear head gives **per-view logits** (each view's own
evidence), plus a learned per-view bias, and the case logit is their fusion:

- ``fusion="mean"`` (default): mean of the per-view logits;
- ``fusion="attention"``: softmax attention weights over views from the view
  features (``model.view_weights`` holds them after a forward pass).

After every forward pass ``model.view_logits`` holds ``[B, N, K]`` per-view logits
(for explanation and reporting). Grad-CAM target layer: ``model.trunk.layer4``.
Costs about N× the compute of the early-fusion ResNet-18.
"""
from __future__ import annotations

import torch
from torch import nn

from .resnet import ResNet18


class ViewwiseResNet(nn.Module):
    def __init__(
        self,
        in_channels: int,
        num_classes: int = 2,
        *,
        fusion: str = "mean",
        trunk_channels: int = 1,
        dropout: float = 0.0,
        small_input: bool = False,
    ) -> None:
        super().__init__()
        if fusion not in ("mean", "attention"):
            raise ValueError("fusion must be 'mean' or 'attention'")
        if trunk_channels not in (1, 3):
            raise ValueError("trunk_channels must be 1 or 3")
        self.in_channels, self.num_classes = in_channels, num_classes
        self.num_views = in_channels
        self.fusion = fusion
        self.trunk_channels = trunk_channels
        self.trunk = ResNet18(trunk_channels, num_classes=0, small_input=small_input)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(ResNet18.feature_dim, num_classes)
        self.view_bias = nn.Parameter(torch.zeros(in_channels, num_classes))
        self.attention = nn.Linear(ResNet18.feature_dim, 1) if fusion == "attention" else None
        self.view_logits: torch.Tensor | None = None
        self.view_weights: torch.Tensor | None = None

    def forward_views(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(case_logits [B, K], view_logits [B, N, K], view_weights [B, N])``."""
        b, n, h, w = x.shape
        v = x.reshape(b * n, 1, h, w)
        if self.trunk_channels == 3:
            v = v.expand(-1, 3, -1, -1)
        if x.is_contiguous(memory_format=torch.channels_last):
            v = v.contiguous(memory_format=torch.channels_last)
        feats = self.trunk.features(v)  # [B*N, 512]
        view_logits = self.fc(self.dropout(feats)).view(b, n, -1) + self.view_bias
        if self.attention is not None:
            weights = torch.softmax(self.attention(feats).view(b, n), dim=1)
        else:
            weights = torch.full((b, n), 1.0 / n, dtype=view_logits.dtype, device=x.device)
        logits = (weights.unsqueeze(-1) * view_logits).sum(1)
        return logits, view_logits, weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits, self.view_logits, self.view_weights = self.forward_views(x)
        return logits
