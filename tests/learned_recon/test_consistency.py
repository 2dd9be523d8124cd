"""learned_recon.consistency: the Poisson deviance of A x + b against measured data, total and per plane/view.

Physics checks: the deviance is 0 for data equal to the expectation, about one per bin for Poisson data drawn
from the expectation (high counts; McCullagh & Nelder 1989, sec. 2.3, the deviance of a correct Poisson model is
approximately chi-square with one degree per bin), and an image with a lesion inserted or removed is less
consistent with the measured data than the true image.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from petspect.errors import GeometryError, InputError
from petspect.learned_recon.consistency import data_consistency, poisson_deviance_terms
from petspect.simulate.acquisition import simulate_acquisition
from petspect.systems.acquisition import system_model
from petspect.volume import Volume

CONC = 5000.0  # Bq/mL


def _phantom():
    """A 24x24 water disc (4 mm pixels, radius 36 mm) with a hot lesion (4x, radius 6 mm) at (+12, -8) mm."""
    c = (torch.arange(24) - 11.5) * 4.0
    yy, xx = c[:, None], c[None, :]
    disc = ((yy ** 2 + xx ** 2) < 36 ** 2).float()
    lesion = (((yy - 12) ** 2 + (xx + 8) ** 2) < 6.5 ** 2).float()
    return disc, lesion


@pytest.fixture(scope="module")
def pet():
    disc, lesion = _phantom()
    truth = (CONC * disc * (1 + 3 * lesion))[None]
    act = Volume.centered(truth, (4.0, 4.0, 4.0), unit="Bq/mL", modality="PT")
    mu = act.with_data(disc[None] * 0.0096, unit="1/mm", modality=None)
    data = simulate_acquisition(act, "small-animal", mu=mu, single_ring=True, view_mashing=2, n_radial=120,
                                n_counts=2e6, seed=3, randoms_fraction=0.1)
    return data, truth, disc, lesion


def test_deviance_terms_reference_values():
    """2 [y log(y/m) - (y - m)]: y = m gives 0; y = 0 gives 2 m; y = 4, m = 2 gives 2 (4 log 2 - 2)."""
    y = torch.tensor([3.0, 0.0, 4.0, 1.0])
    m = torch.tensor([3.0, 1.5, 2.0, 0.0])
    t = poisson_deviance_terms(y, m)
    assert t[0] == pytest.approx(0.0, abs=1e-12)
    assert t[1] == pytest.approx(3.0)
    assert t[2] == pytest.approx(2 * (4 * math.log(2) - 2))
    assert math.isinf(float(t[3]))  # counts where the image predicts none: impossible
    with pytest.raises(InputError):
        poisson_deviance_terms(torch.tensor([-1.0]), torch.tensor([1.0]))
    with pytest.raises(InputError):
        poisson_deviance_terms(y, m[:3])


def test_noiseless_data_have_zero_deviance_and_poisson_data_about_one_per_bin(pet):
    data, truth, _, _ = pet
    sm = system_model(data)
    expected = sm.operator(truth) + data.additive
    exact = data_consistency(truth, dataclasses.replace(data, prompts=expected), system=sm)
    assert exact.deviance == pytest.approx(0.0, abs=1e-3 * exact.n_bins)
    noisy = data_consistency(truth, data, system=sm)
    bins_with_signal = float((expected > 5).float().mean())
    assert 0.5 < noisy.deviance_per_bin < 1.2  # below 1 in the low-count bins outside the body
    assert bins_with_signal > 0.3
    assert noisy.plane_view_map.shape == (1, data.prompts.shape[1])
    assert float(noisy.per_view.sum()) == pytest.approx(noisy.deviance, rel=1e-5)
    assert noisy.expected_counts / noisy.measured_counts == pytest.approx(1.0, rel=0.01)


def test_lesion_inserted_or_removed_is_less_consistent(pet):
    """Required by issue 17: a deliberately corrupted image ranks worse than the original, without ground truth
    being used by the score (only the data and the system model)."""
    data, truth, disc, lesion = pet
    sm = system_model(data)
    removed = (CONC * disc)[None]  # the lesion erased
    fake = torch.roll(lesion, shifts=(-6, 8), dims=(0, 1))  # a lesion hallucinated elsewhere in the body
    assert float((fake * disc).sum()) == float(fake.sum())
    inserted = truth + (3 * CONC * fake)[None]
    d_true = data_consistency(truth, data, system=sm).deviance
    d_removed = data_consistency(removed, data, system=sm).deviance
    d_inserted = data_consistency(inserted, data, system=sm).deviance
    assert d_removed > d_true + 25 and d_inserted > d_true + 25  # far beyond the noise (sd ~ sqrt(2 n_bins) / n)
    # the ranking holds at every realistic noise level: both corruptions exceed the true image's deviance
    # by more than 5 standard deviations of the deviance itself (sd ~ sqrt(2 n_bins))
    assert min(d_removed, d_inserted) - d_true > 5 * math.sqrt(2 * data.prompts.numel())


def test_spect_map_is_rows_by_views_and_points_at_the_corrupted_plane():
    """SPECT: the map is (detector rows, views); a lesion erased in one slice raises that row's deviance."""
    disc, lesion = _phantom()
    truth = torch.stack([1e4 * disc * (1 + 3 * lesion), 1e4 * disc, 1e4 * disc, 1e4 * disc])
    act = Volume.centered(truth, (4.0, 4.0, 4.0), unit="Bq/mL", modality="NM")
    data = simulate_acquisition(act, "spect-lehr", n_views=16, radius_mm=150.0, scan_s=600.0, seed=1)
    res = data_consistency(truth, data)
    assert res.plane_view_map.shape == (4, 16)
    erased = truth.clone()
    erased[0] = 1e4 * disc
    gain = data_consistency(erased, data).per_plane - res.per_plane
    assert int(torch.argmax(gain)) == 0 and float(gain[0]) > 3 * float(gain[2:].abs().max())
    worse = data_consistency(truth * 1.3, data)
    assert worse.deviance > res.deviance and worse.expected_counts > 1.25 * res.measured_counts


def test_image_off_grid_or_not_finite_is_refused(pet):
    data, truth, _, _ = pet
    with pytest.raises(GeometryError, match="image grid"):
        data_consistency(truth[:, :20], data)
    bad = truth.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        data_consistency(bad, data)
