"""PET randoms: R_ij = 2 tau S_i S_j (Hoffman et al. 1981) per bin, uniform randoms, TOF spreading."""

from __future__ import annotations

import pytest
import torch

from petspect.errors import InputError
from petspect.geometry.pet import PetScanner
from petspect.geometry.sinogram import SinogramDefinition
from petspect.physics.randoms import randoms_from_singles, randoms_to_tof, uniform_randoms


def _sd():
    sc = PetScanner("toy", ring_radius_mm=100.0, crystals_per_ring=32, n_rings=3, crystal_size_mm=(4, 4, 20),
                    ring_spacing_mm=4.0, fov_diameter_mm=150.0, coincidence_window_ns=4.0)
    return SinogramDefinition(sc, span=3, view_mashing=2)


def test_randoms_from_uniform_singles():
    """S = 1e5 cps per crystal, 2 tau = 4 ns, 10 s: 2 tau S^2 t = 400 counts per crystal pair."""
    sd = _sd()
    singles = torch.full((3, 32), 1e5, dtype=torch.float64)
    r = randoms_from_singles(singles, sd, duration_s=10.0)
    pairs = 2 * torch.as_tensor(sd.plane_multiplicity(), dtype=torch.float64)[:, None, None]
    assert torch.allclose(r, 400.0 * pairs.expand_as(r))


def test_randoms_from_singles_bin_by_bin():
    sd = _sd()
    singles = torch.rand(3, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1e4
    r = randoms_from_singles(singles, sd, duration_s=2.0)
    ra, rb, plane = sd.ring_pairs()
    p, v, t = 3, 5, 4
    expected = 0.0
    for k in range(sd.view_mashing):
        a, b = (x[v, t] % 32 for x in sd.crystal_pairs(k))
        expected += sum(4e-9 * 2.0 * float(singles[i, a] * singles[j, b]) for i, j, q in zip(ra, rb, plane) if q == p)
    assert float(r[p, v, t]) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(InputError):
        randoms_from_singles(-singles, sd)


def test_uniform_randoms_total_and_tof():
    sd = _sd()
    r = uniform_randoms(sd, 1000.0, dtype=torch.float64)
    assert float(r.sum()) == pytest.approx(1000.0) and float(r.min()) > 0
    tof = randoms_to_tof(r, 5)
    assert tof.shape == r.shape + (5,) and torch.allclose(tof.sum(-1), r)
