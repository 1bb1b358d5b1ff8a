"""The seed's autoencoder baseline: a convolutional autoencoder, then a classifier.

Two stages, both driven by ``training.loop.train_classifier``:

1. **Reconstruction pretraining** (unsupervised, training images only):
   ``model.pretrain(loader, epochs)`` minimises ``model.pretrain_loss(x)``, the mean
   squared error between ``x`` and ``model.reconstruct(x)``. The loop calls it
   before the first epoch when ``TrainConfig.pretrain_epochs > 0`` (it is skipped
   on resume: the checkpoint already holds the pretrained encoder).
2. **Classification**: ``forward(x)`` returns logits from a small head on the
   global-average-pooled latent; the encoder is fine-tuned with it (set
   ``freeze_encoder=True`` to train the head only).

Encoder: 4 stride-2 conv blocks (16, 32, 64, ``latent_channels``); decoder mirrors
it with up-sampling, and its output is resized to the input size (so any input
size works, including 28 × 28).
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class ConvAutoencoder(nn.Module):
    def __init__(
        self,
        in_channels: int,
        num_classes: int = 2,
        image_size: int = 256,
        *,
        latent_channels: int = 64,
        dropout: float = 0.3,
        freeze_encoder: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels, self.num_classes = in_channels, num_classes
        widths = (16, 32, 64, latent_channels)
        enc, c = [], in_channels
        for w in widths:
            enc.append(_down(c, w))
            c = w
        self.encoder = nn.Sequential(*enc)
        dec = []
        for w in reversed(widths[:-1]):
            dec.append(_up(c, w))
            c = w
        dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, in_channels, 3, 1, 1)]
        self.decoder = nn.Sequential(*dec)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
            nn.Linear(latent_channels, 64), nn.ReLU(inplace=True), nn.Linear(64, num_classes),
        )
        self.freeze_encoder = freeze_encoder

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        out = self.decoder(self.encoder(x))
        if out.shape[-2:] != x.shape[-2:]:
            out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return out

    def pretrain_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction loss (MSE) for unsupervised pretraining."""
        return F.mse_loss(self.reconstruct(x), x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.freeze_encoder:
            with torch.no_grad():
                z = self.encoder(x)
        else:
            z = self.encoder(x)
        return self.head(z)

    def pretrain(
        self,
        loader: Iterable,
        epochs: int,
        *,
        lr: float = 1e-3,
        channels_last: bool = False,
        on_epoch=None,
    ) -> list[float]:
        """Reconstruction pretraining with Adam; returns the mean loss per epoch.

        ``loader`` yields dict items (``{"image", ...}``), ``(x, label)`` or ``x``
        batches; labels are ignored.
        ``on_epoch(epoch, loss)`` is called after each epoch (progress reporting).
        """
        params = list(self.encoder.parameters()) + list(self.decoder.parameters())
        opt = torch.optim.Adam(params, lr=lr)
        losses = []
        self.train()
        for epoch in range(epochs):
            total, count = 0.0, 0
            for batch in loader:
                x = (batch["image"] if isinstance(batch, dict)
                     else batch[0] if isinstance(batch, (list, tuple)) else batch)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                opt.zero_grad(set_to_none=True)
                loss = self.pretrain_loss(x)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(x)
                count += len(x)
            losses.append(total / max(count, 1))
            if on_epoch is not None:
                on_epoch(epoch, losses[-1])
        return losses
