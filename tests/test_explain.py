"""Grad-CAM and per-view attribution on tiny models with a known signal."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from breastlab.explain.gradcam import (
    explain, gradcam, logits_to_prob, view_shares_from_logits,
)
from breastlab.explain.overlays import overlay_png, save_overlay

VIEWS = ["LCC", "RCC", "LMLO", "RMLO"]
SIGNAL_VIEW = 2          # LMLO carries the lesion
SIZE = 32


class TinyStacked(nn.Module):
    """Views stacked as channels; ``layer4`` is the last conv block (as in ResNet18)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 8, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.layer4 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1),
                                    nn.ReLU(inplace=True))
        self.fc = nn.Linear(16, 2)

    def forward(self, x):
        return self.fc(self.layer4(self.relu(self.conv1(x))).mean((2, 3)))


def make_data(n: int, rng: np.random.Generator):
    """Noise in all views; malignant cases have a bright blob in the upper-left
    quadrant of the LMLO view only."""
    x = rng.normal(0, 1, (n, 4, SIZE, SIZE)).astype(np.float32)
    y = np.arange(n) % 2
    yy, xx = np.mgrid[:SIZE, :SIZE]
    blob = np.exp(-((yy - 8) ** 2 + (xx - 8) ** 2) / (2 * 2.5**2)).astype(np.float32)
    x[y == 1, SIGNAL_VIEW] += 4 * blob
    return torch.from_numpy(x), torch.from_numpy(y).long()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(one_torch_thread):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x, y = make_data(32, rng)
    model = TinyStacked()
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(40):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    xt, yt = make_data(8, np.random.default_rng(1))
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean().item()
    assert acc == 1.0, "the tiny model should learn the blob"
    return model, xt, yt


def test_gradcam_peaks_at_the_lesion(trained):
    model, x, y = trained
    pos = x[y == 1]
    res = gradcam(model, pos, "layer4", class_idx=1)
    cam = res["cam"]
    assert cam.shape == (len(pos), SIZE, SIZE)
    assert float(cam.min()) >= 0 and float(cam.max()) == pytest.approx(1.0)
    for m in cam:
        r, c = np.unravel_index(int(m.argmax()), m.shape)
        assert r < SIZE // 2 and c < SIZE // 2, (r, c)      # upper-left quadrant
        assert m[:16, :16].mean() > 2 * m[16:, 16:].mean()


def test_per_view_attribution_picks_the_signal_view(trained):
    model, x, y = trained
    pos = x[y == 1]
    for method in ("grad_x_input", "integrated_gradients"):
        ex = explain(model, pos, VIEWS, [f"c{i}" for i in range(len(pos))],
                     attribution=method, class_idx=1)
        for e in ex:
            assert e.top_view == "LMLO"
            assert e.shares.sum() == pytest.approx(1.0)
            assert e.shares[SIGNAL_VIEW] > 0.5
            assert e.cam.shape == (4, SIZE, SIZE)
            assert np.allclose(e.cam[0], e.cam[3])   # stacked: one shared map


@pytest.mark.slow  # importing MONAI takes several seconds
def test_matches_monai_gradcam(trained):
    from monai.visualize import GradCAM

    model, x, _ = trained
    ours = gradcam(model, x[:3], "layer4", class_idx=1)["cam"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # MONAI's backward-hook notice
        theirs = GradCAM(nn_module=model, target_layers="layer4")(x[:3], class_idx=1)[:, 0]
    # MONAI's default normaliser maps max → 0 and min → 1; ours maps max → 1.
    assert torch.allclose(ours, 1 - theirs, atol=1e-5)


def test_view_wise_logits_give_shares():
    vl = torch.tensor([[[0.0, 0.1], [0.0, -1.0], [0.0, 3.0], [0.0, 0.9]]])
    margin, shares = view_shares_from_logits(vl, torch.tensor([1]))
    assert margin[0].tolist() == pytest.approx([0.1, -1.0, 3.0, 0.9])
    assert shares[0].tolist() == pytest.approx([0.025, 0.0, 0.75, 0.225])
    # for the benign class the sign flips
    _, s0 = view_shares_from_logits(vl, torch.tensor([0]))
    assert int(s0[0].argmax()) == 1


def test_view_wise_model_uses_view_logits_and_per_view_maps():
    from breastlab.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("viewwise", in_channels=4, num_classes=2, image_size=64)
    x = torch.randn(1, 4, 64, 64)
    ex = explain(model, x, VIEWS)
    assert ex[0].method == "view-wise logits"
    assert ex[0].cam.shape == (4, 64, 64)
    assert not np.allclose(ex[0].cam[0], ex[0].cam[2])     # one map per view
    assert ex[0].shares.sum() == pytest.approx(1.0)


def test_single_logit_and_probabilities():
    p = logits_to_prob(torch.tensor([[0.0], [2.0]]))
    assert p.shape == (2, 2) and float(p[0, 1]) == pytest.approx(0.5)


def test_overlay_png_written(tmp_path, trained):
    model, x, y = trained
    ex = explain(model, x[:2], VIEWS, ["case-001", "case-002"], labels=y[:2].tolist())
    data = overlay_png(ex, ["benign", "malignant"])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out = save_overlay(tmp_path / "explain" / "case-001.png", ex[0], ["benign", "malignant"])
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert not list(out.parent.glob(".*.tmp"))
