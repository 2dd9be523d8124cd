"""Training losses: pixel losses, SSIM, weighted combinations and adversarial (GAN) losses.

Every loss takes ``(prediction, target)`` of shape ``(B, C, *spatial)`` (2D or 3D) in normalised units and
returns a scalar tensor on their device. A combination is written as a mapping of names to weights,
e.g. ``{"l1": 1.0, "ssim": 0.2}``, which is also how it is saved in a model's ``config.json``.

The pixel losses (``l1``, ``charbonnier``, ``mse``) also take an optional voxel weight map of the target's
shape and then return the weighted mean ``sum(w * l) / sum(w)``: with weights raised in lesions this is a
lesion-aware loss (the network pays for flattening small hot spots as much as for noise in large organs).
SSIM has no voxel weights; it ignores the map.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from petspect.errors import ConfigError

LOSSES = ("l1", "charbonnier", "mse", "ssim")
GAN_LOSSES = ("lsgan", "bce")


def _weighted_mean(values: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values``, or ``sum(w * values) / sum(w)`` with a voxel weight map broadcastable to it."""
    if weight is None:
        return values.mean()
    w = weight.to(values.dtype).expand_as(values)
    return (w * values).sum() / w.sum().clamp_min(torch.finfo(values.dtype).tiny)


class PixelLoss(nn.Module):
    """Voxel-wise loss ``l1`` (``|p - t|``) or ``mse`` (``(p - t)^2``), averaged with optional voxel weights."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind not in ("l1", "mse"):
            raise ConfigError(f"PixelLoss kind must be 'l1' or 'mse', got {kind!r}")
        self.kind = kind

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        d = pred - target
        return _weighted_mean(d.abs() if self.kind == "l1" else d * d, weight)


class CharbonnierLoss(nn.Module):
    """``mean(sqrt((p - t)^2 + eps^2)) - eps``: a differentiable L1 (Charbonnier et al, ICIP 1994).

    ``eps`` is in normalised intensity units; the ``- eps`` makes the loss 0 for equal images. With a
    voxel weight map the mean is weighted (module docstring).
    """

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        if not eps > 0:
            raise ConfigError(f"Charbonnier eps must be positive, got {eps!r}")
        self.eps = float(eps)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return _weighted_mean(torch.sqrt((pred - target) ** 2 + self.eps**2) - self.eps, weight)


class SSIMLoss(nn.Module):
    """``1 - SSIM`` with MONAI's ``SSIMLoss`` (Gaussian window 11, sigma 1.5), data range set per batch.

    The dynamic range is ``max - min`` of the target batch (detached), so the loss works for any
    normalisation. Patches must be at least 11 voxels on every spatial axis.
    """

    def __init__(self, spatial_dims: int, win_size: int = 11) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.win_size = win_size

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        from monai.losses import SSIMLoss as MonaiSSIM

        drange = float((target.max() - target.min()).detach())
        loss = MonaiSSIM(self.spatial_dims, data_range=drange if drange > 0 else 1.0, win_size=self.win_size)
        return loss(pred.float(), target.float())


class CombinedLoss(nn.Module):
    """Weighted sum of named losses; ``last_terms`` holds the unweighted terms of the last call (floats)."""

    def __init__(self, terms: Mapping[str, nn.Module], weights: Mapping[str, float]) -> None:
        super().__init__()
        self.terms = nn.ModuleDict(dict(terms))
        self.weights = dict(weights)
        self.last_terms: dict[str, float] = {}

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Weighted sum of the terms; ``weight`` is an optional voxel weight map (pixel terms only)."""
        total = pred.new_zeros(())
        self.last_terms = {}
        for name, term in self.terms.items():
            value = term(pred, target, weight)
            self.last_terms[name] = float(value.detach())
            total = total + self.weights[name] * value
        return total


def build_loss(weights: Mapping[str, float], *, spatial_dims: int, charbonnier_eps: float = 1e-3) -> CombinedLoss:
    """Build a weighted combination of pixel and structural losses.

    Parameters
    ----------
    weights : mapping name -> float
        Names from ``("l1", "charbonnier", "mse", "ssim")``; weights must be non-negative, one positive.
    spatial_dims : {2, 3}
        For the SSIM window.
    charbonnier_eps : float
        Charbonnier smoothing in normalised units.
    """
    if not weights:
        raise ConfigError("the loss needs at least one term, e.g. {'l1': 1.0}")
    unknown = set(weights) - set(LOSSES)
    if unknown:
        raise ConfigError(f"unknown loss terms {sorted(unknown)}; choose from {LOSSES}")
    if any(not math.isfinite(w) or w < 0 for w in weights.values()) or not any(w > 0 for w in weights.values()):
        raise ConfigError(f"loss weights must be finite, non-negative and not all zero, got {dict(weights)}")
    make = {"l1": lambda: PixelLoss("l1"), "mse": lambda: PixelLoss("mse"),
            "charbonnier": lambda: CharbonnierLoss(charbonnier_eps), "ssim": lambda: SSIMLoss(spatial_dims)}
    return CombinedLoss({n: make[n]() for n in weights}, {n: float(w) for n, w in weights.items()})


class GANLoss(nn.Module):
    """Adversarial loss on raw discriminator logits.

    ``lsgan``: least squares, ``mean((D - label)^2)`` (Mao et al, ICCV 2017); ``bce``: binary cross
    entropy with logits (Goodfellow et al, 2014). Labels are 1 for real and 0 for fake.
    """

    def __init__(self, kind: str = "lsgan") -> None:
        super().__init__()
        if kind not in GAN_LOSSES:
            raise ConfigError(f"unknown GAN loss {kind!r}; choose one of {GAN_LOSSES}")
        self.kind = kind

    def forward(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        label = torch.full_like(logits, 1.0 if real else 0.0)
        if self.kind == "lsgan":
            return nn.functional.mse_loss(logits.float(), label.float())
        return nn.functional.binary_cross_entropy_with_logits(logits.float(), label.float())
