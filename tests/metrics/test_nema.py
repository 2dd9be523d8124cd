"""NU 2 image-quality formulas against hand-computed values (NEMA NU 2-2018 section 7.4)."""

from __future__ import annotations

import numpy as np
import pytest

from petspect.errors import InputError
from petspect.metrics.nema import (background_variability_pct, cold_contrast_pct, hot_contrast_pct,
                                   lung_residual_pct)


def test_hot_contrast_definition():
    """Q_H = (C_H/C_B - 1)/(a_H/a_B - 1) x 100: full recovery of a 4:1 sphere is 100 %, no contrast 0 %."""
    assert hot_contrast_pct(4.0, 1.0, 4.0) == pytest.approx(100.0)
    assert hot_contrast_pct(1.0, 1.0, 4.0) == pytest.approx(0.0)
    assert hot_contrast_pct(2.5, 1.0, 4.0) == pytest.approx(50.0)
    assert hot_contrast_pct(50.0, 10.0, 8.0) == pytest.approx(400.0 / 7.0)
    np.testing.assert_allclose(hot_contrast_pct(np.array([4.0, 2.5]), np.array([1.0, 1.0]), 4.0), [100.0, 50.0])


def test_cold_contrast_and_lung_residual():
    """Q_C = (1 - C_C/C_B) x 100; lung residual = C_lung/C_B x 100."""
    assert cold_contrast_pct(0.0, 5.0) == pytest.approx(100.0)
    assert cold_contrast_pct(4.0, 5.0) == pytest.approx(20.0)
    assert lung_residual_pct(0.5, 5.0) == pytest.approx(10.0)


def test_background_variability_uses_sample_sd():
    """N = SD/C_B x 100 with the K - 1 divisor of NU 2: ROI means 9, 10, 11 -> SD 1, N 10 %."""
    assert background_variability_pct([9.0, 10.0, 11.0]) == pytest.approx(10.0)
    rng = np.random.default_rng(0)
    x = rng.normal(100.0, 5.0, 60)
    assert background_variability_pct(x) == pytest.approx(np.std(x, ddof=1) / np.mean(x) * 100)


def test_bad_inputs_raise():
    with pytest.raises(InputError):
        hot_contrast_pct(4.0, 1.0, 1.0)
    with pytest.raises(InputError):
        hot_contrast_pct(4.0, 0.0, 4.0)
    with pytest.raises(InputError):
        background_variability_pct([1.0])
    with pytest.raises(InputError):
        cold_contrast_pct(1.0, -1.0)
