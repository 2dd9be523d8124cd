"""SPECT / resolution phantoms: volumes, activities and layouts against their nominal geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from petspect.errors import InputError
from petspect.materials import linear_attenuation_per_mm
from petspect.phantoms import make_phantom, rebuild
from petspect.phantoms.spect_phantoms import (JASZCZAK_ROD_LENGTH_MM, make_cylinder, make_derenzo, make_jaszczak,
                                              make_line_source, make_point_sources, rod_sector_centres)



def _comp(p):
    return {r["name"]: r for r in p.tables["compartments"]}


def test_rod_sectors_do_not_overlap_and_stay_inside():
    """Rods of one sector are 2d apart (pitch twice the diameter); no two rods touch; all inside."""
    diam = (4.8, 6.4, 7.9, 9.5, 11.1, 12.7)
    centres = rod_sector_centres(diam, 95.0)
    pts = np.concatenate(centres)
    rad = np.concatenate([np.full(len(c), d / 2) for d, c in zip(diam, centres)])
    dist = np.linalg.norm(pts[:, None] - pts[None], axis=-1) - rad[:, None] - rad[None]
    np.fill_diagonal(dist, np.inf)
    assert dist.min() >= 2.9  # >= gap (3 mm) between sectors, >= d within a sector
    assert np.all(np.linalg.norm(pts, axis=1) + rad <= 95.0 + 1e-9)
    for d, c in zip(diam, centres):
        nn = np.sort(np.linalg.norm(c[:, None] - c[None], axis=-1), axis=1)[:, 1]
        assert np.allclose(nn.min(), 2 * d)
        assert len(c) >= 3


def test_jaszczak_volumes_and_cold_features():
    """Rod volume = sum n pi r^2 x 88 mm and sphere volumes 4/3 pi r^3 (Data Spectrum deluxe
    dimensions), both cold; water mu at 140 keV; interior pi 108^2 x 186 mm."""
    p = make_jaszczak(voxel_mm=3.0)
    comp = _comp(p)
    rods = sum(r["count"] * math.pi * (r["diameter_mm"] / 2) ** 2 for r in p.tables["rods"]) * JASZCZAK_ROD_LENGTH_MM
    assert comp["cold_rods"]["volume_ml"] == pytest.approx(rods / 1000, rel=0.02)
    sph = sum(4 / 3 * math.pi * (r["diameter_mm"] / 2) ** 3 for r in p.tables["spheres"])
    assert comp["cold_spheres"]["volume_ml"] == pytest.approx(sph / 1000, rel=0.03)
    total = sum(comp[k]["volume_ml"] for k in ("water", "cold_rods", "cold_spheres"))
    assert total == pytest.approx(math.pi * 108**2 * 186 / 1000, rel=0.005)
    assert float(p["mu_140"].data.max()) == pytest.approx(linear_attenuation_per_mm("pmma", 140), rel=1e-5)
    lab = p["labels"].data
    names = {v: k for k, v in p.label_names.items()}
    assert float(p["activity"].data[lab == names["cold_rods"]].mean()) < 0.5 * 10000


def test_derenzo_hot_rods_hold_all_activity():
    """All activity sits in the rods: total = rod volume x concentration."""
    p = make_derenzo(voxel_mm=2.0, rod_diameters_mm=(3, 4, 5, 6, 8, 10), radius_mm=60.0, length_mm=20.0)
    comp = _comp(p)
    rods = sum(r["count"] * math.pi * (r["diameter_mm"] / 2) ** 2 for r in p.tables["rods"]) * 20.0 / 1000
    assert comp["hot_rods"]["volume_ml"] == pytest.approx(rods, rel=0.02)
    act = p["activity"]
    assert float(act.data.sum()) * act.voxel_volume_ml == pytest.approx(comp["hot_rods"]["volume_ml"] * 1e4, rel=1e-4)


def test_cylinder_and_line_source_activity():
    """Uniform cylinder: pi r^2 L; line source: all activity on the line, centroid on its axis."""
    c = make_cylinder(voxel_mm=4.0, radius_mm=50.0, length_mm=60.0, wall_mm=3.0)
    assert _comp(c)["water"]["volume_ml"] == pytest.approx(math.pi * 2500 * 60 / 1000, rel=0.005)
    line = make_line_source(voxel_mm=2.0, start_mm=(10.0, 45.0, -40.0), end_mm=(10.0, 45.0, 40.0),
                            medium_radius_mm=60.0, medium_length_mm=100.0)
    act = line["activity"]
    assert float(act.data.sum()) * act.voxel_volume_ml == pytest.approx(1e7, rel=1e-4)
    idx = torch.nonzero(act.data > 0).double()
    w = act.data[act.data > 0].double()
    centroid = act.voxel_to_world((idx * w[:, None]).sum(0).numpy() / float(w.sum()))
    assert np.allclose(centroid, [10.0, 45.0, 0.0], atol=0.05)


def test_point_sources_keep_sub_voxel_positions():
    """Trilinear splatting puts each source's activity centroid exactly at its position."""
    pos = [(0.3, -0.7, 1.1), (50.5, 20.25, -3.0)]
    p = make_point_sources(voxel_mm=2.0, positions_mm=pos, activity_bq=[1e6, 2e6])
    act, lab = p["activity"], p["labels"]
    for i, (pp, a) in enumerate(zip(pos, (1e6, 2e6))):
        m = torch.zeros_like(act.data, dtype=torch.bool)
        near = torch.nonzero(act.data > 0)
        sel = [tuple(k.tolist()) for k in near if np.linalg.norm(act.voxel_to_world(k.numpy()) - pp) < 4]
        for k in sel:
            m[k] = True
        vals = act.data[m].double()
        assert float(vals.sum()) * act.voxel_volume_ml == pytest.approx(a, rel=1e-5)
        idx = torch.nonzero(m).double()
        centroid = act.voxel_to_world((idx * vals[:, None]).sum(0).numpy() / float(vals.sum()))
        assert np.allclose(centroid, pp, atol=1e-4)
    with pytest.raises(InputError):
        make_point_sources(voxel_mm=2.0, positions_mm=[(100, 0, 0)], shape=(4, 4, 4))


def test_registry_determinism_and_errors():
    """Same arguments give identical volumes; the record rebuilds the phantom."""
    a = make_phantom("derenzo", voxel_mm=3.0, seed=1, radius_mm=30.0, length_mm=10.0)
    b = rebuild(a.record)
    assert torch.equal(a["activity"].data, b["activity"].data)
    with pytest.raises(InputError):
        make_cylinder(voxel_mm=2.0, radius_mm=-1.0)
    with pytest.raises(InputError):
        make_line_source(voxel_mm=2.0, start_mm=(0, 0, 0), end_mm=(0, 0, 0))
    with pytest.raises(InputError):
        make_derenzo(voxel_mm=2.0, rod_diameters_mm=(0, 1, 2, 3, 4, 5))


@pytest.mark.parametrize("name", ["nema-iec", "jaszczak", "derenzo", "cylinder", "point-sources", "line-source",
                                  "shepp-logan"])
def test_every_generator_on_every_device(name, device):
    """Volumes are made on the requested device and match the CPU result."""
    kw = {"voxel_mm": 8.0, "seed": 0}
    p = make_phantom(name, device=device, **kw)
    assert all(v.device.type == device.type for v in p.volumes.values())
    cpu = make_phantom(name, device="cpu", **kw)
    assert torch.allclose(p["activity"].data.cpu(), cpu["activity"].data, rtol=1e-4, atol=1e-3)
    assert set(p.label_names) >= set(int(v) for v in torch.unique(p["labels"].data).tolist())
