"""Multi-process training with PyTorch DistributedDataParallel (``torch.distributed``).

``breastlab train --devices N`` starts N processes with ``torch.multiprocessing.spawn``
(one machine) or runs under ``torchrun`` (several machines, ``--nodes``): no launcher of
our own. Every process runs the same experiment loop; this module is what makes that
loop distributed:

* ``ShardedBatchSampler``: a ``DistributedSampler`` whose order does not depend on the
  number of processes. Each epoch draws one permutation of the *training part of the
  patient-level split* from the run's seeded generator (the same on every rank), cuts it
  into global batches of ``batch_size`` and gives every rank its share of each batch.
  DDP averages the gradients, so one step on N processes is one step on the global batch,
  as in one process (exact for models without batch statistics or dropout).
* ``gather_rows``: validation and prediction rows computed on every rank's share and
  gathered, in dataset order, for the metrics (identical on every rank, so model selection
  and early stopping agree); only rank 0 writes files (``is_main``).

Backend: NCCL when the training runs on CUDA GPUs (one GPU per process, ``LOCAL_RANK``;
the model, the batches and the ``all_reduce`` tensors on that GPU), gloo on CPU. Plain
``torch.distributed`` rather than Lightning Fabric: the loop, its resume and its RNG
handling are ours already, DDP over NCCL needs only the device placement here, and
Fabric would add Lightning's dependencies and its own launcher and checkpoint conventions
for what ``torch.multiprocessing.spawn`` and ``torchrun`` do.
"""
from __future__ import annotations

import contextlib
import math
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data.distributed import DistributedSampler

from breastlab.core.errors import RunFailed

#: Environment variables torchrun sets; with them a process joins an existing group.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class DistributedRunError(RunFailed):
    """A training process failed; the message is its error."""


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True in the process that writes files and logs (rank 0, or the only process)."""
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


#: ``--device`` of this run, set by ``launch`` (and inherited by spawned workers).
_DEVICE_ENV = "BREASTLAB_DDP_DEVICE"


def backend() -> str:
    """``nccl`` when this run trains on CUDA (``--device`` auto or cuda and a GPU here),
    else ``gloo``."""
    wanted = os.environ.get(_DEVICE_ENV, "auto")
    return "nccl" if torch.cuda.is_available() and wanted.startswith(("auto", "cuda")) else "gloo"


def _collective_device() -> torch.device:
    """Where collective tensors must live: this rank's GPU under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in one process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sum over ranks (the values themselves in one process)."""
    if not is_distributed():
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().tolist()


def shard(n: int) -> list[int]:
    """This rank's indices of ``range(n)`` (strided), for evaluation."""
    return list(range(rank(), n, world_size()))


def gather_in_order(n: int, local: Sequence[Any]) -> list[Any]:
    """Reassemble per-rank results of ``shard(n)`` into dataset order."""
    parts = gather_objects(list(local))
    out: list[Any] = [None] * n
    for r, part in enumerate(parts):
        for i, item in zip(range(r, n, len(parts)), part):
            out[i] = item
    return out


class ShardedBatchSampler(DistributedSampler):
    """Global batches of the seeded permutation, each shared out between the ranks.

    ``generator`` is the run's shuffling generator (the same seed and state on every
    rank, saved in the checkpoint for resume). With one process this yields the batches a
    shuffled ``DataLoader`` with that generator would. A final global batch with fewer
    samples than ranks is dropped (a rank with an empty batch cannot take a DDP step).
    """

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, *,
                 drop_last: bool = False, num_replicas: int | None = None,
                 rank_: int | None = None) -> None:
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.generator = generator
        self.drop_last = drop_last
        self.num_replicas = world_size() if num_replicas is None else num_replicas
        self.rank = rank() if rank_ is None else rank_
        self.epoch = 0

    def _global_batches(self) -> list[list[int]]:
        order = torch.randperm(self.n, generator=self.generator).tolist()
        batches = [order[i:i + self.batch_size] for i in range(0, self.n, self.batch_size)]
        if batches and self.drop_last and len(batches[-1]) < self.batch_size:
            batches.pop()
        if batches and len(batches[-1]) < self.num_replicas:
            batches.pop()
        return batches

    def __iter__(self) -> Iterator[list[int]]:  # type: ignore[override]
        for batch in self._global_batches():
            size = math.ceil(len(batch) / self.num_replicas)
            lo = self.rank * size
            yield batch[lo:lo + size] if lo < len(batch) else batch[-1:]
        # torch's RandomSampler ends every epoch with one more (empty) randperm; drawing it
        # too keeps the generator, hence every later epoch, as in one process
        torch.randperm(self.n, generator=self.generator)

    def __len__(self) -> int:
        full = self.n // self.batch_size
        rest = self.n % self.batch_size
        keep_rest = rest and not self.drop_last and rest >= self.num_replicas
        return full + (1 if keep_rest else 0)


