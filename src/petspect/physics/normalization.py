"""PET normalisation: simulated detection efficiency of every sinogram bin, and its correction.

Component-based model (Casey et al., IEEE TNS 42:1074, 1995; Badawi & Marsden, Phys Med Biol
44:571, 1999). The efficiency of a bin is

``n = g(alpha, theta) * sum over its crystal pairs (i, j) of eps_i eps_j``

* ``eps_i = c_i * b_i``: intrinsic crystal efficiencies ``c_i`` drawn log-normal (median 1, log-SD
  ``crystal_log_sd``; crystal-to-crystal spreads of 5-15 % are typical), times a block profile ``b_i``
  that is lower at the block edges (light sharing / mispositioning at the block borders), a parabola
  falling to ``1 - block_edge_drop`` at the edge crystals, transaxially and axially.
* ``g``: geometric (radial "arc") factor of the representative LOR: the photon enters each crystal
  at the angle ``psi`` to its normal (``cos psi = cos alpha cos theta``, alpha the transaxial
  incidence angle ``asin(r / R)``, theta the polar angle), so it sees ``d / cos psi`` of crystal and is
  detected with probability ``1 - exp(-mu d / cos psi)``; non-arc-corrected bins narrow as
  ``cos alpha``. ``g = cos alpha * [(1 - exp(-mu d / cos psi)) / (1 - exp(-mu d))]^2`` (1 at the centre).
* The sum over crystal pairs includes each bin's multiplicity (view mashing and span).

Not modelled: crystal interference (the period of the block pattern in the radial profile), dead
time, pile-up, the axial solid-angle variation within a plane.
"""

from __future__ import annotations

import numpy as np
import torch

from petspect.errors import InputError
from petspect.geometry.pet import PetScanner
from petspect.geometry.sinogram import SinogramDefinition
from petspect.operators.factors import safe_reciprocal

__all__ = ["simulate_crystal_efficiencies", "geometric_factors", "simulate_efficiencies", "normalisation_correction"]


def _block_profile(n: int, block: int, edge_drop: float) -> np.ndarray:
    """Parabolic efficiency profile across each block: 1 at its centre, ``1 - edge_drop`` at its edges."""
    if block <= 1:
        return np.ones(n)
    pos = (np.arange(n) % block) / (block - 1) * 2.0 - 1.0
    return 1.0 - edge_drop * pos ** 2


def simulate_crystal_efficiencies(scanner: PetScanner, *, seed: int | np.random.Generator = 0,
                                  crystal_log_sd: float = 0.1, block_edge_drop: float = 0.15) -> torch.Tensor:
    """Crystal efficiencies ``eps`` (n_rings, crystals_per_ring), float64: log-normal times block profile."""
    if not (0 <= crystal_log_sd < 1 and 0 <= block_edge_drop < 1):
        raise InputError("need 0 <= crystal_log_sd < 1 and 0 <= block_edge_drop < 1")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    c = rng.lognormal(0.0, crystal_log_sd, size=(scanner.n_rings, scanner.crystals_per_ring))
    bt, ba = scanner.block_crystals
    prof = (_block_profile(scanner.n_rings, ba, block_edge_drop)[:, None]
            * _block_profile(scanner.crystals_per_ring, bt, block_edge_drop)[None, :])
    return torch.as_tensor(c * prof)


def geometric_factors(sino_def: SinogramDefinition) -> torch.Tensor:
    """Geometric factor ``g`` (n_planes, n_views, n_radial), float64 (see the module docstring)."""
    sc = sino_def.scanner
    sin_alpha = np.clip(sino_def.radial_positions_mm() / sc.ring_radius_mm, -1.0, 1.0)
    cos_alpha = np.sqrt(1.0 - sin_alpha ** 2)  # (R,)
    za, zb = sino_def.plane_z_mm()
    transaxial = 2.0 * sc.ring_radius_mm * cos_alpha  # chord length between the crystals
    tan_theta = np.abs(zb - za)[:, None] / transaxial[None, :]
    cos_psi = cos_alpha[None, :] / np.sqrt(1.0 + tan_theta ** 2)  # (P, R)
    mu_d = sc.crystal_mu_per_mm * sc.crystal_size_mm[2]
    det = (1.0 - np.exp(-mu_d / cos_psi)) / (1.0 - np.exp(-mu_d))
    g = cos_alpha[None, :] * det ** 2
    return torch.as_tensor(np.broadcast_to(g[:, None, :], sino_def.shape()).copy())


def simulate_efficiencies(sino_def: SinogramDefinition, *, seed: int | np.random.Generator = 0,
                          crystal_log_sd: float = 0.1, block_edge_drop: float = 0.15,
                          crystal_efficiencies: torch.Tensor | None = None, device=None,
                          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Detection efficiency ``n`` of every sinogram bin (n_planes, n_views, n_radial), > 0.

    Parameters
    ----------
    sino_def : SinogramDefinition
    seed : int or numpy Generator
        Seeds the crystal efficiencies (ignored when ``crystal_efficiencies`` is given).
    crystal_log_sd, block_edge_drop : float
        Log-normal spread of crystal efficiencies and relative drop at block edges.
    crystal_efficiencies : torch.Tensor, optional
        Given crystal efficiencies (n_rings, crystals_per_ring) instead of simulated ones.
    device, dtype
        Of the returned tensor.

    Returns
    -------
    torch.Tensor
        Multiply expected true (and scatter) coincidences by it; divide measured data by it
        (:func:`normalisation_correction`) to correct them.
    """
    eps = (simulate_crystal_efficiencies(sino_def.scanner, seed=seed, crystal_log_sd=crystal_log_sd,
                                         block_edge_drop=block_edge_drop)
           if crystal_efficiencies is None else torch.as_tensor(crystal_efficiencies, dtype=torch.float64))
    eff = sino_def.sum_over_members(eps.to(device)) * geometric_factors(sino_def).to(device)
    return eff.to(dtype)


def normalisation_correction(efficiencies: torch.Tensor) -> torch.Tensor:
    """Correction factors ``1 / n`` where ``n > 0`` (0 elsewhere), same shape, device and dtype."""
    return safe_reciprocal(efficiencies)
