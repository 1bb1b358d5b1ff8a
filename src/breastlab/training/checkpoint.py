"""Atomic, weights_only-loadable checkpoints, RNG state capture, and the background
writer of an epoch's files (a CPU snapshot of the weights, written while training goes on).

Everything stored is a tensor, number, string, list or dict, so
``torch.load(weights_only=True)`` can read it back: no pickle code execution.
"""
from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from breastlab.core.atomic import save_torch


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temp file + rename)."""
    return save_torch(path, state)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``, its tensors mapped to ``map_location``.

    The CPU by default: ``load_state_dict`` then copies them to the model's device, so a
    checkpoint written on a GPU resumes on a CPU and the other way round. ``ValueError``
    (one line) when the file cannot be a checkpoint.
    """
    from breastlab.models.files import _load_error_detail

    try:
        state = torch.load(Path(path), map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - UnpicklingError, zip errors, EOF: a planted or damaged file
        raise ValueError(f"{path} is not a readable breastlab checkpoint ({_load_error_detail(exc)}); "
                         "remove it, or use another output folder") from None
    if not isinstance(state, dict) or state.get("format") != "breastlab-checkpoint":
        raise ValueError(f"{path} is not a breastlab checkpoint; remove it, or use another output folder")
    return state


def cpu_copy(obj: Any) -> Any:
    """``obj`` (nested dicts, lists, tuples of tensors and plain values) with every tensor
    copied to the CPU: a snapshot that later training steps do not change."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(cpu_copy(v) for v in obj)
    return obj


class BackgroundWriter:
    """One file write at a time in a background thread (checkpoints, model files), so the
    device keeps training while the disk works. Hand-written on ``threading`` (a
    ``ThreadPoolExecutor`` would queue writes without bound); the next ``submit`` and
    ``close`` wait for the write before and raise its error."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` after the write before it; the arguments must not change."""
        self.wait()

        def run() -> None:
            try:
                fn(*args)
            except BaseException as exc:  # raised in the training loop by wait()
                self._error = exc

        self._thread = threading.Thread(target=run, name="breastlab-writer", daemon=False)
        self._thread.start()

    def submit_checkpoint(self, path: str | os.PathLike, state: dict[str, Any]) -> None:
        self.submit(save_checkpoint, path, state)

    def close(self) -> None:
        self.wait()


def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Python, NumPy, torch (CPU, and each GPU once CUDA is in use) RNG states, plus
    ``generator``'s, as safe types."""
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
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # dropout on a GPU
        state["cuda"] = [t.cpu() for t in torch.cuda.get_rng_state_all()]
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
    if state.get("cuda") and torch.cuda.is_available():  # a CPU run ignores the GPU's state
        for index, cuda_state in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), index)
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


def write_epoch(model_file: tuple[Path, Any, dict[str, Any]] | None, ckpt_path: Path,
                state: dict[str, Any]) -> None:
    """An epoch's files: ``model.pt`` when the epoch is the best so far, then the checkpoint
    (in this order, so a checkpoint never points past the model file it knows of)."""
    from breastlab.models.files import save_model

    if model_file is not None:
        save_model(*model_file)
    save_checkpoint(ckpt_path, state)


class ModelSnapshot:
    """What ``save_model`` reads of a model (weights, build metadata), copied to the CPU
    now, so that a background write sees this epoch's weights."""

    def __init__(self, model: torch.nn.Module) -> None:
        self._state = cpu_copy(model.state_dict())
        self.breastlab_build = dict(getattr(model, "breastlab_build", {}))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self._state
