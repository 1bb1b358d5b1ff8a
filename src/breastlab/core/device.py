"""Which device a model runs on: ``auto | cpu | cuda | cuda:N | mps``, resolved once.

``resolve_device("auto")`` takes CUDA when present (the local rank's GPU under
``torch.distributed``), else Apple's MPS, else the CPU. A device that is asked for and
absent raises ``DeviceError`` with a one-line message (the CLI prints it and exits 2
before any work). ``device_info`` is what provenance records: the device's name, the CUDA
and cuDNN versions, and the precision.

torch is imported inside the functions only, so that the torch-free commands (the header
sorter) can import the CLI modules that name these options.
"""
from __future__ import annotations

import os
import re
from typing import Any

from breastlab.core.errors import UsageError

#: Accepted spellings of ``--device`` (``cuda:N`` for any N).
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
DEVICE_HELP = ("Device for the model: auto (CUDA when present, else MPS, else CPU), cpu, "
               "cuda, cuda:N or mps.")
_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(?::\d+)?)$")


class DeviceError(UsageError):
    """The device asked for is malformed or absent on this machine (one-line message;
    a ``UsageError``: the CLI exits 2 before any work)."""


def check_device_name(name: str) -> str:
    """``name`` lower-cased when it is a valid spelling (torch-free); else ``DeviceError``."""
    text = str(name or "auto").strip().lower()
    if not _PATTERN.match(text):
        raise DeviceError(f"--device {name!r}: expected auto, cpu, cuda, cuda:N or mps")
    return text


def resolve_device(name: str | Any = "auto") -> Any:
    """The ``torch.device`` for ``name`` (a string or a ``torch.device``).

    Raises:
        DeviceError: a malformed name, or a device this machine does not have.
    """
    import torch

    if isinstance(name, torch.device):
        name = str(name)
    text = check_device_name(name)
    cuda = torch.cuda.is_available()
    if text == "auto":
        if cuda:
            return torch.device("cuda", _local_rank() % max(torch.cuda.device_count(), 1))
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not _mps_available():
            raise DeviceError("--device mps: no Apple MPS device on this machine")
        return torch.device("mps")
    if not cuda:
        raise DeviceError(f"--device {text}: no CUDA GPU on this machine "
                          f"(torch {torch.__version__}; use --device cpu or auto)")
    index = int(text.split(":")[1]) if ":" in text else _local_rank()
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"--device {text}: only {count} CUDA GPU(s) here (cuda:0..cuda:{count - 1})")
    return torch.device("cuda", index)


def _local_rank() -> int:
    try:
        return int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        return 0


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def device_info(device: Any, precision: str | None = None) -> dict[str, Any]:
    """JSON-able description of ``device`` for provenance (name, CUDA, cuDNN, precision)."""
    import torch

    dev = resolve_device(device) if not isinstance(device, torch.device) else device
    info: dict[str, Any] = {"device": str(dev), "type": dev.type, "torch": torch.__version__}
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        info.update(
            name=props.name,
            capability=f"{props.major}.{props.minor}",
            memory_gib=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            device_count=torch.cuda.device_count(),
        )
    elif dev.type == "mps":
        info["name"] = "Apple MPS"
    else:
        import platform

        info.update(name=platform.processor() or platform.machine(),
                    threads=torch.get_num_threads(), cpus=os.cpu_count())
    if precision is not None:
        info["precision"] = str(precision)
    return info


def configure(device: Any) -> None:
    """Process-wide settings that pay on ``device``: cuDNN autotuning for fixed input
    shapes and TF32 matrix products on CUDA (the fp32 recipe then runs on the tensor
    cores at about fp32 accuracy); nothing on the CPU, so CPU results stay as before."""
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
