"""recon.reconstruct: the typed ReconSpec and the one reconstruct(system, data, spec); relative MAP beta."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from petspect.errors import InputError
from petspect.recon.reconstruct import Algorithm, PriorKind, ReconSpec, absolute_beta, reconstruct, reconstruct_image
from petspect.simulate.acquisition import simulate_acquisition
from petspect.systems.acquisition import system_model
from petspect.volume import Volume

CONC = 5000.0  # Bq/mL


def _acquisition(n_counts: float):
    """A 20x20 water cylinder (4 mm pixels, radius 30 mm) on the small-animal scanner in 2D, noiseless prompts."""
    c = (torch.arange(20) - 9.5) * 4.0
    r = torch.sqrt(c[:, None] ** 2 + c[None, :] ** 2)
    disc = (r < 30).float()[None]
    act = Volume.centered(CONC * disc, (4.0, 4.0, 4.0), unit="Bq/mL", modality="PT")
    mu = act.with_data(disc * 0.0096, unit="1/mm", modality=None)
    data = simulate_acquisition(act, "small-animal", mu=mu, single_ring=True, view_mashing=2, n_radial=110,
                                n_counts=n_counts, seed=0)
    expected = system_model(data).operator(act.data)
    return dataclasses.replace(data, prompts=expected), r


def test_spec_is_typed_and_checked():
    spec = ReconSpec(algorithm="MAP", prior="quadratic", beta=0.1)
    assert spec.algorithm is Algorithm.MAP and spec.prior is PriorKind.QUADRATIC
    assert ReconSpec.from_dict(spec.to_dict()) == spec  # the JSON form round-trips
    for bad in ({"algorithm": "art"}, {"iterations": 0}, {"subsets": 0}, {"beta": -1.0}, {"gamma": 0.0},
                {"prior": "tv"}, {"fbp_cutoff": 1.5}, {"post_filter_fwhm_mm": -2.0}):
        with pytest.raises(InputError):
            ReconSpec(**bad)
    with pytest.raises(InputError, match="unknown reconstruction settings"):
        ReconSpec.from_dict({"iters": 3})


def test_relative_beta_means_the_same_smoothing_at_every_count_level():
    """MAP of noiseless data at 1e6 and 1e5 counts with the same relative beta gives the same image (Bq/mL):
    the penalty weight follows the sensitivity, which follows the counts. With the same *absolute* weight the
    lower count level is smoothed ten times more."""
    spec = ReconSpec(algorithm="map", iterations=3, subsets=4, beta=0.1, prior="rdp")
    images, weights = [], []
    for counts in (1e6, 1e5):
        data, r = _acquisition(counts)
        system = system_model(data)
        weights.append(absolute_beta(system.operator, spec.beta))
        images.append(reconstruct(system, data, spec, progress=False)[0])
    assert weights[0] / weights[1] == pytest.approx(10.0, rel=1e-3)
    torch.testing.assert_close(images[0], images[1], rtol=2e-3, atol=CONC * 2e-3)
    inside = r < 20
    assert float(images[0][inside].mean()) == pytest.approx(CONC, rel=0.05)


def test_reconstruct_image_records_the_settings():
    data, r = _acquisition(1e6)
    img = reconstruct_image(data, ReconSpec(algorithm="osem", iterations=3, subsets=4), progress=False)
    assert img.unit == "Bq/mL" and img.meta["algorithm"] == "osem" and img.meta["iterations"] == 3
    assert img.meta["attenuation_corrected"] is True and img.meta["beta"] == 0.0
    assert float(img.data[0][r < 20].mean()) == pytest.approx(CONC, rel=0.03)
