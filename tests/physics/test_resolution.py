"""Gaussian PSF operator: self-adjoint, conserves counts, measured FWHM equals the requested one."""

from __future__ import annotations

import pytest
import torch

from petspect.errors import InputError
from petspect.operators.base import adjointness_test
from petspect.physics.resolution import GaussianPSF, gaussian_kernel_1d


def test_psf_adjoint_and_fwhm(device):
    psf = GaussianPSF((21, 41, 41), (4.0, 6.0, 3.0), (2.0, 1.0, 1.0))
    assert adjointness_test(psf, device=device) < 1e-5
    x = torch.zeros(psf.in_shape, dtype=torch.float64, device=device)
    x[10, 20, 20] = 1.0
    y = psf(x)
    assert float(y.sum()) == pytest.approx(1.0, abs=1e-12)  # point well inside: nothing leaves the grid
    # FWHM from the second moment of the sampled profile: sigma^2 = sum p k^2 (voxels) -> mm
    for axis, (fwhm, spacing) in enumerate(zip((4.0, 6.0, 3.0), (2.0, 1.0, 1.0))):
        prof = y.sum(dim=[a for a in range(3) if a != axis])
        k = torch.arange(prof.numel(), dtype=torch.float64, device=device) - prof.argmax()
        sigma_mm = float(torch.sqrt((prof * k ** 2).sum())) * spacing
        assert sigma_mm * 2.3548 == pytest.approx(fwhm, rel=0.03)


def test_zero_fwhm_is_identity_and_bad_input():
    psf = GaussianPSF((3, 5, 5), (0.0, 0.0, 0.0), 1.0)
    x = torch.rand(3, 5, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(psf(x), x)
    assert gaussian_kernel_1d(5.0, 1.0).sum().item() == pytest.approx(1.0)
    with pytest.raises(InputError):
        GaussianPSF((3, 5, 5), -1.0, 1.0)
    with pytest.raises(InputError):
        GaussianPSF((3, 5, 5), (1.0, 2.0), 1.0)
