"""Grad-CAM heat maps and per-view attribution for four-view models.

Grad-CAM (Selvaraju et al. 2017) is computed with a forward hook on the target layer
(default ``layer4``, the last residual stage of the ResNet-18) and
``torch.autograd.grad``; no backward hooks, so in-place ReLUs are harmless. Channel
weights are the spatial means of the gradients, the map is ReLU(Σ_c w_c A_c), upsampled
bilinearly to the input size and min-max scaled to [0, 1] per case (the same
post-processing as ``monai.visualize.GradCAM``; the tests check they agree).

Which view drove the decision:

* **stacked** model (the N views are the N input channels): the Grad-CAM map is one
  spatial map shared by all views, so it cannot tell views apart. The per-view share is
  instead taken from the input: gradient × input (default; one backward pass, shared with
  Grad-CAM) or integrated gradients from a zero (= mean, after z-scoring) baseline,
  summed over the pixels of each channel; shares are |sum_v| / Σ|sum|. The signed sums
  are kept too (positive = evidence for the target class).
* **view-wise** model (one shared backbone per view, then fusion): if the model exposes
  ``view_logits`` (a method returning ``[B, N, K]`` or an attribute set by ``forward``),
  a view's contribution is its target-class logit margin (logit of the target class minus
  the mean of the other logits); shares are the positive parts normalised (uniform when
  no view argues for the target). If the target layer's activations come as ``[B·N, C,
  h, w]`` (one backbone pass per view), each view gets its own Grad-CAM map.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_TARGET_LAYER = "layer4"


@dataclass
class Explanation:
    """Explanation of one case."""

    case_id: str
    views: list[str]
    image: np.ndarray            # [N, H, W] model input (preprocessed)
    cam: np.ndarray              # [N, H, W] in [0, 1] (stacked: the same map N times)
    shares: np.ndarray           # [N] per-view share of the attribution, sums to 1
    signed: np.ndarray           # [N] signed per-view attribution (method units)
    prob: np.ndarray             # [K] class probabilities
    target: int                  # class explained
    label: int | None = None
    method: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def top_view(self) -> str:
        return self.views[int(np.argmax(self.shares))]


def find_layer(model: nn.Module, name: str = DEFAULT_TARGET_LAYER) -> nn.Module:
    """The sub-module called ``name``, or the last one whose dotted name ends with it
    (e.g. ``backbone.layer4`` in a view-wise model)."""
    modules = dict(model.named_modules())
    if name in modules:
        return modules[name]
    hits = [m for n, m in modules.items() if n.endswith("." + name)]
    if not hits:
        raise KeyError(f"no layer {name!r} in {type(model).__name__}")
    return hits[-1]


def logits_to_prob(out: torch.Tensor) -> torch.Tensor:
    """``[B, K]`` probabilities from ``[B, K]`` logits (K = 1: a sigmoid logit → 2 columns)."""
    if out.ndim == 1:
        out = out[:, None]
    if out.shape[1] == 1:
        p = torch.sigmoid(out[:, 0])
        return torch.stack([1 - p, p], dim=1)
    return torch.softmax(out, dim=1)


def _target_score(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-case score whose gradient Grad-CAM uses (a single sigmoid logit is negated
    for class 0)."""
    if out.ndim == 1:
        out = out[:, None]
    if out.shape[1] == 1:
        sign = torch.where(target == 1, 1.0, -1.0).to(out.dtype)
        return out[:, 0] * sign
    return out.gather(1, target[:, None])[:, 0]


def _normalise(maps: torch.Tensor) -> torch.Tensor:
    """Min-max scale each map to [0, 1] (a flat map becomes zeros)."""
    flat = maps.flatten(1)
    lo, hi = flat.min(1, keepdim=True)[0], flat.max(1, keepdim=True)[0]
    out = (flat - lo) / (hi - lo).clamp_min(1e-12)
    return out.view_as(maps)


