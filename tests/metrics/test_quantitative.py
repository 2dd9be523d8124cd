"""Quantitative metrics: SUVpeak on analytic images, bias sign conventions, contrast recovery."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from petspect.errors import InputError
from petspect.metrics import contrast_recovery, noise_bias_curve, region_bias, region_stats, sphere_kernel, suv_peak


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.5, 1.5), (3.0, 4.0, 4.0)])
def test_sphere_kernel_volume(spacing):
    """The voxel-fraction weights integrate to the sphere volume, pi d^3 / 6 = 0.905 mL for d = 12 mm."""
    w = sphere_kernel(spacing, 12.0)
    vol_ml = w.sum() * math.prod(spacing) * 1e-3
    assert vol_ml == pytest.approx(math.pi * 12.0**3 / 6 * 1e-3, rel=0.02)
    assert np.allclose(w, w[::-1, ::-1, ::-1])  # symmetric about the centre voxel


@pytest.mark.parametrize("spacing", [(2.0, 2.0, 2.0), (3.0, 2.0, 1.5)])
def test_suv_peak_linear_ramp(spacing):
    """A symmetric sphere averages a linear ramp to its centre value, so SUVpeak = ramp at the best allowed centre."""
    nz, ny, nx = 30, 24, 26
    z, y, x = np.meshgrid(*(np.arange(n) * s for n, s in zip((nz, ny, nx), spacing)), indexing="ij")
    img = 1.0 + 0.1 * z + 0.05 * y - 0.02 * x
    mask = np.zeros(img.shape, bool)
    mask[8:20, 8:16, 8:18] = True
    best = img[mask].max()  # at (19, 15, 8), far enough from the image edge for the whole sphere
    assert suv_peak(img, mask, spacing) == pytest.approx(best, rel=1e-12)


def test_suv_peak_hot_sphere():
    """A uniform hot sphere of 30 mm in a background of 1: the 12 mm peak sphere fits inside, so SUVpeak = 8,
    while a lesion of 8 mm diameter (smaller than the peak sphere) gives a partial-volume-mixed peak."""
    sp = (1.0, 1.0, 1.0)
    c = np.indices((48, 48, 48)).astype(float) - 23.5
    r = np.sqrt((c**2).sum(axis=0))
    img = np.where(r <= 15.0, 8.0, 1.0)
    assert suv_peak(img, r <= 15.0, sp) == pytest.approx(8.0)
    small = np.where(r <= 4.0, 8.0, 1.0)
    w = sphere_kernel(sp, 12.0)
    frac = (4.0 / 6.0) ** 3  # volume fraction of the 8 mm lesion within the 12 mm sphere
    assert suv_peak(small, r <= 4.0, sp) == pytest.approx(1.0 + 7.0 * frac, rel=0.06)
    assert w.sum() > 0


def test_region_bias_signs_and_values():
    """Bias = (pred - ref) / ref * 100: +10 % for an over-estimate, -20 % for an under-estimate."""
    ref = np.full((26, 20, 20), 2.0)
    labels = np.zeros(ref.shape, int)
    labels[2:10, 2:18, 2:18] = 1
    labels[14:23, 2:14, 2:14] = 2  # hot lesion of 18 x 24 x 24 mm: the 12 mm peak sphere fits inside
    ref[labels == 2] = 8.0
    pred = ref.copy()
    pred[labels == 1] *= 1.10
    pred[labels == 2] *= 0.80
    out = region_bias(torch.as_tensor(pred), ref, labels, {1: "liver", 2: "lesion_1", 3: "absent"},
                      stats=("mean", "max", "peak", "tlm"), spacing_mm=(2.0, 2.0, 2.0))
    for s in ("mean", "max", "peak", "tlm"):
        assert out["liver"][s] == pytest.approx(10.0)
        assert out["lesion_1"][s] == pytest.approx(-20.0)
    assert out["liver"]["ref_mean"] == pytest.approx(2.0)
    assert math.isnan(out["absent"]["mean"])
    # Volumes carry their spacing; plain arrays need it for SUVpeak (no silent 1 mm voxels)
    from petspect.volume import Volume

    vols = [Volume.centered(a, (2.0, 2.0, 2.0)) for a in (pred, ref)]
    assert region_bias(*vols, labels, {2: "lesion_1"})["lesion_1"]["peak"] == pytest.approx(-20.0)
    with pytest.raises(InputError, match="spacing_mm"):
        region_bias(pred, ref, labels, {2: "lesion_1"})
    assert region_bias(pred, ref, labels, {2: "l"}, stats=("mean",))["l"]["mean"] == pytest.approx(-20.0)
    # TLM = sum * voxel volume: 9 x 12 x 12 voxels of 8 mm^3 at 8.0
    st = region_stats(ref, labels == 2, (2.0, 2.0, 2.0), ("tlm",))
    assert st["tlm"] == pytest.approx(9 * 12 * 12 * 8e-3 * 8.0)


def test_contrast_recovery_exact():
    """Perfect image of a 4:1 lesion: CR = 100 %, BV = 0; half the true contrast gives CR = 50 %."""
    img = np.ones((10, 10, 10))
    les = np.zeros(img.shape, bool)
    les[4:6, 4:6, 4:6] = True
    img[les] = 4.0
    bkg = ~les
    out = contrast_recovery(img, les, bkg, 4.0)
    assert out["contrast_recovery_pct"] == pytest.approx(100.0)
    assert out["background_variability_pct"] == pytest.approx(0.0)
    img[les] = 2.5
    assert contrast_recovery(img, les, bkg, 4.0)["contrast_recovery_pct"] == pytest.approx(50.0)


def test_noise_bias_curve():
    """Smoothing the noise lowers both the noise level and (with blur) the contrast recovery."""
    from scipy.ndimage import gaussian_filter

    g = np.random.default_rng(0)
    truth = np.ones((16, 24, 24))
    les = np.zeros(truth.shape, bool)
    les[6:10, 10:14, 10:14] = True
    truth[les] = 4.0
    bkg = np.zeros(truth.shape, bool)
    bkg[2:14, 1:6, 1:22] = True
    reals = [truth + g.normal(0, 0.3, truth.shape) for _ in range(4)]
    settings = {s: [gaussian_filter(x, s) for x in reals] for s in (0.0, 1.0, 2.0)}
    for mode in ("spatial", "ensemble"):
        pts = noise_bias_curve(settings, les, bkg, 4.0, noise=mode)
        assert [p["setting"] for p in pts] == [0.0, 1.0, 2.0]
        assert pts[0]["noise_pct"] > pts[1]["noise_pct"] > pts[2]["noise_pct"]
        assert pts[0]["contrast_recovery_pct"] > pts[2]["contrast_recovery_pct"]
        assert pts[0]["noise_pct"] == pytest.approx(30.0, rel=0.15)  # sigma 0.3 on a background of 1
    single = noise_bias_curve({"one": reals[0]}, les, bkg, 4.0)
    assert single[0]["n_realisations"] == 1
    with pytest.raises(InputError):
        noise_bias_curve({"one": reals[0]}, les, bkg, 4.0, noise="ensemble")


@pytest.mark.parametrize("call", [
    lambda: suv_peak(np.ones((4, 4, 4)), np.zeros((4, 4, 4), bool), (1, 1, 1)),
    lambda: suv_peak(np.ones((4, 4, 4)), np.ones((4, 4, 4), bool), (1, 0, 1)),
    lambda: suv_peak(np.ones((4, 4)), np.ones((4, 4), bool), (1, 1, 1)),
    lambda: region_stats(np.ones((4, 4, 4)), np.ones((4, 4, 4), bool), (1, 1, 1), ("median",)),
    lambda: region_bias(np.ones((4, 4, 4)), np.ones((4, 4, 5)), np.ones((4, 4, 4), int), {1: "a"}),
    lambda: contrast_recovery(np.ones((4, 4, 4)), np.ones((4, 4, 4), bool), np.ones((4, 4, 4), bool), 1.0),
])
def test_bad_inputs_raise(call):
    with pytest.raises(InputError):
        call()
