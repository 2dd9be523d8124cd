"""Image metrics against scikit-image and against their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import normalized_root_mse, peak_signal_noise_ratio, structural_similarity

from petspect.errors import InputError
from petspect.metrics import (nrmse, nrmse_challenge, psnr, psnr_challenge, ssim, ssim_challenge)


def _pair(shape, seed=0):
    g = np.random.default_rng(seed)
    ref = g.gamma(2.0, 3.0, size=shape)
    return ref + g.normal(0.0, 1.0, size=shape), ref


@pytest.mark.parametrize("shape", [(32, 40), (12, 16, 20)])
def test_psnr_matches_skimage(shape):
    """Same arrays, same data_range: scikit-image's peak_signal_noise_ratio is the reference."""
    pred, ref = _pair(shape)
    dr = ref.max() - ref.min()
    assert psnr(pred, ref, data_range=dr) == pytest.approx(peak_signal_noise_ratio(ref, pred, data_range=dr), rel=1e-12)


@pytest.mark.parametrize("shape", [(32, 40), (12, 16, 20)])
@pytest.mark.parametrize("gaussian", [False, True])
def test_ssim_matches_skimage(shape, gaussian):
    """scikit-image structural_similarity (uniform 7 window with sample covariance, or Gaussian sigma 1.5)."""
    pred, ref = _pair(shape, seed=1)
    dr = float(ref.max() - ref.min())
    expected = structural_similarity(ref, pred, data_range=dr, gaussian_weights=gaussian,
                                     use_sample_covariance=not gaussian, sigma=1.5)
    assert ssim(pred, ref, data_range=dr, gaussian_weights=gaussian) == pytest.approx(expected, abs=1e-10)


def test_ssim_torch_input_and_identity(device):
    ref = torch.rand(16, 16, 16, generator=torch.Generator().manual_seed(3)).to(device)
    assert ssim(ref, ref, data_range=1.0) == pytest.approx(1.0)
    assert ssim(ref, 1.0 - ref, data_range=1.0) < 0
    from petspect.volume import Volume

    pred = ref + 0.1
    vol = Volume.centered(pred.cpu(), (2.0, 2.0, 2.0))
    assert psnr(vol, ref, data_range=1.0) == pytest.approx(20.0)  # RMSE 0.1 on a peak of 1
    assert ssim(vol, ref, data_range=1.0) == pytest.approx(ssim(pred, ref, data_range=1.0))


def test_nrmse_definition():
    """NRMSE = sqrt(mean((p - r)^2)) / data_range; equals skimage's 'min-max' normalisation with the ref range."""
    pred, ref = _pair((20, 20), seed=2)
    dr = ref.max() - ref.min()
    assert nrmse(pred, ref, data_range=dr) == pytest.approx(math.sqrt(np.mean((pred - ref) ** 2)) / dr, rel=1e-12)
    assert nrmse(pred, ref, data_range=dr) == pytest.approx(normalized_root_mse(ref, pred, normalization="min-max"))
    # a constant error of 0.5 on a reference ranging over 0..10 is 5 %
    r = np.linspace(0.0, 10.0, 100).reshape(10, 10)
    assert nrmse_challenge(r + 0.5, r) == pytest.approx(0.05)


def test_challenge_variants():
    """Ultra-low-dose challenge: PSNR peak = max(ref); SSIM after dividing each image by its own max."""
    pred, ref = _pair((24, 24, 24), seed=4)
    ref = ref + 1.0  # strictly positive, so max and range differ
    assert psnr_challenge(pred, ref) == pytest.approx(peak_signal_noise_ratio(ref, pred, data_range=ref.max()))
    assert nrmse_challenge(pred, ref) == pytest.approx(nrmse(pred, ref, data_range=ref.max() - ref.min()))
    assert ssim_challenge(pred, ref) == pytest.approx(
        structural_similarity(ref / ref.max(), pred / pred.max(), data_range=1.0, use_sample_covariance=True))
    # global scaling of the prediction does not change the challenge SSIM, it does change PSNR
    assert ssim_challenge(3.0 * pred, ref) == pytest.approx(ssim_challenge(pred, ref))
    assert psnr_challenge(3.0 * pred, ref) < psnr_challenge(pred, ref)


def test_mask_and_identity():
    pred, ref = _pair((10, 10), seed=5)
    mask = np.zeros((10, 10), bool)
    mask[2:5, 3:7] = True
    assert psnr(pred, ref, data_range=1.0, mask=mask) == pytest.approx(
        10 * math.log10(1.0 / np.mean((pred[mask] - ref[mask]) ** 2)))
    assert psnr(ref, ref, data_range=1.0) == math.inf


@pytest.mark.parametrize("call", [
    lambda a, b: psnr(a, b, data_range=0.0),
    lambda a, b: nrmse(a, b, data_range=-1.0),
    lambda a, b: ssim(a, b, data_range=float("nan")),
    lambda a, b: psnr(a, b[:4], data_range=1.0),
    lambda a, b: ssim(a, b, data_range=1.0, win_size=4),
    lambda a, b: ssim(a[:, :5], b[:, :5], data_range=1.0),
    lambda a, b: nrmse_challenge(a, np.ones_like(b)),
    lambda a, b: psnr(a, b, data_range=1.0, mask=np.zeros_like(a, bool)),
])
def test_bad_inputs_raise(call):
    pred, ref = _pair((8, 8), seed=6)
    with pytest.raises(InputError):
        call(pred, ref)


def test_data_range_is_keyword_only():
    pred, ref = _pair((8, 8))
    with pytest.raises(TypeError):
        psnr(pred, ref, 1.0)  # type: ignore[misc]
    with pytest.raises(TypeError):
        ssim(pred, ref)  # type: ignore[call-arg]
