"""One registry per kind of preset, with one lookup whose error lists the names (petspect._registry)."""

from __future__ import annotations

import pytest

from petspect._registry import Registry, UnknownNameError
from petspect.errors import ConfigError, InputError


def test_registry_reads_like_a_dict_and_names_the_choices():
    reg = Registry("widget", {"Alpha": 1, "beta": 2}, hint="or build one")
    assert reg["alpha"] == reg.lookup("ALPHA") == 1 and "BETA" in reg and "gamma" not in reg
    assert sorted(reg) == ["Alpha", "beta"] and reg.names() == ["Alpha", "beta"] and len(reg) == 2
    assert reg.get("gamma", 7) == 7 and dict(reg) == {"Alpha": 1, "beta": 2}
    with pytest.raises(UnknownNameError) as info:
        reg.lookup("gamma")
    msg = str(info.value)
    assert msg == "unknown widget 'gamma'; choose one of ['Alpha', 'beta'] or build one"
    assert isinstance(info.value, ConfigError) and isinstance(info.value, KeyError)
    reg["delta"] = 4
    reg["DELTA"] = 6  # item assignment replaces (as monkeypatch.setitem needs)
    assert reg["delta"] == 6 and len(reg) == 3
    del reg["delta"]
    assert "delta" not in reg
    assert reg.register("eps")(5) == 5 and reg["eps"] == 5
    with pytest.raises(ConfigError, match="already registered"):
        reg.register("ALPHA", 9)
    with pytest.raises(ConfigError):
        reg.register("", 1)


@pytest.mark.parametrize("module, name, lookup", [
    ("petspect.geometry.pet", "PET_SCANNERS", "get_pet_scanner"),
    ("petspect.geometry.spect", "SPECT_SYSTEMS", "get_spect_system"),
    ("petspect.simulate.presets", "PRESETS", "get_preset"),
    ("petspect.tasks.demo", "DEMO_PRESETS", "demo_settings"),
    ("petspect.detector.pipeline", "PRESETS", "get_preset"),
    ("petspect.detector.crystals", "CRYSTALS", "get_crystal"),
])
def test_every_kind_of_preset_has_one_registry(module, name, lookup):
    import importlib

    mod = importlib.import_module(module)
    reg = getattr(mod, name)
    assert isinstance(reg, Registry) and len(reg) >= 2
    for preset in reg.names():
        assert getattr(mod, lookup)(preset) is not None
    with pytest.raises(InputError) as info:  # ConfigError is an InputError
        getattr(mod, lookup)("no-such-preset")
    for preset in reg.names():
        assert preset in str(info.value)


def test_scanner_sensitivity_lives_with_the_scanner_preset():
    """NEMA NU 2 sensitivities: Vision 600 16.4 cps/kBq (van Sluis et al, JNM 2019), HRRT ~4.3 (de Jong et al,
    PMB 2007), Inveon 67.2 (Constantinescu & Mukherjee, PMB 2009); the simulator's table is derived from them."""
    from petspect.geometry.pet import PET_SCANNERS, PetScanner
    from petspect.simulate.systems import PET_SENSITIVITY_CPS_PER_KBQ

    assert PET_SENSITIVITY_CPS_PER_KBQ == {"wholebody": 16.4, "brain": 4.3, "small-animal": 67.2}
    assert PET_SCANNERS["WholeBody"].sensitivity_cps_per_kbq == 16.4
    with pytest.raises(InputError):
        PetScanner("x", 400.0, 760, 4, (3.2, 3.2, 20.0), 3.2, 700.0, sensitivity_cps_per_kbq=-1.0)
