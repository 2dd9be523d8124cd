"""PET random coincidences in projection space.

Two uncorrelated photons detected within the coincidence window ``2 tau`` form a random
coincidence. For crystals with singles rates ``S_i`` and ``S_j`` (counts/s) the randoms rate is
``R_ij = 2 tau S_i S_j`` (Hoffman et al., J Comput Assist Tomogr 5:391, 1981; Cherry, Sorenson &
Phelps, Physics in Nuclear Medicine, ch. 18), with ``2 tau`` the full coincidence window
(``PetScanner.coincidence_window_ns``). A sinogram bin sums the rates of its crystal pairs.
Randoms are uniform in time, so in TOF data they spread evenly over the TOF bins.
"""

from __future__ import annotations

import torch

from petspect.errors import InputError
from petspect.geometry.sinogram import SinogramDefinition

__all__ = ["randoms_from_singles", "uniform_randoms", "randoms_to_tof"]


def randoms_from_singles(singles_cps: torch.Tensor, sino_def: SinogramDefinition, *,
                         duration_s: float = 1.0) -> torch.Tensor:
    """Expected randoms per sinogram bin: ``duration * sum over pairs of 2 tau S_i S_j``.

    Parameters
    ----------
    singles_cps : torch.Tensor, shape (n_rings, crystals_per_ring)
        Singles rate of every crystal, counts/s (non-negative).
    sino_def : SinogramDefinition
        The binning; ``2 tau`` is its scanner's coincidence window.
    duration_s : float
        Acquisition time, s.

    Returns
    -------
    torch.Tensor, shape (n_planes, n_views, n_radial)
        Expected random counts (device and dtype of ``singles_cps``).
    """
    singles = torch.as_tensor(singles_cps)
    if bool((singles < 0).any()) or duration_s <= 0:
        raise InputError("singles rates must be non-negative and duration_s positive")
    window_s = sino_def.scanner.coincidence_window_s
    return sino_def.sum_over_members(singles) * (window_s * float(duration_s))


def uniform_randoms(sino_def: SinogramDefinition, total_counts: float, *, device=None,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Randoms spread in proportion to each bin's number of crystal pairs, summing to ``total_counts``.

    This is :func:`randoms_from_singles` with equal singles everywhere (so span and mashing are
    respected); shape (n_planes, n_views, n_radial).
    """
    if total_counts < 0:
        raise InputError(f"total_counts must be non-negative, got {total_counts}")
    ones = torch.ones(sino_def.scanner.n_rings, sino_def.scanner.crystals_per_ring, dtype=torch.float64, device=device)
    mult = sino_def.sum_over_members(ones)
    return (mult * (float(total_counts) / float(mult.sum()))).to(dtype)


def randoms_to_tof(randoms: torch.Tensor, n_tof_bins: int) -> torch.Tensor:
    """Spread non-TOF randoms evenly over ``n_tof_bins`` TOF bins (appends the TOF axis)."""
    if n_tof_bins < 1:
        raise InputError(f"n_tof_bins must be >= 1, got {n_tof_bins}")
    return (randoms / n_tof_bins)[..., None].expand(*randoms.shape, n_tof_bins).contiguous()
