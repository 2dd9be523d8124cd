"""Evaluation metrics of denoised images: conventions, SUV biases, contrast recovery, liver noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from petspect.errors import InputError
from petspect.tasks.evaluate import (Subject, bias_metrics, evaluate_image, image_metrics, lesion_contrast, liver_cov,
                                     mean_curve, mean_metrics, noise_bias_points, organ_names)
from petspect.volume import Volume


def _subject() -> Subject:
    """Truth: body 2000, liver 5000, one 3x3x3 lesion 20000 Bq/mL inside the liver; reference = truth."""
    act = np.zeros((10, 20, 20), np.float32)
    lab = np.zeros(act.shape, np.int16)
    les = np.zeros(act.shape, np.int16)
    lab[1:9, 2:18, 2:18] = 1
    lab[2:8, 4:14, 4:14] = 2
    act[lab == 1], act[lab == 2] = 2000.0, 5000.0
    les[4:7, 7:10, 7:10] = 1
    act[les == 1] = 20000.0
    vol = lambda a, unit: Volume.centered(torch.as_tensor(a), (4.0, 4.0, 4.0), unit=unit)  # noqa: E731
    return Subject("s", vol(act, "Bq/mL"), vol(act, "Bq/mL"), vol(lab, "label"), vol(les, "label"),
                   {0: "background", 1: "soft_tissue", 2: "liver"})


def test_image_metrics_conventions():
    """Constant offset c: MSE = c^2, so PSNR = 20 log10(range / c) and NRMSE = c / range."""
    s = _subject()
    ref = s.reference.data.double()
    m = image_metrics(ref + 200.0, ref)
    assert m["psnr_db"] == pytest.approx(20 * math.log10(20000.0 / 200.0))
    assert m["nrmse"] == pytest.approx(0.01)
    assert m["psnr_challenge_db"] == pytest.approx(m["psnr_db"])  # min(ref) = 0: same peak
    same = image_metrics(ref, ref)
    assert same["ssim"] == pytest.approx(1.0) and same["nrmse"] == 0.0
    with pytest.raises(InputError):
        image_metrics(ref, torch.ones_like(ref))


def test_scaled_image_has_uniform_bias():
    s = _subject()
    b = bias_metrics(s.reference.data * 1.1, s.reference.data, s)
    for key in ("suvmean_bias_pct", "suvmax_bias_pct", "suvpeak_bias_pct", "lesion_suvmean_bias_pct"):
        assert b[key] == pytest.approx(10.0, rel=1e-6)
    assert b["suvmean_abs_bias_pct"] == pytest.approx(10.0, rel=1e-6)
    assert set(organ_names(s)) == {1, 2}
    assert organ_names(s, min_organ_ml=1e6) == {}


def test_contrast_recovery_and_liver_noise():
    s = _subject()
    assert lesion_contrast(s.truth.data, s) == pytest.approx(100.0)
    assert math.isnan(lesion_contrast(s.truth.data, s, min_lesion_ml=2.0))  # the lesion is 27 x 0.064 = 1.73 mL
    flat = s.truth.data.clone()
    flat[s.lesions.data > 0] = 5000.0  # lesion lost in the liver background
    assert lesion_contrast(flat, s) == pytest.approx(0.0, abs=1e-9)
    assert liver_cov(s.truth.data, s) == pytest.approx(0.0)
    g = torch.Generator().manual_seed(0)
    noisy = s.truth.data * (1 + 0.1 * torch.randn(s.truth.shape, generator=g))
    assert liver_cov(noisy, s) == pytest.approx(10.0, rel=0.15)
    no_liver = Subject("x", s.reference, s.truth, s.labels, s.lesions, {1: "soft_tissue"})
    assert math.isnan(liver_cov(noisy, no_liver))


def test_evaluate_image_and_averages():
    s = _subject()
    row = evaluate_image(s.reference.data * 0.95, s)
    assert row["suvmean_bias_pct"] == pytest.approx(-5.0, rel=1e-6)
    assert row["suvmean_bias_vs_truth_pct"] == pytest.approx(-5.0, rel=1e-6)
    ref_row = evaluate_image(s.reference.data, s, reference=True)
    assert "psnr_db" not in ref_row and ref_row["lesion_cr_pct"] == pytest.approx(100.0)
    avg = mean_metrics([{"a": {"x": 1.0, "y": math.nan}}, {"a": {"x": 3.0, "y": math.nan}, "b": {"x": 2.0}}])
    assert avg == {"a": {"x": 2.0}, "b": {"x": 2.0}}
    pts = [noise_bias_points({0: s.truth.data, 1: s.truth.data * 1.2}, s) for _ in range(2)]
    curve = mean_curve(pts)
    assert [p["setting"] for p in curve] == [0, 1]
    assert curve[1]["suvmax_bias_pct"] == pytest.approx(20.0, rel=1e-6)
