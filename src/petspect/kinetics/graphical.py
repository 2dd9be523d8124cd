"""Graphical analysis: Patlak (irreversible uptake, Ki) and Logan (reversible binding, V_T), per region or
per voxel (vectorised over the leading axes).

Frame-averaged data are used consistently: with ``<.>`` a frame mean, the Patlak relation
``C_T(t) = Ki int_0^t Cp + V Cp(t)`` (valid once the reversible compartment has equilibrated) holds for
frame means too, so the Patlak axes are ``x = <int Cp> / <Cp>``, ``y = <C_T> / <Cp>`` and the slope is Ki
without a mid-frame approximation (Patlak CS, Blasberg RG, Fenstermacher JD, J Cereb Blood Flow Metab
1983;3:1-7). Logan: ``int_0^t C_T / C_T = V_T int_0^t Cp / C_T + b`` for t > t* (Logan J et al., J Cereb
Blood Flow Metab 1990;10:740-747), with the tissue integral from the frame means (exact at frame ends,
linear across gaps between frames) evaluated at frame mid-times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from petspect.errors import InputError
from petspect.kinetics.input_function import FrameSchedule, SampledInput
from petspect.units import S_PER_MIN

__all__ = ["LinearFit", "patlak", "logan", "tissue_integral_to_mid"]


@dataclass(frozen=True)
class LinearFit:
    """Slope, intercept and R^2 of a graphical plot, each of shape ``tacs.shape[:-1]``; the frames used."""

    slope: np.ndarray
    intercept: np.ndarray
    r2: np.ndarray
    frames_used: np.ndarray
    x: np.ndarray
    y: np.ndarray


def _line(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares lines through (x, y) along the last axis (x may broadcast)."""
    x = np.broadcast_to(x, y.shape)
    xm, ym = x.mean(-1, keepdims=True), y.mean(-1, keepdims=True)
    sxx = ((x - xm) ** 2).sum(-1)
    sxy = ((x - xm) * (y - ym)).sum(-1)
    syy = ((y - ym) ** 2).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = sxy / sxx
        r2 = sxy ** 2 / (sxx * syy)
    inter = ym[..., 0] - slope * xm[..., 0]
    return slope, inter, r2


def _check(tacs, frames: FrameSchedule, t_star_s: float) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(tacs, dtype=np.float64)
    if y.shape[-1] != len(frames):
        raise InputError(f"TACs need {len(frames)} frames on their last axis, got shape {y.shape}")
    use = frames.start_s >= t_star_s - 1e-6
    if use.sum() < 2:
        raise InputError(f"t* = {t_star_s / S_PER_MIN:.1f} min leaves {int(use.sum())} frame(s); at least 2 needed")
    return y, use


def tissue_integral_to_mid(tacs: np.ndarray, frames: FrameSchedule) -> np.ndarray:
    """``int_0^{t_mid} C_T`` (Bq s/mL) at each frame's mid-time from frame means ``tacs`` (..., n_frames).

    Each frame contributes its mean times its duration (exact); the half frame up to mid-time is taken as
    half of it. Time not covered by a frame is integrated linearly between the neighbouring frame means: a gap
    between frames (multi-pass whole-body dynamic PET) by the trapezoid of the two frames' means, the time
    before the first frame as a ramp from 0 at injection (the usual assumption, e.g. Turku PET Centre's
    TPCCLIB). Dropping that time instead biases Logan's V_T low.
    """
    y = np.asarray(tacs, dtype=np.float64)
    d = frames.duration_s
    gap = np.diff(frames.start_s) - d[:-1]  # >= 0 (FrameSchedule refuses overlaps), 0 for contiguous frames
    covered = y * d
    between = np.concatenate([y[..., :1] * frames.start_s[0] / 2.0,
                              (y[..., :-1] + y[..., 1:]) / 2.0 * np.clip(gap, 0.0, None)], axis=-1)
    before_start = np.cumsum(between, axis=-1) + np.cumsum(covered, axis=-1) - covered
    return before_start + covered / 2.0


def patlak(tacs, inp: SampledInput, frames: FrameSchedule, *, t_star_s: float = 20 * S_PER_MIN) -> LinearFit:
    """Patlak plot; slope Ki in 1/min (mL/min/mL), intercept the apparent distribution volume V.

    Parameters
    ----------
    tacs : ndarray (..., n_frames)
        Frame-averaged tissue concentrations (Bq/mL), decay corrected.
    inp : SampledInput
        Plasma input (Bq/mL) on a grid covering the frames.
    t_star_s : float
        Frames starting at or after t* (s) are fitted.
    """
    y, use = _check(tacs, frames, t_star_s)
    cp = frames.frame_means(inp.times_s, inp.values_bq_per_ml)
    icp = frames.frame_means(inp.times_s, inp.integral(inp.times_s))
    if np.any(cp[use] <= 0):
        raise InputError("Patlak: the input function is not positive over the fitted frames")
    x = icp[use] / cp[use] / S_PER_MIN  # min
    yy = y[..., use] / cp[use]
    slope, inter, r2 = _line(x, yy)
    return LinearFit(slope, inter, r2, np.flatnonzero(use), x, yy)


def logan(tacs, inp: SampledInput, frames: FrameSchedule, *, t_star_s: float = 30 * S_PER_MIN) -> LinearFit:
    """Logan plot; slope V_T (mL/mL), for reversible tracers.

    Voxels whose TAC is not positive over the fitted frames give NaN.
    """
    y, use = _check(tacs, frames, t_star_s)
    int_ct = tissue_integral_to_mid(y, frames)
    int_cp = inp.integral(frames.mid_s)
    ct = y[..., use]
    with np.errstate(divide="ignore", invalid="ignore"):
        xx = np.where(ct > 0, int_cp[use] / ct, np.nan) / S_PER_MIN
        yy = np.where(ct > 0, int_ct[..., use] / ct, np.nan) / S_PER_MIN
    slope, inter, r2 = _line(xx, yy)
    return LinearFit(slope, inter, r2, np.flatnonzero(use), xx, yy)
