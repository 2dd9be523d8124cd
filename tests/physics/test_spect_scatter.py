"""SPECT energy windows, Compton spectrum, scatter model and the triple-energy-window estimate."""

from __future__ import annotations

import pytest
import torch

from petspect.errors import InputError
from petspect.geometry.spect import get_spect_system
from petspect.geometry.spect_data import EnergyWindow, SpectProjections
from petspect.physics.spect_scatter import (ScatterModel, compton_energy_density, detector_blur, tew_from_projections,
                                            tew_scatter, window_fractions)
from petspect.systems.spect_simulate import expected_spect_counts
from petspect.volume import Volume

N, VOX = 24, 7.5


def _cylinder_volumes(radius_mm: float = 80.0) -> tuple[Volume, Volume]:
    f = (torch.arange(N) - (N - 1) / 2) * VOX
    yy, xx = torch.meshgrid(f, f, indexing="ij")
    disc = (yy ** 2 + xx ** 2 <= radius_mm ** 2).float().expand(N, N, N)
    return (Volume.centered(disc * 1000.0, (VOX,) * 3, unit="Bq/mL"),
            Volume.centered(disc * 0.1536, (VOX,) * 3, unit="1/cm"))


def test_tew_formula_exact_for_linear_spectrum():
    """For a scatter density linear in energy, the trapezoid of TEW is exact (Ogawa et al 1991)."""
    def counts(lo, hi, a=3.0, b=0.05):  # integral of a + b E over [lo, hi]
        return a * (hi - lo) + 0.5 * b * (hi ** 2 - lo ** 2)
    low, peak, up = (110.0, 126.0), (126.0, 154.0), (154.0, 160.0)
    # narrow side windows: the densities at the peak window edges
    est = tew_scatter(torch.tensor(counts(125.0, 126.0)), torch.tensor(counts(154.0, 155.0)), 1.0, 1.0, 28.0)
    assert float(est) == pytest.approx(counts(*peak), rel=1e-3)
    est = tew_scatter(torch.tensor(counts(*low)), torch.tensor(counts(*up)), 16.0, 6.0, 28.0)
    assert float(est) == pytest.approx(28.0 / 2 * ((3 + 0.05 * 118) + (3 + 0.05 * 157)))
    with pytest.raises(InputError):
        tew_scatter(torch.tensor(1.0), torch.tensor(1.0), 0.0, 1.0, 28.0)


def test_compton_spectrum_and_window_fractions():
    """Compton edge of Tc-99m at E/(1 + 2E/511) = 90.6 keV; primaries 98 % in a 20 % window at 9.9 % FWHM."""
    e = torch.tensor([80.0, 91.0, 120.0, 140.0, 141.0], dtype=torch.float64)
    dens = compton_energy_density(140.5, e)
    assert dens[0] == 0 and dens[-1] == 0 and torch.all(dens[1:4] > 0)
    sys_ = get_spect_system("spect-lehr")
    wins = [EnergyWindow("all", 1.0, 400.0), *sys_.energy_windows]
    prim, scat = window_fractions(140.5, wins, sys_.energy_fwhm_kev)
    assert prim[0] == pytest.approx(1.0, abs=1e-9) and scat[0] == pytest.approx(1.0, abs=1e-6)
    # 20 % window at 9.9 % FWHM: +-10 % = +-2.02 sigma -> 95.7 %..; with the sqrt(E) law 98 %
    assert 0.95 < float(prim[1]) < 0.995
    assert float(scat[2]) > 10 * float(scat[3])  # Tc-99m scatter is below the peak


def test_tew_recovers_simulated_scatter():
    """Simulated Tc-99m water cylinder (r = 8 cm): TEW of the expected counts matches the true photopeak
    scatter within 15 % in total and 25 % per pixel inside the object; the model's single-scatter spectrum
    gives TEW/true = 0.93 in total, 0.90-1.10 per pixel (tail primaries in the side windows partly offset
    the trapezoid's underestimate of the peak-window scatter)."""
    act, mu = _cylinder_volumes()
    sys_ = get_spect_system("spect-lehr")
    exp, facts = expected_spect_counts(act, mu, sys_, angles_deg=torch.arange(0.0, 360.0, 45.0), radius_mm=150.0,
                                       detector_shape=(N, N), pixel_mm=(VOX, VOX))
    proj = SpectProjections(exp.total, facts["angles_deg"], facts["radius_mm"], facts["pixel_mm"],
                            list(sys_.energy_windows))
    tew = tew_from_projections(proj)
    true = exp.scatter[sys_.photopeak_window]
    assert float(tew.sum() / true.sum()) == pytest.approx(1.0, abs=0.15)
    inside = exp.primary[0] > 0.5 * exp.primary[0].max()
    assert torch.all((tew[inside] / true[inside] - 1).abs() < 0.25)
    # scatter-to-primary in the photopeak: realistic 0.15-0.5 for this size; larger in the centre
    spr = exp.scatter[0] / exp.primary[0].clamp(min=1e-9)
    assert 0.15 < float(exp.scatter[0].sum() / exp.primary[0].sum()) < 0.5
    assert float(spr[:, N // 2, N // 2].mean()) > float(spr[:, N // 2, N // 2 - 8].mean())
    smooth = tew_from_projections(proj, smooth_fwhm_mm=20.0)
    assert float(smooth.sum()) == pytest.approx(float(tew.sum()), rel=0.05)  # edge losses only


def test_no_scatter_without_medium():
    """In air (mu = 0) the build-up model gives no scatter."""
    act, mu = _cylinder_volumes()
    exp, _ = expected_spect_counts(act, mu.with_data(torch.zeros(N, N, N)), "spect-lehr",
                                   angles_deg=[0.0, 90.0], radius_mm=150.0, detector_shape=(N, N),
                                   pixel_mm=(VOX, VOX))
    assert float(exp.scatter.abs().max()) == 0.0
    assert float(exp.primary.sum()) > 0


def test_detector_blur_keeps_interior_counts():
    y = torch.zeros(2, 32, 32, dtype=torch.float64)
    y[:, 16, 16] = 1.0
    b = detector_blur(y, (4.0, 4.0), 20.0)
    assert torch.allclose(b.sum(dim=(1, 2)), torch.ones(2, dtype=torch.float64), atol=1e-6)
    with pytest.raises(InputError):
        ScatterModel(broad_beam_ratio=1.2)
