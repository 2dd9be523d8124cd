"""A small 2D PET case (small-animal ring, one plane) for the learned reconstruction tests."""

from __future__ import annotations

import torch

from petspect.learned_recon.cases import ReconCase, image_scale, sensitivity_image
from petspect.simulate.acquisition import simulate_acquisition
from petspect.systems.acquisition import system_model
from petspect.volume import Volume


def make_case(seed: int = 0, n_counts: float = 3e5, lesion_shift: float = 0.0) -> ReconCase:
    """A 24x24 disc (4 mm pixels, 5 kBq/mL) with a 4x lesion, 10 % randoms, attenuation, Poisson prompts."""
    c = (torch.arange(24) - 11.5) * 4.0
    yy, xx = c[:, None], c[None, :]
    disc = ((yy ** 2 + xx ** 2) < 36 ** 2).float()
    lesion = (((yy - 10 - lesion_shift) ** 2 + (xx + 8) ** 2) < 7 ** 2).float()
    truth = Volume.centered((5000.0 * disc * (1 + 3 * lesion))[None], (4.0, 4.0, 4.0), unit="Bq/mL", modality="PT")
    mu = truth.with_data(disc[None] * 0.0096, unit="1/mm", modality=None)
    data = simulate_acquisition(truth, "small-animal", mu=mu, single_ring=True, view_mashing=4, n_radial=96,
                                n_counts=n_counts, seed=seed, randoms_fraction=0.1)
    system = system_model(data)
    sens = sensitivity_image(system)
    return ReconCase(f"case-{seed}", data, system, sens, image_scale(data, sens), truth=truth)
