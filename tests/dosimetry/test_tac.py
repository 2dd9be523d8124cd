"""Time-activity fits and time-integrated activity (petspect.dosimetry.tac)."""

import math

import numpy as np
import pytest

from petspect.dosimetry import tac
from petspect.errors import InputError

LU177_T_H = 6.647 * 24  # physical half-life of Lu-177 (h), ICRP-107


def test_mono_exponential_tia_within_1_percent():
    """Noise-free mono-exponential data with a known effective half-life: TIA = A0 T / ln 2 within 1 %."""
    t = np.array([4.0, 24.0, 96.0, 168.0])
    a0, t_eff = 100.0, 60.0
    a = a0 * np.exp(-math.log(2) / t_eff * t)
    fit = tac.fit_tac(t, a, physical_half_life_h=LU177_T_H)
    truth = a0 * t_eff / math.log(2)
    assert fit.model == "mono"
    assert fit.tia == pytest.approx(truth, rel=0.01)
    assert fit.effective_half_life_h == pytest.approx(t_eff, rel=0.01)


def test_noisy_mono_tia_and_uncertainty_cover_truth():
    """With 5 % noise the TIA error is within a few standard errors over 20 seeded curves."""
    t = np.array([4.0, 24.0, 48.0, 96.0, 168.0])
    truth = 50.0 * 40.0 / math.log(2)
    z = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        a = 50.0 * np.exp(-math.log(2) / 40.0 * t) * (1 + 0.05 * rng.standard_normal(len(t)))
        fit = tac.fit_tac(t, a, physical_half_life_h=LU177_T_H, models=("mono",))
        z.append((fit.tia - truth) / fit.tia_se)
    assert np.mean(np.abs(np.array(z)) < 3) >= 0.9


def test_uptake_washout_selected_by_aicc():
    """A curve with clear uptake (bi-exponential) is fitted better by 'bi' than by 'mono'."""
    t = np.array([1.0, 4.0, 12.0, 24.0, 48.0, 96.0, 168.0])
    lw, lu = math.log(2) / 50.0, math.log(2) / 3.0
    a = 80.0 * (np.exp(-lw * t) - np.exp(-lu * t))
    fit = tac.fit_tac(t, a, physical_half_life_h=LU177_T_H, models=("mono", "bi"))
    assert fit.model == "bi"
    assert fit.tia == pytest.approx(80.0 * (1 / lw - 1 / lu), rel=0.01)
    assert fit.candidates["bi"] < fit.candidates["mono"]


def test_trapezoid_with_physical_tail_exact_for_linear_pieces():
    """Trapezoid from A(0)=0: hand-computed area plus A_n / lambda_phys."""
    t = [2.0, 4.0]
    a = [10.0, 6.0]
    fit = tac.trapezoid_tia(t, a, physical_half_life_h=10.0)
    expected = 0.5 * 2 * 10 + 0.5 * 2 * (10 + 6) + 6 * 10 / math.log(2)
    assert fit.tia == pytest.approx(expected)


def test_two_points_fall_back_to_trapezoid():
    fit = tac.fit_tac([24.0, 96.0], [10.0, 5.0], physical_half_life_h=LU177_T_H)
    assert fit.model == "trapezoid"


def test_hanscheid_exact_at_effective_half_life():
    """Hanscheid's A(t) 2t/ln2 equals the mono-exponential TIA when t = T_eff (Hanscheid et al 2018)."""
    t_eff = 70.0
    a_t = 100.0 * 0.5  # activity at t = T_eff
    assert tac.hanscheid_tia(a_t, t_eff) == pytest.approx(100.0 * t_eff / math.log(2), rel=1e-12)
    assert tac.population_tia(a_t, t_eff, t_eff) == pytest.approx(100.0 * t_eff / math.log(2), rel=1e-12)


def test_voxel_tia_mono_tail_matches_analytic():
    """Voxel-wise TIA of mono-exponential voxels: trapezoids + fitted tail, close to A0/lambda."""
    t = np.array([4.0, 24.0, 96.0])
    lam = np.array([math.log(2) / 40.0, math.log(2) / 100.0])
    stack = 10.0 * np.exp(-lam[None, :] * t[:, None])[:, :, None, None]
    out = tac.voxel_tia(stack, t, physical_half_life_h=LU177_T_H)
    truth = 10.0 / lam
    # the trapezoid from A(0)=0 misses part of the first 4 h only
    assert np.allclose(out[:, 0, 0], truth, rtol=0.05)


@pytest.mark.parametrize("times,acts", [([0.0, 1.0], [1.0, 1.0]), ([2.0, 1.0], [1.0, 1.0]),
                                        ([1.0, 2.0], [1.0, -1.0]), ([1.0], [1.0, 2.0])])
def test_bad_inputs_raise(times, acts):
    with pytest.raises(InputError):
        tac.fit_tac(times, acts, physical_half_life_h=10.0)
