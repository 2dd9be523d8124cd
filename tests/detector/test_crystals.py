"""Crystal presets and attenuation (values checked against published data, sources in each test)."""

from __future__ import annotations

import numpy as np
import pytest

from petspect.detector.crystals import CRYSTALS, get_crystal
from petspect.errors import ConfigError


def test_lyso_attenuation_at_511():
    """LYSO attenuation length at 511 keV ~1.15 cm including coherent scattering (Saint-Gobain PreLude
    420: 1.14 cm; Lecoq NIM A 2016: 1.2 cm), i.e. mu_total 0.82-0.88 /cm; photo fraction ~0.32-0.34."""
    att = get_crystal("LYSO").attenuation()
    mu_total_per_cm = 10.0 * float(att.transport(511.0) + np.interp(511.0, att.energy_kev, att.rayleigh_per_mm))
    assert 0.78 < mu_total_per_cm < 0.90
    assert 0.30 < float(att.photo_fraction(511.0)) < 0.36


def test_bgo_stops_more_and_absorbs_more_than_lyso():
    """BGO: attenuation length 1.04 cm and photo fraction ~0.40-0.44 at 511 keV (Saint-Gobain BGO data sheet)."""
    bgo, lyso = get_crystal("BGO").attenuation(), get_crystal("LYSO").attenuation()
    assert bgo.transport(511.0) > lyso.transport(511.0)
    assert 0.38 < float(bgo.photo_fraction(511.0)) < 0.46
    assert get_crystal("LaBr3").attenuation().transport(511.0) < lyso.transport(511.0)


def test_photo_fraction_rises_at_low_energy():
    att = get_crystal("LYSO").attenuation()
    assert att.photo_fraction(100.0) > att.photo_fraction(300.0) > att.photo_fraction(511.0)


def test_presets_and_errors():
    assert {"LYSO", "BGO", "LaBr3"} <= set(CRYSTALS)
    assert get_crystal("LaBr3").light_yield_ph_per_kev > get_crystal("LYSO").light_yield_ph_per_kev
    with pytest.raises(ConfigError):
        get_crystal("NaI(Tl)x")
    with pytest.raises(ValueError):
        get_crystal("LYSO").attenuation().photo(-1.0)
