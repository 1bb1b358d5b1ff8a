"""Generic training loop: learns, selects on val, checkpoints weights_only, resumes after SIGKILL."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from breastlab.models import build_model
from breastlab.training.checkpoint import load_checkpoint
from breastlab.training.loop import TrainConfig, predict_proba, train_classifier


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _blobs(n, seed, channels=2, size=8, k=2):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g)
    x = torch.randn(n, channels, size, size, generator=g)
    for c in range(k):
        x[y == c, :, : size // 2] += 1.5 * (c - (k - 1) / 2)
    return TensorDataset(x, y)


def test_learns_separable_task_and_selects_on_val(tmp_path):
    torch.manual_seed(0)
    model = build_model("mlp", in_channels=2, num_classes=3, image_size=8, hidden=(32,))
    res = train_classifier(model, _blobs(96, 0, k=3), _blobs(48, 1, k=3),
                           TrainConfig(epochs=6, select_metric="accuracy"), tmp_path, progress=False)
    probs = predict_proba(model, _blobs(60, 2, k=3))
    y = _blobs(60, 2, k=3).tensors[1].numpy()
    assert probs.shape == (60, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == y).mean() > 0.6  # chance = 1/3
    assert res.best_metrics["val_accuracy"] > 0.6
    with open(tmp_path / "history.csv") as fh:
        hist = list(csv.DictReader(fh))
    assert len(hist) == 6
    best = max(hist, key=lambda r: (float(r["val_acc"]), -float(r["val_loss"])))
    assert int(best["epoch"]) == res.best_epoch
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")  # weights_only=True
    assert ckpt["epoch"] == 5 and ckpt["finished"]
    # a finished run is not retrained; a different config is refused
    again = train_classifier(build_model("mlp", in_channels=2, num_classes=3, image_size=8, hidden=(32,)),
                             _blobs(96, 0, k=3), _blobs(48, 1, k=3),
                             TrainConfig(epochs=6, select_metric="accuracy"), tmp_path, progress=False)
    assert again.resumed_from_epoch == 6 and again.best_epoch == res.best_epoch
    with pytest.raises(ValueError, match="different configuration"):
        train_classifier(model, _blobs(96, 0, k=3), None, TrainConfig(epochs=7), tmp_path, progress=False)


def test_cnn_with_scheduler_adam_and_pretrain(tmp_path):
    torch.manual_seed(0)
    model = build_model("autoencoder", in_channels=2, num_classes=2, image_size=16)
    cfg = TrainConfig(epochs=2, optimizer="adam", scheduler="cosine", pretrain_epochs=1,
                      class_weight="balanced")
    res = train_classifier(model, _blobs(33, 0, size=16), _blobs(16, 1, size=16), cfg, tmp_path,
                           progress=False)  # 33 % 8 == 1: last batch dropped (BatchNorm)
    assert res.epochs_run == 2 and (tmp_path / "model.pt").is_file()
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["scheduler"] is not None and len(ckpt["pretrain_losses"]) == 1


class _Slow(torch.utils.data.Dataset):
    def __init__(self, ds, delay):
        self.ds, self.delay = ds, delay

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        if self.delay:
            time.sleep(self.delay)
        return self.ds[i]


def _run(out_dir, delay=0.0):
    torch.manual_seed(0)
    model = build_model("mlp", in_channels=2, num_classes=2, image_size=8, hidden=(16,), dropout=0.5)
    cfg = TrainConfig(epochs=5, scheduler="cosine")
    return train_classifier(model, _Slow(_blobs(48, 0), delay), _blobs(16, 1), cfg, out_dir,
                            progress=False)


_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from test_training_loop import _run
    _run(sys.argv[1], delay=0.02)
""")


@pytest.mark.slow
def test_resume_after_sigkill(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_SCRIPT.format(tests=str(Path(__file__).parent)))
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    proc = subprocess.Popen([sys.executable, str(script), str(killed)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not (killed / "checkpoint.pt").exists():
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = load_checkpoint(killed / "checkpoint.pt")["epoch"]
    assert done < 4  # killed mid-run
    resumed = _run(killed)
    assert resumed.resumed_from_epoch == done + 1
    _run(clean)

    def hist(d):
        with open(d / "history.csv") as fh:
            return list(csv.DictReader(fh))

    hk, hc = hist(killed), hist(clean)
    assert [int(r["epoch"]) for r in hk] == [0, 1, 2, 3, 4]
    # same RNG stream (shuffling, dropout, schedule) as an uninterrupted run
    for a, b in zip(hk, hc):
        assert float(a["train_loss"]) == pytest.approx(float(b["train_loss"]), rel=1e-5)
        assert float(a["lr"]) == pytest.approx(float(b["lr"]))
    wk = torch.load(killed / "model.pt", weights_only=True)["state_dict"]
    wc = torch.load(clean / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.allclose(wk[k].float(), wc[k].float(), atol=1e-5) for k in wk)


def test_binary_auc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    from breastlab.training.loop import binary_auc

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    s = np.round(rng.random(60), 1)  # with ties
    assert binary_auc(y == 1, s) == pytest.approx(roc_auc_score(y, s))
    assert np.isnan(binary_auc(np.ones(3, bool), np.arange(3.0)))
