"""Voxel dose methods, DVH, BED and the Monte Carlo reference (petspect.dosimetry)."""

import math

import numpy as np
import pytest

from petspect.dosimetry import kernels, montecarlo, voxel_dose
from petspect.dosimetry.spectra import emissions
from petspect.errors import InputError


def test_kernel_dose_of_single_voxel_is_the_kernel():
    k = kernels.voxel_kernel("Lu-177", 4.8, half_width=2)
    tia = np.zeros((9, 9, 9))
    tia[4, 4, 4] = 2.0  # MBq s
    d = voxel_dose.kernel_dose(tia, k.values)
    assert d[4, 4, 4] == pytest.approx(2.0 * k.centre * 1e-3)
    assert d[4, 4, 5] == pytest.approx(2.0 * k.at(0, 0, 1) * 1e-3)


def test_density_scaling_and_local_deposition_in_uniform_activity():
    """Uniform activity in an infinite medium: every method gives E/m (charged-particle equilibrium)."""
    em = emissions("Lu-177")
    tia = np.ones((15, 15, 15))
    rho = np.full(tia.shape, 0.5)
    local = voxel_dose.local_deposition_dose(tia, 4.8, em.mean_electron_energy_mev(), rho)
    k = kernels.voxel_kernel("Lu-177", 4.8, half_width=2, density_g_per_ml=1.03)
    dens = voxel_dose.kernel_dose(tia, k.values, density_g_per_ml=rho, kernel_density_g_per_ml=1.03)
    # inner voxel: electron part of the kernel sums to the electron energy per unit mass of the kernel medium
    assert dens[7, 7, 7] == pytest.approx(local[7, 7, 7], rel=0.05)


def test_dvh_and_region_doses():
    d = np.arange(10.0).reshape(1, 2, 5)
    mask = np.ones_like(d, bool)
    levels, frac = voxel_dose.dvh(d, mask, n_bins=10)
    assert frac[0] == 1.0 and frac[-1] == pytest.approx(0.1)
    lab = np.ones_like(d, int)
    (r,) = voxel_dose.region_doses(d, lab, (1, 1, 1), {1: "kidney"})
    assert r.name == "kidney" and r.mean_gy == pytest.approx(4.5) and r.volume_ml == pytest.approx(0.01)


def test_bed_dale_formula():
    """BED = D (1 + D lambda/((mu+lambda) a/b)); for T_eff >> T_rep it tends to D (1 + D T_rep/(T_eff a/b))."""
    b = voxel_dose.bed(20.0, effective_half_life_h=50.0, tissue="kidney")
    lam, mu = math.log(2) / 50.0, math.log(2) / 2.8
    assert float(b) == pytest.approx(20.0 * (1 + 20.0 * lam / ((mu + lam) * 2.6)))
    with pytest.raises(InputError):
        voxel_dose.bed(1.0, effective_half_life_h=10.0)


def test_hu_to_density_calibration_points():
    assert voxel_dose.hu_to_density(np.array([-1000.0, 0.0, 1500.0])) == pytest.approx([0.0012, 1.0, 1.92])


def test_bad_inputs():
    with pytest.raises(InputError):
        voxel_dose.kernel_dose(np.ones((3, 3)), np.ones((3, 3, 3)))
    with pytest.raises(InputError):
        voxel_dose.local_deposition_dose(-np.ones((3, 3, 3)), 4.8, 0.1)
    with pytest.raises(InputError):
        voxel_dose.local_deposition_dose(np.ones((3, 3, 3)), (4.8, 4.8, 2.0), 0.1)


def test_monte_carlo_matches_kernel_in_water():
    """Point source in a water voxel: MC centre dose equals the homogeneous kernel (same physics) within 5 %."""
    n = 7
    tia = np.zeros((n, n, n))
    tia[3, 3, 3] = 1.0
    mc = montecarlo.monte_carlo_dose(tia, np.zeros_like(tia), 4.8, "Lu-177", n_electrons=6000, n_photons=2000,
                                     n_batches=3, seed=1)
    k = kernels.voxel_kernel("Lu-177", 4.8, half_width=1, density_g_per_ml=1.0)
    assert mc.dose_gy[3, 3, 3] * 1e3 == pytest.approx(k.centre, rel=0.05)
    assert mc.sigma_gy[3, 3, 3] < 0.05 * mc.dose_gy[3, 3, 3]
    # region standard error from the batches: one voxel's equals its sigma; batches average to the dose
    one = np.zeros(tia.shape, bool)
    one[3, 3, 3] = True
    assert mc.region_relative_se(one) == pytest.approx(mc.sigma_gy[3, 3, 3] / mc.dose_gy[3, 3, 3], rel=1e-6)
    assert np.allclose(mc.batches_gy.mean(axis=0), mc.dose_gy)
    assert mc.cpu_s > 0 and mc.batches_gy.shape == (3,) + tia.shape


def test_monte_carlo_lung_gets_more_dose_than_water_kernel():
    """In lung (0.3 g/mL) the same activity gives a higher dose than the water kernel predicts."""
    n = 7
    tia = np.zeros((n, n, n))
    tia[3, 3, 3] = 1.0
    hu = np.full(tia.shape, -700.0)
    mc = montecarlo.monte_carlo_dose(tia, hu, 4.8, "Lu-177", n_electrons=6000, n_photons=0, n_batches=2, seed=2)
    k = kernels.voxel_kernel("Lu-177", 4.8, half_width=1)
    assert mc.dose_gy[3, 3, 3] * 1e3 > 2.0 * k.centre


def test_range_rejection_does_not_change_the_dose():
    """Range rejection (deposit at once when the electron cannot leave its voxel) matches full tracking."""
    from petspect.dosimetry._electron_numba import transport_on_grid

    rho = np.full((5, 5, 5), 1.0)
    rho[:, :, 3:] = 0.3
    rng = np.random.default_rng(0)
    # 1 mm voxels and 50-500 keV electrons (ranges up to 1.8 mm): a few % cross into each face neighbour
    pos = (np.array([2.0, 2.0, 2.0]) + rng.random((100_000, 3))) * 1.0
    e = rng.uniform(0.05, 0.5, 100_000)
    full = transport_on_grid(pos, e, rho, 1.0, seed=1, range_rejection=0.0)
    fast = transport_on_grid(pos, e, rho, 1.0, seed=1)
    assert fast.sum() == pytest.approx(full.sum(), rel=0.01)  # some energy leaves the 5 mm grid, alike
    assert 0.01 < full[2, 2, 3] / e.sum() < 0.5
    assert fast[2, 2, 2] == pytest.approx(full[2, 2, 2], rel=0.005)
    for v in ((2, 2, 3), (2, 2, 1), (3, 2, 2)):  # ~2000 crossing electrons each: 6 % is about 3 sigma
        assert fast[v] == pytest.approx(full[v], rel=0.06)
