"""Event simulation: energy resolution, depth, labels and the saved record."""

from __future__ import annotations

import numpy as np
import pytest

from petspect.detector.light_transport import Optics
from petspect.detector.metrics import energy_resolution
from petspect.detector.photodetector import SiPMArray
from petspect.detector.simulate import DetectorConfig, flood, load_events, pencil_grid, save_events, simulate_events
from petspect.errors import ConfigError, DataNotFoundError

SIPM = SiPMArray(n_x=4, n_y=4)


def test_lyso_energy_resolution_is_realistic():
    """A centred pencil beam on 10 mm LYSO with reflective (ESR-like) faces: photopeak resolution
    ~8-12 % FWHM at 511 keV (monolithic LYSO + SiPM, e.g. ~10-11 % in Borghi et al, PMB 2016), from
    ~2000 photoelectrons (Poisson ~5 %) and the ~7 % intrinsic resolution of LYSO."""
    cfg = DetectorConfig("LYSO", 10.0, SIPM, Optics(lateral_reflectivity=0.95, lateral_order=2))
    entry = np.zeros((2500, 3))
    ev = simulate_events(cfg, entry, np.ones_like(entry, bool), np.random.default_rng(0))
    r = energy_resolution(ev.total_signal)
    assert 7.0 < r["energy_resolution_pct"] < 12.5
    assert 1000 < r["photopeak_signal"] < 4000


def test_labr3_resolves_energy_better_than_bgo():
    """Light yield 63 vs 8 ph/keV: LaBr3 has a much better energy resolution than BGO."""
    res = {}
    for name in ("LaBr3", "BGO"):
        cfg = DetectorConfig(name, 10.0, SIPM, Optics(lateral_reflectivity=0.95, lateral_order=2))
        entry = np.zeros((2000, 3))
        ev = simulate_events(cfg, entry, np.ones_like(entry, bool), np.random.default_rng(1))
        res[name] = energy_resolution(ev.total_signal)["energy_resolution_pct"]
    assert res["LaBr3"] < 0.6 * res["BGO"]


def test_flood_labels_depth_and_record(tmp_path):
    cfg = DetectorConfig("LYSO", 8.0, SIPM)
    entry, mask = flood(cfg, 400, np.random.default_rng(2))
    ev = simulate_events(cfg, entry, mask, np.random.default_rng(3))
    assert ev.signals.shape[1:] == (4, 4) and len(ev) == ev.position_mm.shape[0]
    assert np.all((ev.position_mm[:, 2] >= 0) & (ev.position_mm[:, 2] <= 8.0))
    assert np.allclose(ev.position_mm[:, :2], ev.beam_mm)  # normal incidence: first x, y = beam
    assert np.all(ev.edep_kev > 0) and np.all(ev.edep_kev <= 511.0 + 1e-9)
    save_events(tmp_path / "ev.npz", ev, {"preset": "test", "detector": cfg.to_dict()})
    back, rec = load_events(tmp_path / "ev.npz")
    assert np.array_equal(back.signals, ev.signals) and rec["preset"] == "test"
    assert DetectorConfig.from_dict(rec["detector"]) == cfg
    with pytest.raises(DataNotFoundError):
        load_events(tmp_path / "missing.npz")


def test_pencil_grid_and_config_errors():
    cfg = DetectorConfig("LYSO", 10.0, SIPM)
    entry, mask = pencil_grid(cfg, 2.0, 3)
    beams = np.unique(entry[:, 0])
    assert len(beams) == 7 and np.allclose(beams, -beams[::-1]) and mask.all()
    with pytest.raises(ConfigError):
        DetectorConfig("LYSO", 40.0, SIPM)
    with pytest.raises(ConfigError):
        DetectorConfig("unobtainium", 10.0, SIPM)
