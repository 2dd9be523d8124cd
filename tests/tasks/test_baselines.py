"""Baseline filters (Gaussian, NLM, optional BM4D) and their tuning on validation pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from petspect.errors import InputError
from petspect.evaluation import Budget
from petspect.tasks.baselines import (DEFAULT_GRIDS, Case, TunedMethod, available_baselines, bm4d_available,
                                      bm4d_filter, body_scale, ct_guided_filter, gaussian_filter, nlm_filter,
                                      preserve_total, run_method, tune_baselines, tune_method)
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


def test_gaussian_is_border_normalised_and_keeps_activity():
    """A uniform image stays uniform up to the grid's edges (no zero padding: a 12-slice grid filtered
    with a zero-padded 8 mm kernel would lose a few per cent of its activity at the end slices)."""
    vol = Volume.centered(torch.full((12, 16, 16), 3000.0), (6.0, 6.0, 6.0), unit="Bq/mL")
    out = gaussian_filter(vol, 12.0)
    assert torch.allclose(out.data, torch.tensor(3000.0), rtol=1e-5)
    assert out.same_grid(vol) and out.unit == "Bq/mL"
    assert torch.equal(gaussian_filter(vol, 0.0).data, vol.data)
    with pytest.raises(InputError):
        gaussian_filter(vol, -1.0)


def test_ct_guided_filter_smooths_within_organs_not_across_ct_edges():
    """Two halves of different uptake (1000 / 4000 Bq/mL) and CT density (0 / 300 HU) with noise: the
    CT-guided filter keeps the step (the voxel next to the edge stays near its own side's value) while a
    Gaussian of the same FWHM blurs it; a huge HU sigma makes it the (border-normalised) Gaussian."""
    g = np.random.default_rng(0)
    act = np.full((6, 20, 20), 1000.0, np.float32)
    act[:, :, 10:] = 4000.0
    ct = np.where(act > 2000, 300.0, 0.0).astype(np.float32)
    noisy = act + g.normal(0, 200, act.shape).astype(np.float32)
    pet = Volume.centered(noisy, (4.0,) * 3, unit="Bq/mL")
    ctv = Volume.centered(ct, (4.0,) * 3, unit="HU")
    guided = ct_guided_filter(pet, ctv, 12.0, 50.0).data
    gauss = gaussian_filter(pet, 12.0).data
    assert float(guided[:, :, 9].mean()) == pytest.approx(1000.0, rel=0.05)
    assert float(gauss[:, :, 9].mean()) > 1500.0
    assert float(guided[:, :, :8].std()) < 0.5 * float(pet.data[:, :, :8].std())
    wide = ct_guided_filter(pet, ctv, 12.0, 1e6).data
    assert torch.allclose(wide, gauss, rtol=1e-3, atol=1.0)
    with pytest.raises(InputError):
        ct_guided_filter(pet, ctv, 8.0, 0.0)
    with pytest.raises(InputError):
        ct_guided_filter(pet, Volume.centered(ct[:3], (4.0,) * 3, unit="HU"), 8.0, 50.0)


def test_preserve_total_scales_to_the_input_total():
    low = Volume.centered(torch.full((4, 8, 8), 2.0), (4.0,) * 3)
    out = Volume.centered(torch.full((4, 8, 8), 1.5), (4.0,) * 3)
    assert float(preserve_total(out, low).data.sum()) == pytest.approx(float(low.data.sum()))
    with pytest.raises(InputError):
        preserve_total(out, low.with_data(torch.zeros(4, 8, 8)))


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


def _cases(pairs):
    return [Case(f"s{i}", low, ref) for i, (low, ref) in enumerate(pairs)]


def test_tuning_picks_the_best_psnr_and_zero_without_noise():
    cases = _cases(_noisy_pairs(2, seed=2))
    tuned = tune_method("gaussian", cases)
    best = max(tuned.tuning.trials, key=lambda t: t.score)
    assert tuned.params == best.params and tuned.params["fwhm_mm"] > 0
    assert [t.params["fwhm_mm"] for t in tuned.tuning.trials] == list(DEFAULT_GRIDS["gaussian"]["fwhm_mm"])
    clean = [Case("c", c.reference, c.reference) for c in cases]
    assert tune_method("gaussian", clean).params["fwhm_mm"] == 0.0
    assert isinstance(tuned, TunedMethod) and set(tuned.post_scores) == {"psnr_db_without", "psnr_db_preserve_total"}
    assert torch.equal(tuned(cases[0]).data if not tuned.preserve_total else preserve_total(
        run_method("gaussian", cases[0], tuned.params), cases[0].low).data, tuned(cases[0]).data)


def test_every_method_gets_the_same_budget():
    """A 2-parameter grid larger than the budget is subsampled to the budget: no method gets more trials."""
    pairs = _noisy_pairs(1, seed=5)
    ct = Volume.centered(np.where(pairs[0][1].numpy() > 0, 40.0, -1000.0).astype(np.float32), (4.0,) * 3, unit="HU")
    cases = [Case("s", pairs[0][0], pairs[0][1], ct)]
    budget = Budget(max_trials=4)
    tuned = tune_baselines(cases, ["gaussian", "ct_guided"], budget=budget,
                           grids={"gaussian": {"fwhm_mm": (0.0, 4.0, 8.0, 12.0, 16.0, 20.0)}})
    assert {len(t.tuning.trials) for t in tuned.values()} == {4}
    assert tuned["ct_guided"].tuning.grid_size == 12 and tuned["ct_guided"].uses_ct


def test_tune_baselines_and_errors():
    cases = _cases(_noisy_pairs(1, seed=3))
    tuned = tune_baselines(cases, grids={"gaussian": {"fwhm_mm": (0.0, 6.0)}, "nlm": {"h_rel": (0.1, 0.3)}})
    assert set(tuned) == set(available_baselines())
    assert tuned["gaussian"].params["fwhm_mm"] == 6.0
    with pytest.raises(InputError):
        tune_method("gaussian", [])
    with pytest.raises(InputError):
        tune_method("median", cases)
    with pytest.raises(InputError):
        run_method("map_rdp", cases[0], {"beta": 0.1, "gamma": 2.0})  # no prompts to re-reconstruct


@pytest.mark.skipif(bm4d_available(), reason="bm4d is installed here")
def test_bm4d_is_optional():
    assert "bm4d" not in available_baselines()
    with pytest.raises(InputError, match="not installed"):
        bm4d_filter(_noisy_pairs(1, seed=4)[0][0], 0.1)
