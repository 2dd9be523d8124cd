"""Widths of error distributions (FWHM/FWTM by interpolation and Gaussian fit) and the paired bootstrap.

Reference values: a Gaussian has FWHM = 2 sqrt(2 ln 2) sigma = 2.3548 sigma and FWTM = 2 sqrt(2 ln 10) sigma
= 4.2919 sigma (closed form).
"""

from __future__ import annotations

import numpy as np
import pytest

from petspect.errors import InputError
from petspect.metrics.distribution import (SIGMA_TO_FWHM, SIGMA_TO_FWTM, fwhm_improvement_ci, gaussian_fit,
                                           paired_bootstrap, width_at_fraction, width_summary)


def test_widths_of_a_gaussian():
    """FWHM = 2.3548 sigma, FWTM = 4.2919 sigma, by interpolation and by fit."""
    v = np.random.default_rng(0).normal(1.0, 2.0, 200_000)
    assert width_at_fraction(v, 0.5) == pytest.approx(SIGMA_TO_FWHM * 2.0, rel=0.03)
    assert width_at_fraction(v, 0.1) == pytest.approx(SIGMA_TO_FWTM * 2.0, rel=0.03)
    m, s = gaussian_fit(v)
    assert m == pytest.approx(1.0, abs=0.02) and s == pytest.approx(2.0, rel=0.02)


def test_fwhm_ignores_tails_fwtm_does_not():
    rng = np.random.default_rng(1)
    v = np.concatenate([rng.normal(0, 1, 50_000), rng.normal(0, 4, 20_000)])  # broad scatter-like tail
    assert width_at_fraction(v, 0.5) == pytest.approx(SIGMA_TO_FWHM, rel=0.15)
    assert width_at_fraction(v, 0.1) > 1.2 * SIGMA_TO_FWTM


def test_too_few_values_raise():
    with pytest.raises(InputError):
        width_at_fraction([1.0, 2.0])


def test_fwhm_improvement_ci():
    """Halving every error is a 50 % improvement in every resample; two draws of one distribution give an
    interval around 0; bad inputs raise."""
    g = np.random.default_rng(0)
    a = g.normal(0.0, 100.0, 5000)
    r = fwhm_improvement_ci(a, a / 2.0, n_boot=50)
    assert r["improvement_pct"] == pytest.approx(50.0, abs=1.0) and r["ci_high_pct"] - r["ci_low_pct"] < 3.0
    same = fwhm_improvement_ci(a, g.normal(0.0, 100.0, 5000), n_boot=100)
    assert same["ci_low_pct"] < 0.0 < same["ci_high_pct"]
    with pytest.raises(InputError):
        fwhm_improvement_ci(a, a[:10])


def test_constants_are_the_closed_forms():
    assert SIGMA_TO_FWHM == pytest.approx(2.354820045, abs=1e-9)
    assert SIGMA_TO_FWTM == pytest.approx(4.291932053, abs=1e-9)


def test_width_summary_keys_and_values():
    v = np.random.default_rng(5).normal(3.0, 1.0, 50_000)
    s = width_summary(v, "x_")
    assert set(s) == {"x_fwhm", "x_fwtm", "x_fwhm_gauss", "x_fwtm_gauss", "x_mean", "x_mae"}
    assert s["x_fwhm_gauss"] == pytest.approx(SIGMA_TO_FWHM, rel=0.03) and s["x_mean"] == pytest.approx(3.0, abs=0.02)
    assert s["x_mae"] == pytest.approx(3.0, abs=0.03)  # |N(3, 1)| is 3 on average (P(x < 0) ~ 0.1 %)


def test_paired_bootstrap_of_a_mean_difference():
    """The interval of mean(b - a) covers the true difference (0.5) and is about 2 x 1.96 x 1/sqrt(n) wide;
    it is seeded (same seed, same interval) and drops events where either value is not finite."""
    g = np.random.default_rng(6)
    a = g.normal(0.0, 1.0, 4000)
    b = a + 0.5 + g.normal(0.0, 1.0, 4000)
    stat = lambda x, y: float(np.mean(y - x))  # noqa: E731
    r = paired_bootstrap(stat, a, b, n_boot=300, seed=1)
    assert r["ci_low"] < 0.5 < r["ci_high"] and r["ci_high"] - r["ci_low"] == pytest.approx(2 * 1.96 / np.sqrt(4000),
                                                                                             rel=0.25)
    assert r == paired_bootstrap(stat, a, b, n_boot=300, seed=1)
    b2 = b.copy()
    b2[:10] = np.nan
    assert paired_bootstrap(stat, a, b2, n_boot=20)["value"] == pytest.approx(stat(a[10:], b[10:]))
    with pytest.raises(InputError):
        paired_bootstrap(stat, a, b, n_boot=5)
    with pytest.raises(InputError):
        paired_bootstrap(stat, a, b, level=1.0)


def test_exported_from_the_metrics_package():
    import petspect.metrics as m

    assert m.width_at_fraction is width_at_fraction and m.paired_bootstrap is paired_bootstrap
    assert "fwhm_improvement_ci" in dir(m)


def test_identical_values_have_zero_width_not_a_crash():
    """Every value the same (an energy estimator stuck at 511 keV): the widths are 0, not a numpy error."""
    from petspect.metrics.distribution import gaussian_fit, width_at_fraction, width_summary

    v = np.full(200, 511.0)
    assert width_at_fraction(v, 0.5) == 0.0 and gaussian_fit(v) == (511.0, 0.0)
    summary = width_summary(v)
    assert summary["fwhm"] == 0.0 and summary["fwhm_gauss"] == 0.0


def test_mostly_identical_values_keep_a_finite_width():
    """Over half the values identical (IQR 0) and a spread tail: a finite, positive FWTM."""
    from petspect.metrics.distribution import width_at_fraction

    rng = np.random.default_rng(0)
    v = np.concatenate([np.full(300, 511.0), 511.0 + rng.normal(0, 10, 200)])
    w = width_at_fraction(v, 0.1)
    assert np.isfinite(w) and w > 0
