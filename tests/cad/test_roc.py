"""ROC machinery: AUC against hand-computed values, bootstrap intervals, Youden threshold, Brier, reliability."""

from __future__ import annotations

import numpy as np
import pytest

from petspect.cad.crossval import OutOfFold, method_metrics, platt, stratified_folds
from petspect.cad.roc import (bootstrap_auc, brier_score, paired_auc_delta, reliability_table, roc_auc, roc_curve,
                              youden_threshold)
from petspect.errors import InputError


def test_auc_hand_values():
    """AUC = P(score_pos > score_neg) + 0.5 P(tie) (Hanley & McNeil 1982): counted by hand here."""
    y = [0, 0, 1, 1]
    assert roc_auc(y, [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)  # pairs: (0.35>0.1), (0.35<0.4), 0.8>both
    assert roc_auc(y, [1, 1, 1, 1]) == pytest.approx(0.5)  # all ties
    assert roc_auc(y, [0, 1, 2, 3]) == 1.0 and roc_auc(y, [3, 2, 1, 0]) == 0.0


def test_auc_equals_trapezoid_of_roc_curve():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(30, int), np.ones(20, int)]
    s = rng.normal(size=50) + y
    s[:5] = s[30:35]  # some ties across classes
    fpr, tpr = roc_curve(y, s)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(y, s), abs=1e-12)


def test_bootstrap_interval_coverage_and_width():
    """Two unit normals one SD apart: true AUC = Phi(1/sqrt(2)) = 0.7602; the 95 % interval covers it in most
    of 40 simulated studies (binomial: >= 33 of 40 unless coverage is below ~90 %) and narrows with n."""
    true = 0.7602
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(60, int), np.ones(60, int)]
    hits, widths = 0, []
    for _ in range(40):
        iv = bootstrap_auc(y, rng.normal(size=120) + y, n_boot=200, seed=int(rng.integers(1000)))
        hits += iv.low < true < iv.high
        widths.append(iv.high - iv.low)
        assert iv.low <= iv.value <= iv.high
    assert hits >= 33
    small = np.r_[np.zeros(15, int), np.ones(15, int)]
    iv_s = bootstrap_auc(small, rng.normal(size=30) + small, n_boot=200)
    assert np.mean(widths) < 0.75 * (iv_s.high - iv_s.low)


def test_paired_delta_identical_and_better():
    rng = np.random.default_rng(2)
    y = np.r_[np.zeros(40, int), np.ones(40, int)]
    good, bad = 3.0 * y + rng.normal(size=80), 0.3 * y + rng.normal(size=80)
    d0 = paired_auc_delta(y, good, good, n_boot=300)
    assert d0.value == 0 and d0.low == 0 and d0.high == 0
    d = paired_auc_delta(y, good, bad, n_boot=300)
    assert d.low > 0 and d.value == pytest.approx(roc_auc(y, good) - roc_auc(y, bad))


def test_youden_threshold_separates_perfectly():
    y = [0, 0, 0, 1, 1]
    t = youden_threshold(y, [0.1, 0.2, 0.3, 0.7, 0.9])
    assert 0.3 < t < 0.7


def test_brier_and_reliability():
    assert brier_score([0, 1], [0.5, 0.5]) == pytest.approx(0.25)
    assert brier_score([0, 1], [0.0, 1.0]) == 0.0
    rows = reliability_table([0, 0, 1, 1], [0.05, 0.15, 0.85, 0.95], n_bins=5)
    assert [r["n"] for r in rows] == [2, 0, 0, 0, 2]
    assert rows[0]["observed_fraction"] == 0.0 and rows[-1]["observed_fraction"] == 1.0
    assert np.isnan(rows[2]["mean_predicted"])
    with pytest.raises(InputError):
        brier_score([0, 1], [0.2, 1.2])


@pytest.mark.parametrize("y,s", [([1, 1, 1], [0.1, 0.2, 0.3]), ([0, 2], [0.1, 0.2]), ([0, 1], [0.1]),
                                 ([0, 1], [0.1, np.nan])])
def test_bad_inputs(y, s):
    with pytest.raises(InputError):
        roc_auc(y, s)


def test_stratified_folds_balance_and_cover():
    y = np.r_[np.zeros(13, int), np.ones(10, int)]
    f = stratified_folds(y, 5, seed=3)
    assert sorted(set(f.tolist())) == [0, 1, 2, 3, 4]
    for k in range(5):
        assert 2 <= (y[f == k] == 0).sum() <= 3 and 2 <= (y[f == k] == 1).sum() <= 2
    assert np.array_equal(f, stratified_folds(y, 5, seed=3))
    with pytest.raises(InputError):
        stratified_folds(np.r_[np.zeros(10, int), np.ones(3, int)], 5, seed=0)


def test_platt_is_monotone_and_calibrated_on_logistic_data():
    rng = np.random.default_rng(4)
    s = rng.normal(size=4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-2 * s))).astype(int)
    f = platt(s, y)
    p = f(np.array([-1.0, 0.0, 1.0]))
    assert p[0] < p[1] < p[2]
    assert p == pytest.approx(1 / (1 + np.exp(-2 * np.array([-1.0, 0.0, 1.0]))), abs=0.04)


def test_method_metrics_contract():
    y = np.r_[np.zeros(10, int), np.ones(10, int)]
    s = y + np.linspace(0, 0.5, 20)
    oof = OutOfFold("a", s, np.clip(s / 2, 0, 1), s >= 0.9, [0.9])
    base = OutOfFold("b", -s, np.full(20, 0.5), np.zeros(20, bool), [0.0])
    m = method_metrics(y, oof, comparator=base, n_boot=200)
    assert m["auc"] == 1.0 and m["sensitivity"] == 1.0 and m["specificity"] == 1.0
    assert m["delta_auc"] == pytest.approx(1.0) and m["delta_vs"] == "b"
    assert len(m["auc_ci95"]) == 2 and m["brier"] == pytest.approx(np.mean((oof.prob - y) ** 2))
