"""Model registry, ImageNet weight loading (offline-safe) and safe model files."""
from __future__ import annotations

import os
import pickle

import pytest
import torch

from breastlab.models import MODEL_NAMES, build_model
from breastlab.models.files import ModelFileError, load_model, read_model_meta, save_model
from breastlab.models.resnet import ResNet18
from breastlab.models.weights import WeightsUnavailableError, adapt_conv1, load_imagenet_state_dict


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("channels,classes", [(4, 2), (1, 3)])
def test_forward_shapes(name, channels, classes):
    torch.manual_seed(0)
    kwargs = {"small_input": True} if name in ("resnet18", "viewwise") else {}
    model = build_model(name, in_channels=channels, num_classes=classes, image_size=28, **kwargs)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, channels, 28, 28))
    assert out.shape == (2, classes)
    if name == "viewwise":
        assert model.view_logits.shape == (2, channels, classes)


def test_resnet_names_match_torchvision_and_small_input():
    m = ResNet18(4, 2, small_input=True, dropout=0.2)
    keys = set(m.state_dict())
    for k in ("conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight",
              "layer2.0.downsample.0.weight", "layer4.1.bn2.weight", "fc.weight", "fc.bias"):
        assert k in keys
    assert m.conv1.stride == (1, 1) and isinstance(m.maxpool, torch.nn.Identity)
    assert ResNet18(4, 2).conv1.stride == (2, 2)


def test_viewwise_attention_and_mean():
    torch.manual_seed(0)
    m = build_model("viewwise", in_channels=4, num_classes=2, fusion="attention", small_input=True).eval()
    x = torch.randn(3, 4, 16, 16)
    with torch.no_grad():
        logits = m(x)
    assert torch.allclose(m.view_weights.sum(1), torch.ones(3))
    assert torch.allclose((m.view_weights[..., None] * m.view_logits).sum(1), logits, atol=1e-5)
    mean = build_model("viewwise", in_channels=4, num_classes=2, small_input=True).eval()
    with torch.no_grad():
        assert torch.allclose(mean(x), mean.view_logits.mean(1), atol=1e-5)


def test_conv1_adaptation_preserves_grey_response():
    torch.manual_seed(0)
    rgb = torch.nn.Conv2d(3, 64, 7, 2, 3, bias=False)
    grey = torch.rand(1, 1, 32, 32)
    for n in (1, 4):
        conv = torch.nn.Conv2d(n, 64, 7, 2, 3, bias=False)
        conv.weight.data = adapt_conv1(rgb.weight.data, n)
        assert torch.allclose(conv(grey.repeat(1, n, 1, 1)), rgb(grey.repeat(1, 3, 1, 1)), atol=1e-5)
    assert torch.equal(adapt_conv1(rgb.weight.data, 3), rgb.weight.data)


def _fake_torchvision_file(path):
    torch.manual_seed(1)
    sd = ResNet18(3, 1000).state_dict()
    torch.save(sd, path)
    return sd


def test_weights_from_local_file(tmp_path):
    sd = _fake_torchvision_file(tmp_path / "r18.pth")
    model = build_model("resnet18", in_channels=4, num_classes=2, pretrained=str(tmp_path / "r18.pth"))
    assert torch.allclose(model.layer3[0].conv1.weight, sd["layer3.0.conv1.weight"])
    assert torch.allclose(model.conv1.weight, adapt_conv1(sd["conv1.weight"], 4))
    assert model.fc.weight.shape == (2, 512)  # head stays as initialised
    vw = build_model("viewwise", in_channels=4, num_classes=2, pretrained=tmp_path / "r18.pth")
    assert torch.allclose(vw.trunk.conv1.weight, adapt_conv1(sd["conv1.weight"], 1))
    # wrapped state dicts ({"state_dict": ...}, "module." prefixes) are accepted
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "w.pth")
    assert set(load_imagenet_state_dict(tmp_path / "w.pth")) == set(sd)


def test_clear_error_offline_without_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torchhome"))  # empty hub cache
    monkeypatch.setenv("BREASTLAB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match="--weights FILE"):
        build_model("resnet18", in_channels=4, pretrained=True)
    with pytest.raises(WeightsUnavailableError, match="not found"):
        load_imagenet_state_dict(tmp_path / "nope.pth")


def test_hub_cache_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("BREASTLAB_OFFLINE", "1")
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    sd = _fake_torchvision_file(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    model = build_model("resnet18", in_channels=3, num_classes=2, pretrained=True)
    assert torch.equal(model.conv1.weight, sd["conv1.weight"])


def test_model_file_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model("viewwise", in_channels=2, num_classes=2, image_size=32,
                        fusion="attention", small_input=True).eval()
    save_model(tmp_path / "m.pt", model, {"views": ["LCC", "RCC"], "threshold": 0.3})
    loaded, meta = load_model(tmp_path / "m.pt")
    assert meta["name"] == "viewwise" and meta["views"] == ["LCC", "RCC"]
    assert meta["threshold"] == 0.3 and meta["model_kwargs"]["fusion"] == "attention"
    assert meta["breastlab_version"] and read_model_meta(tmp_path / "m.pt")["in_channels"] == 2
    x = torch.randn(2, 2, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), loaded(x), atol=1e-6)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_and_foreign_files_rejected(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"format": "breastlab-model", "payload": _Evil()}, evil)
    with pytest.raises(ModelFileError, match="refused for safety"):
        load_model(evil)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(ModelFileError):
        load_model(raw)
    torch.save(ResNet18(3, 10).state_dict(), tmp_path / "plain.pt")
    with pytest.raises(ModelFileError, match="not a breastlab model file"):
        load_model(tmp_path / "plain.pt")
    with pytest.raises(ValueError):  # metadata must be JSON
        save_model(tmp_path / "x.pt", build_model("mlp", in_channels=1, image_size=8), {"bad": object()})


def test_autoencoder_pretraining_reduces_reconstruction_loss():
    torch.manual_seed(0)
    model = build_model("autoencoder", in_channels=2, num_classes=2, image_size=32)
    x = torch.randn(16, 2, 32, 32).cumsum(-1) / 10  # smooth-ish images
    loader = [(x[i:i + 8], None) for i in (0, 8)]
    losses = model.pretrain(loader, epochs=4, lr=3e-3)
    assert losses[-1] < losses[0]
    with pytest.raises(ValueError, match="unknown model"):
        build_model("vgg", in_channels=4)
