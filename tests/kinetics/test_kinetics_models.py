"""Compartment models, convolution, graphical analysis (Patlak, Logan) on simulated FDG data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from petspect.errors import InputError
from petspect.kinetics.compartments import KineticParams, Model, conv_exp, fit_1tcm_voxels, fit_region, model_frames
from petspect.kinetics.graphical import logan, patlak
from petspect.kinetics.input_function import FRAMINGS, FengInput, FrameSchedule, SampledInput, feng_fdg_for_patient
from petspect.kinetics.simulate import FDG_TISSUES, add_frame_noise, simulate_tacs

FR = FRAMINGS["fdg-60min"]


@pytest.fixture(scope="module")
def inp():
    return feng_fdg_for_patient().sampled(FR.end_s[-1])


def test_framings_cover_the_protocols():
    assert FR.end_s[-1] == 3600 and FRAMINGS["dynamic-90min"].end_s[-1] == 5400
    with pytest.raises(InputError, match="overlap"):
        FrameSchedule(np.array([0.0, 5.0]), np.array([10.0, 10.0]))


def test_feng_scaled_to_the_fdg_blood_pool_suv():
    """Plasma at 60 min = SUV 1.8 x 370 MBq / 75 kg = 8880 Bq/mL (decay corrected); Feng's curve peaks
    within the first minute and is zero before the delay."""
    f = feng_fdg_for_patient(delay_s=20.0)
    assert f(np.array([3620.0]))[0] == pytest.approx(8880.0, rel=1e-9)
    t = np.arange(0, 600.0)
    c = f(t)
    assert c[:20].max() == 0 and 20 < t[np.argmax(c)] < 80
    with pytest.raises(InputError):
        FengInput(l1_per_min=0.5)


def test_convolution_is_exact_for_a_constant_input():
    """exp(-b t) (x) 1 = (1 - exp(-b t)) / b, exact for any grid."""
    t = np.concatenate([np.arange(0, 100, 0.7), np.arange(100, 3000, 13.0)])
    inp = SampledInput(t, np.ones_like(t))
    for b_min in (0.0, 0.01, 0.5, 4.0):
        b = b_min / 60
        want = t if b == 0 else -np.expm1(-b * t) / b
        assert np.allclose(conv_exp(inp, b_min), want, rtol=1e-9, atol=1e-9)


def test_convolution_matches_a_fine_numerical_one(inp):
    b = 0.3
    got = conv_exp(inp, b)
    fine = feng_fdg_for_patient().sampled(600, 0.01)
    ker = np.exp(-b / 60 * fine.times_s)
    num = np.convolve(fine.values_bq_per_ml, ker)[: len(fine.times_s)] * 0.01
    assert got[600] == pytest.approx(num[-1], rel=2e-3)


def test_sampled_input_integral_is_exact_for_piecewise_linear():
    s = SampledInput(np.array([0.0, 10.0, 30.0]), np.array([0.0, 10.0, 0.0]))
    assert s.integral(np.array([5.0, 10.0, 20.0, 30.0, 40.0])).tolist() == pytest.approx([12.5, 50, 125, 150, 150])


def test_patlak_recovers_fdg_ki_within_5_percent_from_noiseless_data(inp):
    """The judged check: Patlak Ki of simulated FDG tissues (2TCM, k4 = 0, vB > 0) within 5 % of the true
    (1 - vB) K1 k3 / (k2 + k3), t* = 20 min of a 60 min scan."""
    tacs = simulate_tacs(FDG_TISSUES, inp, FR)
    for name, p in FDG_TISSUES.items():
        ki = float(patlak(tacs[name], inp, FR, t_star_s=20 * 60).slope)
        assert ki == pytest.approx(p.ki_voxel_per_min, rel=0.05), name
    tumour = float(patlak(tacs["tumour"], inp, FR).slope)
    assert tumour == pytest.approx(FDG_TISSUES["tumour"].ki_voxel_per_min, rel=0.01)


def test_patlak_spread_grows_with_noise_and_stays_unbiased(inp):
    tac = simulate_tacs({"t": FDG_TISSUES["tumour"]}, inp, FR)["t"]
    rng = np.random.default_rng(3)
    truth = FDG_TISSUES["tumour"].ki_voxel_per_min
    spread = []
    for cov in (0.02, 0.1):
        kis = np.array([float(patlak(add_frame_noise(tac, FR, cov_last=cov, rng=rng), inp, FR).slope)
                        for _ in range(150)])
        assert abs(kis.mean() / truth - 1) < 0.05
        spread.append(kis.std() / kis.mean())
    assert spread[0] < spread[1] and 0.005 < spread[0] < 0.1


def test_patlak_is_vectorised_over_voxels(inp):
    tacs = np.stack([simulate_tacs({"t": FDG_TISSUES[k]}, inp, FR)["t"] for k in ("tumour", "muscle")])
    vox = np.broadcast_to(tacs[:, None, :], (2, 3, len(FR)))
    fit = patlak(vox, inp, FR)
    assert fit.slope.shape == (2, 3) and np.allclose(fit.slope[0], fit.slope[0, 0])
    with pytest.raises(InputError, match="frames"):
        patlak(tacs[:, :5], inp, FR)
    with pytest.raises(InputError, match="t\\*"):
        patlak(tacs, inp, FR, t_star_s=3590)


def test_logan_recovers_the_distribution_volume_of_a_reversible_tracer():
    fr = FRAMINGS["dynamic-90min"]
    inp = feng_fdg_for_patient().sampled(fr.end_s[-1])
    p = KineticParams(0.3, 0.2)  # 1TCM, V_T = 1.5
    tac = model_frames(p, Model.ONE_TCM, inp, fr)
    assert float(logan(tac, inp, fr).slope) == pytest.approx(p.vt, rel=0.01)


@pytest.mark.parametrize("model, truth", [
    ("1tcm", KineticParams(0.3, 0.4, vb=0.05)),
    ("2tcm-irr", KineticParams(0.10, 0.20, 0.10, 0.0, 0.05)),
    ("2tcm", KineticParams(0.102, 0.130, 0.062, 0.0068, 0.04)),
])
def test_region_fit_recovers_noiseless_parameters(inp, model, truth):
    fr = FRAMINGS["dynamic-90min"] if model == "2tcm" else FR
    i = feng_fdg_for_patient().sampled(fr.end_s[-1]) if model == "2tcm" else inp
    tac = model_frames(truth, Model(model), i, fr)
    fit = fit_region(tac, i, fr, model, n_starts=2)
    assert fit.params.k1_per_min == pytest.approx(truth.k1_per_min, rel=0.02)
    assert fit.params.k2_per_min == pytest.approx(truth.k2_per_min, rel=0.03)
    assert fit.params.vb == pytest.approx(truth.vb, abs=0.005)
    if model != "1tcm":
        assert fit.params.ki_per_min == pytest.approx(truth.ki_per_min, rel=0.03)


def test_voxel_1tcm_basis_functions(inp):
    truth = [KineticParams(0.3, 0.4, vb=0.05), KineticParams(0.1, 0.05, vb=0.0)]
    tacs = np.stack([model_frames(p, Model.ONE_TCM, inp, FR) for p in truth])
    out = fit_1tcm_voxels(tacs, inp, FR)
    for i, p in enumerate(truth):
        assert out["k1_per_min"][i] == pytest.approx(p.k1_per_min, rel=0.03)
        assert out["k2_per_min"][i] == pytest.approx(p.k2_per_min, rel=0.03)


def test_bad_parameters_and_curves_are_refused(inp):
    with pytest.raises(InputError):
        KineticParams(-0.1, 0.1)
    with pytest.raises(InputError):
        SampledInput(np.array([0.0, 0.0, 1.0]), np.array([1.0, 2.0, 3.0]))
    with pytest.raises(InputError, match="finite"):
        fit_region(np.full(len(FR), np.nan), inp, FR)
    short = feng_fdg_for_patient().sampled(600)
    with pytest.raises(InputError, match="before the last frame"):
        model_frames(KineticParams(0.1, 0.1), Model.ONE_TCM, short, FR)
    assert math.isinf(KineticParams(0.1, 0.1, 0.05).vt)
