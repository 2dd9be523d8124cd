"""Baseline filters (Gaussian, NLM, optional BM4D) and their tuning on validation pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from petspect.errors import InputError
from petspect.tasks.baselines import (DEFAULT_GRIDS, TunedFilter, apply_filter, available_baselines, bm4d_available,
                                      bm4d_filter, body_scale, gaussian_filter, nlm_filter, tune_baselines,
                                      tune_filter)
from petspect.units import fwhm_to_sigma
from petspect.volume import Volume


def _noisy_pairs(n: int, seed: int, noise: float = 400.0) -> list[tuple[Volume, Volume]]:
    """Piecewise-constant phantoms (2 kBq/mL body, 8 kBq/mL cube) with additive Gaussian noise."""
    g = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        ref = np.zeros((12, 24, 24), np.float32)
        ref[2:10, 3:21, 3:21] = 2000.0
        ref[5:8, 8:13, 8:13] = 8000.0
        low = ref + g.normal(0, noise, ref.shape).astype(np.float32)
        pairs.append((Volume.centered(low, (4.0, 4.0, 4.0), unit="Bq/mL"), Volume.centered(ref, (4.0,) * 3, unit="Bq/mL")))
    return pairs


def test_gaussian_noise_reduction_matches_theory():
    """White noise of variance s2 filtered by a normalised 3D Gaussian of sigma (voxels) keeps the variance
    s2 * sum(k^2) = s2 * (1 / (2 sqrt(pi) sigma))^3 (continuous approximation, good for sigma >= 1.5)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn((40, 40, 40), generator=g, dtype=torch.float64)
    vol = Volume.centered(x, (2.0, 2.0, 2.0), unit="Bq/mL")
    fwhm = 8.0
    sigma_vox = fwhm_to_sigma(fwhm) / 2.0
    y = gaussian_filter(vol, fwhm).data[8:-8, 8:-8, 8:-8]
    expected = (1.0 / (2.0 * math.sqrt(math.pi) * sigma_vox)) ** 3
    assert float(y.var()) == pytest.approx(expected, rel=0.15)
    assert y.dtype == torch.float64


def test_gaussian_keeps_uniform_interior_and_zero_fwhm_is_identity():
    vol = Volume.centered(torch.full((16, 16, 16), 3000.0), (4.0, 4.0, 4.0), unit="Bq/mL")
    out = gaussian_filter(vol, 8.0)
    assert torch.allclose(out.data[6:10, 6:10, 6:10], torch.tensor(3000.0), rtol=1e-5)
    assert out.same_grid(vol) and out.unit == "Bq/mL"
    assert torch.equal(gaussian_filter(vol, 0.0).data, vol.data)
    with pytest.raises(InputError):
        gaussian_filter(vol, -1.0)


def test_nlm_denoises_and_zero_strength_is_identity():
    from petspect.metrics import psnr_challenge

    low, ref = _noisy_pairs(1, seed=1)[0]
    out = nlm_filter(low, 0.3)
    assert psnr_challenge(out.data, ref.data) > psnr_challenge(low.data, ref.data) + 3.0
    assert torch.equal(nlm_filter(low, 0.0).data, low.data)
    with pytest.raises(InputError):
        nlm_filter(low, float("nan"))


def test_body_scale_is_the_mean_uptake():
    x = torch.zeros(10, 10, 10)
    x[2:8, 2:8, 2:8] = 5.0
    assert body_scale(x) == pytest.approx(5.0)
    assert body_scale(torch.zeros(4, 4, 4)) == 1.0


def test_tuning_picks_the_best_psnr_and_zero_without_noise():
    pairs = _noisy_pairs(2, seed=2)
    tuned = tune_filter("gaussian", pairs)
    best = max(tuned.scores, key=lambda s: s["psnr_db"])
    assert tuned.value == best["value"] > 0
    assert [s["value"] for s in tuned.scores] == list(DEFAULT_GRIDS["gaussian"])
    clean = [(ref, ref) for _, ref in pairs]
    assert tune_filter("gaussian", clean).value == 0.0
    assert isinstance(tuned, TunedFilter) and tuned.parameter == "fwhm_mm"
    assert torch.equal(tuned(pairs[0][0]).data, apply_filter("gaussian", pairs[0][0], tuned.value).data)


def test_tune_baselines_and_errors():
    pairs = _noisy_pairs(1, seed=3)
    tuned = tune_baselines(pairs, grids={"gaussian": (0.0, 6.0), "nlm": (0.1, 0.3)})
    assert set(tuned) == set(available_baselines())
    assert tuned["gaussian"].value == 6.0
    with pytest.raises(InputError):
        tune_filter("gaussian", [])
    with pytest.raises(InputError):
        apply_filter("median", pairs[0][0], 1.0)


@pytest.mark.skipif(bm4d_available(), reason="bm4d is installed here")
def test_bm4d_is_optional():
    assert "bm4d" not in available_baselines()
    with pytest.raises(InputError, match="not installed"):
        bm4d_filter(_noisy_pairs(1, seed=4)[0][0], 0.1)
