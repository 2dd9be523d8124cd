"""Joint network (position, energy, time) on monolithic-block pairs, and the separate models it is compared with."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from petspect.detector.joint import (JointConfig, JointEvents, JointModel, JointNet, block_timing, light_maps,
                                     simulate_joint)
from petspect.detector.joint_study import (Estimates, SeparateModels, SummedSignalCalibration, compare, figures, judge,
                                           photopeak_mask, tune_joint)
from petspect.detector.models import TrainSettings
from petspect.detector.photodetector import SiPMArray
from petspect.detector.simulate import DetectorConfig
from petspect.detector.waveforms import TimingConfig
from petspect.errors import ConfigError, FormatError, InputError
from petspect.units import C_MM_PER_PS

DET = DetectorConfig("LYSO", 12.0, SiPMArray(n_x=4, n_y=4))
TIM = TimingConfig(length_mm=10.0, n_samples=32, max_shift=2, onset_ns=2.0, trigger_jitter_ps=1000.0)
FAST = TrainSettings(epochs=2, batch_size=64)


@pytest.fixture(scope="module")
def events():
    return (simulate_joint(DET, TIM, 300, np.random.default_rng(0), source_range_mm=150.0),
            simulate_joint(DET, TIM, 300, np.random.default_rng(1)), simulate_joint(DET, TIM, 300, np.random.default_rng(2)))


def test_simulated_pairs_physics(events):
    """The timing channel carries the photons of the light distribution; labels follow the source; depths lie inside."""
    tr, va, _ = events
    assert tr.signals.shape == (300, 2, 4, 4) and tr.waveforms.shape == (300, 2, 36)
    np.testing.assert_allclose(tr.dt_ps, 2.0 * tr.source_mm / C_MM_PER_PS)
    assert np.abs(tr.source_mm).max() > 60.0 and np.abs(va.source_mm).max() <= TIM.source_range_mm
    assert np.all((tr.position_mm[..., 2] >= 0) & (tr.position_mm[..., 2] <= DET.thickness_mm))
    assert np.all(tr.edep_kev > 0) and np.all(tr.edep_kev <= 511.0 + 1e-6)
    np.testing.assert_array_equal(tr.n_pe, np.rint(tr.signals.reshape(300, 2, -1).sum(-1)))
    # more energy, more photoelectrons, taller pulses (the energy is in both inputs)
    assert np.corrcoef(tr.edep_kev.ravel(), tr.n_pe.ravel())[0, 1] > 0.8
    assert np.corrcoef(tr.n_pe.ravel(), tr.waveforms.max(-1).ravel())[0, 1] > 0.8
    assert block_timing(DET, TIM).length_mm == DET.thickness_mm
    co = tr.coincidences()
    assert co.waveforms.shape == tr.waveforms.shape and len(tr.subset(tr.dt_ps > 0)) == int((tr.dt_ps > 0).sum())


def test_events_round_trip(events, tmp_path):
    ev = events[1]
    ev.save(tmp_path / "j.npz")
    back = JointEvents.load(tmp_path / "j.npz")
    np.testing.assert_array_equal(back.waveforms, ev.waveforms)
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(FormatError):
        JointEvents.load(tmp_path / "bad.npz")


def test_joint_net_shapes_and_bad_inputs():
    net = JointNet(4, 4, 12, channels=8)
    out = net(torch.randn(5, 2, 4, 4), torch.randn(5, 26))
    assert out.shape == (5, 5)
    with pytest.raises(InputError):
        net(torch.randn(5, 1, 4, 4), torch.randn(5, 26))
    with pytest.raises(InputError):
        net(torch.randn(5, 2, 4, 4), torch.randn(5, 20))
    with pytest.raises(ConfigError):
        JointNet(1, 4, 12)
    with pytest.raises(InputError):
        light_maps(np.ones((3, 5, 4)), DET.sipm)
    with pytest.raises(ConfigError):
        JointConfig(pairs=(100, 10, 100))
    with pytest.raises(ConfigError):
        JointConfig(energy_weights=(0.0,))


def test_summed_signal_calibration_recovers_gains():
    """Regions with different gains are each scaled to 511 keV at their own photopeak."""
    rng = np.random.default_rng(3)
    xy = rng.uniform(-6.4, 6.4, (8000, 2))
    cal = SummedSignalCalibration(DET)
    gain = 1.0 + 0.5 * (xy[:, 0] > 0)  # the right half of the face collects 1.5x more light
    region = cal._region(xy)
    assert region.min() >= 0 and region.max() < 16
    signal = gain * 1000.0 * rng.normal(1.0, 0.04, len(xy))
    e = cal.fit(signal, xy).energy_kev(signal, xy)
    for half in (xy[:, 0] > 0, xy[:, 0] <= 0):
        assert abs(np.median(e[half]) - 511.0) < 5.0
    with pytest.raises(InputError):
        SummedSignalCalibration(DET).energy_kev(signal, xy)


def test_figures_oracle_and_collapsed_energy(events):
    """Exact estimates give zero errors; an energy pinned at 511 keV looks sharp but takes every scatter event in."""
    ev = events[2]
    sel = np.ones((len(ev), 2), dtype=bool)
    rng = np.random.default_rng(5)  # 1 um / 0.01 ps jitter: a histogram width needs some spread
    oracle = figures(Estimates(ev.position_mm + 1e-3 * rng.standard_normal(ev.position_mm.shape),
                               ev.edep_kev * (1 + 1e-4 * rng.standard_normal(ev.edep_kev.shape)),
                               ev.dt_ps + 1e-2 * rng.standard_normal(len(ev))), ev, sel, DET)
    assert oracle["xy_mae_mm"] < 2e-3 and oracle["doi_mae_mm"] < 2e-3 and oracle["ctr_fwhm_ps"] < 0.1
    assert oracle["scatter_in_window"] == 0 and oracle["window_efficiency"] == 1 and abs(oracle["energy_slope"] - 1) < 0.01
    pinned = figures(Estimates(None, np.full_like(ev.edep_kev, 511.0) + 1e-3 * ev.edep_kev, None), ev, sel, DET)
    assert pinned["scatter_in_window"] == 1.0 and pinned["energy_slope"] < 0.01 and "ctr_fwhm_ps" not in pinned


def test_train_compare_save_load(events, tmp_path):
    """Separate models and the joint network train on the same pairs; weights chosen on validation; round trip."""
    tr, va, te = events
    sep = SeparateModels.train(DET, TIM, tr, position_settings=FAST, timing_settings=TrainSettings(epochs=1, batch_size=64),
                               timing_window=(4, 8))
    cfg = JointConfig(pairs=(300, 300, 300), training=FAST, energy_weights=(1.0,), time_weights=(0.5, 2.0), max_trials=2,
                      window=(4, 8), channels=8)
    jm, tuning, val_fig = tune_joint(cfg, DET, TIM, tr, va, sep)
    assert len(tuning.trials) == 2 and tuning.budget.split == "validation" and len(val_fig["trials"]) == 2
    assert tuning.best["time_weight"] in (0.5, 2.0) and np.isfinite(tuning.best_score)
    p = jm.predict(te)
    assert p["position_mm"].shape == (300, 2, 3) and p["energy_kev"].shape == (300, 2)
    np.testing.assert_allclose(p["dt_ps"], p["time_ps"][:, 0] - p["time_ps"][:, 1])
    c = compare(jm, sep, va, te, DET, TIM, thresholds_spe=(1, 2, 3, 5, 8), fractions=(0.01, 0.02, 0.05, 0.1))
    for name in ("joint", "separate"):
        for k in ("xy_fwhm_mm", "doi_mae_mm", "energy_resolution_pct", "ctr_fwhm_ps"):
            assert np.isfinite(c[name][k]) and c[name][k] > 0
    assert c["selection"]["events"] == int(photopeak_mask(sep.estimate(te)).sum())
    verdict = judge(c)
    assert set(verdict["change_pct"]) == {"xy_fwhm_mm", "doi_mae_mm", "energy_resolution_pct", "ctr_fwhm_ps"}
    jm.save(tmp_path / "joint", {"preset": "test"})
    sep.save(tmp_path, {"preset": "test"})
    back = JointModel.load(tmp_path / "joint")
    np.testing.assert_allclose(back.predict(te)["dt_ps"], p["dt_ps"], atol=1e-3)
    sep2 = SeparateModels.load(tmp_path, DET)
    np.testing.assert_allclose(sep2.estimate(te).energy_kev, sep.estimate(te).energy_kev)
    with pytest.raises(FormatError):
        JointModel.load(tmp_path / "joint_separate_cnn")
    with pytest.raises(InputError):
        JointModel(DET, TIM).predict(te)
