"""Bootstrap intervals over subjects, paired differences and the "A beats B" rule."""

import math

import numpy as np
import pytest

from petspect.errors import InputError
from petspect.evaluation.stats import Better, beats, bootstrap_mean_ci, paired_delta_ci, summarise_methods


def test_bootstrap_interval_covers_the_true_mean_about_95_percent():
    """Coverage check: normal data (mean 3, SD 1), 20 subjects; the percentile bootstrap of a mean covers the
    true mean close to its nominal 95 % (slightly under for n = 20, Efron & Tibshirani 1993, ch. 13)."""
    rng = np.random.default_rng(1)
    hits = 0
    for k in range(200):
        iv = bootstrap_mean_ci(rng.normal(3.0, 1.0, 20), n_boot=400, seed=k)
        hits += iv.low <= 3.0 <= iv.high
    assert 0.85 <= hits / 200 <= 0.99


def test_bootstrap_width_matches_standard_error():
    """For n = 200 normal values the 95 % interval is close to mean +- 1.96 SD / sqrt(n)."""
    x = np.random.default_rng(2).normal(0.0, 2.0, 200)
    iv = bootstrap_mean_ci(x, n_boot=4000, seed=0)
    se = x.std(ddof=1) / math.sqrt(x.size)
    assert iv.value == pytest.approx(x.mean())
    assert (iv.high - iv.low) == pytest.approx(2 * 1.96 * se, rel=0.12)


def test_nan_handling_and_small_samples():
    assert math.isnan(bootstrap_mean_ci([math.nan]).value)
    one = bootstrap_mean_ci([2.0, math.nan])
    assert one.value == 2.0 and one.n == 1 and math.isnan(one.low)
    with pytest.raises(InputError):
        bootstrap_mean_ci([1.0, 2.0], n_boot=10)
    with pytest.raises(InputError):
        paired_delta_ci([1.0, 2.0], [1.0])


def test_paired_difference_sees_a_small_consistent_gain_that_unpaired_intervals_hide():
    """Subjects vary a lot (SD 5) but method a is 0.5 above b on every subject (+- 0.1): the paired interval
    excludes 0 although the two unpaired intervals overlap."""
    rng = np.random.default_rng(3)
    base = rng.normal(30.0, 5.0, 12)
    a = base + 0.5 + rng.normal(0, 0.1, 12)
    ia, ib = bootstrap_mean_ci(a), bootstrap_mean_ci(base)
    assert ia.low < ib.high  # unpaired intervals overlap
    d = paired_delta_ci(a, base)
    assert d.excludes_zero() and d.low > 0.3
    assert beats(a, base, "higher") and not beats(base, a, "higher")
    assert beats(base, a, Better.LOWER)


def test_beats_abs_lower_for_signed_biases():
    """A bias of -1 % beats one of +5 % (closer to 0) and a tie (same |bias|) beats nothing."""
    a = [-1.0, -1.1, -0.9, -1.0, -1.05, -0.95]
    b = [5.0, 5.2, 4.8, 5.1, 4.9, 5.0]
    assert beats(a, b, "abs-lower") and not beats(b, a, "abs-lower")
    assert not beats(a, [-x for x in a], "abs-lower")


def test_summarise_methods_keys_and_deltas():
    per = [{"gauss": {"psnr_db": 30.0 + i, "bias": 1.0}, "net": {"psnr_db": 31.0 + i, "bias": math.nan}}
           for i in range(6)]
    out = summarise_methods(per, comparator="gauss")
    assert out["gauss"]["psnr_db"] == pytest.approx(32.5)
    assert len(out["gauss"]["psnr_db_ci95"]) == 2
    assert "delta_psnr_db" not in out["gauss"]
    assert out["net"]["delta_psnr_db"] == pytest.approx(1.0)
    assert out["net"]["delta_psnr_db_ci95"] == pytest.approx([1.0, 1.0])
    assert "bias" not in out["net"]  # NaN everywhere: dropped