def _model_output(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    if isinstance(out, dict):
        out = out.get("logits", next(iter(out.values())))
    elif isinstance(out, (tuple, list)):
        out = out[0]
    return out


def gradcam(model: nn.Module, x: torch.Tensor, target_layer: str = DEFAULT_TARGET_LAYER,
            class_idx: int | Sequence[int] | None = None) -> dict[str, torch.Tensor]:
    """Grad-CAM for a batch ``x`` of ``[B, N, H, W]``.

    Returns ``{"cam": [B, H, W] or [B, N, H, W] (view-wise backbone), "prob": [B, K],
    "target": [B], "input_grad": [B, N, H, W], "raw_max": [B]}``. ``class_idx`` None
    explains the predicted class.
    """
    model.eval()
    layer = find_layer(model, target_layer)
    acts: list[torch.Tensor] = []

    def hook(_m: nn.Module, _i: Any, o: Any) -> None:
        acts.append(o[0] if isinstance(o, (tuple, list)) else o)

    handle = layer.register_forward_hook(hook)
    try:
        xg = x.detach().clone().float().requires_grad_(True)
        with torch.enable_grad():
            out = _model_output(model, xg)
            prob = logits_to_prob(out.detach())
            b = x.shape[0]
            target = _targets(prob, class_idx)
            score = _target_score(out, target)
            grads = torch.autograd.grad(score.sum(), [*acts, xg], allow_unused=True)
    finally:
        handle.remove()
    g_in = grads[-1] if grads[-1] is not None else torch.zeros_like(xg)
    cams, maxes = [], []
    for act, g_act in zip(acts, grads[:-1]):
        if g_act is None:
            g_act = torch.zeros_like(act)
        weights = g_act.mean(dim=(2, 3), keepdim=True)
        cam = F.relu((weights * act.detach()).sum(1))           # [B', h, w]
        maxes.append(cam.flatten(1).max(1)[0])
        cam = F.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear",
                            align_corners=False)[:, 0]
        cams.append(_normalise(cam))
    if len(cams) == 1:
        cam, raw_max = cams[0], maxes[0]
        if cam.shape[0] != b and cam.shape[0] % b == 0:          # batched per-view backbone
            n = cam.shape[0] // b
            cam = cam.view(b, n, *cam.shape[-2:])
            raw_max = raw_max.view(b, n).max(1)[0]
    else:                                                        # one layer call per view
        cam = torch.stack(cams, dim=1)
        raw_max = torch.stack(maxes, dim=1).max(1)[0]
    return {"cam": cam, "prob": prob, "target": target, "input_grad": g_in.detach(),
            "raw_max": raw_max}


def channel_attribution(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                        method: str = "grad_x_input", steps: int = 16,
                        input_grad: torch.Tensor | None = None) -> torch.Tensor:
    """Signed per-channel (= per-view) attribution ``[B, N]`` toward ``target``.

    ``"grad_x_input"``: Σ_pixels x · ∂score/∂x. ``"integrated_gradients"``: Riemann
    (midpoint) integrated gradients from a zero baseline with ``steps`` steps.
    """
    if method == "grad_x_input":
        if input_grad is None:
            xg = x.detach().clone().float().requires_grad_(True)
            with torch.enable_grad():
                score = _target_score(_model_output(model, xg), target)
                (input_grad,) = torch.autograd.grad(score.sum(), [xg])
        return (input_grad * x).sum(dim=(2, 3))
    if method == "integrated_gradients":
        total = torch.zeros_like(x, dtype=torch.float32)
        for k in range(steps):
            alpha = (k + 0.5) / steps
            xs = (alpha * x).detach().float().requires_grad_(True)
            with torch.enable_grad():
                score = _target_score(_model_output(model, xs), target)
                (g,) = torch.autograd.grad(score.sum(), [xs])
            total += g
        return (x * total / steps).sum(dim=(2, 3))
    raise ValueError(f"unknown attribution method {method!r}")


def _view_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """Per-view logits ``[B, N, K]`` of a view-wise model (``None`` for other models).

    ``models.viewwise.ViewwiseResNet`` sets ``model.view_logits`` on every forward pass;
    a callable ``view_logits(x)`` is accepted too."""
    if not hasattr(model, "view_logits"):
        return None
    with torch.no_grad():
        vl = getattr(model, "view_logits")
        if callable(vl):
            out = vl(x)
        else:
            _model_output(model, x)                     # refresh for this batch
            out = getattr(model, "view_logits", None)
    if out is None:
        return None
    out = torch.as_tensor(out).detach()
    if out.ndim == 2:                                  # [B, N] single logit per view
        out = out[..., None]
    return out


