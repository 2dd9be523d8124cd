"""Classical thresholds on images whose answer is known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from petspect.errors import InputError
from petspect.segmentation.thresholds import (ThresholdMethod, ThresholdParams, auto_seeds, liver_reference,
                                              percent_of_max, percist_threshold, segment_threshold)
from petspect.segmentation.volumes import mtv_ml

SP = (2.0, 2.0, 2.0)


def _ball(shape, centre, radius_vox):
    z, y, x = np.indices(shape)
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius_vox ** 2


def _two_lesions():
    img = np.ones((32, 40, 40))
    a = _ball(img.shape, (10, 12, 12), 4)
    b = _ball(img.shape, (22, 28, 28), 3)
    img[a] = 10.0
    img[b] = 4.0  # below 41 % of the first lesion's max: only a per-seed maximum finds it
    return img, a, b


@pytest.mark.parametrize("method", ["suv41", "suv50", "adaptive"])
def test_relative_methods_use_each_seed_own_maximum(method):
    """Uniform lesions on a uniform background: every relative rule gives both balls exactly."""
    img, a, b = _two_lesions()
    m = segment_threshold(method, img, SP)
    assert np.array_equal(m, a | b)


def test_suv25_is_an_absolute_threshold():
    img, a, b = _two_lesions()
    img[0:3] = 2.49  # just below: not taken
    m = segment_threshold(ThresholdMethod.SUV25, img, SP)
    assert np.array_equal(m, a | b)


def test_fifty_percent_of_a_gaussian_is_its_half_maximum_sphere():
    """50 % of SUVmax of a Gaussian blob is the sphere of radius FWHM/2: V = 4/3 pi (FWHM/2)^3."""
    sigma_vox = 4.0
    z, y, x = np.indices((40, 40, 40)) - 20.0
    img = 1e-3 + 8.0 * np.exp(-(z ** 2 + y ** 2 + x ** 2) / (2 * sigma_vox ** 2))
    seeds = auto_seeds(img, SP, seed_suv=2.5)
    m = percent_of_max(img, SP, seeds, fraction=0.5, margin_mm=40.0)
    r_mm = sigma_vox * 2.0 * math.sqrt(2 * math.log(2)) / 2 * 2.0
    expected_ml = 4 / 3 * math.pi * r_mm ** 3 / 1000
    assert mtv_ml(m, SP) == pytest.approx(expected_ml, rel=0.08)


def test_percist_threshold_from_the_liver_sphere():
    """Liver SUV 2 +- 0.3 (seeded noise): threshold 1.5 x 2 + 2 x 0.3 = 3.6 (Wahl et al 2009)."""
    rng = np.random.default_rng(0)
    img = np.full((30, 40, 40), 0.5)
    liver = np.zeros(img.shape, bool)
    liver[5:25, 5:35, 5:35] = True
    img[liver] = rng.normal(2.0, 0.3, liver.sum())
    mean, sd = liver_reference(img, SP, liver)
    assert mean == pytest.approx(2.0, abs=0.05) and sd == pytest.approx(0.3, abs=0.05)
    assert percist_threshold(mean, sd) == pytest.approx(1.5 * mean + 2 * sd)
    hot, warm = _ball(img.shape, (15, 20, 20), 3), _ball(img.shape, (15, 20, 8), 2)
    img[hot], img[warm] = 6.0, 3.0
    m = segment_threshold("percist", img, SP, liver=liver)
    assert m[hot].all() and not m[warm].any()
    assert m.sum() == hot.sum()  # liver noise above 3.6 is a (2 SD) tail: a few voxels at most
    with pytest.raises(InputError, match="liver"):
        segment_threshold("percist", img, SP)


def test_gradient_finds_the_edge_of_a_blurred_sphere():
    """A uniform 12 mm-radius sphere blurred by a 6 mm FWHM PSF: the steepest edge is near the true radius."""
    from scipy import ndimage

    img = np.ones((40, 40, 40))
    ball = _ball(img.shape, (20, 20, 20), 6)
    img[ball] = 8.0
    img = ndimage.gaussian_filter(img, 6.0 / 2.3548 / 2.0)
    m = segment_threshold("gradient", img, SP, params=ThresholdParams(smooth_mm=0.0, margin_mm=20.0))
    assert mtv_ml(m, SP) == pytest.approx(mtv_ml(ball, SP), rel=0.25)
    assert m[20, 20, 20]


def test_excluded_voxels_are_never_segmented():
    img, a, b = _two_lesions()
    m = segment_threshold("suv41", img, SP, exclude=b)
    assert np.array_equal(m, a)


def test_bad_inputs_raise():
    img, a, _ = _two_lesions()
    with pytest.raises(InputError, match="unknown threshold method"):
        segment_threshold("otsu", img, SP)
    bad = img.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        segment_threshold("suv41", bad, SP)
    with pytest.raises(InputError, match="shape"):
        segment_threshold("suv41", img, SP, seeds=a[:-1])
    with pytest.raises(InputError):
        ThresholdParams(fraction=1.2)
    with pytest.raises(InputError, match="spacing"):
        segment_threshold("suv41", img, (2.0, 0.0, 2.0))
