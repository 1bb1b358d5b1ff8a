"""Devices and precision on a CPU machine: resolution and its one-line error, bf16 training,
resume of a checkpoint written on a GPU (``map_location``), loaders with workers."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from breastlab.core.device import DeviceError, check_device_name, device_info, resolve_device
from breastlab.core.precision import Precision, check_precision
from breastlab.models import build_model
from breastlab.multiview.preprocess import Augment
from breastlab.training import batches as B
from breastlab.training.checkpoint import load_checkpoint
from breastlab.training.loop import TrainConfig, predict_proba, train_classifier
from cli_helpers import invoke

pytestmark = pytest.mark.usefixtures("one_torch_thread")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")


def _blobs(n, seed, channels=2, size=8):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, channels, size, size, generator=g)
    x[y == 1, :, : size // 2] += 1.5
    return TensorDataset(x, y)


def _mlp():
    torch.manual_seed(0)
    return build_model("mlp", in_channels=2, num_classes=2, image_size=8, hidden=(16,))


# ------------------------------------------------------------------ resolution
def test_names_are_checked_without_torch_devices():
    assert check_device_name(" CUDA:1 ") == "cuda:1"
    for bad in ("gpu", "cuda:x", "cuda:", "tpu"):
        with pytest.raises(DeviceError, match="expected auto, cpu, cuda, cuda:N or mps"):
            check_device_name(bad)
    assert resolve_device("cpu") == torch.device("cpu")
    assert check_precision("bf16-mixed") == "bf16" and check_precision(32) == "32"
    with pytest.raises(ValueError, match="precision must be one of"):
        check_precision("8")


@no_cuda
def test_auto_is_the_cpu_and_cuda_is_one_line_error_here():
    assert resolve_device("auto").type in ("cpu", "mps")
    with pytest.raises(DeviceError) as exc:
        resolve_device("cuda:0")
    assert "no CUDA GPU" in str(exc.value) and "\n" not in str(exc.value)
    info = device_info(torch.device("cpu"), "bf16")
    assert info["type"] == "cpu" and info["precision"] == "bf16" and "cuda" not in info


@no_cuda
def test_cli_device_cuda_without_gpu_exits_2_before_any_work(tmp_path):
    cases = tmp_path / "cases.csv"
    cases.write_text("case_id,label,LCC\n")
    out = tmp_path / "run"
    res = invoke(["train", cases, "--out", out, "--device", "cuda", "--no-pretrained"], ok=False)
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no CUDA GPU" in lines[0]
    assert not out.exists()
    res = invoke(["train", cases, "--out", out, "--device", "gpu"], ok=False)
    assert res.exit_code == 2 and "expected auto, cpu" in res.output and not out.exists()


# ------------------------------------------------------------------ precision
def test_bf16_training_on_cpu_learns_and_keeps_fp32_weights(tmp_path):
    model = _mlp()
    res = train_classifier(model, _blobs(96, 0), _blobs(48, 1),
                           TrainConfig(epochs=5, device="cpu", precision="bf16"), tmp_path,
                           progress=False)
    assert res.best_metrics["val_auc"] > 0.8
    assert all(p.dtype == torch.float32 for p in model.parameters())
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["config"]["precision"] == "bf16"
    assert all(t.dtype == torch.float32 for t in ckpt["model"].values() if t.is_floating_point())
    probs = predict_proba(model, _blobs(20, 2), precision="bf16")
    assert probs.shape == (20, 2) and np.isfinite(probs).all()


def test_fp16_has_a_grad_scaler_and_32_has_none():
    assert Precision.make("16", torch.device("cpu")).grad_scaler().is_enabled()
    assert not Precision.make("32", torch.device("cpu")).grad_scaler().is_enabled()
    assert not Precision.make("bf16", torch.device("cpu")).grad_scaler().is_enabled()


def test_cpu_fp32_is_the_same_as_before_devices(tmp_path):
    """``device=cpu, precision=32`` is the default path: the same weights as ``auto`` on a
    CPU machine, run twice (deterministic), and the loop used no device batches."""
    a, b = _mlp(), _mlp()
    train_classifier(a, _blobs(64, 0), None, TrainConfig(epochs=2, device="cpu"), tmp_path / "a",
                     progress=False)
    train_classifier(b, _blobs(64, 0), None, TrainConfig(epochs=2), tmp_path / "b", progress=False)
    if not torch.cuda.is_available():
        for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(va, vb), k


# ------------------------------------------------------------------ resume across devices
class _StopAfterFirstEpoch(Exception):
    pass


def _stop(row):
    raise _StopAfterFirstEpoch


def _retag_as_cuda(path, monkeypatch):
    """Rewrite a torch file so that its storages say ``cuda:0``, as one written on a GPU."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    registry = list(torch.serialization._package_registry)
    monkeypatch.setattr(torch.serialization, "_package_registry", registry)
    torch.serialization.register_package(0, lambda storage: "cuda:0", lambda obj, loc: None)
    torch.save(obj, path)
    monkeypatch.setattr(torch.serialization, "_package_registry",
                        [e for e in registry if e[0] != 0])


