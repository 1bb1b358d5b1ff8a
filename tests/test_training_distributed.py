"""Multi-process training (issue 10, item 4): 2 gloo processes on CPU give the validation
metrics of 1 process, and ``breastlab train --devices 2`` writes one consistent run.

Tolerance: the model has no batch statistics and no dropout, and the global batch (8) splits
evenly over 2 ranks, so one DDP step is the same step as in one process; only the order of
floating-point sums differs. Validation metrics per epoch agree within 1e-4 (absolute) and
the selected weights within 1e-5.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from breastlab.training.distributed import ShardedBatchSampler, launch
from breastlab.training.loop import TrainConfig, train_classifier

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TOLERANCE = 1e-4


class _Data(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % 2
        self.x = torch.randn(n, 2, 8, 8, generator=g) + self.labels[:, None, None, None] * 0.4

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.x[i], int(self.labels[i])


def _fit(out: str, device: str = "cpu") -> None:
    """One run of the tiny experiment (module level: spawned processes import it); on the
    CPU (gloo) here, on GPUs (NCCL) in tests/test_gpu.py."""
    from breastlab.core.provenance import seed_everything
    from breastlab.models.registry import build_model

    seed_everything(0)
    model = build_model("mlp", in_channels=2, num_classes=2, image_size=8, hidden=())
    config = TrainConfig(epochs=3, batch_size=8, lr=0.05, seed=3, channels_last=False,
                         device=device)
    train_classifier(model, _Data(32, 1), _Data(16, 2), config, out, progress=False,
                     meta={"views": ["a", "b"]})


def _history(path: Path) -> list[dict[str, str]]:
    with open(path / "history.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_sampler_shares_out_the_batches_of_one_process() -> None:
    batches = {}
    for rank in (0, 1):
        s = ShardedBatchSampler(10, 4, torch.Generator().manual_seed(0), num_replicas=2,
                                rank_=rank)
        batches[rank] = list(s)
        assert len(batches[rank]) == len(s) == 3
    one = list(torch.utils.data.BatchSampler(
        torch.utils.data.RandomSampler(range(10), generator=torch.Generator().manual_seed(0)),
        4, drop_last=False))
    assert [a + b for a, b in zip(batches[0], batches[1])] == one


def test_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    _fit(str(one))
    launch(_fit, (str(two),), devices=2, threads=1, device="cpu")
    h1, h2 = _history(one), _history(two)
    assert len(h1) == len(h2) == 3
    for a, b in zip(h1, h2):
        for key in ("val_loss", "val_acc", "val_auc", "train_loss", "train_acc"):
            assert float(a[key]) == pytest.approx(float(b[key]), abs=TOLERANCE), key
        assert a["best"] == b["best"]
    w1 = torch.load(one / "model.pt", weights_only=True)["state_dict"]
    w2 = torch.load(two / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.allclose(w1[k], w2[k], atol=1e-5) for k in w1)
    # rank 0 alone wrote: the same files as one process, no temporary left behind
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())


@pytest.mark.slow  # two spawned processes read the cases and train (about 20 s)
def test_cli_train_with_two_devices(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from breastlab.cli.main import app
    from test_training_fourview import _cases

    cases = _cases(tmp_path)
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", str(cases), "--out", str(run), "--models", "mlp",
                                   "--repeats", "1", "--epochs", "2", "--image-size", "16",
                                   "--no-pretrained", "--devices", "2", "--threads", "1", "-q",
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "trained 1" in res.output
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["config"]["settings"]["run"]["devices"] == 2
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["models"]["mlp"]["repeats"]["repeat0"]["n_test"] > 0
    starts = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()
              if '"start"' in line]
    assert len(starts) == 1 and starts[0]["processes"] == 2   # rank 0 alone logs
    rows = list(csv.DictReader(open(run / "models/mlp/repeat0/predictions.csv")))
    split = json.loads((run / "splits/repeat0.json").read_text())
    assert sorted(r["case_id"] for r in rows) == sorted(split["val"] + split["test"])
