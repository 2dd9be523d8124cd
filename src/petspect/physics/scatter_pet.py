"""PET scatter: an analytic, object-dependent single-scatter model and tail fitting.

Model (chosen instead of a Watson/Ollinger single-scatter simulation; documented approximation)
------------------------------------------------------------------------------------------------
For an annihilation on a LOR the two photons together cross the whole chord, of optical depth
``tau = int mu dl`` (the attenuation line integral). To first order (Poisson), the probability that
exactly one Compton interaction happens on the way out is ``tau exp(-tau) = tau * a``; a fraction
``kappa`` of these scattered photons keeps enough energy to pass the lower energy threshold
(Klein-Nishina, :func:`accepted_scatter_fraction`), and is detected on a LOR near the original
one. So the scatter sinogram is modelled as

``s = kappa * B_sigma[ tau * a * P x ]``

with ``P x`` the unattenuated emission line integrals and ``B_sigma`` a Gaussian blur of FWHM
``kernel_fwhm_mm`` along the radial direction (and along the planes of each segment in 3D). It is
non-negative, linear in the activity, grows with the object's size and density (``tau a`` peaks
at ``tau = 1``, i.e. about 10 cm of water). Scatter fractions it gives (whole-body preset, 435 keV
threshold, ``kappa = 0.24``): 16 % for a 10 cm, 26 % for a 20 cm and 33 % for a 30 cm water
cylinder; measured NEMA NU 2 scatter fractions of LSO whole-body systems (20 cm cylinder) are
~35-40 %, the difference being multiple scatter and activity outside the FOV, which this model
leaves out.

Limits: the redistribution kernel is shift-invariant (no dependence on where in the object the
scatter happens, no obliquity or energy dependence of the detection, no multiple scatter,
no scatter from activity outside the FOV, no TOF dependence: for TOF data spread it over the TOF
bins like the trues or fit it per TOF bin). The absolute level is therefore approximate; as in
clinical practice it is rescaled to the measured data by **tail fitting** (:func:`fit_scatter_tails`)
on LORs that miss the object, where only scatter and randoms are measured.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from petspect.errors import InputError
from petspect.physics.attenuation import attenuation_line_integrals, mu_per_mm_tensor
from petspect.physics.resolution import convolve_axis, gaussian_kernel_1d

__all__ = ["accepted_scatter_fraction", "scatter_estimate", "scatter_tail_mask", "fit_scatter_tails"]

ELECTRON_REST_KEV = 510.99895


def accepted_scatter_fraction(lower_threshold_kev: float, energy_kev: float = ELECTRON_REST_KEV) -> float:
    """Fraction of Compton-scattered photons (Klein-Nishina) with energy above the threshold.

    ``E' = E / (1 + (E / m c^2)(1 - cos theta))``; integrates ``dsigma/dOmega ~ P^2 (P + 1/P - sin^2 theta)``
    (``P = E'/E``) over ``cos theta`` for the accepted angles, divided by the integral over all angles.
    """
    if lower_threshold_kev >= energy_kev:
        return 0.0
    k = energy_kev / ELECTRON_REST_KEV
    cos_min = max(-1.0, 1.0 - (energy_kev / lower_threshold_kev - 1.0) / k)
    c = np.linspace(-1.0, 1.0, 20001)
    p = 1.0 / (1.0 + k * (1.0 - c))
    f = p ** 2 * (p + 1.0 / p - (1.0 - c ** 2))
    total = np.trapezoid(f, c)
    sel = c >= cos_min
    return float(np.trapezoid(f[sel], c[sel]) / total)


def _blur_sinogram(y: torch.Tensor, sino_def, fwhm_mm: float) -> torch.Tensor:
    """Gaussian blur along the radial axis and along the planes of each segment of a (P, V, R) sinogram.

    Radially, scatter blurred beyond the FOV is lost (zero padding). Axially a normalised
    convolution is used (see below), so short scanners are not biased low.
    """
    sc = sino_def.scanner
    radial_mm = math.pi * sc.ring_radius_mm / sc.crystals_per_ring  # bin spacing at the centre
    y = convolve_axis(y, gaussian_kernel_1d(fwhm_mm, radial_mm, dtype=y.dtype, device=y.device), -1)
    if sino_def.n_planes == 1:
        return y
    kz = gaussian_kernel_1d(fwhm_mm, 0.5 * sc.ring_spacing_mm, dtype=y.dtype, device=y.device)
    seg = sino_def.plane_segments()
    out = torch.empty_like(y)
    for s in np.unique(seg):
        idx = torch.as_tensor(np.nonzero(seg == s)[0], device=y.device)
        part = y.index_select(0, idx).movedim(0, -1)
        # normalised convolution: scatter that would leave the axial FOV is balanced by scatter
        # from outside it (the object is assumed to continue beyond the FOV)
        weight = convolve_axis(torch.ones_like(part[..., :1, :1, :]), kz, -1)
        out[idx] = (convolve_axis(part, kz, -1) / weight).movedim(-1, 0)
    return out


def scatter_estimate(activity, mu, projector, *, kernel_fwhm_mm: float | None = None,
                     detected_fraction: float | None = None) -> torch.Tensor:
    """Analytic scatter sinogram ``kappa B[tau a P x]`` (non-TOF shape), in the units of ``a P x``.

    Parameters
    ----------
    activity : torch.Tensor or Volume, shape (nz, ny, nx)
        Emission image on the projector's grid (e.g. Bq/mL or a current reconstruction).
    mu : torch.Tensor or Volume
        Attenuation map on the same grid, 1/mm.
    projector : PetSinogramProjector
        The projector (TOF projectors are used without TOF).
    kernel_fwhm_mm : float, optional
        FWHM of the scatter redistribution kernel; default 30 % of the transaxial FOV diameter
        (a heuristic: 234 mm for the whole-body preset).
    detected_fraction : float, optional
        ``kappa``; default :func:`accepted_scatter_fraction` of the scanner's lower threshold.

    Returns
    -------
    torch.Tensor, shape (n_planes, n_views, n_radial)
        Expected scatter in the same units as the attenuated trues ``a P x`` (multiply both by the
        efficiencies and the acquisition time to get counts).
    """
    op = projector.non_tof() if getattr(projector, "tof", False) else projector
    sc = op.scanner
    kappa = (accepted_scatter_fraction(sc.energy_window_kev[0]) if detected_fraction is None
             else float(detected_fraction))
    fwhm = 0.3 * sc.fov_diameter_mm if kernel_fwhm_mm is None else float(kernel_fwhm_mm)
    if not (0 <= kappa <= 1) or fwhm <= 0:
        raise InputError(f"need 0 <= detected_fraction <= 1 and kernel_fwhm_mm > 0, got {kappa}, {fwhm}")
    x = activity.data if hasattr(activity, "data") else torch.as_tensor(activity)
    if bool((x < 0).any()):
        raise InputError("activity must be non-negative")
    tau = attenuation_line_integrals(mu_per_mm_tensor(mu, op.grid), op)
    emission = op.forward(x.to(device=tau.device, dtype=tau.dtype))
    return (kappa * _blur_sinogram(tau * torch.exp(-tau) * emission, op.sino_def, fwhm)).clamp(min=0)


def scatter_tail_mask(attenuation_factors: torch.Tensor, *, threshold: float = 0.995,
                      margin_bins: int = 4) -> torch.Tensor:
    """Bins whose LOR misses the object (``a > threshold``) and are ``margin_bins`` radially away from it."""
    inside = (attenuation_factors <= threshold).to(torch.float32)
    if margin_bins > 0:
        shape = inside.shape
        inside = torch.nn.functional.max_pool1d(inside.reshape(-1, 1, shape[-1]), 2 * margin_bins + 1, stride=1,
                                                padding=margin_bins).reshape(shape)
    return inside == 0


def fit_scatter_tails(prompts: torch.Tensor, scatter_shape: torch.Tensor, tail_mask: torch.Tensor, *,
                      randoms: torch.Tensor | None = None,
                      per_plane: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale a scatter shape to measured data on the tails: ``alpha = sum_tail(y - r) / sum_tail(s)``.

    The ratio of sums is the maximum-likelihood scale for Poisson data ``y ~ P(alpha s + r)``
    restricted to the tails (where the trues vanish).

    Parameters
    ----------
    prompts : torch.Tensor
        Measured prompts, non-TOF shape (a trailing TOF axis is summed).
    scatter_shape : torch.Tensor
        Unscaled scatter (same units as the prompts, i.e. including efficiencies and time).
    tail_mask : torch.Tensor of bool
        Bins used for the fit (see :func:`scatter_tail_mask`).
    randoms : torch.Tensor, optional
        Expected randoms to subtract (non-TOF shape).
    per_plane : bool
        One scale per sinogram plane (planes without tail signal use the global scale).

    Returns
    -------
    (scaled_scatter, scale) : (torch.Tensor, torch.Tensor)
        Scaled scatter (shape of ``scatter_shape``) and the scale (scalar or (n_planes,)).
    """
    y = prompts.sum(-1) if prompts.ndim == scatter_shape.ndim + 1 else prompts
    if y.shape != scatter_shape.shape or tail_mask.shape != scatter_shape.shape:
        raise InputError("prompts, scatter_shape and tail_mask must have the same (non-TOF) shape")
    net = y - (randoms if randoms is not None else 0.0)
    m = tail_mask.to(scatter_shape.dtype)
    num_all, den_all = (net * m).sum(), (scatter_shape * m).sum()
    if float(den_all) <= 0:
        raise InputError("the scatter shape is zero on every tail bin: no tails to fit")
    scale = (num_all / den_all).clamp(min=0)
    if per_plane:
        num = (net * m).flatten(1).sum(1)
        den = (scatter_shape * m).flatten(1).sum(1)
        ok = den > 1e-3 * den_all / den.numel()
        scale = torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), scale).clamp(min=0)
        return scatter_shape * scale.view(-1, *([1] * (scatter_shape.ndim - 1))), scale
    return scatter_shape * scale, scale