@no_cuda
def test_checkpoint_written_on_a_gpu_resumes_on_the_cpu(tmp_path, monkeypatch):
    config = TrainConfig(epochs=3, device="cpu")
    ref = _mlp()
    train_classifier(ref, _blobs(64, 0), _blobs(32, 1), TrainConfig(epochs=3, device="cpu"),
                     tmp_path / "ref", progress=False)
    with pytest.raises(_StopAfterFirstEpoch):
        train_classifier(_mlp(), _blobs(64, 0), _blobs(32, 1), config, tmp_path / "run",
                         progress=False, on_epoch=_stop)
    for name in ("checkpoint.pt", "model.pt"):
        _retag_as_cuda(tmp_path / "run" / name, monkeypatch)
    with pytest.raises(RuntimeError, match="CUDA"):  # the file really claims a GPU
        torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    resumed = _mlp()
    res = train_classifier(resumed, _blobs(64, 0), _blobs(32, 1),
                           TrainConfig(epochs=3, device="cpu"), tmp_path / "run", progress=False)
    assert res.resumed_from_epoch == 1 and res.epochs_run == 3
    for (k, va), vb in zip(ref.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(va, vb, atol=1e-6), k


# ------------------------------------------------------------------ loaders
class _Views(Dataset):
    """Not in memory as one tensor (so the loader path), augmented like ``CaseDataset``."""

    def __init__(self, base: TensorDataset) -> None:
        self.base, self.train, self.augment = base, True, Augment()
        self.labels = base.tensors[1]

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i):
        x, y = self.base[i]
        return (self.augment(x) if self.train else x), int(y)


def _history(path):
    with open(path / "history.csv") as fh:
        return [(r["train_loss"], r["train_acc"]) for r in csv.DictReader(fh)]


def test_workers_give_the_same_batches_as_the_main_process(tmp_path):
    runs = {}
    for workers in (0, 2):
        model = _mlp()
        config = TrainConfig(epochs=2, device="cpu", num_workers=workers, augment_on="batch")
        train_classifier(model, _Views(_blobs(40, 0)), None, config, tmp_path / str(workers),
                         progress=False)
        runs[workers] = (model.state_dict(), _history(tmp_path / str(workers)))
    assert runs[0][1] == runs[2][1]
    for k, v in runs[0][0].items():
        assert torch.equal(v, runs[2][0][k]), k


def test_loader_settings_from_the_machine():
    cpu = torch.device("cpu")
    in_mem = type("D", (), {"_data": torch.zeros(2, 1, 4, 4), "__len__": lambda s: 2})()
    assert B.loader_settings(in_mem, cpu).num_workers == 0        # an index is all it takes
    lazy = _Views(_blobs(4, 0))
    auto = B.loader_settings(lazy, cpu)
    assert auto.num_workers == 0 and not auto.pin_memory         # on a CPU: as before
    gpu = B.loader_settings(lazy, torch.device("cuda"), world=1)
    assert 0 <= gpu.num_workers <= 8 and gpu.pin_memory
    forced = B.loader_settings(lazy, torch.device("cuda"), 3)
    assert forced.kwargs() == {"num_workers": 3, "pin_memory": True, "prefetch_factor": 4,
                               "persistent_workers": False}  # exact resume
    assert B.augment_mode("auto", cpu, 0) == "item" and B.augment_mode("auto", cpu, 2) == "batch"
    x = torch.randn(3, 4, 16, 16)
    torch.manual_seed(1)
    out = B.augment_batch(Augment(), x)
    assert out.shape == x.shape and not torch.equal(out, x)


@no_cuda
def test_other_commands_refuse_an_absent_device_in_one_line(tmp_path):
    model = tmp_path / "model.pt"
    model.write_bytes(b"not read")
    res = invoke(["predict", model, tmp_path, "--out", tmp_path / "p", "--device", "cuda"], ok=False)
    assert res.exit_code == 2 and "no CUDA GPU" in res.output and not (tmp_path / "p").exists()
    res = invoke(["sort", tmp_path, "--out", tmp_path / "s", "--device", "gpu"], ok=False)
    assert res.exit_code == 2 and "expected auto, cpu" in res.output and not (tmp_path / "s").exists()
    res = invoke(["report", tmp_path, "--device", "cuda:3"], ok=False)
    assert res.exit_code == 2 and "no CUDA GPU" in res.output
