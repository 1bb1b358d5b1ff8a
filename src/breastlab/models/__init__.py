"""Model registry (resnet18, mlp, autoencoder, viewwise), ImageNet weights, safe model files."""
from .registry import MODEL_NAMES, build_model

__all__ = ["MODEL_NAMES", "build_model"]
