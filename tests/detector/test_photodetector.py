"""SiPM response: Poisson detection, saturation with finite microcells, crosstalk, dark counts."""

from __future__ import annotations

import numpy as np
import pytest

from petspect.detector.photodetector import SiPMArray, correct_saturation, sipm_response
from petspect.errors import ConfigError, InputError


def test_linear_regime_mean_and_variance():
    """Few photons, no crosstalk/dark counts: Poisson with mean PDE * photons."""
    sipm = SiPMArray(n_x=2, n_y=2, crosstalk=0.0, dark_rate_hz_per_mm2=0.0, microcells=10**6)
    s = sipm_response(np.full((20000, 2, 2), 100.0), sipm, np.random.default_rng(0))
    assert s.mean() == pytest.approx(40.0, rel=0.01)
    assert s.var() == pytest.approx(40.0, rel=0.05)


def test_saturation_follows_microcell_law_and_is_invertible():
    """fired = M (1 - exp(-n/M)): with M = 400 and n = 800 detected photons, 400 (1 - e^-2) = 345.9."""
    sipm = SiPMArray(n_x=1, n_y=1, pde=1.0, crosstalk=0.0, dark_rate_hz_per_mm2=0.0, microcells=400)
    s = sipm_response(np.full((5000, 1, 1), 800.0), sipm, np.random.default_rng(1))
    assert s.max() <= 400
    assert s.mean() == pytest.approx(400 * (1 - np.exp(-2.0)), rel=0.01)
    assert correct_saturation(np.array([s.mean()]), sipm)[0] == pytest.approx(800.0, rel=0.02)


def test_crosstalk_and_dark_counts_add_signal():
    rng = np.random.default_rng(2)
    clean = SiPMArray(n_x=1, n_y=1, crosstalk=0.0, dark_rate_hz_per_mm2=0.0)
    noisy = SiPMArray(n_x=1, n_y=1, crosstalk=0.2, dark_rate_hz_per_mm2=1e6)
    photons = np.full((20000, 1, 1), 500.0)
    gain = sipm_response(photons, noisy, rng).mean() / sipm_response(photons, clean, rng).mean()
    assert gain == pytest.approx(1.0 / 0.8, rel=0.03)  # 1 / (1 - p_xt) plus ~1.8 dark counts
    dark_only = sipm_response(np.zeros((20000, 1, 1)), noisy, rng).mean()
    assert dark_only == pytest.approx(1e6 * 9.0 * 200e-9, rel=0.05)


def test_bad_inputs():
    with pytest.raises(ConfigError):
        SiPMArray(active_mm=4.0, pitch_mm=3.2)
    with pytest.raises(InputError):
        sipm_response(np.ones((3, 2, 2)), SiPMArray(), np.random.default_rng(0))