def view_shares_from_logits(view_logits: torch.Tensor, target: torch.Tensor
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed per-view margins ``[B, N]`` and shares of a view-wise model's logits."""
    vl = view_logits.float()
    if vl.shape[-1] == 1:
        sign = torch.where(target == 1, 1.0, -1.0)[:, None]
        margin = vl[..., 0] * sign
    else:
        k = vl.shape[-1]
        tgt = vl.gather(2, target[:, None, None].expand(-1, vl.shape[1], 1))[..., 0]
        others = (vl.sum(-1) - tgt) / max(k - 1, 1)
        margin = tgt - others
    pos = margin.clamp_min(0)
    denom = pos.sum(1, keepdim=True)
    uniform = torch.full_like(pos, 1.0 / pos.shape[1])
    shares = torch.where(denom > 0, pos / denom.clamp_min(1e-12), uniform)
    return margin, shares


def _shares(signed: torch.Tensor) -> torch.Tensor:
    mag = signed.abs()
    denom = mag.sum(1, keepdim=True)
    uniform = torch.full_like(mag, 1.0 / mag.shape[1])
    return torch.where(denom > 0, mag / denom.clamp_min(1e-30), uniform)


def explain(model: nn.Module, x: torch.Tensor, views: Sequence[str],
            case_ids: Sequence[str] | None = None, labels: Sequence[int] | None = None, *,
            target_layer: str = DEFAULT_TARGET_LAYER,
            class_idx: int | Sequence[int] | None = None,
            attribution: str = "grad_x_input", ig_steps: int = 16) -> list[Explanation]:
    """Grad-CAM and per-view shares for a batch ``x`` ``[B, N, H, W]``.

    ``class_idx``: the class to explain, one for all or one per case (e.g. the decision
    at the operating threshold); ``None`` explains the most probable class.
    """
    if x.ndim == 3:
        x = x[None]
    b, n = x.shape[:2]
    try:
        res = gradcam(model, x, target_layer, class_idx)
        cam_note = f"Grad-CAM on {target_layer}"
    except KeyError:                                  # e.g. mlp / autoencoder baselines
        res = _no_cam(model, x, class_idx)
        cam_note = f"no {target_layer} layer: no Grad-CAM map"
    target = res["target"]
    vl = _view_logits(model, x)
    if vl is not None and vl.shape[1] == n:
        signed, shares = view_shares_from_logits(vl, target)
        method = "view-wise logits"
    else:
        signed = channel_attribution(model, x, target, attribution, ig_steps,
                                     input_grad=res["input_grad"]
                                     if attribution == "grad_x_input" else None)
        shares = _shares(signed)
        method = ("gradient × input" if attribution == "grad_x_input"
                  else f"integrated gradients ({ig_steps} steps)")
    cam = res["cam"]
    if cam.ndim == 3:
        cam = cam[:, None].expand(-1, n, -1, -1)
    out = []
    for i in range(b):
        out.append(Explanation(
            case_id=str(case_ids[i]) if case_ids is not None else str(i),
            views=list(views), image=x[i].detach().float().cpu().numpy(),
            cam=cam[i].detach().cpu().numpy(), shares=shares[i].cpu().numpy(),
            signed=signed[i].detach().cpu().numpy(), prob=res["prob"][i].cpu().numpy(),
            target=int(target[i]),
            label=None if labels is None or labels[i] is None or int(labels[i]) < 0
            else int(labels[i]),
            method=method, extra={"cam": cam_note},
        ))
    return out


def _targets(prob: torch.Tensor, class_idx: int | Sequence[int] | None) -> torch.Tensor:
    if class_idx is None:
        return prob.argmax(1)
    t = torch.as_tensor(class_idx, dtype=torch.long).reshape(-1)
    return t.expand(prob.shape[0]).clone() if t.numel() == 1 else t


def _no_cam(model: nn.Module, x: torch.Tensor,
            class_idx: int | Sequence[int] | None) -> dict[str, Any]:
    """Probabilities, target and input gradient for a model without a conv target layer."""
    model.eval()
    xg = x.detach().clone().float().requires_grad_(True)
    with torch.enable_grad():
        out = _model_output(model, xg)
        prob = logits_to_prob(out.detach())
        target = _targets(prob, class_idx)
        (g,) = torch.autograd.grad(_target_score(out, target).sum(), [xg])
    return {"cam": torch.zeros(x.shape[0], *x.shape[-2:]), "prob": prob, "target": target,
            "input_grad": g.detach(), "raw_max": torch.zeros(x.shape[0])}
