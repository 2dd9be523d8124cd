"""Projection-domain denoising: low-count PET sinograms or SPECT projections -> full-count, then the usual OSEM.

Each 2D sinogram (PET: one plane ``(views, radial)`` per plane and TOF bin; SPECT: one detector row
``(views, cols)``) goes through the Anscombe transform ``a(y) = 2 sqrt(y + 3/8)``, which makes Poisson counts
approximately unit-variance Gaussian (Anscombe, Biometrika 35:246, 1948), then a residual 2D U-Net trained with
the mean squared error to the Anscombe transform of the *same scan's full-count prompts scaled to the input's
level* (``f y_full``, ``f`` the input's count fraction): the network removes noise and keeps the input's count
scale. The result returns through the asymptotically unbiased inverse ``y = a^2 / 4 - 1/8`` (Anscombe 1948;
Makitalo & Foi, IEEE TIP 20:99, 2011 discuss the exact unbiased inverse, which differs below ~1 count), clipped
at 0, and is reconstructed with the input's own system model and additive estimate by the same
:func:`petspect.recon.reconstruct.reconstruct` as every other method. Training pairs are the cohort's paired
levels (the low dose is a thinning of the full dose, so the pairs share the anatomy and the noise of the
full-dose scan).

Sanaat et al (J Nucl Med 61:1388, 2020) found sinogram-domain denoising of low-dose brain PET better than image
domain (PSNR 37.3 vs 31.7 dB); the study reports which wins here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from petspect.errors import ConfigError, InputError
from petspect.learned_recon.cases import ReconCase
from petspect.learned_recon.nets import UNet2d, fit_mse
from petspect.systems.records import Modality

__all__ = ["anscombe", "inverse_anscombe", "to_planes", "from_planes", "ProjectionSettings", "ProjectionDenoiser",
           "train_projection_denoiser", "denoise_projections"]


def anscombe(y: torch.Tensor) -> torch.Tensor:
    """``2 sqrt(y + 3/8)`` (counts -> approximately unit-variance values)."""
    return 2.0 * torch.sqrt(y.clamp_min(0) + 0.375)


def inverse_anscombe(a: torch.Tensor) -> torch.Tensor:
    """``a^2 / 4 - 1/8``, clipped at 0 (the asymptotically unbiased inverse)."""
    return (a.clamp_min(0) ** 2 / 4.0 - 0.125).clamp_min(0)


def to_planes(proj: torch.Tensor, modality: Modality) -> torch.Tensor:
    """Projection data as a batch of 2D sinograms ``(N, 1, views, bins)``.

    PET ``(planes, views, radial[, tof])`` -> one per plane (and TOF bin); SPECT ``(views, rows, cols)`` -> one per
    detector row.
    """
    if modality is Modality.PET:
        if proj.ndim == 4:  # TOF: (planes, views, radial, tof) -> (planes * tof, views, radial)
            proj = proj.permute(0, 3, 1, 2).reshape(-1, proj.shape[1], proj.shape[2])
        return proj[:, None]
    return proj.permute(1, 0, 2)[:, None]


def from_planes(planes: torch.Tensor, like: torch.Tensor, modality: Modality) -> torch.Tensor:
    """Inverse of :func:`to_planes` (``like`` gives the shape)."""
    p = planes[:, 0]
    if modality is Modality.PET:
        if like.ndim == 4:
            n, v, r, t = like.shape
            return p.reshape(n, t, v, r).permute(0, 2, 3, 1).contiguous()
        return p.contiguous()
    return p.permute(1, 0, 2).contiguous()


@dataclass(frozen=True)
class ProjectionSettings:
    widths: tuple[int, ...] = (16, 32, 64)
    epochs: int = 30
    batch_size: int = 8
    lr: float = 2e-3
    seed: int = 0


class ProjectionDenoiser(torch.nn.Module):
    """A residual U-Net on Anscombe-transformed sinograms, with the count fraction it was trained for."""

    def __init__(self, widths: Sequence[int], count_fraction: float) -> None:
        super().__init__()
        self.net = UNet2d(1, 1, widths, residual=True)
        self.widths = tuple(widths)
        self.count_fraction = float(count_fraction)

    def forward(self, counts: torch.Tensor, modality: Modality) -> torch.Tensor:
        """Denoised counts at the input's level, same shape as ``counts``."""
        a = anscombe(to_planes(counts.to(torch.float32), modality))
        return from_planes(inverse_anscombe(self.net(a)), counts, modality)


def _pairs(cases: Sequence[ReconCase]) -> tuple[torch.Tensor, torch.Tensor, float]:
    xs, ts, fractions = [], [], set()
    for c in cases:
        if c.full is None:
            raise ConfigError(f"subject {c.subject} has no full-count level to train on")
        f = float(c.data.calibration.count_fraction) / float(c.full.calibration.count_fraction)
        fractions.add(round(f, 6))
        xs.append(anscombe(to_planes(c.data.prompts.to(torch.float32), c.data.modality)))
        ts.append(anscombe(to_planes(c.full.prompts.to(torch.float32) * f, c.data.modality)))
    if len(fractions) != 1:
        raise ConfigError(f"the training subjects have different count fractions {sorted(fractions)}")
    return torch.cat(xs), torch.cat(ts), fractions.pop()


def train_projection_denoiser(train: Sequence[ReconCase], val: Sequence[ReconCase], settings: ProjectionSettings,
                              log: Any = None) -> tuple[ProjectionDenoiser, list[dict[str, float]]]:
    """Train on the training subjects' paired levels; the epoch with the lowest validation MSE (Anscombe units)
    is kept (:func:`petspect.learned_recon.nets.fit_mse`)."""
    x, t, fraction = _pairs(train)
    xv, tv, fv = _pairs(val)
    if abs(fv - fraction) > 1e-6:
        raise ConfigError(f"validation count fraction {fv} differs from training's {fraction}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(settings.seed))
        model = ProjectionDenoiser(settings.widths, fraction)
    res, hist = fit_mse(model, lambda m, inp: m.net(inp), x, t, xv, tv, epochs=settings.epochs,
                        batch_size=settings.batch_size, lr=settings.lr, seed=settings.seed,
                        description="projection denoiser", val_key="val_mse_anscombe")
    if log:
        log(f"  projection denoiser: best epoch {res.best_epoch + 1 if res.best_epoch is not None else '-'} "
            f"of {len(hist)}, validation MSE {min(res.val):.4g} (Anscombe units; identity {validate_identity(xv, tv):.4g})")
    return model, hist


def validate_identity(xv: torch.Tensor, tv: torch.Tensor) -> float:
    """Validation MSE of the input itself (what the network must beat)."""
    return float(((xv - tv) ** 2).mean())


def denoise_projections(model: ProjectionDenoiser, case: ReconCase, *, check_fraction: bool = True):
    """The case's acquisition with denoised prompts (same level, system and additive term).

    ``check_fraction``: refuse data of another simulated count fraction than the model's (False when the caller
    has checked the count level instead, :func:`petspect.learned_recon.models.check_compatible`).
    """
    f = float(case.data.calibration.count_fraction)
    if check_fraction and abs(f - model.count_fraction) > 1e-6 * max(1.0, f):
        raise InputError(f"the denoiser was trained for count fraction {model.count_fraction:g}; the data have {f:g}")
    with torch.no_grad():
        den = model(case.data.prompts, case.data.modality)
    return replace(case.data, prompts=den)


