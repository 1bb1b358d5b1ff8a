"""``breastlab sort --engine dask``: header reading and per-study rules on a Dask cluster.

Dask distributed (an existing, well-kept engine) rather than a launcher of our own:
``--scheduler tcp://host:8786`` uses a running cluster; without it a ``LocalCluster``
of worker processes (one thread each) is started and closed by the run. Batches of
files are read *and committed to the index journal by the workers* (in parallel; the
journal, beside the output folder, must be on a file system every worker sees), then
each study's grouping and rules run as a task (bounded number in flight, results taken
in study order), while this process writes the outputs. Outputs equal the default
engine's. See docs/scale.md.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> int:
    """Run on a worker or nanny of a LocalCluster: SIGKILL it when its parent dies (even by SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    return os.getpid()


@contextlib.contextmanager
def dask_client(scheduler: str | None, workers: int) -> Iterator[Any]:
    """A ``distributed.Client``: of ``scheduler``, or of a LocalCluster this process owns."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ValueError("--engine dask needs Dask distributed: pip install 'breastlab[dask]'") from None
    if scheduler:
        with Client(scheduler, timeout="30s") as client:
            yield client
        return
    with LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster, Client(cluster) as client:
        client.run(_die_with_parent, nanny=True)  # nannies die with this process...
        client.run(_die_with_parent)  # ...and workers with their nanny
        yield client


def map_in_order(client: Any, fn: Callable, items: Iterable, *, window: int, **kw: Any) -> Iterator[Any]:
    """``fn(item, **kw)`` for every item on the cluster, at most ``window`` in flight, results in item order."""
    pending: deque = deque()
    for item in items:
        pending.append(client.submit(fn, item, pure=False, **kw))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
