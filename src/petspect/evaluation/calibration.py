"""Calibration of a predicted uncertainty map: how often the error lies within 1 and 2 predicted sigma.

For a Gaussian predictive distribution with the right spread, the fraction of voxels with
``|prediction - reference| <= k sigma`` is ``erf(k / sqrt(2))``: 68.3 % for ``k = 1`` and 95.4 % for
``k = 2``. A smaller fraction means the map is over-confident (sigma too small), a larger one
under-confident. ``sigma_scale_for_68`` is the factor the map would need for 68.3 % coverage: the 68.3 %
quantile of ``|error| / sigma``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from petspect.errors import InputError

__all__ = ["Calibration", "uncertainty_calibration", "EXPECTED_WITHIN_1SIGMA", "EXPECTED_WITHIN_2SIGMA"]

EXPECTED_WITHIN_1SIGMA = math.erf(1.0 / math.sqrt(2.0))
EXPECTED_WITHIN_2SIGMA = math.erf(2.0 / math.sqrt(2.0))


@dataclass(frozen=True)
class Calibration:
    """Coverage of an uncertainty map (fractions in [0, 1]).

    Attributes
    ----------
    within_1sigma, within_2sigma : float
        Fraction of the evaluated voxels whose absolute error is at most 1 (2) predicted sigma.
    expected_1sigma, expected_2sigma : float
        The Gaussian values 0.683 and 0.954.
    sigma_scale_for_68 : float
        The 68.3 % quantile of ``|error| / sigma``: multiply the map by it to reach 68.3 % coverage.
    n_voxels : int
    """

    within_1sigma: float
    within_2sigma: float
    expected_1sigma: float
    expected_2sigma: float
    sigma_scale_for_68: float
    n_voxels: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def uncertainty_calibration(prediction: Any, sigma: Any, reference: Any, mask: Any = None) -> Calibration:
    """Coverage of ``sigma`` for the error ``prediction - reference`` (arrays or tensors of one shape).

    Parameters
    ----------
    prediction, sigma, reference : array-like, same shape
        The output, its predicted standard deviation (same unit, >= 0) and the reference.
    mask : array-like of bool, optional
        Voxels to evaluate (e.g. the body); default all. Voxels with sigma == 0 count as covered only
        when the error is exactly 0.
    """
    def arr(x: Any) -> np.ndarray:
        if hasattr(x, "data") and hasattr(x, "spacing_mm"):
            x = x.data
        if hasattr(x, "detach"):
            x = x.detach().cpu().double().numpy()
        return np.asarray(x, dtype=np.float64)

    p, s, r = arr(prediction), arr(sigma), arr(reference)
    if not (p.shape == s.shape == r.shape):
        raise InputError(f"prediction, sigma and reference must have one shape, got {p.shape}, {s.shape}, {r.shape}")
    if np.any(s < 0) or not np.all(np.isfinite(s)):
        raise InputError("sigma must be finite and non-negative")
    m = np.ones(p.shape, dtype=bool) if mask is None else np.asarray(arr(mask), dtype=bool)
    if m.shape != p.shape or not m.any():
        raise InputError("the mask must have the image's shape and select at least one voxel")
    err, sig = np.abs(p - r)[m], s[m]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sig > 0, err / np.where(sig > 0, sig, 1.0), np.where(err == 0, 0.0, np.inf))
    return Calibration(float(np.mean(z <= 1.0)), float(np.mean(z <= 2.0)), EXPECTED_WITHIN_1SIGMA,
                       EXPECTED_WITHIN_2SIGMA, float(np.quantile(z, EXPECTED_WITHIN_1SIGMA)), int(z.size))
