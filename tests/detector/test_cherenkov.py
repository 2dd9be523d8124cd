"""Prompt Cherenkov emission in the coincidence waveforms (BGO): counts, timing, time walk."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from petspect.detector.crystals import get_crystal
from petspect.detector.waveforms import TimingConfig, photon_times_ps, simulate_coincidences
from petspect.errors import ConfigError
from petspect.units import C_MM_PER_PS

BGO = TimingConfig(crystal="BGO", length_mm=20.0, pde=0.5, sptr_fwhm_ps=80.0, spr_rise_ns=0.07, spr_decay_ns=1.0,
                   noise_spe=0.1, sample_ps=50.0, n_samples=64, max_shift=2, onset_ns=1.0, adc_full_scale_spe=50.0,
                   cherenkov_yield=17.0, cherenkov_pde=0.35)


def test_cherenkov_counts_are_poisson_with_the_set_mean():
    """17 photons x 0.45 collection x 0.35 PDE = 2.68 detected per event, Poisson (variance = mean)."""
    assert BGO.cherenkov_mean_pe == pytest.approx(17 * 0.45 * 0.35)
    co = simulate_coincidences(BGO, 1500, np.random.default_rng(5))
    n_ch = co.n_cherenkov.ravel()
    assert n_ch.mean() == pytest.approx(BGO.cherenkov_mean_pe, rel=0.05)
    assert n_ch.var() == pytest.approx(n_ch.mean(), rel=0.12)
    assert co.n_pe.mean() == pytest.approx(8.2 * 511 * 0.45 * 0.5, rel=0.03)  # scintillation only
    assert co.subset(np.arange(10)).n_cherenkov.shape == (10, 2)


def test_without_cherenkov_nothing_changes():
    """Cherenkov off (the default): no counts, and the waveforms of the random stream are unchanged."""
    plain = TimingConfig(length_mm=10.0, n_samples=32, max_shift=2)
    a = simulate_coincidences(plain, 50, np.random.default_rng(1))
    b = simulate_coincidences(dataclasses.replace(plain, cherenkov_pde=0.9), 50, np.random.default_rng(1))
    assert a.n_cherenkov is None and np.array_equal(a.waveforms, b.waveforms)
    with pytest.raises(ConfigError):
        TimingConfig(cherenkov_yield=-1.0)


def test_prompt_photons_arrive_within_the_transit_time():
    """Prompt photons carry no emission delay: each arrives within the gamma and optical transit time
    (plus SPTR); the scintillation photons of BGO (300 ns decay) mostly much later."""
    n_pe, n_prompt = np.full(200, 400), np.full(200, 5)
    doi = np.random.default_rng(0).uniform(0, 20, 200)
    times = photon_times_ps(BGO, n_pe, doi, np.random.default_rng(2), n_prompt=n_prompt)
    xtal = get_crystal("BGO")
    cos_c = math.cos(math.asin(1.5 / xtal.refractive_index))
    for t, z in zip(times, doi):
        latest = (z + (BGO.length_mm + z) * xtal.refractive_index / cos_c) / C_MM_PER_PS + 5 * BGO.sptr_fwhm_ps / 2.3548
        assert np.all(t[-5:] < latest)
        assert np.median(t[:-5]) > 100_000.0


def test_cherenkov_events_trigger_earlier():
    """Time walk of BGO: a low leading-edge threshold fires earlier on pulses with Cherenkov photons."""
    from petspect.detector.timing import leading_edge
    from petspect.detector.waveforms import crop_windows

    co = simulate_coincidences(dataclasses.replace(BGO, source_range_mm=0.0), 300, np.random.default_rng(4))
    w, _ = crop_windows(co.waveforms, co.dt_ps, np.zeros((300, 2), int), BGO)
    t = leading_edge(w, 0.5, BGO.sample_ps)
    with_ch, without = t[co.n_cherenkov >= 2], t[co.n_cherenkov == 0]
    assert np.nanmedian(without) - np.nanmedian(with_ch) > 100.0  # ps


def test_bgo_cherenkov_preset_runs_at_tiny_size():
    """The ``bgo-cherenkov`` preset: BGO timing pair with Cherenkov emission on the HF readout; its pulses
    stay within the ADC range and the constant-fraction scan finds a CTR of ~100-300 ps."""
    from petspect.detector.pipeline import BGO_CFD_FRACTIONS, get_preset
    from petspect.detector.timing import scan_discriminator
    from petspect.detector.waveforms import crop_windows

    preset = get_preset("bgo-cherenkov")
    cfg = preset.timing
    assert cfg.crystal == "BGO" and cfg.cherenkov_mean_pe == pytest.approx(2.68, abs=0.01)
    assert sum(preset.timing_window) <= cfg.n_samples and preset.timing_training.loss == "cauchy"
    co = simulate_coincidences(cfg, 300, np.random.default_rng(6))
    w, dt = crop_windows(co.waveforms, co.dt_ps, np.zeros((300, 2), int), cfg)
    assert w.max() < 0.9 * cfg.adc_full_scale_spe
    scan = scan_discriminator("cfd", w, dt, BGO_CFD_FRACTIONS[15:30:2], cfg.sample_ps).scan
    assert 80.0 < min(scan.values()) < 300.0
