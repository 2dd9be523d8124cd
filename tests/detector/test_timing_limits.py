"""Photon-level timing limits: the single-photon time density against the Monte Carlo photon times, the
maximum-likelihood timer's equivariance, the ordering of the estimators, the CLI and bad inputs."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.detector.pipeline import BGO_CHERENKOV_TIMING, get_preset
from petspect.detector.timing_limits import (informative_photons, max_likelihood_times, photon_level_ctr,
                                             photon_time_pdf, prompt_fraction)
from petspect.detector.waveforms import TimingConfig, photon_times_ps
from petspect.errors import InputError

LYSO = TimingConfig(length_mm=20.0, sptr_fwhm_ps=100.0)


@pytest.mark.parametrize("config, doi", [(LYSO, 2.0), (LYSO, 15.0), (BGO_CHERENKOV_TIMING, 5.0)])
def test_pdf_matches_monte_carlo_photon_times(config, doi):
    """The tabulated density integrates to the fraction of 2 million Monte Carlo photon times (same emission,
    transport and SPTR model) below each time, within 4 sigma; a density for another depth does not."""
    n = 2_000_000
    mc = photon_times_ps(config, np.array([n]), np.array([doi]), np.random.default_rng(0),
                         n_prompt=np.array([int(round(n * prompt_fraction(config)))]))[0]

    def cdf_at(d, q):
        t, pdf = photon_time_pdf(config, d, span_ps=4000.0)
        return np.interp(q, t + 0.5 * (t[1] - t[0]), np.cumsum(pdf) * (t[1] - t[0]))

    qs = np.array([200.0, 300.0, 500.0, 1000.0, 2500.0])
    expected = np.array([np.mean(mc < q) for q in qs])
    sigma = np.sqrt(expected * (1 - expected) / n)
    assert np.all(np.abs(cdf_at(doi, qs) - expected) < 4 * sigma)
    other = config.length_mm - doi
    assert np.any(np.abs(cdf_at(other, qs) - expected) > 4 * sigma)


def test_prompt_fraction():
    assert prompt_fraction(LYSO) == 0.0
    assert prompt_fraction(BGO_CHERENKOV_TIMING) == pytest.approx(2.68 / (943.1 + 2.68), rel=0.01)


def test_max_likelihood_is_shift_equivariant_and_unbiased():
    """Shifting every photon time by 137 ps shifts the estimate by 137 ps (to the 1 ps grid), and the estimates
    of detectors with the gamma entering at t = 0 centre on 0 (the density is the simulation's)."""
    cfg = dataclasses.replace(LYSO, length_mm=3.0)
    t, pdf = photon_time_pdf(cfg, 1.5, span_ps=2000.0)
    g = np.random.default_rng(1)
    n = np.full(300, 2000)
    times = photon_times_ps(cfg, n, np.full(300, 1.5), g)
    first = np.stack([np.sort(x)[:20] for x in times])
    est = max_likelihood_times(first, n, [pdf], t)
    shifted = max_likelihood_times(first + 137.0, n, [pdf], t)
    np.testing.assert_allclose(shifted - est, 137.0, atol=1.01)
    assert abs(np.median(est)) < 5.0 and 10.0 < est.std() < 60.0  # ps


def test_photon_level_ordering_on_lyso():
    """Combining photons beats the first photon; maximum likelihood is at least as good as the best single
    photon (within the ~5 % uncertainty of 600 pairs)."""
    cfg = dataclasses.replace(LYSO, length_mm=10.0)
    r = photon_level_ctr(cfg, 600, np.random.default_rng(2), first=12, depths=5)
    assert r["best_order_statistic_ps"] <= r["first_photon_ps"]
    assert r["best_linear_ps"] < r["first_photon_ps"]
    assert r["max_likelihood_ps"] < 1.05 * r["best_order_statistic_ps"]
    assert 40.0 < r["max_likelihood_ps"] < 200.0 and r["first"] == 12


def test_informative_photons_follow_the_rise():
    """The default K covers the leading edge: many photons for LaBr3's 0.5 ns rise, a few dozen for LYSO's
    70 ps, the minimum for BGO's ~1000 photons spread over 300 ns."""
    k = {name: informative_photons(get_preset(name).timing) for name in ("labr3-hf", "hf-readout", "bgo-cherenkov")}
    assert k["labr3-hf"] == 150 and 30 < k["hf-readout"] < 60 and k["bgo-cherenkov"] == 20


def test_bad_inputs():
    with pytest.raises(InputError):
        photon_time_pdf(LYSO, 25.0, span_ps=1000.0)
    with pytest.raises(InputError):
        photon_time_pdf(LYSO, 5.0, span_ps=-1.0)
    with pytest.raises(InputError):
        photon_level_ctr(LYSO, 50, np.random.default_rng(0))
    with pytest.raises(InputError):  # BGO detectors register ~950 photons, not 5000
        photon_level_ctr(BGO_CHERENKOV_TIMING, 200, np.random.default_rng(0), first=5000)
    with pytest.raises(InputError):
        max_likelihood_times(np.zeros((3, 5)), np.array([2, 10, 10]), [np.ones(10)], np.arange(10.0))


def test_cli_limits(tmp_path):
    out = tmp_path / "limits.json"
    args = ["detector", "limits", "--preset", "quick", "--pairs", "300", "--first", "10", "--out", str(out)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    rec = json.loads(out.read_text())
    assert rec["preset"] == "quick" and rec["ctr_fwhm"]["n_pairs"] == 300
    assert rec["timing"]["crystal"] == get_preset("quick").timing.crystal
    r = CliRunner().invoke(app, args)  # never overwrites silently
    assert r.exit_code != 0 and "exists" in r.output
