"""PET scanner presets, validation, michelogram and sinogram LOR geometry."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from petspect.errors import InputError
from petspect.geometry.pet import ImageGrid, ListmodeEvents, PetScanner, get_pet_scanner
from petspect.geometry.sinogram import SinogramDefinition


def test_presets_match_published_values():
    """Vision 600: 760 x 80 crystals, 214 ps (van Sluis 2019); HRRT 104 rings (de Jong 2007); Inveon 320 x 80."""
    wb, brain, mouse = (get_pet_scanner(n) for n in ("wholebody", "brain", "small-animal"))
    assert (wb.crystals_per_ring, wb.n_rings, wb.tof_fwhm_ps) == (760, 80, 214.0)
    assert abs(wb.axial_fov_mm - 261.0) < 1.0 and abs(wb.tof_fwhm_mm - 32.08) < 0.01  # c * 214 ps / 2
    assert brain.n_rings == 104 and not brain.is_tof and abs(brain.axial_fov_mm - 253.5) < 1
    assert mouse.crystals_per_ring == 320 and abs(mouse.axial_fov_mm - 127.2) < 0.5
    flat = get_pet_scanner("wholebody", single_ring=True)
    assert flat.n_rings == 1 and flat.crystals_per_ring == 760
    with pytest.raises(InputError):
        get_pet_scanner("nonexistent")


@pytest.mark.parametrize("change", [dict(crystals_per_ring=75), dict(n_rings=0), dict(ring_radius_mm=-1.0),
                                    dict(tof_fwhm_ps=0.2), dict(n_tof_bins=4), dict(fov_diameter_mm=2000.0),
                                    dict(energy_window_kev=(600.0, 400.0))])
def test_scanner_validation(change):
    with pytest.raises(InputError):
        replace(get_pet_scanner("wholebody"), **change)


def test_crystal_positions_on_ring_and_centred():
    s = get_pet_scanner("small-animal")
    pos = s.crystal_positions_mm()
    assert pos.shape == (80, 320, 3)
    np.testing.assert_allclose(np.hypot(pos[..., 0], pos[..., 1]), s.ring_radius_mm)
    assert abs(pos[..., 2].mean()) < 1e-9 and np.allclose(np.diff(pos[:, 0, 2]), s.ring_spacing_mm)


def _small(n_rings=6, n_crystals=32):
    return PetScanner("toy", ring_radius_mm=100.0, crystals_per_ring=n_crystals, n_rings=n_rings,
                      crystal_size_mm=(4.0, 4.0, 10.0), ring_spacing_mm=4.0, fov_diameter_mm=150.0)


@pytest.mark.parametrize("span,mrd", [(1, None), (3, 5), (5, 4), (3, 2)])
def test_michelogram_counts(span, mrd):
    """Every kept ring pair lands in exactly one plane; span 1 gives n^2 planes (full michelogram)."""
    s = _small()
    sd = SinogramDefinition(s, span=span, max_ring_diff=mrd)
    ra, rb, plane = sd.ring_pairs()
    m = sd.max_ring_diff
    assert len(ra) == sum(s.n_rings - abs(d) for d in range(-m, m + 1))
    assert sd.plane_multiplicity().sum() == len(ra) and (sd.plane_multiplicity() > 0).all()
    if span == 1 and mrd is None:
        assert sd.n_planes == s.n_rings ** 2
    seg = sd.plane_segments()
    assert (seg == 0).sum() == 2 * s.n_rings - 1 if span > 1 else s.n_rings
    # the planes of one segment hold ring differences of that segment only
    assert np.array_equal(sd.segment_of_ring_diff(rb - ra), seg[plane])


def test_crystal_pairs_cover_each_lor_once():
    """With n_radial = N - 2 all unordered crystal pairs except neighbours appear exactly once."""
    s = _small(n_rings=1, n_crystals=32)
    sd = SinogramDefinition(s, n_radial=30)
    a, b = (x % 32 for x in sd.crystal_pairs())
    pairs = {tuple(sorted(p)) for p in zip(a.ravel().tolist(), b.ravel().tolist())}
    assert len(pairs) == a.size == 16 * 30
    assert all(p[0] != p[1] for p in pairs)


def test_lor_geometry_radial_positions_and_mashing():
    s = _small(n_rings=4)
    for mash in (1, 2, 4):
        sd = SinogramDefinition(s, view_mashing=mash, span=3)
        start, end = sd.lor_endpoints_mm()
        assert start.shape == sd.shape() + (3,)
        d = end[..., :2] - start[..., :2]
        # distance of the transaxial line from the axis = |x1 y2 - x2 y1| / |d|
        dist = (start[..., 0] * end[..., 1] - start[..., 1] * end[..., 0]).abs() / d.norm(dim=-1)
        # mashed members share the crystal difference, so the representative LOR keeps R |sin(pi t / N)|
        np.testing.assert_allclose(dist.numpy(), np.broadcast_to(np.abs(sd.radial_positions_mm()), dist.shape),
                                   atol=1e-9)
        assert float(start[..., :2].norm(dim=-1).max()) <= s.ring_radius_mm + 1e-9
    with pytest.raises(InputError):
        SinogramDefinition(s, view_mashing=3)
    with pytest.raises(InputError):
        SinogramDefinition(s, span=2)


def test_image_grid_round_trip_and_occupancy():
    g = ImageGrid((4, 6, 8), (2.0, 1.0, 1.5))
    assert np.allclose(g.origin_mm, (-5.25, -2.5, -3.0))
    idx = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    assert torch.allclose(g.world_to_index(g.index_to_world(idx)), idx)
    vol = g.volume(torch.zeros(g.shape))
    assert ImageGrid.from_volume(vol) == g
    occ = g.occupancy(lambda p: p[..., 0] < 0)  # half of the grid in x
    assert abs(float(occ.mean()) - 0.5) < 1e-12


def test_listmode_events_validate():
    with pytest.raises(InputError):
        ListmodeEvents(torch.zeros(3, 3), torch.zeros(2, 3))
    ev = ListmodeEvents(torch.zeros(3, 3), torch.ones(3, 3), torch.tensor([0, 1, 2]))
    assert len(ev) == 3


@pytest.mark.parametrize("name", ["wholebody", "brain", "small-animal"])
def test_preset_default_sinograms_cover_the_fov(name):
    """Default radial bins reach the transaxial FOV edge; Vision span 19 / MRD 79 has 815 planes."""
    s = get_pet_scanner(name)
    sd = SinogramDefinition(s, span=19 if name == "wholebody" else 1,
                            max_ring_diff=79 if name == "wholebody" else 0)
    r = np.abs(sd.radial_positions_mm())
    assert r.max() >= 0.5 * s.fov_diameter_mm > r.max() - 2 * s.crystal_size_mm[0]
    assert sd.n_views == s.crystals_per_ring // 2
    if name == "wholebody":
        assert sd.n_planes == 815  # the Biograph Vision's span-19 sinogram count
    else:
        assert sd.n_planes == s.n_rings
