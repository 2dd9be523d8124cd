"""Channelised Hotelling observer against an analytic case: a known signal in white Gaussian noise."""

import math

import numpy as np
import pytest

from petspect.errors import InputError
from petspect.evaluation.observer import (channel_outputs, cho_dprime, cho_dprime_ci, hotelling_dprime,
                                          laguerre_gauss_channels)


def _analytic_cho(signal, channels, sigma):
    """d'^2 = s_c^T (sigma^2 U^T U)^-1 s_c with s_c = U^T s (Barrett & Myers 2004, eq. 13.x): the CHO of a
    signal-known-exactly task in white noise of SD sigma."""
    u = channels.reshape(channels.shape[0], -1)
    sc = u @ signal.ravel()
    return math.sqrt(sc @ np.linalg.inv(sigma ** 2 * u @ u.T) @ sc)


def test_channels_are_nearly_orthonormal():
    ch = laguerre_gauss_channels(65, 12.0, 5).reshape(5, -1)
    gram = ch @ ch.T
    assert np.allclose(gram, np.eye(5), atol=0.02)


def test_cho_matches_the_analytic_dprime_for_a_gaussian_blob_in_white_noise():
    """A Gaussian blob (amplitude 1, sigma 3 px) in white noise of SD 2: the sample CHO (2000 + 2000 ROIs)
    agrees with the analytic CHO d' within 5 %; for a signal inside the channels' span the CHO equals the
    ideal observer ||s|| / sigma."""
    size, sig = 33, 2.0
    y, x = np.mgrid[0:size, 0:size] - 16
    signal = np.exp(-(x ** 2 + y ** 2) / (2 * 3.0 ** 2))
    ch = laguerre_gauss_channels(size, 10.0, 6)
    expected = _analytic_cho(signal, ch, sig)
    rng = np.random.default_rng(0)
    absent = rng.normal(0, sig, (2000, size, size))
    present = rng.normal(0, sig, (2000, size, size)) + signal
    got = cho_dprime(present, absent, width_px=10.0, n_channels=6)
    assert got == pytest.approx(expected, rel=0.05)
    # the signal equal to channel 0: CHO = ideal observer
    s0 = 3.0 * ch[0]
    ideal = float(np.linalg.norm(s0)) / sig
    assert _analytic_cho(s0, ch, sig) == pytest.approx(ideal, rel=1e-6)


def test_dprime_grows_with_amplitude_and_is_zero_without_signal():
    rng = np.random.default_rng(1)
    noise = lambda: rng.normal(0, 1.0, (400, 15, 15))  # noqa: E731
    ch = laguerre_gauss_channels(15, 5.0, 4)
    blob = ch[0] / ch[0].max()
    d = [cho_dprime(noise() + a * blob, noise(), width_px=5.0, n_channels=4) for a in (0.0, 0.5, 1.0)]
    assert d[0] < 0.35 and d[0] < d[1] < d[2]


def test_hotelling_bad_inputs():
    with pytest.raises(InputError):
        hotelling_dprime(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(InputError):
        channel_outputs(np.zeros((4, 9, 9)), laguerre_gauss_channels(11, 3.0, 2))
    with pytest.raises(InputError):
        laguerre_gauss_channels(2, 3.0)


def test_cho_interval_over_subjects_contains_the_value():
    rng = np.random.default_rng(2)
    ch = laguerre_gauss_channels(15, 5.0, 4)
    blob = 0.8 * ch[0] / ch[0].max()
    pres = [rng.normal(0, 1, (30, 15, 15)) + blob for _ in range(8)]
    absn = [rng.normal(0, 1, (30, 15, 15)) for _ in range(8)]
    iv = cho_dprime_ci(pres, absn, width_px=5.0, n_channels=4, n_boot=200)
    assert iv.n == 8 and iv.low <= iv.value <= iv.high and iv.low > 0


def test_a_subject_without_rois_is_an_empty_group():
    """A test subject whose lesions all lie too close to the grid edge gives an empty ROI stack: the CHO over
    subjects must still run (the demo's scoring once stopped on this at its last step)."""
    rng = np.random.default_rng(4)
    ch = laguerre_gauss_channels(9, 3.0, 3)
    assert channel_outputs(np.zeros((0, 9, 9)), ch).shape == (0, 3)
    pres = [rng.normal(0, 1, (20, 9, 9)) + ch[0], np.zeros((0, 9, 9))]
    absn = [rng.normal(0, 1, (20, 9, 9)), np.zeros((0, 9, 9))]
    iv = cho_dprime_ci(pres, absn, width_px=3.0, n_channels=3, n_boot=100)
    assert iv.value > 0 and iv.n == 2


def test_bootstrap_skips_resamples_without_enough_distinct_rois():
    """Three subjects of which two hold fewer ROIs than channels: a resample drawing one of them three times
    repeats the same few ROIs, its covariance is singular and its pseudo-inverse d' was 0 or ~1e15 (seen in
    the clinical-size bench with 3 lesion-absent twins). Such resamples have no d' and must not enter the
    interval: the interval stays within 3x the value (the old one reached 3.2x here), or is NaN when too few resamples are usable."""
    from petspect.evaluation.observer import resample_usable

    rng = np.random.default_rng(7)
    ch = laguerre_gauss_channels(11, 3.0, 5)
    blob = 0.7 * ch[0] / ch[0].max()
    counts = [2, 3, 40]
    pres = [rng.normal(0, 1, (n, 11, 11)) + blob for n in counts]
    absn = [rng.normal(0, 1, (n, 11, 11)) for n in counts]
    v1 = [channel_outputs(p, ch) for p in pres]
    v0 = [channel_outputs(a, ch) for a in absn]
    assert not resample_usable(v1, v0, [0, 0, 0]) and not resample_usable(v1, v0, [0, 1, 1])
    assert resample_usable(v1, v0, [2, 2, 0])
    iv = cho_dprime_ci(pres, absn, width_px=3.0, n_channels=5, n_boot=300)
    assert np.isfinite(iv.value) and iv.value > 0
    assert (np.isnan(iv.low) and np.isnan(iv.high)) or (0 < iv.low <= iv.high < 3 * iv.value)
