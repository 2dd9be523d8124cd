"""Myocardial perfusion phantom: anatomy sizes, tracer contrasts, defect territories, determinism, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from petspect.errors import InputError
from petspect.phantoms import make_phantom, rebuild
from petspect.phantoms.myocardium import MYOCARDIUM_LABELS, lv_coordinates, lv_frame, make_myocardium

IDS = {n: i for i, n in enumerate(MYOCARDIUM_LABELS)}
V = 4.0


@pytest.fixture(scope="module")
def normal():
    return make_myocardium(voxel_mm=V, seed=7, sex="female")


def _mean(p, name):
    return float(p["activity"].data[p["labels"].data == IDS[name]].mean())


def test_registered_and_rebuilt_bit_for_bit(normal):
    p = make_phantom("myocardium", voxel_mm=V, seed=7, sex="female")
    assert torch.equal(p["activity"].data, normal["activity"].data)
    again = rebuild(json.loads(json.dumps(normal.record)))
    assert torch.equal(again["labels"].data, normal["labels"].data)
    assert normal.nuclide == "Tc-99m" and normal["activity"].unit == "Bq/mL"


def test_lv_myocardium_size_and_tracer_contrast(normal):
    """LV myocardium ~ 90-200 mL in adults (mass ~ 100-200 g at 1.05 g/mL; Lang RM et al, JASE 2015);
    sestamibi: myocardium far above lung and blood pool, liver high (Wackers FJ et al, JNM 1989)."""
    ml = float((normal["labels"].data == IDS["myocardium"]).sum()) * V ** 3 * 1e-3
    assert 60 < ml < 220
    myo = _mean(normal, "myocardium")
    assert myo > 3 * _mean(normal, "lung") and myo > 4 * _mean(normal, "blood_pool")
    assert _mean(normal, "liver") > 2 * _mean(normal, "soft_tissue")
    assert (normal["labels"].data == IDS["breast"]).any()  # female subject
    assert float(normal["defect"].data.abs().max()) == 0.0


def test_mu_140_values(normal):
    """Soft tissue ~0.015/mm and lung ~0.004-0.006/mm at 140 keV (water 0.154/cm, xraydb)."""
    lab, mu = normal["labels"].data, normal["mu_140"].data
    assert 0.013 < float(mu[lab == IDS["soft_tissue"]].median()) < 0.017
    assert float(mu[lab == IDS["lung"]].median()) < 0.008


def test_lv_frame_orientation(normal):
    """Apex points to the patient's left (+x LPS), anterior (-y) and inferior (-z); septum to the right (-x)."""
    f = lv_frame(normal.record["sampled"]["subject"])
    assert f["u"][0] > 0 and f["u"][1] < 0 and f["u"][2] < 0
    assert f["sep"][0] < 0 and f["ant"][1] < 0
    assert abs(f["u"] @ f["ant"]) < 1e-9 and abs(f["u"] @ f["sep"]) < 1e-9


@pytest.mark.parametrize("territory,phi_range", [("lad", (-60, 120)), ("rca", (120, 210)), ("lcx", (210, 300))])
def test_defect_lies_in_its_territory(territory, phi_range):
    p = make_myocardium(voxel_mm=V, seed=3, defect=territory, defect_extent=0.6, defect_severity=0.6)
    d = p["defect"].data
    core = d >= 0.5
    assert core.any() and float(d.max()) <= 0.6 + 1e-6
    assert torch.all(p["labels"].data[d > 0] == IDS["myocardium"])
    f = {k: np.asarray(v) for k, v in p.record["lv_frame"].items()}
    s, _, phi = lv_coordinates(_world(p), f)
    long_mm = p.record["sampled"]["subject"]["lv_long_mm"]
    ph = phi[core]
    apex = s[core] > 0.8 * long_mm
    lo, hi = phi_range
    inside = ((ph - lo) % 360.0) <= (hi - lo)
    # all of the core is in the territory, except the LAD's apex cap
    assert bool(torch.all(inside | apex))
    # uptake in the defect is lower than in the same subject's normal myocardium elsewhere
    myo = p["labels"].data == IDS["myocardium"]
    act = p["activity"].data
    assert float(act[core].mean()) < 0.7 * float(act[myo & (d == 0)].mean())


def _world(p):
    from petspect.phantoms.shapes import Grid

    return Grid.from_volume(p["labels"]).world(dtype=torch.float64)


def test_severity_zero_is_normal():
    a = make_myocardium(voxel_mm=V, seed=2, defect="lad", defect_severity=0.0)
    b = make_myocardium(voxel_mm=V, seed=2)
    assert torch.equal(a["activity"].data, b["activity"].data)


@pytest.mark.parametrize("kw", [dict(defect="lmca"), dict(defect_extent=0.0), dict(defect_severity=1.5),
                                dict(voxel_mm=0.2), dict(sex="x"), dict(tracer="fdg-brain")])
def test_bad_input(kw):
    with pytest.raises(InputError):
        make_myocardium(**{"voxel_mm": V, **kw})


def test_cli_writes_the_phantom(tmp_path):
    from typer.testing import CliRunner

    from petspect.cli.main import app

    out = tmp_path / "myo"
    res = CliRunner().invoke(app, ["phantom", "myocardium", "--out", str(out), "--voxel-mm", "6",
                                   "--param", "defect=rca", "--param", "defect_severity=0.5"])
    assert res.exit_code == 0, res.output
    rec = json.loads((out / "record.json").read_text())
    assert rec["params"]["defect"] == "rca" and (out / "defect.nii.gz").is_file()


@pytest.mark.parametrize("kw, match", [
    ({"defect": "lad", "defect_extent": "big"}, "defect_extent must be a number"),
    ({"texture": "x"}, "texture must be a number"),
    ({"fov_mm": 5}, "fov_mm must be 3"),
    ({"fov_mm": (0, 100, 100)}, "positive"),
    ({"fov_mm": (10.0, 10.0, 10.0)}, "cuts the heart"),
    ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"),
])
def test_bad_parameters_give_input_errors_not_tracebacks_or_a_truncated_heart(kw, match):
    """Found by a quality pass: a JSON --param string crashed with ValueError, a negative seed too, and a field of
    view smaller than the heart silently gave an 8-voxel grid with the myocardium cut off."""
    from petspect.errors import InputError

    with pytest.raises(InputError, match=match):
        make_myocardium(voxel_mm=8.0, **kw)
