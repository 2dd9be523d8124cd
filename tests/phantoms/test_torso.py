"""Tests of the procedural torso phantom (anatomy, lesions, activity/SUV, CT and mu)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from petspect.errors import InputError
from petspect.phantoms import rebuild
from petspect.phantoms.torso import make_grid, make_torso, voxelise_labels
from petspect.phantoms.torso_anatomy import LABEL_IDS, sample_anatomy
from petspect.phantoms.tracers import TRACERS, bq_per_ml_to_suv

FAST = dict(voxel_mm=6.0, fov="chest-abdomen", ct_noise_hu=10.0)


@pytest.fixture(scope="module")
def phantom():
    return make_torso(seed=3, **FAST)


def test_same_seed_same_volumes_and_rebuild(phantom):
    again = rebuild(json.loads(json.dumps(phantom.record)))
    assert set(again.volumes) == {"labels", "lesions", "activity", "ct", "mu_511", "mu_140", "mu_208", "mr_t1", "mr_t2"}
    for key, vol in phantom.volumes.items():
        assert torch.equal(vol.data, again.volumes[key].data), key
        assert vol.same_grid(again.volumes[key])
    assert again.tables == phantom.tables


def test_different_seeds_give_different_anatomy():
    a0, a1 = sample_anatomy(np.random.default_rng(0)), sample_anatomy(np.random.default_rng(1))
    assert a0["organs"]["liver"] != a1["organs"]["liver"] and a0["height_mm"] != a1["height_mm"]
    g = make_grid(a0, "chest-abdomen", 8.0)
    assert not torch.equal(voxelise_labels(g, a0), voxelise_labels(g, a1))


def _organ_volume_ml(labels, names, vv):
    ids = torch.tensor([LABEL_IDS[n] for n in names], dtype=labels.dtype)
    return float(torch.isin(labels, ids).sum()) * vv


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adult_organ_volumes(seed):
    """Reference adult organ masses, ICRP Publication 89 (2002), Table 2.8, at ~1.05 g/mL: liver
    1.8 kg (male) / 1.4 kg (female), spleen 150/130 g, kidneys 310/275 g (pair), brain 1.45/1.3 kg;
    lungs at functional residual capacity ~2.5-3.5 L of air (adult spirometry). Ranges allow +-40 %
    inter-subject spread."""
    a = sample_anatomy(np.random.default_rng(seed))
    grid = make_grid(a, "whole-body", 6.0)
    lab = voxelise_labels(grid, a)
    vv = grid.voxel_volume_ml
    vol = lambda *n: _organ_volume_ml(lab, n, vv)  # noqa: E731
    assert 1000 <= vol("liver") <= 2300
    assert 80 <= vol("spleen") <= 400
    assert 180 <= vol("kidney_cortex", "kidney_medulla") <= 480
    assert 900 <= vol("brain") <= 1700
    assert 2200 <= vol("lung") <= 5500
    assert 100 <= vol("myocardium") <= 250  # LV myocardial mass ~ 100-200 g
    assert 0 < vol("spine") and 0 < vol("ribs") and 0 < vol("pelvis")


def test_lesion_table_matches_maps(phantom):
    """Table volumes match the instance map within voxelisation error; mean activities are exact."""
    p = make_torso(seed=5, voxel_mm=4.0, fov="chest-abdomen", lesions={"count": [4, 6], "diameter_mm": [10, 40]})
    rows = p.tables["lesions"]
    assert 4 <= len(rows) <= 6
    lm, act = p["lesions"].data, p["activity"].data
    vv = p["lesions"].voxel_volume_ml
    h = 4.0
    for r in rows:
        mask = lm == r["id"]
        n = int(mask.sum())
        r_eq = (3 * r["volume_ml"] * 1e3 / (4 * math.pi)) ** (1 / 3)
        area = 4 * math.pi * r_eq ** 2 * 1.5  # irregular shapes have more surface than a sphere
        assert abs(n * vv - r["volume_ml"]) <= 0.25 * area * h * 1e-3 + vv, r
        assert r["mean_activity_bq_per_ml"] == pytest.approx(float(act[mask].double().mean()), rel=1e-6)
        centre = np.asarray(p["lesions"].world_to_voxel(r["centre_mm"]))
        assert np.all(centre > -1) and np.all(centre < np.asarray(lm.shape))
        assert r["kind"] in ("sphere", "ellipsoid", "irregular", "multilobe")
        assert 5.0 <= r["diameter_mm"] <= 40.0
    json.dumps(rows)


@pytest.mark.parametrize("seed", [0, 7])
def test_fdg_organ_suvs_in_cited_ranges(seed):
    """Organ SUVmean of the FDG torso lie in the ranges of tracers._FDG (Paquet et al, J Nucl Med 2004;
    Zincirkeser et al, MIRT 2007; Wahl et al, PERCIST 2009): liver 1.8-3.0, blood pool 1.3-2.4, lung
    0.3-0.8, spleen 1.4-2.6, muscle 0.5-1.0."""
    p = make_torso(seed=seed, lesions=False, texture=0.0, **{**FAST, "voxel_mm": 8.0})
    act, lab = p["activity"].data, p["labels"].data
    factor = p["activity"].meta["suv_factor"]
    fdg = TRACERS["fdg"].organs
    for organ in ("liver", "blood_pool", "lung", "spleen", "soft_tissue", "kidney_cortex", "fat"):
        suv = float(act[lab == LABEL_IDS[organ]].mean()) * factor
        lo, hi = fdg[organ].suv_range
        assert lo - 1e-6 <= suv <= hi + 1e-6, (organ, suv)
        assert suv == pytest.approx(p.record["sampled"]["organ_suv"][organ], rel=1e-5)


def test_suv_consistent_with_injected_activity_and_decay():
    p = make_torso(seed=2, injected_mbq=300.0, weight_kg=80.0, uptake_time_s=3600.0, lesions=False, texture=0.0,
                   **{**FAST, "voxel_mm": 10.0})
    m = p["activity"].meta
    liver = float(p["activity"].data[p["labels"].data == LABEL_IDS["liver"]].mean())
    suv = bq_per_ml_to_suv(liver, injected_bq=300e6, weight_kg=80.0, elapsed_s=3600.0, nuclide="F-18")
    assert suv == pytest.approx(liver * m["suv_factor"], rel=1e-6)
    # by hand: A(t) = 300 MBq * 2^(-60/109.77) (F-18 half-life 109.77 min, docs/REFERENCE.md)
    assert m["suv_factor"] == pytest.approx(80e3 / (300e6 * 2 ** (-60 / 109.77)), rel=1e-3)


def test_mu_is_monotone_function_of_ct(phantom):
    """mu_511 = hu_to_mu_per_mm(ct) (Carney et al 2006 bilinear): one mu per HU, non-decreasing."""
    from petspect.materials import hu_to_mu_per_mm

    ct, mu = phantom["ct"].data.flatten(), phantom["mu_511"].data.flatten()
    assert torch.allclose(mu, hu_to_mu_per_mm(ct, 511.0).float(), atol=1e-7)
    order = torch.argsort(ct)
    assert bool((torch.diff(mu[order]) >= -1e-7).all())
    water = float(hu_to_mu_per_mm(torch.tensor([0.0]), 511.0))
    assert water == pytest.approx(0.0096, rel=0.03)  # water 0.096/cm at 511 keV (docs/REFERENCE.md)
    assert float(phantom["mu_140"].data.max()) > float(phantom["mu_511"].data.max())


def test_ct_tissue_values(phantom):
    """Mean HU per organ near the tissue table (Lamba et al, AJR 2014): liver ~58, lung ~-780, fat ~-100."""
    ct, lab = phantom["ct"].data, phantom["labels"].data
    assert float(ct[lab == LABEL_IDS["liver"]].mean()) == pytest.approx(58, abs=5)
    assert float(ct[lab == LABEL_IDS["lung"]].mean()) == pytest.approx(-780, abs=10)
    assert float(ct[lab == LABEL_IDS["fat"]].mean()) == pytest.approx(-100, abs=8)
    assert float(ct[lab == 0].max()) == -1000.0


def test_metal_and_arms_and_fov():
    p = make_torso(seed=1, voxel_mm=8.0, fov="whole-body", arms="down", metal=True, lesions=False)
    assert float(p["ct"].data.max()) == pytest.approx(3071.0)
    assert (p["labels"].data == LABEL_IDS["brain"]).any()
    assert p.record["sampled"]["anatomy"]["arms"] == "down"
    q = make_torso(seed=1, voxel_mm=8.0, fov=(900.0, 1100.0), lesions=False)
    assert q["labels"].shape[0] == 25
    assert q["labels"].origin_mm[2] == pytest.approx(904.0)


@pytest.mark.parametrize("bad", [dict(fov="feet"), dict(voxel_mm=-1.0), dict(tracer="xyz"), dict(lesions="many"),
                                 dict(arms="sideways"), dict(fov=(10.0, 5.0)), dict(lesions={"count": [3, 1]}),
                                 dict(lesions={"colour": 1}), dict(lesions={"sites": {"toe": 1.0}}),
                                 dict(tracer="amyloid"), dict(sex="X")])
def test_bad_inputs_raise(bad):
    with pytest.raises(InputError):
        make_torso(**{**FAST, **bad})


def test_arms_down_are_separate_and_brain_only_in_head_fov():
    """Arms hanging down leave air between arm and trunk at elbow height; no brain in a chest FOV."""
    p = make_torso(seed=4, voxel_mm=8.0, fov="whole-body", arms="down", lesions=False, ct_noise_hu=0.0)
    a = p.record["sampled"]["anatomy"]
    lab = p["labels"].data
    k = int(round(p["labels"].world_to_voxel([0.0, 0.0, a["z"]["elbow"]])[0]))
    j = int(round(p["labels"].world_to_voxel([0.0, 0.0, 0.0])[1]))
    row = (lab[k, j] > 0).numpy().astype(int)
    runs = np.flatnonzero(np.diff(row) != 0)
    assert len(runs) >= 6  # air | arm | air | trunk | air | arm | air
    chest = make_torso(seed=4, voxel_mm=8.0, fov="chest-abdomen", lesions=False)
    assert not (chest["labels"].data == LABEL_IDS["brain"]).any()


def test_tacs_pass_through_phantom_concentrations():
    """tracers.time_activity_curves with the phantom's organ SUVs returns its concentrations at scan time."""
    from petspect.phantoms.tracers import time_activity_curves

    p = make_torso(seed=6, lesions=False, texture=0.0, **{**FAST, "voxel_mm": 10.0})
    m = p["activity"].meta
    organs = ["liver", "kidney_cortex", "myocardium"]
    tac = time_activity_curves("fdg", organs, [0.0, m["uptake_time_s"], 2 * m["uptake_time_s"]], seed=0,
                               injected_mbq=m["injected_bq"] / 1e6, weight_kg=m["weight_kg"],
                               suv=p.record["sampled"]["organ_suv"])
    for organ in organs:
        conc = float(p["activity"].data[p["labels"].data == LABEL_IDS[organ]].mean())
        assert tac[organ][1] == pytest.approx(conc, rel=1e-5)
        assert tac[organ][0] == 0.0


