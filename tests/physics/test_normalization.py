"""Simulated PET normalisation: crystal/block pattern, geometric factor, multiplicity, correction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from petspect.errors import InputError
from petspect.geometry.pet import PetScanner
from petspect.geometry.sinogram import SinogramDefinition
from petspect.physics.normalization import (geometric_factors, normalisation_correction,
                                            simulate_crystal_efficiencies, simulate_efficiencies)


def _scanner(n_rings=4):
    return PetScanner("toy", ring_radius_mm=100.0, crystals_per_ring=40, n_rings=n_rings, crystal_size_mm=(4, 4, 20),
                      ring_spacing_mm=4.0, fov_diameter_mm=150.0, block_crystals=(5, 2))


def test_crystal_efficiencies_lognormal_and_block_pattern():
    sc = _scanner()
    eps = simulate_crystal_efficiencies(sc, seed=1, crystal_log_sd=0.0, block_edge_drop=0.2)
    # without spread: exactly the block profile, centre crystal 1, edge crystals 0.8 (x 0.8 axially)
    assert float(eps[0, 2]) == pytest.approx(0.8) and float(eps[0, 0]) == pytest.approx(0.64)
    big = PetScanner("big", ring_radius_mm=400.0, crystals_per_ring=400, n_rings=50, crystal_size_mm=(4, 4, 20),
                     ring_spacing_mm=4.0, fov_diameter_mm=600.0, block_crystals=(1, 1))
    logs = simulate_crystal_efficiencies(big, seed=2, crystal_log_sd=0.1).log()
    assert float(logs.std()) == pytest.approx(0.1, rel=0.05) and abs(float(logs.mean())) < 0.01
    assert torch.equal(simulate_crystal_efficiencies(sc, seed=3), simulate_crystal_efficiencies(sc, seed=3))


def test_efficiencies_multiplicity_and_brute_force():
    """With unit crystals the efficiency is g x multiplicity; with random ones it equals a brute-force sum."""
    sc = _scanner()
    sd = SinogramDefinition(sc, span=3, view_mashing=2)
    ones = torch.ones(sc.n_rings, sc.crystals_per_ring, dtype=torch.float64)
    mult = sd.sum_over_members(ones)
    assert torch.allclose(mult, 2.0 * torch.as_tensor(sd.plane_multiplicity(), dtype=torch.float64)[:, None, None]
                          .expand_as(mult))
    eff = simulate_efficiencies(sd, crystal_efficiencies=ones, dtype=torch.float64)
    assert torch.allclose(eff, geometric_factors(sd) * mult)
    eps = simulate_crystal_efficiencies(sc, seed=4)
    got = simulate_efficiencies(sd, crystal_efficiencies=eps, dtype=torch.float64) / geometric_factors(sd)
    ra, rb, plane = sd.ring_pairs()
    p, v, r = 5, 3, 7
    expected = 0.0
    for k in range(2):
        a, b = (x[v, r] % 40 for x in sd.crystal_pairs(k))
        expected += sum(float(eps[i, a] * eps[j, b]) for i, j, q in zip(ra, rb, plane) if q == p)
    assert float(got[p, v, r]) == pytest.approx(expected, rel=1e-12)


def test_geometric_factor_centre_one_and_arc_effect():
    sd = SinogramDefinition(_scanner(n_rings=1))
    g = geometric_factors(sd)[0, 0].numpy()
    centre = sd.n_radial // 2
    assert g[centre] == pytest.approx(1.0)
    # cos(alpha) bin narrowing beats the longer crystal path: g decreases towards the edge
    assert np.all(np.diff(g[centre:]) < 0) and g[-1] > 0.3


def test_correction_inverts_and_handles_zero():
    eff = torch.tensor([[0.5, 2.0, 0.0]])
    assert torch.equal(normalisation_correction(eff), torch.tensor([[2.0, 0.5, 0.0]]))
    with pytest.raises(InputError):
        simulate_crystal_efficiencies(_scanner(), crystal_log_sd=-1.0)
