"""NEMA IEC body phantom: volumes against the nominal geometry, activity, mu and labels."""

from __future__ import annotations

import math

import pytest
import torch

from petspect.errors import InputError
from petspect.materials import linear_attenuation_per_mm
from petspect.phantoms import make_phantom, rebuild
from petspect.phantoms.nema_iec import SPHERE_DIAMETERS_MM, make_nema_iec



@pytest.fixture(scope="module")
def iec2():
    return make_nema_iec(voxel_mm=2.0)


def test_sphere_volumes_within_2pct_at_2mm(iec2):
    """Voxelised sphere volumes (sum of occupancy x voxel volume) within 2 % of 4/3 pi r^3 for the
    NU 2 inner diameters 37, 28, 22, 17, 13, 10 mm (NEMA NU 2-2018 section 7.3)."""
    rows = iec2.tables["spheres"]
    assert [r["diameter_mm"] for r in rows] == list(SPHERE_DIAMETERS_MM)
    for r in rows:
        assert r["volume_ml"] == pytest.approx(4 / 3 * math.pi * (r["diameter_mm"] / 2) ** 3 / 1000)
        assert r["voxelised_volume_ml"] == pytest.approx(r["volume_ml"], rel=0.02)
    # sphere centres on a 57.2 mm ring, 60 deg apart (docs/REFERENCE.md / OpenGATE nemaiec.py)
    c = torch.tensor([r["centre_mm"] for r in rows])
    assert torch.allclose(c[:, :2].norm(dim=1), torch.full((6,), 57.2, dtype=c.dtype), atol=1e-6)
    assert torch.allclose((c[0, :2] - c[1, :2]).norm(), torch.tensor(57.2, dtype=c.dtype), atol=1e-6)


def test_background_volume_near_9_7_litres(iec2):
    """Background compartment ~9.7 L (NU 2 nominal), lung insert pi 21^2 x interior length."""
    comp = {r["name"]: r for r in iec2.tables["compartments"]}
    assert comp["background"]["volume_ml"] == pytest.approx(9700, rel=0.01)
    assert comp["lung_insert"]["volume_ml"] == pytest.approx(math.pi * 21**2 * 187 / 1000, rel=0.01)
    act = iec2["activity"]
    total_bq = float(act.data.sum()) * act.voxel_volume_ml
    expect = sum(r["volume_ml"] * r["activity_bq_per_ml"] for r in iec2.tables["compartments"])
    assert total_bq == pytest.approx(expect, rel=1e-4)


def test_activity_mu_and_labels(iec2):
    """Activity 5.3 kBq/mL background, 4x in spheres, 0 in the lung; mu of water, lung and PMMA."""
    act, mu, lab = iec2["activity"], iec2["mu_511"], iec2["labels"]
    assert act.unit == "Bq/mL" and mu.unit == "1/mm" and lab.unit == "label"
    names = {v: k for k, v in iec2.label_names.items()}
    bg = lab.data == names["background"]
    full = bg & (act.data == 5300.0)
    assert int(full.sum()) > 0.9 * int(bg.sum())
    s37 = lab.data == names["sphere_37mm"]
    assert float(act.data[s37].max()) == pytest.approx(4 * 5300.0)
    lung = lab.data == names["lung_insert"]
    assert float(act.data[lung].min()) == 0.0
    assert float(mu.data[full].mean()) == pytest.approx(linear_attenuation_per_mm("water", 511), rel=1e-5)
    assert float(mu.data[lung].median()) == pytest.approx(linear_attenuation_per_mm("lung", 511), rel=1e-3)
    wall = lab.data == names["pmma_wall"]
    assert float(mu.data[wall].max()) == pytest.approx(linear_attenuation_per_mm("pmma", 511), rel=1e-5)
    assert float(act.data[lab.data == 0].max()) == 0.0


def test_options_cold_spheres_energies_and_record():
    """NU 2-2007 style (two largest cold), 8:1, no walls, mu at 140 keV; record rebuilds bit for bit."""
    p = make_nema_iec(voxel_mm=4.0, hot_spheres=4, sphere_to_background=8.0, pmma_walls=False,
                      energies_kev=(511, 140), background_bq_per_ml=1000.0)
    hot = {r["diameter_mm"]: r["activity_bq_per_ml"] for r in p.tables["spheres"]}
    assert hot[37.0] == 0.0 and hot[28.0] == 0.0 and hot[10.0] == 8000.0
    assert "pmma_wall" not in p.label_names.values()
    assert float(p["mu_140"].data.max()) == pytest.approx(linear_attenuation_per_mm("water", 140), rel=1e-5)
    again = rebuild(p.record)
    assert torch.equal(again["activity"].data, p["activity"].data)
    assert torch.equal(make_phantom("nema-iec", voxel_mm=4.0, seed=3)["mu_511"].data,
                       make_nema_iec(voxel_mm=4.0, seed=3)["mu_511"].data)
    listed = make_nema_iec(voxel_mm=4.0, hot_spheres=[10, 13])
    assert [r["hot"] for r in listed.tables["spheres"]] == [False] * 4 + [True] * 2


def test_pose_moves_everything_rigidly():
    """A rotated, shifted phantom keeps its volumes; the sphere table follows the pose."""
    p = make_nema_iec(voxel_mm=4.0, rotation_deg=30.0, offset_mm=(10.0, -5.0, 4.0))
    comp = {r["name"]: r["volume_ml"] for r in p.tables["compartments"]}
    ref = {r["name"]: r["volume_ml"] for r in make_nema_iec(voxel_mm=4.0).tables["compartments"]}
    assert comp["background"] == pytest.approx(ref["background"], rel=0.003)
    c = torch.tensor(p.tables["spheres"][0]["centre_mm"], dtype=torch.float64)
    assert float((c[:2] - torch.tensor([10.0, -5.0], dtype=torch.float64)).norm()) == pytest.approx(57.2, abs=1e-6)


def test_bad_arguments_raise():
    with pytest.raises(InputError):
        make_nema_iec(voxel_mm=4.0, hot_spheres=7)
    with pytest.raises(InputError):
        make_nema_iec(voxel_mm=4.0, hot_spheres=[11])
    with pytest.raises(InputError):
        make_nema_iec(voxel_mm=4.0, sphere_to_background=0)
    with pytest.raises(InputError):
        make_nema_iec(voxel_mm=4.0, tracer="no-such-tracer")
