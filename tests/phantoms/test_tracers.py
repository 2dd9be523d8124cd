"""Tests of the tracer uptake models: SUV <-> Bq/mL, inter-subject variability, time-activity curves."""

from __future__ import annotations


import numpy as np
import pytest

from petspect.errors import InputError
from petspect.phantoms.tracers import (TRACERS, bq_per_ml_to_suv, get_tracer, lognormal_sample, sample_organ_suv,
                                       suv_to_bq_per_ml, time_activity_curves)

TORSO_ORGANS = ("liver", "spleen", "lung", "kidney_cortex", "bladder", "blood_pool", "soft_tissue", "spine")


def test_every_tracer_has_sources_nuclide_and_valid_tables():
    for name, model in TRACERS.items():
        assert model.sources and model.scan_time_s > 0 and model.injected_mbq > 0, name
        for organ, u in model.organs.items():
            lo, hi = u.suv_range
            assert 0 <= lo <= u.suv <= hi, (name, organ)
            assert u.cv >= 0 and u.uptake_half_time_s >= 0 and u.washout_half_time_s > 0
    for name in ("fdg", "psma", "dotatate", "mdp", "sestamibi", "dat", "lu177-psma", "lu177-dotatate"):
        assert set(TORSO_ORGANS) <= set(TRACERS[name].organs)


def test_fdg_reference_values():
    """FDG liver SUVmean ~2-3 (Paquet et al, J Nucl Med 2004), lung < 1, blood pool < liver (PERCIST)."""
    fdg = get_tracer("FDG").organs
    assert 2.0 <= fdg["liver"].suv <= 3.0
    assert fdg["lung"].suv < 1.0 and fdg["blood_pool"].suv < fdg["liver"].suv
    assert 3.5 <= fdg["grey_matter"].suv / fdg["white_matter"].suv <= 4.5  # grey:white ~4:1


def test_distinctive_organs_per_tracer():
    """Known hallmarks: PSMA kidneys and salivary glands high; DOTATATE spleen highest; MDP bone > soft tissue."""
    psma, dota, mdp = (get_tracer(n).organs for n in ("psma", "dotatate", "mdp"))
    assert psma["kidney_cortex"].suv > psma["liver"].suv and psma["salivary_glands"].suv > psma["liver"].suv
    assert dota["spleen"].suv == max(u.suv for u in dota.values() if u is not dota["bladder"])
    assert mdp["spine"].suv > 5 * mdp["soft_tissue"].suv


def test_lognormal_mean_and_cv():
    rng = np.random.default_rng(0)
    x = np.array([lognormal_sample(2.0, 0.3, rng) for _ in range(20000)])
    assert x.mean() == pytest.approx(2.0, rel=0.02)
    assert x.std() / x.mean() == pytest.approx(0.3, rel=0.05)


def test_sampled_suv_in_range_and_seeded():
    a = sample_organ_suv("fdg", TORSO_ORGANS, seed=3)
    assert a == sample_organ_suv("fdg", TORSO_ORGANS, seed=3)
    assert a != sample_organ_suv("fdg", TORSO_ORGANS, seed=4)
    for seed in range(30):
        for organ, v in sample_organ_suv("psma", TORSO_ORGANS, seed=seed).items():
            lo, hi = TRACERS["psma"].organs[organ].suv_range
            assert lo <= v <= hi


def test_suv_concentration_round_trip_with_decay():
    """SUV = C * weight_g / (A_inj * 2^(-t/T)); F-18 T = 109.77 min (radioactivedecay / ICRP-107)."""
    c = suv_to_bq_per_ml(2.5, injected_bq=370e6, weight_kg=70.0, elapsed_s=3600.0, nuclide="F-18")
    assert c == pytest.approx(2.5 * 370e6 * 2 ** (-60 / 109.77) / 70e3, rel=1e-4)
    assert bq_per_ml_to_suv(c, injected_bq=370e6, weight_kg=70.0, elapsed_s=3600.0, nuclide="F-18") == pytest.approx(2.5)


def test_tacs_pass_through_static_values_and_decay():
    model = get_tracer("lu177-psma")
    suv = {"kidney_cortex": 5.0, "liver": 0.8}
    times = np.array([0.0, 3600.0, model.scan_time_s, 4 * 86400.0, 30 * 86400.0])
    tac = time_activity_curves("lu177-psma", suv, times, seed=0, injected_mbq=7400.0, weight_kg=80.0, suv=suv)
    ref = suv_to_bq_per_ml(5.0, injected_bq=7400e6, weight_kg=80.0, elapsed_s=model.scan_time_s, nuclide="Lu-177")
    assert tac["kidney_cortex"][2] == pytest.approx(ref, rel=1e-9)
    assert tac["kidney_cortex"][0] == 0.0  # nothing taken up at injection
    k = tac["kidney_cortex"]
    assert k[3] < k[2] and k[4] < 1e-3 * k[2]  # washout plus physical decay (6.65 d)
    # effective clearance is faster than physical decay alone
    assert k[3] / k[2] < 2 ** (-(times[3] - times[2]) / (6.647 * 86400))


