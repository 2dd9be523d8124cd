"""Detector figures of merit: edge bias sign, energy and timing resolution (widths: tests/metrics/test_distribution.py)."""

from __future__ import annotations

import numpy as np
import pytest

from petspect.detector.metrics import (SIGMA_TO_FWHM, energy_resolution, positioning_metrics, resolution_map,
                                       timing_metrics)


def test_edge_bias_detects_compression():
    """A linear compression x_est = 0.8 x gives a negative outward bias at the edges and none in the centre."""
    rng = np.random.default_rng(2)
    true = np.column_stack([rng.uniform(-10, 10, 20000), rng.uniform(-10, 10, 20000), rng.uniform(0, 10, 20000)])
    pred = true.copy()
    pred[:, :2] *= 0.8
    pred += rng.normal(0, 0.3, pred.shape)
    m = positioning_metrics(pred, true, size_mm=(20.0, 20.0), edge_mm=2.0)
    assert m["edge_bias_x_mm"] == pytest.approx(-0.2 * 9.0, abs=0.1)
    assert m["xy_mae_edge_mm"] > m["xy_mae_centre_mm"]
    unbiased = positioning_metrics(true + rng.normal(0, 0.3, true.shape), true, size_mm=(20.0, 20.0))
    assert abs(unbiased["edge_bias_mm"]) < 0.03
    assert unbiased["doi_fwhm_mm"] == pytest.approx(0.3 * SIGMA_TO_FWHM, rel=0.1)


def test_energy_resolution_with_group_gains():
    """Two regions with different gains: per-group calibration recovers the intrinsic 10 % FWHM."""
    rng = np.random.default_rng(3)
    s = rng.normal(1.0, 0.10 / SIGMA_TO_FWHM, 20000)
    g = np.repeat([0, 1], 10000)
    s = s * np.where(g == 0, 1000.0, 1500.0)
    s = np.concatenate([s, rng.uniform(50, 600, 8000)])  # Compton continuum below the peaks
    g = np.concatenate([g, rng.integers(0, 2, 8000)])
    r = energy_resolution(s, g)
    assert r["energy_resolution_pct"] == pytest.approx(10.0, rel=0.07)
    e = r["energy_kev"][:20000]
    assert np.median(e[:10000]) == pytest.approx(511.0, rel=0.01)
    assert np.median(e[10000:]) == pytest.approx(511.0, rel=0.01)


def test_timing_metrics_and_resolution_map():
    rng = np.random.default_rng(4)
    truth = rng.uniform(-200, 200, 50000)
    est = truth + rng.normal(5.0, 100.0 / SIGMA_TO_FWHM, truth.size)
    t = timing_metrics(est, truth)
    assert t["ctr_fwhm_ps"] == pytest.approx(100.0, rel=0.05) and t["bias_ps"] == pytest.approx(5.0, abs=1.0)
    beams = np.repeat(np.array([[0.0, 0.0], [5.0, 0.0]]), 500, axis=0)
    pred = np.column_stack([beams + rng.normal(0, 1.0, beams.shape), np.zeros(1000)])
    rm = resolution_map(pred, beams)
    assert rm["fwhm_mm"].shape == (1, 2)
    assert np.allclose(rm["fwhm_mm"], SIGMA_TO_FWHM, rtol=0.15)


def test_timing_slope_reveals_shrinkage():
    """An estimate drawn towards the centre (0.7 x truth) has slope 0.7 and a narrower error spread than the
    unbiased one for sources within the training range, though it times no better."""
    rng = np.random.default_rng(3)
    truth = rng.uniform(-200.0, 200.0, 20000)
    est = truth + rng.normal(0.0, 80.0, truth.size)
    assert timing_metrics(est, truth)["slope"] == pytest.approx(1.0, abs=0.03)
    shrunk = timing_metrics(0.7 * est, truth)
    assert shrunk["slope"] == pytest.approx(0.7, abs=0.03)
    assert shrunk["ctr_fwhm_ps"] < timing_metrics(est, truth)["ctr_fwhm_ps"]
    assert np.isnan(timing_metrics(est, np.zeros_like(est))["slope"])  # fixed source: no slope


def test_generic_widths_are_re_exported():
    """detector.metrics keeps its public names; they are the functions of petspect.metrics.distribution."""
    from petspect.detector import metrics as dm
    from petspect.metrics import distribution as gm

    for name in ("width_at_fraction", "gaussian_fit", "width_summary", "fwhm_improvement_ci"):
        assert getattr(dm, name) is getattr(gm, name)
