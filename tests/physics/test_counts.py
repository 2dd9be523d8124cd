"""Count statistics: Poisson sampling, scaling to counts, binomial thinning, list-mode windows."""

from __future__ import annotations

import math

import pytest
import torch

from petspect.errors import InputError
from petspect.physics.counts import (TimedEvents, decay_window_fraction, effective_scan_s, events_in_time_window,
                                     expected_counts, histogram_events, poisson_at_total_counts, poisson_sample,
                                     sample_listmode, thin_counts)

F18_HALF_LIFE_S = 109.77 * 60.0  # radioactivedecay / docs/REFERENCE.md


def test_poisson_mean_and_variance_match(device):
    """Poisson: mean = variance = lambda (sample of 20000 bins, 5 sigma tolerance on the mean)."""
    lam = 7.5
    y = poisson_sample(torch.full((20000,), lam, device=device), 3)
    assert y.device.type == device.type
    assert torch.equal(y, torch.round(y))
    assert abs(float(y.mean()) - lam) < 5 * math.sqrt(lam / y.numel())
    assert abs(float(y.var()) / lam - 1.0) < 0.05


def test_poisson_same_seed_same_counts():
    a = poisson_sample(torch.full((100,), 3.0), 11)
    b = poisson_sample(torch.full((100,), 3.0), 11)
    c = poisson_sample(torch.full((100,), 3.0), 12)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_total_counts_scaling_with_additive():
    """Expected trues sum to N; the additive term is scaled by the same factor; total ~ N (1 + s/t)."""
    trues = torch.rand(50, 40, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    additive = 0.25 * trues.mean() * torch.ones_like(trues)
    n = 1.0e6
    counts, scale = poisson_at_total_counts(trues, n, 5, additive=additive)
    assert scale == pytest.approx(n / float(trues.sum()))
    expected_total = n + scale * float(additive.sum())
    assert abs(float(counts.sum()) - expected_total) < 5 * math.sqrt(expected_total)


def test_zero_expected_gives_zero_counts():
    y = poisson_sample(torch.zeros(10, 10), 0)
    assert float(y.sum()) == 0.0
    with pytest.raises(InputError):
        poisson_at_total_counts(torch.zeros(4), 100.0, 0)


def test_bad_inputs_raise():
    with pytest.raises(InputError):
        poisson_sample(torch.tensor([-1.0, 2.0]), 0)
    with pytest.raises(InputError):
        poisson_sample(torch.tensor([float("nan")]), 0)
    with pytest.raises(InputError):
        thin_counts(torch.tensor([1.5]), 0.5, 0)
    with pytest.raises(InputError):
        thin_counts(torch.tensor([1.0]), 1.5, 0)
    with pytest.raises(InputError):
        poisson_sample(torch.ones(3), None)  # type: ignore[arg-type]


def test_effective_scan_time_decay():
    """int_0^T exp(-lambda t) dt; a scan of one half-life collects T / (2 ln 2) of the start rate."""
    assert effective_scan_s(600.0) == 600.0
    t_half = 100.0
    assert effective_scan_s(t_half, half_life_s=t_half) == pytest.approx(t_half / (2 * math.log(2)))
    # a later start collects less by exp(-lambda t0)
    assert effective_scan_s(10.0, half_life_s=t_half, t_start_s=t_half) == pytest.approx(
        0.5 * effective_scan_s(10.0, half_life_s=t_half))
    rate = torch.tensor([2.0, 0.0])
    assert torch.allclose(expected_counts(rate, 300.0), torch.tensor([600.0, 0.0]))


def test_thinning_is_poisson_at_dose_fraction():
    """Binomial(Poisson(l), f) ~ Poisson(f l): mean and variance f l; never above the full-dose counts."""
    lam, f = 20.0, 0.1
    full = poisson_sample(torch.full((40000,), lam, dtype=torch.float64), 1)
    low = thin_counts(full, f, 2)
    assert low.dtype == full.dtype and bool((low <= full).all())
    assert abs(float(low.mean()) - f * lam) < 5 * math.sqrt(f * lam / low.numel())
    assert abs(float(low.var()) / (f * lam) - 1.0) < 0.05
    assert torch.equal(thin_counts(full, 1.0, 0), full)
    assert float(thin_counts(full, 0.0, 0).sum()) == 0.0


def test_listmode_histogram_and_windows():
    """Events histogram back to Poisson data; window fraction follows decay, not the time fraction."""
    expected = torch.full((8, 16), 400.0, dtype=torch.float64)
    scan_s = 2 * F18_HALF_LIFE_S
    ev = sample_listmode(expected, scan_s, 4, half_life_s=F18_HALF_LIFE_S)
    assert bool((ev.time_s[1:] >= ev.time_s[:-1]).all())
    hist = histogram_events(ev, dtype=torch.float64)
    assert hist.shape == expected.shape and float(hist.sum()) == len(ev)
    n = float(expected.sum())
    assert abs(len(ev) - n) < 5 * math.sqrt(n)
    # first 10 % of the scan: more than 10 % of the counts with decay
    t1 = 0.1 * scan_s
    early = events_in_time_window(ev, 0.0, t1)
    frac = decay_window_fraction(0.0, t1, scan_s, half_life_s=F18_HALF_LIFE_S)
    assert frac > 0.1 + 0.03
    assert abs(len(early) / len(ev) - frac) < 5 * math.sqrt(frac * (1 - frac) / len(ev))
    # windows partition the scan
    late = events_in_time_window(ev, t1, scan_s)
    assert len(early) + len(late) == len(ev)
    assert decay_window_fraction(0.0, 30.0, 300.0, half_life_s=None) == pytest.approx(0.1)


def test_listmode_validation():
    with pytest.raises(InputError):
        TimedEvents(torch.tensor([0, 5]), torch.tensor([0.0, 1.0]), (2, 2))
    with pytest.raises(InputError):
        TimedEvents(torch.tensor([0, 1]), torch.tensor([0.0]), (2, 2))
    ev = TimedEvents(torch.tensor([0, 3, 3]), torch.tensor([0.5, 0.1, 2.0]), (2, 2))
    assert torch.equal(histogram_events(ev), torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    assert len(events_in_time_window(ev, 0.0, 1.0)) == 2
    with pytest.raises(InputError):
        events_in_time_window(ev, 1.0, 1.0)
