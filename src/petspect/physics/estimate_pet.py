"""PET additive terms as a scanner estimates them: randoms from a smoothed delayed window, tail-fitted scatter.

A reconstruction given the exact expected randoms and scatter of the simulation is an oracle (one half of
an "inverse crime"). A scanner has neither: it measures the **delayed coincidence window**, an independent
Poisson sample of the randoms (same mean as the prompts' randoms), and smooths it (randoms vary slowly over
the sinogram) to reduce its noise (Badawi et al, PMB 44:941, 1999, variance reduction of delayed randoms;
Casey & Hoffman, J Comput Assist Tomogr 10:845, 1986); and it computes a **scatter shape** from a first image
and the attenuation map and scales it to the prompts on the sinogram tails, where LORs miss the object and
only scatter and randoms are measured (Watson, IEEE TNS 47:1587, 2000; :func:`fit_scatter_tails`).

Functions here are pure (tensors in, tensors out); the system-level steps (a first reconstruction) are in
:mod:`petspect.simulate.no_inverse_crime`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from petspect.errors import InputError
from petspect.physics.scatter_pet import fit_scatter_tails, scatter_tail_mask

__all__ = ["smooth_sinogram", "smoothed_delayed_randoms", "tail_fitted_scatter"]


def _kernel(sigma_bins: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    r = max(1, int(math.ceil(3.0 * sigma_bins)))
    x = torch.arange(-r, r + 1, dtype=dtype, device=device)
    k = torch.exp(-0.5 * (x / sigma_bins) ** 2)
    return k / k.sum()


def _conv_axis(x: torch.Tensor, k: torch.Tensor, axis: int, circular: bool) -> torch.Tensor:
    xm = x.movedim(axis, -1)
    shape = xm.shape
    flat = xm.reshape(-1, 1, shape[-1])
    r = (k.numel() - 1) // 2
    if circular:
        flat = torch.nn.functional.pad(flat, (r, r), mode="circular")
        out = torch.nn.functional.conv1d(flat, k.view(1, 1, -1))
    else:
        out = torch.nn.functional.conv1d(flat, k.view(1, 1, -1), padding=r)
    return out.reshape(shape).movedim(-1, axis)


def smooth_sinogram(y: torch.Tensor, sigma_bins: Sequence[float]) -> torch.Tensor:
    """Gaussian smoothing of a sinogram ``(planes, views, radial)``, normalised at the borders.

    Views are periodic (0 and 180 degrees meet, circular padding); planes and radial bins are normalised by
    the kernel's weight inside the sinogram (``G y / G 1``), so a flat sinogram stays flat to its edges.

    Parameters
    ----------
    y : torch.Tensor, shape (n_planes, n_views, n_radial)
    sigma_bins : (float, float, float)
        Gaussian SD in bins along planes, views and radial bins (0: no smoothing along that axis).
    """
    if y.ndim != 3:
        raise InputError(f"expected a sinogram (planes, views, radial), got shape {tuple(y.shape)}")
    if len(sigma_bins) != 3 or any(not math.isfinite(s) or s < 0 for s in sigma_bins):
        raise InputError(f"sigma_bins must be three non-negative numbers, got {sigma_bins!r}")
    x = y.to(torch.float64)
    ones = torch.ones_like(x)
    for axis, s in enumerate(sigma_bins):
        if s > 0 and x.shape[axis] > 1:
            k = _kernel(float(s), x.dtype, x.device)
            circular = axis == 1
            if k.numel() > x.shape[axis] and circular:
                k = _kernel(float(s), x.dtype, x.device)[: x.shape[axis] | 1]
            x = _conv_axis(x, k, axis, circular)
            if not circular:
                ones = _conv_axis(ones, k, axis, False)
    return (x / ones.clamp_min(1e-12)).to(y.dtype)


def smoothed_delayed_randoms(delayed: torch.Tensor, *, sigma_bins: Sequence[float] = (1.0, 4.0, 8.0),
                             efficiencies: torch.Tensor | None = None) -> torch.Tensor:
    """Randoms estimate from a delayed-window sinogram: smoothed, with the detector pattern kept.

    With ``efficiencies`` (the normalisation's detector efficiencies, known to the scanner from its
    calibration) the smoothing is applied to ``delayed / efficiencies`` and the result multiplied back, so
    the crystal pattern is not smeared; the total is preserved to the smoothing's border normalisation.

    Parameters
    ----------
    delayed : torch.Tensor, shape (n_planes, n_views, n_radial)
        Delayed coincidences (counts), a Poisson sample of the randoms.
    sigma_bins : (float, float, float)
        Smoothing SD in bins (planes, views, radial).
    efficiencies : torch.Tensor, optional
        Same shape; positive.

    Returns
    -------
    torch.Tensor
        Estimated randoms (counts, same shape, non-negative).
    """
    d = torch.as_tensor(delayed)
    if bool((d < 0).any()):
        raise InputError("delayed counts must be non-negative")
    if efficiencies is None:
        return smooth_sinogram(d.to(torch.float32), sigma_bins).clamp_min(0)
    e = torch.as_tensor(efficiencies, dtype=torch.float32, device=d.device)
    if e.shape != d.shape or bool((e <= 0).any()):
        raise InputError("efficiencies must be positive and of the delayed sinogram's shape")
    return (smooth_sinogram(d.to(torch.float32) / e, sigma_bins) * e).clamp_min(0)


def tail_fitted_scatter(prompts: torch.Tensor, scatter_shape: torch.Tensor, attenuation_factors: torch.Tensor, *,
                        randoms: torch.Tensor | None = None, threshold: float = 0.95,
                        margin_bins: int = 2) -> tuple[torch.Tensor, dict[str, float]]:
    """Scale a scatter shape to the prompts on the sinogram tails (one global scale).

    Parameters
    ----------
    prompts : torch.Tensor, shape (n_planes, n_views, n_radial)
        Measured counts.
    scatter_shape : torch.Tensor
        Unscaled scatter shape (any positive scale), same shape.
    attenuation_factors : torch.Tensor
        ``exp(-int mu)`` per LOR (1 for LORs that miss the object), same shape.
    randoms : torch.Tensor, optional
        The randoms estimate subtracted on the tails.
    threshold, margin_bins
        Tail bins: attenuation factor above ``threshold`` and ``margin_bins`` radially away from the object
        (:func:`petspect.physics.scatter_pet.scatter_tail_mask`).

    Returns
    -------
    (torch.Tensor, dict)
        The scaled scatter and ``{"scale", "tail_bins", "tail_fraction"}``.

    Raises
    ------
    InputError
        When no bin qualifies as a tail (the object fills the field of view).
    """
    mask = scatter_tail_mask(attenuation_factors, threshold=threshold, margin_bins=margin_bins)
    n = int(mask.sum())
    if n == 0:
        raise InputError("no sinogram tail: the object fills the field of view, the scatter cannot be tail-fitted")
    scaled, scale = fit_scatter_tails(prompts, scatter_shape, mask, randoms=randoms)
    return scaled, {"scale": float(scale), "tail_bins": n, "tail_fraction": n / mask.numel()}