def test_activity_follows_time_activity_curves_at_other_uptake_times():
    """Lu-177 PSMA: organ concentrations at 4, 24 (protocol) and 96 h follow tracers.time_activity_curves."""
    from petspect.phantoms.tracers import time_activity_curves

    kw = dict(voxel_mm=12.0, seed=3, tracer="lu177-psma", shape=(4, 32, 32), lesions=False, texture=0.0)
    ph = {h: make_torso(**kw, uptake_time_s=h * 3600.0) for h in (4, 96)}
    ref = make_torso(**kw)
    labels = ref["labels"].data
    liver = [k for k, v in ref.label_names.items() if v == "liver"][0]
    suv = ref.record["sampled"]["organ_suv"]
    meta = ref["activity"].meta
    for h, p in ph.items():
        assert torch.equal(p["labels"].data, labels)  # same anatomy
        tac = time_activity_curves("lu177-psma", ["liver"], [h * 3600.0], seed=0, suv=suv,
                                   injected_mbq=meta["injected_bq"] / 1e6, weight_kg=meta["weight_kg"])
        got = float(p["activity"].data[labels == liver].mean())
        assert got == pytest.approx(float(tac["liver"][0]), rel=1e-5)
    assert float(ph[4]["activity"].data[labels == liver].mean()) > float(ph[96]["activity"].data[labels == liver].mean())
