"""Photon-level timing limits: how well any estimator could time the coincidences of a set-up.

A waveform holds at most what the registered photon times hold. This module leaves out the SiPM pulse,
the noise and the sampling and times the detectors of a :class:`~petspect.detector.waveforms.TimingConfig`
from their exact photon registration times (same scintillation and Cherenkov emission, depth of
interaction, light transport and single-photon time resolution as
:func:`~petspect.detector.waveforms.photon_times_ps`), with

- single order statistics (the k-th registered photon; a leading-edge discriminator on an ideal
  single-photon readout);
- the best linear combination of the first ``K`` photon times (weights ``Sigma^-1 1 / 1^T Sigma^-1 1``
  from the covariance of the order statistics, fitted on one half of the detectors and applied to the
  other);
- maximum likelihood: the censored likelihood of the first ``K`` times under the exact single-photon
  time density (:func:`photon_time_pdf`), maximised over the event time and over the unknown depth of
  interaction (a grid of depths).

The CTR of these estimators is the ceiling a waveform method (a constant-fraction discriminator or a
network) can approach on that set-up; the gap between the constant fraction and this ceiling is the room
a network has. (The Cramér-Rao bound of the same density is not used: for these steep onsets it is far
below what maximum likelihood reaches with a few thousand photons, ~56 vs ~105 ps for ``hf-readout``.)
"""

from __future__ import annotations

import math

import numpy as np

from petspect.detector.crystals import get_crystal
from petspect.detector.waveforms import (TimingConfig, backward_fraction, depth_quantile_mm, draw_interactions,
                                         escape_cone_cos, mean_photoelectrons, photon_times_ps)
from petspect.errors import InputError
from petspect.metrics.distribution import width_at_fraction
from petspect.units import C_MM_PER_PS


def prompt_fraction(config: TimingConfig) -> float:
    """Mean fraction of the registered photons that are prompt (Cherenkov)."""
    return config.cherenkov_mean_pe / (mean_photoelectrons(config) + config.cherenkov_mean_pe)


def _emission_cdf(config: TimingConfig, t_ps: float) -> float:
    """Fraction of the scintillation photons emitted by ``t_ps`` (bi-exponential rise and decay)."""
    xtal = get_crystal(config.crystal)
    rise, decay = xtal.rise_ns * 1e3, xtal.decay_ns * 1e3
    return 1.0 - (decay * math.exp(-t_ps / decay) - rise * math.exp(-t_ps / rise)) / (decay - rise)


def photon_time_pdf(config: TimingConfig, doi_mm: float, *, span_ps: float, step_ps: float = 1.0):
    """Density of one photoelectron's registration time after the gamma enters the crystal.

    Emission (bi-exponential rise and decay, plus a prompt Cherenkov fraction at time 0) convolved with
    the light transport of an interaction at depth ``doi_mm`` (arrival ``z / c`` after entering; path
    ``(L -+ z) / cos(theta)`` directly or after the front-face reflection, ``cos(theta)`` uniform within
    the escape cone, at speed ``c / n``) and with the Gaussian single-photon time resolution.

    Parameters
    ----------
    config : TimingConfig
    doi_mm : float
        Depth of interaction from the front face, within ``[0, length_mm]`` (mm).
    span_ps : float
        Length of the emission part of the grid (ps); photons emitted later are not represented.
    step_ps : float
        Grid step (ps).

    Returns
    -------
    t_ps : numpy.ndarray, shape (m,)
        Grid (ps), the centre of each density value; starts ~6 SPTR sigmas before 0.
    pdf : numpy.ndarray, shape (m,)
        Density (1/ps); integrates to the fraction of photons registered within the grid.
    """
    from scipy.signal import fftconvolve

    if not 0.0 <= doi_mm <= config.length_mm:
        raise InputError(f"doi_mm must lie within [0, {config.length_mm}] mm")
    if span_ps <= 0 or step_ps <= 0:
        raise InputError("span_ps and step_ps must be positive")
    xtal = get_crystal(config.crystal)
    rise, decay, n = xtal.rise_ns * 1e3, xtal.decay_ns * 1e3, xtal.refractive_index
    t = np.arange(0.0, span_ps, step_ps) + 0.5 * step_ps  # bin centres
    emission = (1.0 - prompt_fraction(config)) * (np.exp(-t / decay) - np.exp(-t / rise)) / (decay - rise)
    emission[0] += prompt_fraction(config) / step_ps
    cos_c, back = escape_cone_cos(config), backward_fraction(config)
    transport = np.zeros_like(t)
    for path0, weight in ((config.length_mm - doi_mm, 1.0 - back), (config.length_mm + doi_mm, back)):
        t_direct = path0 * n / C_MM_PER_PS  # travel time of the photon along the crystal axis
        edges = doi_mm / C_MM_PER_PS + t_direct / np.linspace(1.0, cos_c, 257)  # cos(theta) quantiles
        hist, _ = np.histogram(edges[:-1] + 0.5 * np.diff(edges), bins=len(t), range=(0.0, span_ps))
        transport += weight * hist / 256.0
    transport /= step_ps
    sigma = config.sptr_fwhm_ps / 2.3548
    g_t = np.arange(-6.0 * sigma, 6.0 * sigma + step_ps / 2, step_ps)
    gauss = np.exp(-0.5 * (g_t / sigma) ** 2)
    gauss /= gauss.sum() * step_ps
    pdf = fftconvolve(fftconvolve(emission, transport)[:len(t)] * step_ps, gauss) * step_ps
    # emission bin k and transport bin j put their sum in [(k + j) h, (k + j + 2) h): centre (k + j + 1) h
    return np.arange(len(pdf)) * step_ps + step_ps + g_t[0], np.clip(pdf, 0.0, None)


