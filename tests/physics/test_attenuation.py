"""PET attenuation factors exp(-int mu dl) against the closed form for a water cylinder."""

from __future__ import annotations

import pytest
import torch

from petspect.errors import InputError, UnitError
from petspect.geometry.pet import ImageGrid, PetScanner
from petspect.operators.base import adjointness_test
from petspect.physics.attenuation import attenuation_factors, attenuation_operator
from petspect.projectors.pet import PetSinogramProjector

MU_WATER_PER_MM = 0.0096  # 511 keV, 0.096/cm (xraydb, docs/REFERENCE.md)


def _scanner(tof=False):
    kw = dict(tof_fwhm_ps=300.0, tof_bin_width_ps=150.0, n_tof_bins=15) if tof else {}
    return PetScanner("toy", ring_radius_mm=150.0, crystals_per_ring=192, n_rings=1, crystal_size_mm=(4, 4, 10),
                      ring_spacing_mm=4.0, fov_diameter_mm=220.0, **kw)


def test_water_cylinder_factors_match_exp_mu_chord():
    """a = exp(-mu * 2 sqrt(R^2 - r^2)) for a 200 mm water cylinder (NEMA-like), within 1 % of the chord."""
    grid = ImageGrid((1, 140, 140), (2.0, 1.5, 1.5))
    radius = 100.0
    occ = grid.occupancy(lambda p: p[..., 0] ** 2 + p[..., 1] ** 2 < radius ** 2, supersample=6)
    mu = grid.volume(MU_WATER_PER_MM * occ, unit="1/mm")
    op = PetSinogramProjector(_scanner(), None, grid)
    a = attenuation_factors(mu, op)
    start, end = op.lor_endpoints_mm()
    d = end - start
    r = (start[..., 0] * end[..., 1] - start[..., 1] * end[..., 0]).abs() / d[..., :2].norm(dim=-1)
    chord = 2 * torch.sqrt((radius ** 2 - r ** 2).clamp(min=0))
    inner = r < 0.8 * radius
    expected = torch.exp(-MU_WATER_PER_MM * chord)
    # 1 % of the line integral: |log a - log a_exp| < 0.01 mu chord
    assert float(((a.log() - expected.log())[inner].abs() / (MU_WATER_PER_MM * chord[inner])).max()) < 0.01
    centre = float(a[0, 0, op.sino_def.n_radial // 2])  # central LOR: exp(-0.0096 * 200) = 0.1466
    assert float(a.max()) == 1.0 and centre == pytest.approx(0.1466, rel=0.01)
    # a volume in 1/cm is converted, not misread
    a_cm = attenuation_factors(grid.volume(10 * MU_WATER_PER_MM * occ, unit="1/cm"), op)
    assert torch.allclose(a, a_cm, rtol=1e-5)


def test_attenuation_operator_tof_broadcast_and_adjoint(device):
    grid = ImageGrid((1, 40, 40), (2.0, 3.0, 3.0))
    mu = torch.full(grid.shape, MU_WATER_PER_MM, dtype=torch.float64)
    op = PetSinogramProjector(_scanner(tof=True), None, grid, tof=True).to(device)
    att = attenuation_operator(mu.to(device), op)
    assert att.in_shape == op.out_shape and att.factors.shape == op.out_shape[:3]
    assert adjointness_test(att @ op, device=device) < 1e-5
    sub = (att @ op).subset(1, 3)
    x = torch.rand(grid.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).to(device)
    assert torch.allclose(sub(x), (att @ op).take_subset((att @ op)(x), 1, 3))


def test_bad_attenuation_maps_raise():
    grid = ImageGrid((1, 20, 20), 3.0)
    op = PetSinogramProjector(_scanner(), None, grid)
    with pytest.raises(UnitError):
        attenuation_factors(grid.volume(torch.zeros(grid.shape), unit="HU"), op)
    with pytest.raises(UnitError):
        attenuation_factors(torch.full(grid.shape, 0.096), op)  # 1/cm given as 1/mm
    with pytest.raises(InputError):
        attenuation_factors(torch.zeros(1, 10, 10), op)
    with pytest.raises(InputError):
        attenuation_factors(ImageGrid((1, 20, 20), 2.0).volume(torch.zeros(1, 20, 20), unit="1/mm"), op)