def test_trapped_tracer_decays_physically():
    """FDG in myocardium is trapped (no washout): after uptake only the F-18 decay remains."""
    t = np.array([3 * 3600.0, 4 * 3600.0])
    c = time_activity_curves("fdg", ["myocardium"], t, seed=1)["myocardium"]
    assert c[1] / c[0] == pytest.approx(2 ** (-60 / 109.77), rel=2e-3)


@pytest.mark.parametrize("call", [
    lambda: get_tracer("unobtainium"),
    lambda: sample_organ_suv("fdg", ["appendix"], seed=0),
    lambda: time_activity_curves("fdg", ["liver"], [-1.0], seed=0),
    lambda: suv_to_bq_per_ml(1.0, injected_bq=0.0, weight_kg=70.0, elapsed_s=0.0, nuclide="F-18"),
])
def test_bad_inputs_raise(call):
    with pytest.raises(InputError):
        call()


def test_one_tracer_table_records_the_nuclide_on_the_phantom():
    """DaTscan (ioflupane) is I-123 (Booij 1998 JNM); PSMA-11 and DOTATATE PET are Ga-68; FDG is F-18."""
    from petspect.phantoms.base import Phantom
    from petspect.phantoms.spect_phantoms import make_cylinder
    from petspect.phantoms.tracers import nuclide_of_tracer, pet_nuclide

    assert [nuclide_of_tracer(t) for t in ("dat", "psma", "fdg", "mdp", "lu177-psma")] == [
        "I-123", "Ga-68", "F-18", "Tc-99m", "Lu-177"]
    assert make_cylinder(voxel_mm=8.0, tracer="mdp").nuclide == "Tc-99m"
    assert make_cylinder(voxel_mm=8.0).record["nuclide"] is None
    ph = Phantom({}, record={"generator": "x", "params": {"tracer": "dat"}})
    assert ph.nuclide == "I-123" and ph.record["nuclide"] == "I-123"
    assert Phantom({}, record={"generator": "x", "params": {"tracer": "dat"}, "nuclide": "F-18"}).nuclide == "F-18"
    with pytest.raises(InputError, match="unknown tracer"):
        Phantom({}, record={"generator": "x", "params": {"tracer": "no-such"}})
    assert pet_nuclide("ga68") == "Ga-68"
    with pytest.raises(InputError, match="SPECT"):
        pet_nuclide("I-123", "dat")


def test_the_cohort_simulator_reads_the_phantoms_nuclide():
    """The PET cohort system decays with the phantom's nuclide and refuses a single-photon emitter."""
    from petspect.phantoms.torso import make_torso
    from petspect.simulate.config import config_from_dict
    from petspect.simulate.subject import build_system

    cfg = config_from_dict({
        "name": "t", "subjects": 1, "seed": 1, "dose_percents": [100],
        "phantom": {"kind": "torso", "voxel_mm": 12.0, "tracer": "psma", "params": {"shape": [4, 32, 32]}},
        "scanner": {"modality": "pet", "preset": "wholebody", "max_ring_difference": 0, "view_mashing": 10,
                    "params": {"n_rings": 4, "ring_spacing_mm": 12.0}},
        "acquisition": {"scan_s": 60.0, "scatter": False}, "recon": {"algorithms": ["osem"], "nac": False}})
    ph = make_torso(voxel_mm=12.0, seed=0, tracer="psma", shape=(4, 32, 32), lesions=False)
    assert ph.nuclide == "Ga-68"
    info = build_system(cfg, ph).describe()
    assert info["nuclide"] == "Ga-68" and info["half_life_s"] == pytest.approx(67.7 * 60, rel=0.01)
    ph.record["nuclide"] = "I-123"
    with pytest.raises(InputError, match="SPECT"):
        build_system(cfg, ph)


def test_a_spect_cohort_refuses_a_phantom_of_another_nuclide():
    """A Lu-177 PSMA torso cannot be imaged with the Tc-99m LEHR system (the phantom's nuclide decides)."""
    from petspect.errors import ConfigError
    from petspect.phantoms.torso import make_torso
    from petspect.simulate.config import config_from_dict
    from petspect.simulate.subject import build_system

    cfg = config_from_dict({
        "name": "s", "subjects": 1, "seed": 1, "dose_percents": [100],
        "phantom": {"kind": "torso", "voxel_mm": 12.0, "tracer": "lu177-psma", "params": {"shape": [4, 32, 32]}},
        "scanner": {"modality": "spect", "preset": "spect-lehr", "n_views": 8, "radius_mm": 250.0},
        "acquisition": {"scan_s": 160.0}, "recon": {"algorithms": ["osem"], "nac": False}})
    ph = make_torso(voxel_mm=12.0, seed=0, tracer="lu177-psma", shape=(4, 32, 32), lesions=False)
    with pytest.raises(ConfigError, match="Lu-177"):
        build_system(cfg, ph)