# --------------------------------------------------------------------------- launching
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def under_torchrun() -> bool:
    return all(k in os.environ for k in TORCHRUN_ENV)


def _die_with_parent() -> None:
    """Linux: a worker gets SIGTERM when the launching process dies (even by SIGKILL), so
    a killed run leaves no stray workers. Hand-written (ctypes prctl): no library exposes
    PR_SET_PDEATHSIG; elsewhere a no-op."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def _worker(local_rank: int, fn: Callable[..., Any], args: tuple[Any, ...], n: int,
            addr: str, port: int, threads: int | None, results: Any) -> None:
    _die_with_parent()
    torch.set_num_threads(int(threads) if threads else max(1, (os.cpu_count() or 1) // n))
    os.environ.update(MASTER_ADDR=addr, MASTER_PORT=str(port), RANK=str(local_rank),
                      WORLD_SIZE=str(n), LOCAL_RANK=str(local_rank))
    with process_group():
        out = fn(*args)
        if is_main():
            results.put(out)


@contextlib.contextmanager
def process_group() -> Iterator[None]:
    """Join the group described by the torchrun environment; leave it on exit."""
    if is_distributed():
        yield
        return
    name = backend()
    if name == "nccl":  # before the group: NCCL binds each rank to its GPU
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(name)
    try:
        yield
    finally:
        dist.destroy_process_group()


def check_devices(devices: int, nodes: int = 1, device: str = "auto") -> None:
    """``ValueError`` for a device count this machine cannot serve (before any work)."""
    if devices < 1 or nodes < 1:
        raise ValueError("--devices and --nodes must be at least 1")
    if under_torchrun():
        return
    if nodes > 1:
        raise ValueError(f"--nodes {nodes}: start every node with torchrun --nnodes {nodes} "
                         f"--nproc-per-node {devices} (see docs/training.md)")
    gpus = torch.cuda.is_available() and str(device).startswith(("auto", "cuda"))
    if gpus and devices > torch.cuda.device_count():
        raise ValueError(f"--devices {devices}: only {torch.cuda.device_count()} GPU(s) here")


def launch(fn: Callable[..., Any], args: tuple[Any, ...], *, devices: int = 1, nodes: int = 1,
           threads: int | None = None, device: str = "auto") -> Any:
    """Run ``fn(*args)`` on ``devices`` processes per node; returns rank 0's result.

    Under ``torchrun`` (its environment is set) this process is one rank already: it joins
    the group (every rank returns its own result). Otherwise ``nodes`` must be 1 and
    ``devices`` processes are spawned on this machine (``torch.multiprocessing.spawn``);
    ``devices=1`` runs in this process. ``fn``, ``args`` and the result must pickle.
    ``device`` (``--device``) chooses the backend: NCCL on CUDA, gloo on ``cpu``.
    """
    check_devices(devices, nodes, device)
    os.environ[_DEVICE_ENV] = str(device)
    if under_torchrun():
        with process_group():
            return fn(*args)
    if devices <= 1:
        return fn(*args)
    import torch.multiprocessing as mp

    results = mp.get_context("spawn").SimpleQueue()
    try:
        mp.spawn(_worker, args=(fn, args, devices, "127.0.0.1", _free_port(), threads, results),
                 nprocs=devices, join=True)
    except mp.ProcessRaisedException as exc:  # the worker's own error, as one line
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        raise DistributedRunError(lines[-1] if lines else str(exc)) from None
    except mp.ProcessExitedException as exc:
        raise DistributedRunError(str(exc)) from None
    return None if results.empty() else results.get()
