"""FBP of a 2D (single-ring) PET acquisition fills only the transverse plane the ring measures."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from petspect.recon.reconstruct import ReconSpec, reconstruct
from petspect.simulate.acquisition import simulate_acquisition
from petspect.systems.acquisition import system_model
from petspect.volume import Volume

CONC = 5000.0  # Bq/mL


def test_fbp_of_a_single_ring_fills_one_slice():
    """A uniform disc through 5 slices of 4 mm, measured by one ring at z = 0: FBP puts the disc's
    concentration into the central slice only (before, the one plane was copied into all five)."""
    c = (torch.arange(20) - 9.5) * 4.0
    r = torch.sqrt(c[:, None] ** 2 + c[None, :] ** 2)
    disc = (r < 30).float()[None].expand(5, -1, -1).clone()
    act = Volume.centered(CONC * disc, (4.0, 4.0, 4.0), unit="Bq/mL", modality="PT")
    data = simulate_acquisition(act, "small-animal", single_ring=True, view_mashing=2, n_radial=110,
                                n_counts=1e6, seed=0)
    expected = system_model(data, attenuation=False).operator(act.data)
    data = dataclasses.replace(data, prompts=expected)
    system = system_model(data, attenuation=False)
    for algorithm in ("fbp", "osem"):  # FBP fills the same one slice as the iterative methods
        img = reconstruct(system, data, ReconSpec(algorithm=algorithm), progress=False)
        assert img.shape == (5, 20, 20)
        filled = [float(img[k].abs().sum()) > 0 for k in range(5)]
        assert filled == [False, False, True, False, False], algorithm
        assert float(img[2][r < 20].mean()) == pytest.approx(CONC, rel=0.1), algorithm
