"""Names of the registered models, importable without torch (the CLI builds its help from them)."""
from __future__ import annotations

MODEL_NAMES = ("resnet18", "mlp", "autoencoder", "viewwise")
PRETRAINABLE = ("resnet18", "viewwise")
