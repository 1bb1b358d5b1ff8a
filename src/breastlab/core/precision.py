"""Numeric precision of training and inference: ``32 | bf16 | 16``.

* ``32`` (the default, the seed's recipe): plain fp32; on CUDA the matrix products may
  use TF32 (``core.device.configure``).
* ``bf16``: ``torch.autocast`` to bfloat16 (same exponent range as fp32, so no loss
  scaling); the fast choice on GPUs from Ampere on and on recent CPUs.
* ``16``: autocast to float16 with a gradient scaler (``torch.amp.GradScaler``), which
  keeps small gradients from underflowing; for GPUs without bf16.

Weights, the optimizer state and checkpoints stay fp32 in every mode (mixed precision,
not reduced precision), so a checkpoint resumes under any precision and on any device.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

PRECISIONS = ("32", "bf16", "16")
PRECISION_HELP = ("Numeric precision: 32 (fp32, the seed's recipe; the default), bf16 "
                  "(autocast to bfloat16) or 16 (autocast to float16 with a gradient scaler).")


def check_precision(value: Any) -> str:
    """The canonical spelling (``32``, ``bf16`` or ``16``); ``ValueError`` otherwise."""
    text = str(value).strip().lower()
    text = {"fp32": "32", "32-true": "32", "bfloat16": "bf16", "bf16-mixed": "bf16",
            "fp16": "16", "16-mixed": "16", "float16": "16", "half": "16"}.get(text, text)
    if text not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {value!r}")
    return text


@dataclass(frozen=True)
class Precision:
    """Autocast and gradient scaling for one precision on one device type."""

    name: str = "32"
    device_type: str = "cpu"

    @classmethod
    def make(cls, name: Any, device: Any) -> Precision:
        return cls(check_precision(name), getattr(device, "type", str(device).split(":")[0]))

    @property
    def dtype(self) -> Any:
        import torch

        return {"32": torch.float32, "bf16": torch.bfloat16, "16": torch.float16}[self.name]

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context of this precision (a no-op for ``32``)."""
        if self.name == "32":
            return contextlib.nullcontext()
        import torch

        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> Any:
        """A ``GradScaler`` for fp16 (enabled only there), else a disabled one."""
        import torch

        enabled = self.name == "16" and self.device_type in ("cuda", "cpu", "mps")
        return torch.amp.GradScaler(self.device_type, enabled=enabled)