def _emission_span_ps(config: TimingConfig, photons: float) -> float:
    """Time by which ``photons`` scintillation photoelectrons are expected, plus transport and SPTR margins."""
    xtal = get_crystal(config.crystal)
    target = min(0.999, photons / mean_photoelectrons(config))
    lo, hi = 0.0, 20.0 * xtal.decay_ns * 1e3
    for _ in range(80):  # bisection on the emission CDF
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _emission_cdf(config, mid) < target else (lo, mid)
    travel = 2.0 * config.length_mm * xtal.refractive_index / (C_MM_PER_PS * escape_cone_cos(config))
    return hi + travel + config.length_mm / C_MM_PER_PS + 6.0 * config.sptr_fwhm_ps


def max_likelihood_times(first: np.ndarray, n_photons: np.ndarray, tables: list, t_grid: np.ndarray,
                         *, step_ps: float = 1.0) -> np.ndarray:
    """Maximum-likelihood event times from the first ``K`` registered photon times of each detector.

    The censored log-likelihood ``sum_i log p(t_i - t0) + (N - K) log S(t_K - t0)`` (``S`` the survival
    function) is maximised over ``t0`` on a grid of ``step_ps`` and over the tabulated densities (depths).

    Parameters
    ----------
    first : numpy.ndarray, shape (m, K)
        Sorted first ``K`` photon times of each detector (ps).
    n_photons : numpy.ndarray, shape (m,)
        Registered photons of each detector (at least ``K``).
    tables : list of numpy.ndarray
        Densities on ``t_grid`` (one per depth), from :func:`photon_time_pdf`.
    t_grid : numpy.ndarray
        Their common grid (ps, uniform step).

    Returns
    -------
    numpy.ndarray, shape (m,)
        Estimated times at which the gamma entered the crystal (ps).
    """
    first = np.asarray(first, dtype=np.float64)
    if first.ndim != 2 or len(n_photons) != len(first) or np.any(np.asarray(n_photons) < first.shape[1]):
        raise InputError("first must be (m, K) and every detector needs at least K photons")
    dt = t_grid[1] - t_grid[0]
    log_p = [np.log(np.maximum(p, 1e-300)) for p in tables]
    log_s = [np.log(np.maximum(1.0 - np.cumsum(p) * dt, 1e-300)) for p in tables]
    mid = tables[len(tables) // 2]
    cdf_mid = np.cumsum(mid) * dt
    out = np.empty(len(first))
    k = first.shape[1]
    for i, (s, n) in enumerate(zip(first, n_photons)):
        # the first photon arrives before n F(t) reaches 10 photons (middle depth) with near certainty; +200 ps margin
        lead = t_grid[min(len(t_grid) - 1, int(np.searchsorted(cdf_mid * n, 10.0)))] + 200.0
        t0 = np.arange(s[0] - lead, s[0] - t_grid[0], step_ps)
        idx = np.clip(np.round((s[None, :] - t0[:, None] - t_grid[0]) / dt).astype(np.int64), 0, len(t_grid) - 1)
        best = -np.inf
        for lp, ls in zip(log_p, log_s):
            ll = lp[idx].sum(axis=1) + (n - k) * ls[idx[:, -1]]
            j = int(np.argmax(ll))
            if ll[j] > best:
                best, out[i] = ll[j], t0[j]
    return out


def informative_photons(config: TimingConfig) -> int:
    """Photons ``K`` the photon-level estimators use by default: those expected within three scintillation rise
    times plus 0.3 ns (light transport and SPTR), at least 20 and at most 150.

    The timing information lies in the photons of the leading edge: the first few for LYSO (~40 on the
    ``hf-readout`` pair), all of the 0.5 ns rise for LaBr3:Ce (capped at 150; the ceiling changes by < 2 %
    from 40 to 120 photons there), a couple for BGO (20).
    """
    t_ps = 3.0 * get_crystal(config.crystal).rise_ns * 1e3 + 300.0
    return int(np.clip(round(mean_photoelectrons(config) * _emission_cdf(config, t_ps)), 20, 150))


def photon_level_ctr(config: TimingConfig, n_pairs: int, generator: np.random.Generator, *, first: int | None = None,
                     depths: int = 11) -> dict:
    """Coincidence time resolution of photon-level estimators on ``n_pairs`` simulated pairs (dt = 0).

    Parameters
    ----------
    config : TimingConfig
    n_pairs : int
        Coincidences (at least 200; the FWHM of 2000 pairs is uncertain by ~5 %, of 5000 by ~3 %).
    generator : numpy.random.Generator
    first : int, optional
        Photons ``K`` used by the linear and maximum-likelihood estimators (default:
        :func:`informative_photons`).
    depths : int
        Depth grid of the likelihood (quantile midpoints of the interaction-depth distribution).

    Returns
    -------
    dict
        ``first_photon_ps``, ``best_order_statistic_ps`` and its ``best_order_statistic_k`` (1-based),
        ``best_linear_ps`` (weights from the first half of the pairs, FWHM on the second half),
        ``max_likelihood_ps`` (all pairs): CTR FWHM (ps, interpolation), and the settings.
    """
    first = informative_photons(config) if first is None else int(first)
    if n_pairs < 200 or first < 2 or depths < 1:
        raise InputError("n_pairs >= 200, first >= 2 and depths >= 1 are required")
    doi, n_pe, n_ch = draw_interactions(config, n_pairs, generator)
    n_tot = n_pe + (0 if n_ch is None else n_ch)
    if np.any(n_tot < first):
        raise InputError(f"some detectors register fewer than first = {first} photons; lower it")
    times = photon_times_ps(config, n_tot.ravel(), doi.ravel(), generator,
                            n_prompt=None if n_ch is None else n_ch.ravel())
    sorted_first = np.stack([np.sort(np.partition(t, first - 1)[:first]) for t in times]).reshape(n_pairs, 2, first)
    diff = sorted_first[:, 0] - sorted_first[:, 1]

    def fwhm(d):
        return width_at_fraction(d - np.median(d))

    order = [fwhm(diff[:, k]) for k in range(first)]
    half = n_pairs // 2
    flat = sorted_first[:half].reshape(-1, first)
    weights = np.linalg.solve(np.cov(flat.T), np.ones(first))
    weights /= weights.sum()
    linear = sorted_first[half:] @ weights
    z_grid = depth_quantile_mm(config, (np.arange(depths) + 0.5) / depths)
    span = _emission_span_ps(config, 3.0 * first)
    tables = [photon_time_pdf(config, float(z), span_ps=span) for z in z_grid]
    ml = max_likelihood_times(sorted_first.reshape(-1, first), n_tot.ravel(), [p for _, p in tables],
                              tables[0][0]).reshape(n_pairs, 2)
    return {"first_photon_ps": order[0], "best_order_statistic_ps": min(order),
            "best_order_statistic_k": int(np.argmin(order)) + 1, "best_linear_ps": fwhm(linear[:, 0] - linear[:, 1]),
            "max_likelihood_ps": fwhm(ml[:, 0] - ml[:, 1]), "first": first, "depths": depths, "n_pairs": n_pairs,
            "mean_photoelectrons": float(n_tot.mean())}
