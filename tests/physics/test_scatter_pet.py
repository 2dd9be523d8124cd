"""Analytic PET scatter model and tail fitting."""

from __future__ import annotations

import pytest
import torch

from petspect.errors import InputError
from petspect.geometry.pet import ImageGrid, PetScanner
from petspect.geometry.sinogram import SinogramDefinition
from petspect.physics.attenuation import attenuation_factors
from petspect.physics.scatter_pet import (accepted_scatter_fraction, fit_scatter_tails, scatter_estimate,
                                          scatter_tail_mask)
from petspect.projectors.pet import PetSinogramProjector

MU_WATER_PER_MM = 0.0096


def _setup(n_rings=1):
    """2D: 128 crystals, 6 mm voxels; 3D (kept small for speed): 96 crystals, 9 mm voxels."""
    n_crystals, voxel, n_vox = (128, 6.0, 48) if n_rings == 1 else (96, 9.0, 32)
    sc = PetScanner("toy", ring_radius_mm=200.0, crystals_per_ring=n_crystals, n_rings=n_rings,
                    crystal_size_mm=(4, 4, 20), ring_spacing_mm=4.0, fov_diameter_mm=300.0)
    grid = ImageGrid((n_rings, n_vox, n_vox), (4.0, voxel, voxel))
    return PetSinogramProjector(sc, SinogramDefinition(sc, span=3 if n_rings > 1 else 1), grid), grid


def _cylinder(grid, radius):
    return grid.occupancy(lambda p: p[..., 0] ** 2 + p[..., 1] ** 2 < radius ** 2, supersample=2)


def test_klein_nishina_acceptance():
    """Threshold at 511 keV accepts nothing; 0 keV accepts all; 435 keV keeps theta < 34.4 deg (~24 %)."""
    assert accepted_scatter_fraction(511.0) == 0.0
    assert accepted_scatter_fraction(1e-3) == pytest.approx(1.0, abs=1e-3)
    f435, f350 = accepted_scatter_fraction(435.0), accepted_scatter_fraction(350.0)
    assert 0.2 < f435 < 0.3 and f350 > f435


@pytest.mark.slow
@pytest.mark.parametrize("n_rings", [1, 3])
def test_scatter_nonnegative_linear_and_grows_with_object(n_rings):
    op, grid = _setup(n_rings)
    fractions = []
    for radius in (40.0, 80.0, 120.0):
        occ = _cylinder(grid, radius)
        s = scatter_estimate(occ, MU_WATER_PER_MM * occ, op)
        trues = attenuation_factors(MU_WATER_PER_MM * occ, op) * op(occ)
        assert float(s.min()) >= 0
        fractions.append(float(s.sum() / (s.sum() + trues.sum())))
    assert fractions[0] < fractions[1] < fractions[2]
    assert 0.15 < fractions[1] < 0.4  # 16 cm water: clinical range
    s2 = scatter_estimate(3.0 * occ, MU_WATER_PER_MM * occ, op)
    assert torch.allclose(s2, 3.0 * s, rtol=1e-5)
    # no attenuating medium, no scatter
    assert float(scatter_estimate(occ, torch.zeros_like(occ), op).abs().max()) == 0.0
    # scatter extends outside the object (tails) unlike the trues
    mask = scatter_tail_mask(attenuation_factors(MU_WATER_PER_MM * occ, op))
    assert mask.any() and float(s[mask].sum()) > 0 and float(trues[mask].abs().max()) < 1e-6


def test_tail_fit_recovers_known_scale():
    op, grid = _setup()
    occ = _cylinder(grid, 70.0)
    mu = MU_WATER_PER_MM * occ
    a = attenuation_factors(mu, op)
    shape = scatter_estimate(occ, mu, op)
    trues = a * op(occ)
    randoms = torch.full_like(trues, 0.3)
    prompts = trues + 2.5 * shape + randoms
    mask = scatter_tail_mask(a)
    scaled, alpha = fit_scatter_tails(prompts, shape, mask, randoms=randoms)
    assert float(alpha) == pytest.approx(2.5, rel=1e-6)
    assert torch.allclose(scaled, 2.5 * shape, rtol=1e-6)
    _, per_plane = fit_scatter_tails(prompts, shape, mask, randoms=randoms, per_plane=True)
    assert torch.allclose(per_plane, torch.full_like(per_plane, 2.5), rtol=1e-6)
    # Poisson data: the scale is recovered within noise
    gen = torch.Generator().manual_seed(7)
    noisy = torch.poisson(1000.0 * prompts, generator=gen)
    _, alpha_noisy = fit_scatter_tails(noisy, 1000.0 * shape, mask, randoms=1000.0 * randoms)
    assert float(alpha_noisy) == pytest.approx(2.5, rel=0.05)
    with pytest.raises(InputError):
        fit_scatter_tails(prompts, shape, torch.zeros_like(mask))
