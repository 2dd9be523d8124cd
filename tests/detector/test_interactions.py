"""Gamma transport: Klein-Nishina sampling, depth of interaction, energy bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from petspect.detector.crystals import get_crystal
from petspect.detector.interactions import ELECTRON_MASS_KEV, sample_klein_nishina, track_gammas
from petspect.errors import InputError


def _kn_pdf_eps(eps, k):
    """Klein-Nishina dsigma/deps, unnormalised: (1/eps + eps)(1 - eps sin^2 theta / (1 + eps^2)) (Geant4 Physics Reference Manual, Compton scattering)."""
    cos_t = 1.0 - (1.0 - eps) / (k * eps)
    return (1.0 / eps + eps) * (1.0 - eps * (1.0 - cos_t**2) / (1.0 + eps**2))


def test_klein_nishina_mean_matches_cross_section():
    """The sampled mean of E'/E equals the mean under the Klein-Nishina cross-section (numerical integral)."""
    k = 511.0 / ELECTRON_MASS_KEV
    e0 = 1.0 / (1.0 + 2.0 * k)
    norm = integrate.quad(lambda e: _kn_pdf_eps(e, k), e0, 1.0)[0]
    mean = integrate.quad(lambda e: e * _kn_pdf_eps(e, k), e0, 1.0)[0] / norm
    eps = sample_klein_nishina(np.full(200_000, 511.0), np.random.default_rng(0))
    assert eps.min() >= e0 - 1e-12 and eps.max() <= 1.0
    assert abs(eps.mean() - mean) < 3e-3


def test_first_interaction_depth_is_exponential():
    """First-interaction depths follow exp(-mu z) truncated at the thickness: KS test and the mean
    against 1/mu - T exp(-mu T) / (1 - exp(-mu T))."""
    xtal, t = get_crystal("LYSO"), 20.0
    mu = float(xtal.attenuation().transport(511.0))
    n = 20_000
    entry = np.zeros((n, 3))
    inter = track_gammas(xtal, (50.0, 50.0), t, entry, np.array([0.0, 0.0, 1.0]), np.random.default_rng(1))
    z = inter.first_point()[:, 2]
    z = z[np.isfinite(z)]
    expected_mean = 1.0 / mu - t * np.exp(-mu * t) / (1.0 - np.exp(-mu * t))
    assert abs(z.mean() - expected_mean) < 0.1
    assert abs(len(z) / n - (1.0 - np.exp(-mu * t))) < 0.01
    cdf = lambda x: (1.0 - np.exp(-mu * x)) / (1.0 - np.exp(-mu * t))  # noqa: E731
    assert stats.kstest(z, cdf).pvalue > 1e-3


def test_energy_is_conserved_and_photopeak_fraction_plausible():
    xtal = get_crystal("LYSO")
    n = 5000
    inter = track_gammas(xtal, (25.6, 25.6), 12.0, np.zeros((n, 3)), np.array([0.0, 0.0, 1.0]),
                         np.random.default_rng(2))
    tot = inter.total_kev
    assert np.all(tot <= 511.0 + 1e-9) and np.all(tot >= 0)
    hit = inter.n_points > 0
    photopeak = np.isclose(tot[hit], 511.0).mean()
    assert 0.4 < photopeak < 0.8  # 12 mm LYSO: photo fraction 0.33 plus multiple-Compton absorption
    assert np.any(inter.n_points > 1)  # Compton chains exist
    c = inter.centroid()[hit]
    assert np.all(np.abs(c[:, :2]) <= 12.8 + 1e-9) and np.all((c[:, 2] >= 0) & (c[:, 2] <= 12.0))


def test_bad_inputs_raise():
    with pytest.raises(InputError):
        track_gammas(get_crystal("LYSO"), (10, 10), 10.0, np.zeros((3, 3)), np.array([0.0, 0.0, 2.0]),
                     np.random.default_rng(0))
