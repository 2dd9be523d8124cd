"""Polar maps: the AHA segment layout and a defect found where the phantom put it."""

from __future__ import annotations

import numpy as np
import pytest

from petspect.cad.polar import N_RINGS, N_SECTORS, polar_map, segment_index, segment_means
from petspect.errors import InputError


def test_segment_layout_follows_aha():
    """17 segments: 6 basal, 6 mid, 4 apical, 1 apex (Cerqueira MD et al, Circulation 2002)."""
    seg = segment_index()
    assert set(np.unique(seg).tolist()) == set(range(1, 18))
    ph = (np.arange(N_SECTORS) + 0.5) * 10.0 - 90.0
    assert seg[-1, np.argmin(np.abs(ph - 0))] == 1  # basal anterior
    assert seg[-1, np.argmin(np.abs(ph - 180))] == 4  # basal inferior
    assert seg[N_RINGS // 2 + 1, np.argmin(np.abs(ph - 270))] in (11, 12)  # mid lateral wall
    assert seg[0, 0] == 17
    assert segment_means(np.ones((N_RINGS, N_SECTORS))) == pytest.approx(np.ones(17))


@pytest.mark.parametrize("territory,phi", [("lcx", 255.0), ("rca", 165.0)])
def test_defect_shows_in_its_sectors(territory, phi):
    from petspect.phantoms.myocardium import make_myocardium

    p = make_myocardium(voxel_mm=3.0, seed=11, defect=territory, defect_extent=0.8, defect_severity=0.7,
                        fov_mm=(160.0, 256.0, 352.0))
    rec = p.record
    frame = {k: np.asarray(v) for k, v in rec["lv_frame"].items()}
    sub = rec["sampled"]["subject"]
    frame.update(long_mm=sub["lv_long_mm"], radius_mm=sub["lv_radius_mm"], wall_mm=sub["wall_mm"])
    act = p["activity"]
    pm = polar_map(act.data.numpy(), act, frame)
    pm = pm / np.quantile(pm, 0.95)
    ph = (np.arange(N_SECTORS) + 0.5) * 10.0 - 90.0
    basal_mid = slice(N_RINGS // 2, N_RINGS - 1)
    inside = np.abs(((ph - phi + 180) % 360) - 180) < 30
    opposite = np.abs(((ph - phi) % 360) - 180) < 30
    assert pm[basal_mid][:, inside].mean() < 0.6 * pm[basal_mid][:, opposite].mean()
    with pytest.raises(InputError):
        polar_map(act.data.numpy()[:-1], act, frame)
