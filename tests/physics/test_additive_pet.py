"""Expected PET additive background (scatter + randoms): totals, efficiency modulation, TOF spreading, inputs."""

from __future__ import annotations

import pytest
import torch

from petspect.errors import InputError
from petspect.geometry.pet import ImageGrid, PetScanner
from petspect.geometry.sinogram import SinogramDefinition
from petspect.physics.additive_pet import pet_additive_counts
from petspect.physics.randoms import uniform_randoms
from petspect.physics.scatter_pet import scatter_estimate
from petspect.projectors.pet import PetSinogramProjector


def _setup(tof=False):
    sc = PetScanner("toy", ring_radius_mm=200.0, crystals_per_ring=96, n_rings=1, crystal_size_mm=(4, 4, 20),
                    ring_spacing_mm=4.0, fov_diameter_mm=300.0,
                    **(dict(tof_fwhm_ps=300.0, tof_bin_width_ps=150.0, n_tof_bins=15) if tof else {}))
    grid = ImageGrid((1, 32, 32), (4.0, 9.0, 9.0))
    op = PetSinogramProjector(sc, SinogramDefinition(sc), grid, tof=tof)
    disk = grid.occupancy(lambda p: p[..., 0] ** 2 + p[..., 1] ** 2 < 100.0 ** 2, supersample=2)
    return op, disk.to(torch.float32), (disk * 0.0096).to(torch.float32)


def test_totals_shapes_and_efficiency_modulation():
    """Each term sums to the requested counts; randoms are the crystal-pair shape times the efficiencies,
    scatter the analytic estimate times the efficiencies (ratios constant over the bins)."""
    op, x, mu = _setup()
    eff = 0.8 + 0.4 * torch.rand(op.out_shape, generator=torch.Generator().manual_seed(0))
    r = pet_additive_counts(op, efficiencies=eff, randoms_counts=1000.0)
    assert r.shape == tuple(op.out_shape) and float(r.sum()) == pytest.approx(1000.0, rel=1e-5)
    ratio = r / (uniform_randoms(op.sino_def, 1.0) * eff)
    assert float(ratio.std() / ratio.mean()) < 1e-5
    s = pet_additive_counts(op, activity=x, mu=mu, efficiencies=eff, scatter_counts=500.0)
    assert float(s.sum()) == pytest.approx(500.0, rel=1e-5)
    est = scatter_estimate(x, mu, op) * eff
    mask = est > 1e-3 * est.max()
    ratio = s[mask] / est[mask]
    assert float(ratio.std() / ratio.mean()) < 1e-4
    both = pet_additive_counts(op, activity=x, mu=mu, efficiencies=eff, scatter_counts=500.0, randoms_counts=1000.0)
    torch.testing.assert_close(both, r + s)
    # physical magnitude: counts per unit of the estimate
    phys = pet_additive_counts(op, activity=x, mu=mu, scatter_scale=7.0)
    torch.testing.assert_close(phys, scatter_estimate(x, mu, op).to(torch.float32) * 7.0)


def test_tof_spreads_evenly_and_keeps_the_totals():
    op, x, mu = _setup(tof=True)
    a = pet_additive_counts(op, activity=x, mu=mu, scatter_counts=300.0, randoms_counts=200.0)
    assert a.shape == tuple(op.out_shape) and a.ndim == 4
    assert float(a.sum()) == pytest.approx(500.0, rel=1e-5)
    torch.testing.assert_close(a[..., 0], a[..., -1])


def test_nothing_asked_and_bad_inputs():
    op, x, mu = _setup()
    assert pet_additive_counts(op) is None and pet_additive_counts(op, scatter_counts=0.0) is None
    with pytest.raises(InputError):
        pet_additive_counts(op, scatter_counts=10.0)  # no activity or mu
    with pytest.raises(InputError):
        pet_additive_counts(op, randoms_counts=-1.0)
    with pytest.raises(InputError):
        pet_additive_counts(op, randoms_counts=1.0, efficiencies=torch.ones(3, 4, 5))
