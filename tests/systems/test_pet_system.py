"""The composed PET system model diag(n a) P G: composition, factors, subsets, adjointness."""

from __future__ import annotations

import pytest
import torch

from petspect.errors import InputError
from petspect.geometry.pet import ImageGrid, PetScanner
from petspect.geometry.sinogram import SinogramDefinition
from petspect.operators.base import adjointness_test
from petspect.physics.attenuation import attenuation_factors
from petspect.physics.resolution import GaussianPSF
from petspect.systems.pet import pet_system_model


def _scanner():
    return PetScanner("toy", ring_radius_mm=120.0, crystals_per_ring=64, n_rings=3, crystal_size_mm=(4, 4, 10),
                      ring_spacing_mm=4.0, fov_diameter_mm=160.0, tof_fwhm_ps=250.0, tof_bin_width_ps=150.0,
                      n_tof_bins=15)


@pytest.mark.parametrize("tof", [False, True])
def test_system_model_composes_effects(device, tof):
    sc = _scanner()
    grid = ImageGrid((3, 24, 24), (4.0, 4.0, 4.0))
    sd = SinogramDefinition(sc, span=3)
    mu = torch.full(grid.shape, 0.0096, dtype=torch.float64, device=device)
    norm = torch.rand(sd.shape(), generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.5
    model = pet_system_model(sc, grid, sino_def=sd, mu=mu, normalisation=norm, psf_fwhm_mm=5.0, tof=tof,
                             device=device)
    assert model.out_shape == sd.shape(tof) and model.view_axis == 1
    assert adjointness_test(model, device=device) < 1e-5
    x = torch.rand(grid.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(device)
    f = norm.to(device) * attenuation_factors(mu, model.projector)
    assert torch.allclose(model.multiplicative_factors.double(), f, rtol=1e-5)
    expected = model.projector(GaussianPSF(grid.shape, 5.0, grid.spacing_mm)(x))
    expected = expected * (f[..., None] if tof else f)
    assert torch.allclose(model(x), expected, rtol=1e-5)
    corr = model.correction_factors()
    assert torch.allclose(corr * model.multiplicative_factors, torch.ones_like(corr), rtol=1e-5)
    sub = model.subset(2, 4)
    assert torch.allclose(sub(x), model.take_subset(model(x), 2, 4), rtol=1e-6)


def test_system_model_rejects_wrong_normalisation():
    sc = _scanner()
    with pytest.raises(InputError):
        pet_system_model(sc, ImageGrid((3, 8, 8), 4.0), normalisation=torch.ones(2, 2, 2))
