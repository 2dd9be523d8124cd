"""Task-based image quality: the channelised Hotelling observer (CHO) with Laguerre-Gauss channels.

For a signal-known-exactly, background-known-statistically detection task, the CHO reduces each
region of interest (ROI) ``g`` to channel outputs ``v = U^T g`` and computes the Hotelling
detectability index from lesion-present (``v1``) and lesion-absent (``v0``) samples:

``d'^2 = dv^T S^-1 dv``, ``dv = mean(v1) - mean(v0)``, ``S = (S1 + S0) / 2``

(Barrett & Myers, Foundations of Image Science, 2004, ch. 13; Gallas & Barrett, JOSA A 20:1725, 2003).
Laguerre-Gauss channels ``u_n(r) = sqrt(2)/a exp(-pi r^2/a^2) L_n(2 pi r^2/a^2)`` are rotationally
symmetric, suited to a symmetric signal at a known location (Barrett et al, JOSA A 10:1266, 1993).

With few samples the plug-in ``d'`` is biased upwards; the interval reported is a bootstrap over the
given groups (subjects), resampling present and absent ROIs of a subject together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from petspect.errors import InputError
from petspect.evaluation.stats import Interval

__all__ = ["laguerre_gauss_channels", "channel_outputs", "hotelling_dprime", "cho_dprime", "cho_dprime_ci",
           "resample_usable"]


def laguerre_gauss_channels(size: int, width_px: float, n_channels: int = 6) -> np.ndarray:
    """Laguerre-Gauss channel profiles on a ``size x size`` ROI centred on the signal.

    Parameters
    ----------
    size : int
        ROI side in pixels.
    width_px : float
        Gaussian width ``a`` in pixels (about 1-2 times the signal's diameter).
    n_channels : int
        Number of channels (orders 0 .. n-1).

    Returns
    -------
    numpy.ndarray, shape (n_channels, size, size)
        The channel templates (orthonormal in the continuum; sampled here).
    """
    from scipy.special import eval_laguerre

    if size < 3 or width_px <= 0 or n_channels < 1:
        raise InputError(f"need size >= 3, width_px > 0, n_channels >= 1; got {size}, {width_px}, {n_channels}")
    c = (size - 1) / 2.0
    y, x = np.mgrid[0:size, 0:size] - c
    r2 = (x ** 2 + y ** 2) / float(width_px) ** 2
    return np.stack([math.sqrt(2.0) / width_px * np.exp(-math.pi * r2) * eval_laguerre(n, 2.0 * math.pi * r2)
                     for n in range(int(n_channels))])


def channel_outputs(rois: np.ndarray, channels: np.ndarray) -> np.ndarray:
    """Channel outputs ``v = U^T g`` of ROIs ``(n, size, size)`` -> ``(n, n_channels)``."""
    rois = np.asarray(rois, dtype=np.float64)
    if rois.ndim != 3 or rois.shape[1:] != channels.shape[1:]:
        raise InputError(f"ROIs must be (n, {channels.shape[1]}, {channels.shape[2]}), got {rois.shape}")
    n_pix = channels.shape[1] * channels.shape[2]  # explicit: an empty stack (a subject without ROIs) is valid
    return rois.reshape(rois.shape[0], n_pix) @ channels.reshape(channels.shape[0], n_pix).T


def hotelling_dprime(v_present: np.ndarray, v_absent: np.ndarray) -> float:
    """Hotelling ``d'`` from feature samples ``(n1, p)`` and ``(n0, p)`` (module docstring).

    The covariance is the mean of the two class covariances (unbiased, ddof=1); a pseudo-inverse is used
    when it is singular. Each class needs at least two samples.
    """
    v1, v0 = np.asarray(v_present, dtype=np.float64), np.asarray(v_absent, dtype=np.float64)
    if v1.ndim != 2 or v0.ndim != 2 or v1.shape[1] != v0.shape[1]:
        raise InputError(f"feature samples must be (n, p) with the same p, got {v1.shape} and {v0.shape}")
    if v1.shape[0] < 2 or v0.shape[0] < 2:
        raise InputError("the Hotelling observer needs at least two lesion-present and two lesion-absent samples")
    dv = v1.mean(axis=0) - v0.mean(axis=0)
    s = 0.5 * (np.atleast_2d(np.cov(v1, rowvar=False)) + np.atleast_2d(np.cov(v0, rowvar=False)))
    d2 = float(dv @ np.linalg.pinv(s) @ dv)
    return math.sqrt(max(d2, 0.0))


def cho_dprime(present: np.ndarray, absent: np.ndarray, *, width_px: float, n_channels: int = 6) -> float:
    """CHO detectability ``d'`` from lesion-present and lesion-absent ROIs ``(n, size, size)``."""
    present, absent = np.asarray(present, dtype=np.float64), np.asarray(absent, dtype=np.float64)
    if present.ndim != 3 or absent.shape[1:] != present.shape[1:] or present.shape[1] != present.shape[2]:
        raise InputError(f"ROIs must be square stacks of one size, got {present.shape} and {absent.shape}")
    ch = laguerre_gauss_channels(present.shape[1], width_px, n_channels)
    return hotelling_dprime(channel_outputs(present, ch), channel_outputs(absent, ch))


def resample_usable(v_present: Sequence[np.ndarray], v_absent: Sequence[np.ndarray], pick: Sequence[int]) -> bool:
    """Whether a bootstrap resample of groups has a Hotelling ``d'``.

    A resample repeats groups, and a repeated ROI adds no information: each class needs more distinct
    ROIs than channels (``p``) for its covariance to be of full rank, and the pooled covariance must be
    well conditioned. Otherwise the pseudo-inverse returns 0 or an unbounded value (1e15 was seen with
    three subjects), which must not enter an interval.
    """
    uniq = sorted(set(int(i) for i in pick))
    p = v_present[uniq[0]].shape[1] if uniq else 0
    if sum(v_present[i].shape[0] for i in uniq) <= p or sum(v_absent[i].shape[0] for i in uniq) <= p:
        return False
    a = np.concatenate([v_present[i] for i in uniq])
    b = np.concatenate([v_absent[i] for i in uniq])
    pooled = 0.5 * (np.atleast_2d(np.cov(a, rowvar=False)) + np.atleast_2d(np.cov(b, rowvar=False)))
    return bool(np.linalg.cond(pooled) < 1e10)


def cho_dprime_ci(present: Sequence[np.ndarray], absent: Sequence[np.ndarray], *, width_px: float,
                  n_channels: int = 6, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> Interval:
    """CHO ``d'`` with a bootstrap interval over groups (subjects).

    Parameters
    ----------
    present, absent : sequence of arrays ``(n_i, size, size)``
        ROIs of each subject (group ``i``): lesion-present and the matching lesion-absent ROIs.
    width_px, n_channels
        Channels (:func:`laguerre_gauss_channels`).
    n_boot, level, seed
        Resampling of the groups with replacement. A resample whose pooled channel covariance is
        rank-deficient (no more distinct ROIs than channels, e.g. one subject drawn every time) has no
        Hotelling ``d'`` (the pseudo-inverse would give 0 or an unbounded value) and is skipped
        (:func:`resample_usable`); when
        fewer than half of the resamples are usable the groups are too few for a bootstrap and the
        interval is NaN.

    Returns
    -------
    Interval
        ``value`` is ``d'`` on all ROIs; ``n`` the number of groups.
    """
    if len(present) != len(absent) or not present:
        raise InputError("give one lesion-present and one lesion-absent ROI stack per subject")
    ch = laguerre_gauss_channels(np.asarray(present[0]).shape[-1], width_px, n_channels)
    v1 = [channel_outputs(np.asarray(p).reshape(-1, *ch.shape[1:]), ch) for p in present]
    v0 = [channel_outputs(np.asarray(a).reshape(-1, *ch.shape[1:]), ch) for a in absent]
    value = hotelling_dprime(np.concatenate(v1), np.concatenate(v0))
    g = len(v1)
    if g < 2:
        return Interval(value, math.nan, math.nan, g, level)
    rng = np.random.default_rng(int(seed))
    boots = []
    for _ in range(int(n_boot)):
        pick = rng.integers(0, g, size=g)
        if resample_usable(v1, v0, pick):
            a, b = np.concatenate([v1[i] for i in pick]), np.concatenate([v0[i] for i in pick])
            boots.append(hotelling_dprime(a, b))
    if len(boots) < max(10, int(n_boot) // 2):
        return Interval(value, math.nan, math.nan, g, level)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(boots, [alpha, 1.0 - alpha])
    return Interval(value, float(lo), float(hi), g, level)
