"""Nuclide data against published values (docs/REFERENCE.md; ICRP-107; Conti & Eriksson 2016)."""

import math

import pytest

from petspect import nuclides as n
from petspect.errors import InputError


@pytest.mark.parametrize("name, minutes", [("F-18", 109.77), ("Ga-68", 67.71), ("C-11", 20.36),
                                           ("O-15", 2.04), ("Rb-82", 1.27), ("Tc-99m", 6.01 * 60),
                                           ("Lu-177", 6.647 * 1440), ("I-131", 8.02 * 1440)])
def test_half_lives(name, minutes):
    assert n.half_life_s(name) / 60 == pytest.approx(minutes, rel=5e-3)


def test_photon_lines_and_positron_data():
    f18 = n.get_nuclide("18F")
    assert f18.is_positron_emitter and f18.main_photon().energy_kev == pytest.approx(511.0, abs=0.01)
    assert f18.main_photon().yield_per_decay == pytest.approx(2 * 0.9686)
    assert f18.mean_positron_range_mm == pytest.approx(0.6)
    assert n.get_nuclide("Ga-68").mean_positron_range_mm == pytest.approx(2.9)
    tc = n.get_nuclide("Tc99m").main_photon()
    assert tc.energy_kev == pytest.approx(140.5, abs=0.1) and tc.yield_per_decay == pytest.approx(0.89, abs=0.01)
    lu = {round(p.energy_kev): p.yield_per_decay for p in n.get_nuclide("Lu-177").photons}
    assert lu[113] == pytest.approx(0.062, abs=0.002) and lu[208] == pytest.approx(0.104, abs=0.002)
    assert n.get_nuclide("Lu-177").mean_electron_energy_mev == pytest.approx(0.148, abs=0.002)
    assert n.get_nuclide("Y-90").mean_electron_energy_mev == pytest.approx(0.934, abs=0.003)


def test_decay_helpers():
    t = n.half_life_s("F-18")
    assert n.decay_factor("F-18", t) == pytest.approx(0.5)
    assert n.activity_at(100.0, "F-18", 2 * t) == pytest.approx(25.0)
    assert n.decay_correct(25.0, "F-18", from_time_s=2 * t, to_time_s=0.0) == pytest.approx(100.0)
    # a very short frame needs no correction beyond the start decay; a one-half-life frame at t0=0:
    assert n.frame_decay_correction("F-18", 0.0, 1e-6) == pytest.approx(1.0, rel=1e-6)
    assert n.frame_decay_correction("F-18", 0.0, t) == pytest.approx(math.log(2) / 0.5, rel=1e-9)


def test_unknown_nuclide():
    with pytest.raises(InputError, match="unknown radionuclide"):
        n.get_nuclide("Xx-999")
    with pytest.raises(InputError):
        n.frame_decay_correction("F-18", 0.0, 0.0)
