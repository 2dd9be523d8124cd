"""Coverage of an uncertainty map: a correct Gaussian sigma covers 68.3 % and 95.4 % of the errors."""

import numpy as np
import pytest
import torch

from petspect.errors import InputError
from petspect.evaluation.calibration import uncertainty_calibration


def test_correct_sigma_gives_gaussian_coverage_and_scaled_sigma_does_not():
    rng = np.random.default_rng(0)
    ref = rng.uniform(1, 5, (20, 50, 50))
    sigma = rng.uniform(0.1, 1.0, ref.shape)
    pred = ref + rng.normal(0, 1, ref.shape) * sigma
    c = uncertainty_calibration(pred, sigma, ref)
    assert c.within_1sigma == pytest.approx(0.683, abs=0.01)
    assert c.within_2sigma == pytest.approx(0.954, abs=0.01)
    assert c.sigma_scale_for_68 == pytest.approx(1.0, abs=0.03)
    over = uncertainty_calibration(torch.as_tensor(pred), torch.as_tensor(sigma * 0.5), torch.as_tensor(ref))
    assert over.within_1sigma < 0.45 and over.sigma_scale_for_68 == pytest.approx(2.0, rel=0.05)


def test_mask_and_bad_inputs():
    ref = np.zeros((4, 4))
    pred = ref.copy()
    pred[0, 0] = 10.0
    sig = np.ones((4, 4))
    mask = np.zeros((4, 4), bool)
    mask[1:, :] = True
    assert uncertainty_calibration(pred, sig, ref, mask).within_1sigma == 1.0
    assert uncertainty_calibration(pred, np.zeros((4, 4)), ref).within_2sigma == pytest.approx(15 / 16)
    with pytest.raises(InputError):
        uncertainty_calibration(pred, -sig, ref)
    with pytest.raises(InputError):
        uncertainty_calibration(pred, sig[:2], ref)
    with pytest.raises(InputError):
        uncertainty_calibration(pred, sig, ref, np.zeros((4, 4), bool))
