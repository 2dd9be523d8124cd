"""SPECT sparse-view synthesis: acquire 1 of every ``every`` views, predict the others, reconstruct with OSEM.

* :func:`sparse_acquisition` keeps views ``0, every, 2 every, ...`` of an acquisition (their prompts, additive
  estimate, angles and radii), as a camera that stops at those angles only, with the same time per view (so
  ``1 / every`` of the counts): the *sparse-view* data, reconstructed with their own system model;
* :func:`interpolate_views` fills the missing views by linear interpolation along the orbit angle (circular);
* :class:`ViewSynthesiser` refines the interpolation with a residual 2D U-Net on each detector row's sinogram
  ``(views, cols)`` in the Anscombe domain (:func:`~petspect.learned_recon.projection_denoise.anscombe`), trained on
  full-view acquisitions of the training subjects; the acquired views are put back unchanged (data are never
  replaced by predictions), and the additive (TEW scatter) estimate of the missing views is interpolated, being
  smooth along the orbit;
* :func:`synthesised_acquisition` gives the full-view acquisition with the synthesised views, reconstructed with the
  full system model by the same OSEM.

Published: deep-learning view synthesis of 1-in-4 SPECT (e.g. Ryden et al, J Nucl Med 62:528, 2021, Lu-177
SPECT from 1/4 of the views) reports images closer to full-view OSEM than sparse-view OSEM; the study checks this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from petspect.errors import ConfigError, InputError
from petspect.learned_recon.nets import UNet2d, fit_mse
from petspect.learned_recon.projection_denoise import anscombe, inverse_anscombe
from petspect.systems.acquisition import AcquisitionData
from petspect.systems.records import Modality

__all__ = ["acquired_views", "sparse_acquisition", "interpolate_views", "ViewSynthesiser", "SparseSettings",
           "train_view_synthesiser", "synthesised_acquisition"]


def _check(data: AcquisitionData, every: int) -> int:
    if data.modality is not Modality.SPECT:
        raise InputError("sparse-view synthesis is implemented for SPECT projections")
    n = int(data.prompts.shape[0])
    if int(every) < 2 or n % int(every):
        raise InputError(f"{n} views cannot be kept 1 in {every}: the number of views must be a multiple of it (>= 2)")
    return n


def acquired_views(n_views: int, every: int) -> torch.Tensor:
    """Indices ``0, every, 2 every, ...`` of the views a sparse acquisition keeps."""
    return torch.arange(0, int(n_views), int(every))


def sparse_acquisition(data: AcquisitionData, every: int = 4) -> AcquisitionData:
    """The acquisition of 1 in ``every`` views (prompts, additive, angles and radii of those views)."""
    n = _check(data, every)
    keep = acquired_views(n, every)
    sys = data.system
    angles = tuple(float(sys.angles_deg[i]) for i in keep.tolist())
    radii = tuple(float(sys.radius_mm[i]) for i in keep.tolist())
    return replace(data, prompts=data.prompts[keep], additive=None if data.additive is None else data.additive[keep],
                   system=replace(sys, angles_deg=angles, radius_mm=radii),
                   provenance={**data.provenance, "sparse_view": {"every": int(every), "kept": keep.tolist()}})


def interpolate_views(sparse: torch.Tensor, every: int) -> torch.Tensor:
    """Linear interpolation along the (circular) orbit: ``(n / every, rows, cols)`` -> ``(n, rows, cols)``."""
    m = int(sparse.shape[0])
    out = torch.empty((m * every, *sparse.shape[1:]), dtype=sparse.dtype, device=sparse.device)
    nxt = torch.roll(sparse, -1, dims=0)
    for j in range(every):
        w = j / every
        out[j::every] = (1 - w) * sparse + w * nxt
    return out


class ViewSynthesiser(torch.nn.Module):
    """Residual U-Net on Anscombe-transformed row sinograms ``(rows, 1, views, cols)`` of interpolated data."""

    def __init__(self, widths: Sequence[int], every: int, n_views: int) -> None:
        super().__init__()
        self.net = UNet2d(1, 1, widths, residual=True)
        self.widths, self.every, self.n_views = tuple(widths), int(every), int(n_views)

    def forward(self, sparse: torch.Tensor) -> torch.Tensor:
        """Full-view counts ``(n_views, rows, cols)`` from sparse counts; acquired views are kept as measured."""
        interp = interpolate_views(sparse.to(torch.float32), self.every)
        a = anscombe(interp.permute(1, 0, 2)[:, None])
        pred = inverse_anscombe(self.net(a))[:, 0].permute(1, 0, 2)
        keep = acquired_views(interp.shape[0], self.every)
        pred = pred.clone()
        pred[keep] = sparse.to(torch.float32)
        return pred


@dataclass(frozen=True)
class SparseSettings:
    every: int = 4
    widths: tuple[int, ...] = (16, 32, 64)
    epochs: int = 40
    batch_size: int = 8
    lr: float = 2e-3
    seed: int = 0


def _rows(datas: Sequence[AcquisitionData], every: int) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ts = [], []
    for d in datas:
        _check(d, every)
        full = d.prompts.to(torch.float32)
        interp = interpolate_views(full[acquired_views(full.shape[0], every)], every)
        xs.append(anscombe(interp.permute(1, 0, 2)[:, None]))
        ts.append(anscombe(full.permute(1, 0, 2)[:, None]))
    return torch.cat(xs), torch.cat(ts)


def train_view_synthesiser(train: Sequence[AcquisitionData], val: Sequence[AcquisitionData], settings: SparseSettings,
                           log: Any = None) -> tuple[ViewSynthesiser, list[dict[str, float]]]:
    """Train on full-view acquisitions (the sparse input made from them); keep the best validation epoch."""
    if not train or not val:
        raise ConfigError("view synthesis needs training and validation acquisitions")
    n_views = int(train[0].prompts.shape[0])
    x, t = _rows(train, settings.every)
    xv, tv = _rows(val, settings.every)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(settings.seed))
        model = ViewSynthesiser(settings.widths, settings.every, n_views)
    res, hist = fit_mse(model, lambda m, inp: m.net(inp), x, t, xv, tv, epochs=settings.epochs,
                        batch_size=settings.batch_size, lr=settings.lr, seed=settings.seed,
                        description="view synthesis", val_key="val_mse_anscombe")
    if log:
        log(f"  view synthesis: validation MSE {min(res.val):.4g} (Anscombe units; linear interpolation "
            f"{float(((xv - tv) ** 2).mean()):.4g})")
    return model, hist


def synthesised_acquisition(model: ViewSynthesiser, full_geometry: AcquisitionData, sparse: AcquisitionData) -> AcquisitionData:
    """The full-view acquisition whose missing views are synthesised from ``sparse`` (measured views kept).

    ``full_geometry`` gives the full orbit (its prompts are not used: only its system, grid and calibration).
    """
    n = _check(full_geometry, model.every)
    if n != model.n_views or sparse.prompts.shape[0] * model.every != n:
        raise InputError(f"the synthesiser makes {model.n_views} views from 1 in {model.every}; the data have "
                         f"{sparse.prompts.shape[0]} of {n}")
    with torch.no_grad():
        prompts = model(sparse.prompts)
    additive = None if sparse.additive is None else interpolate_views(sparse.additive.to(torch.float32), model.every)
    return replace(full_geometry, prompts=prompts, additive=additive,
                   provenance={**full_geometry.provenance, "synthesised_views": {"every": model.every}})
