"""GPU tests (marked ``gpu``; skipped with a reason where CUDA is absent): placement of the
model, batches and checkpoint; bf16 training; two processes over NCCL where two GPUs exist.
``bench/gpu_check.sh`` runs them on a GPU machine."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from breastlab.models import build_model
from breastlab.training.checkpoint import load_checkpoint
from breastlab.training.loop import TrainConfig, model_device, predict_proba, train_classifier

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")]


def _blobs(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 4, 32, 32, generator=g)
    x[y == 1, :, :16] += 1.0
    return TensorDataset(x, y)


class _InMemory(torch.utils.data.Dataset):
    """Like ``CaseDataset`` with its cache: ``_data`` and ``labels`` tensors, augmented."""

    def __init__(self, base: TensorDataset) -> None:
        from breastlab.multiview.preprocess import Augment

        self._data, self.labels = base.tensors
        self.train, self.augment = True, Augment()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        x = self._data[i]
        return (self.augment(x) if self.train else x), int(self.labels[i])


def _resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("resnet18", in_channels=4, num_classes=2, image_size=32, small_input=True)


@pytest.mark.parametrize("precision", ["32", "bf16"])
def test_training_runs_on_the_gpu_and_its_checkpoint_loads_on_the_cpu(tmp_path, precision):
    model = _resnet()
    calls = []
    original = torch.nn.Conv2d.forward

    def spy(self, x):  # every convolution sees a CUDA input
        calls.append((x.device.type, torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else None))
        return original(self, x)

    torch.nn.Conv2d.forward = spy
    try:
        res = train_classifier(model, _InMemory(_blobs(128, 0)), _blobs(64, 1),
                               TrainConfig(epochs=4, batch_size=32, lr=0.01, device="cuda",
                                           precision=precision), tmp_path, progress=False)
    finally:
        torch.nn.Conv2d.forward = original
    assert model_device(model).type == "cuda"
    assert calls and all(dev == "cuda" for dev, _ in calls)
    if precision == "bf16":
        assert any(dtype == torch.bfloat16 for _, dtype in calls)
    assert res.best_metrics["val_auc"] > 0.7
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")  # map_location="cpu"
    assert all(t.device.type == "cpu" for t in ckpt["model"].values())
    probs = predict_proba(model, _blobs(16, 2), precision=precision)
    assert probs.shape == (16, 2)
    cpu_model = _resnet()
    cpu_model.load_state_dict(ckpt["model"])
    assert model_device(cpu_model).type == "cpu"


def test_device_resolution_and_provenance_on_the_gpu():
    from breastlab.core.device import device_info, resolve_device

    dev = resolve_device("auto")
    assert dev.type == "cuda"
    info = device_info(dev, "bf16")
    assert info["name"] and info["cuda"] and info["cudnn"] and info["precision"] == "bf16"


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs for NCCL")
def test_two_nccl_processes_match_one_gpu(tmp_path: Path):
    from breastlab.training.distributed import launch
    from test_training_distributed import TOLERANCE, _fit

    one, two = tmp_path / "one", tmp_path / "two"
    _fit(str(one), "cuda")
    launch(_fit, (str(two), "cuda"), devices=2, threads=1, device="cuda")

    def hist(p):
        with open(p / "history.csv", newline="") as fh:
            return list(csv.DictReader(fh))

    for a, b in zip(hist(one), hist(two), strict=True):
        for key in ("val_loss", "val_acc", "val_auc", "train_loss", "train_acc"):
            assert float(a[key]) == pytest.approx(float(b[key]), abs=TOLERANCE), key
