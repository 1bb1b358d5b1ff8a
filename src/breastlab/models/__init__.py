"""Model registry (resnet18, mlp, autoencoder, viewwise), ImageNet weights, safe model files.

``MODEL_NAMES`` needs no torch; ``build_model`` imports it on first use, so that the CLI
(whose help lists the model names) starts without loading torch.
"""
from __future__ import annotations

from typing import Any

from .names import MODEL_NAMES, PRETRAINABLE

__all__ = ["MODEL_NAMES", "PRETRAINABLE", "build_model"]


def __getattr__(name: str) -> Any:
    if name == "build_model":
        from .registry import build_model

        return build_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
