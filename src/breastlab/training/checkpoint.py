"""Atomic, weights_only-loadable checkpoints and RNG state capture.

Everything stored is a tensor, number, string, list or dict, so
``torch.load(weights_only=True)`` can read it back: no pickle code execution.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from breastlab.core.atomic import save_torch


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temp file + rename)."""
    return save_torch(path, state)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; ``ValueError`` (one line) when it cannot be one."""
    from breastlab.models.files import _load_error_detail

    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - UnpicklingError, zip errors, EOF: a planted or damaged file
        raise ValueError(f"{path} is not a readable breastlab checkpoint ({_load_error_detail(exc)}); "
                         "remove it, or use another output folder") from None
    if not isinstance(state, dict) or state.get("format") != "breastlab-checkpoint":
        raise ValueError(f"{path} is not a breastlab checkpoint; remove it, or use another output folder")
    return state


def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Python, NumPy and torch RNG states (plus ``generator``'s) as safe types."""
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Restore what ``rng_state`` captured."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])
