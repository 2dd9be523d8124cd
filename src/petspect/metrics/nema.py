"""NEMA NU 2 image-quality figures (NEMA NU 2-2018, section 7 "Image quality, accuracy of
attenuation and scatter corrections"), as pure functions of ROI means.

Notation of NU 2-2018 section 7.4 (the same in NU 2-2012 section 7.4):

* ``C_H,j`` / ``C_C,j``: mean in the ROI on hot / cold sphere ``j`` (ROI diameter = sphere inner
  diameter, transverse slice through the sphere centres);
* ``C_B,j``: mean of the K = 60 background ROI means of the same diameter (12 ROIs on the central
  slice and on the slices at +-1 cm and +-2 cm);
* ``a_H / a_B``: true sphere-to-background activity-concentration ratio.

All functions accept floats or arrays (NumPy broadcasting) and return percentages.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from petspect.errors import InputError

__all__ = ["hot_contrast_pct", "cold_contrast_pct", "background_variability_pct", "lung_residual_pct"]


def _positive_background(c_bkg):
    c = np.asarray(c_bkg, dtype=np.float64)
    if np.any(~np.isfinite(c)) or np.any(c <= 0):
        raise InputError("the background mean must be positive and finite")
    return c


def hot_contrast_pct(c_hot, c_bkg, activity_ratio):
    """Percent contrast of a hot sphere, NU 2-2018 section 7.4.1.

    ``Q_H,j = (C_H,j / C_B,j - 1) / (a_H / a_B - 1) * 100``

    Parameters
    ----------
    c_hot : float or array
        Mean in the hot-sphere ROI (any unit, the same as ``c_bkg``).
    c_bkg : float or array
        Mean of the background ROIs of the same size (> 0).
    activity_ratio : float
        True ratio ``a_H / a_B`` (> 1; NU 2 uses 4, optionally 8).

    Returns
    -------
    float or ndarray
        ``Q_H`` in percent (100 = full recovery of the true contrast).
    """
    ratio = float(activity_ratio)
    if not np.isfinite(ratio) or ratio <= 1.0:
        raise InputError(f"activity_ratio must be > 1 for a hot contrast, got {activity_ratio}")
    q = (np.asarray(c_hot, dtype=np.float64) / _positive_background(c_bkg) - 1.0) / (ratio - 1.0) * 100.0
    return float(q) if q.ndim == 0 else q


def cold_contrast_pct(c_cold, c_bkg):
    """Percent contrast of a cold sphere, NU 2-2018 section 7.4.1.

    ``Q_C,j = (1 - C_C,j / C_B,j) * 100`` (100 = a perfectly cold sphere).
    """
    q = (1.0 - np.asarray(c_cold, dtype=np.float64) / _positive_background(c_bkg)) * 100.0
    return float(q) if q.ndim == 0 else q


def background_variability_pct(roi_means: Sequence[float] | np.ndarray) -> float:
    """Percent background variability of one ROI size, NU 2-2018 section 7.4.1.

    ``N_j = SD_j / C_B,j * 100`` with ``C_B,j`` the mean and ``SD_j`` the sample standard deviation
    (divisor K - 1) of the K background ROI means (K = 60 in NU 2).

    Parameters
    ----------
    roi_means : array, shape (K,)
        Background ROI means of one diameter, K >= 2.
    """
    c = np.asarray(roi_means, dtype=np.float64).reshape(-1)
    if c.size < 2:
        raise InputError("background variability needs at least two ROI means")
    mean = float(_positive_background(c.mean()))
    return float(c.std(ddof=1) / mean * 100.0)


def lung_residual_pct(c_lung, c_bkg):
    """Relative error in the lung insert, NU 2-2018 section 7.4.2.

    ``dC_lung,i = C_lung,i / C_B * 100`` with ``C_lung,i`` the mean of a 30 mm ROI centred on the
    lung insert in slice ``i`` and ``C_B`` the mean of the 37 mm background ROIs; a measure of the
    residual error of scatter and attenuation correction (0 is ideal).
    """
    r = np.asarray(c_lung, dtype=np.float64) / _positive_background(c_bkg) * 100.0
    return float(r) if r.ndim == 0 else r
