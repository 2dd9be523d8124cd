"""Chang first-order attenuation correction of SPECT images.

Chang's method (Chang, IEEE Trans Nucl Sci 25 (1978) 638) corrects an image reconstructed without
attenuation modelling (FBP, or OSEM/MLEM without mu) by dividing each voxel by the mean, over the
views of the acquisition, of the attenuation factor from that voxel to the detector:

    C(j) = 1 / ( (1/V) sum_v exp(-int_{j -> detector_v} mu dl) )

It is exact for a point source and a first-order correction for extended sources (it
over-corrects the centre a little for FBP of large objects; iterating, "Chang-2", fixes that).

Here the view-averaged attenuation factor is computed with the SPECT projector's own attenuation
(:class:`~petspect.projectors.spect.SpectProjector` without PSF): the back-projection of ones with
attenuation over the back-projection of ones without it, so the rays and the cumulative mu are the
same as in the system model.
"""

from __future__ import annotations

import math

import torch

from petspect.errors import InputError
from petspect.projectors.spect import SpectProjector, check_axial, mu_per_mm_on
from petspect.volume import Volume

#: Default number of views over 360 deg for the average.
DEFAULT_VIEWS = 64


def chang_attenuation_factors(mu_per_mm: torch.Tensor, voxel_mm, angles_deg=None) -> torch.Tensor:
    """Mean attenuation factor over views for each voxel, shape of ``mu_per_mm`` (values in (0, 1]).

    Parameters
    ----------
    mu_per_mm : torch.Tensor, shape (nz, ny, nx)
        Linear attenuation at the photopeak energy, 1/mm; the rotation axis is the grid centre.
    voxel_mm : (dz, dy, dx)
        Voxel size in mm.
    angles_deg : array_like, optional
        Views to average over; default 64 views over 360 deg.
    """
    if angles_deg is None:
        angles_deg = torch.arange(DEFAULT_VIEWS, dtype=torch.float64) * (360.0 / DEFAULT_VIEWS)
    mu = torch.as_tensor(mu_per_mm)
    if mu.ndim != 3:
        raise InputError(f"mu must be (nz, ny, nx), got {tuple(mu.shape)}")
    nz, ny, nx = mu.shape
    radius = math.hypot(ny * voxel_mm[1], nx * voxel_mm[2])  # any radius outside the grid: no PSF here
    dtype = mu.dtype if mu.is_floating_point() else torch.float32
    common = dict(psf=False, dtype=dtype, device=mu.device)
    with_mu = SpectProjector(mu.shape, voxel_mm, angles_deg, radius, None, mu=mu.to(dtype), **common)
    without = SpectProjector(mu.shape, voxel_mm, angles_deg, radius, None, **common)
    ones = torch.ones(with_mu.out_shape, dtype=dtype, device=mu.device)
    num, den = with_mu.adjoint(ones), without.adjoint(ones)
    return torch.where(den > 0, num / den.clamp(min=torch.finfo(dtype).tiny), torch.ones_like(den))


def chang_correct(image: Volume | torch.Tensor, mu: Volume | torch.Tensor, *, voxel_mm=None,
                  angles_deg=None) -> Volume | torch.Tensor:
    """Divide a non-attenuation-corrected SPECT image by the view-averaged attenuation factor.

    Parameters
    ----------
    image : Volume or torch.Tensor, shape (nz, ny, nx)
        Image reconstructed without attenuation modelling.
    mu : Volume or torch.Tensor
        Attenuation at the photopeak energy: a Volume (1/mm or 1/cm; resampled onto ``image``'s grid
        when ``image`` is a Volume) or a tensor in 1/mm on the image grid.
    voxel_mm : (dz, dy, dx), optional
        Needed when ``image`` is a tensor.
    angles_deg : array_like, optional
        Acquisition views (default 64 over 360 deg).

    Returns
    -------
    Volume or torch.Tensor
        The corrected image, same type, grid and unit as ``image``.
    """
    if isinstance(image, Volume):
        check_axial(image, "image")
        mu_t = mu_per_mm_on(mu, image) if isinstance(mu, Volume) else torch.as_tensor(mu)
        factors = chang_attenuation_factors(mu_t.to(image.data.device, torch.float64), image.spacing_mm, angles_deg)
        return image.with_data(image.data / factors.to(image.data.dtype))
    if voxel_mm is None:
        raise InputError("chang_correct: pass voxel_mm with a tensor image")
    mu_t = mu_per_mm_on(mu, mu) if isinstance(mu, Volume) else torch.as_tensor(mu)
    if tuple(mu_t.shape) != tuple(image.shape):
        raise InputError(f"chang_correct: mu shape {tuple(mu_t.shape)} != image shape {tuple(image.shape)}")
    factors = chang_attenuation_factors(mu_t.to(image.device, torch.float64), voxel_mm, angles_deg)
    return image / factors.to(image.dtype)
