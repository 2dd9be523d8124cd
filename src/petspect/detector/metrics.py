"""Detector figures of merit: positioning error FWHM/FWTM, MAE, edge bias, DOI, energy and timing resolution.

Conventions (docs/REFERENCE.md, "Evaluation conventions: Detector"): widths are given both by
*interpolation* (half / tenth maximum crossings, linearly interpolated, on a Freedman-Diaconis
histogram smoothed by a 3-bin moving average) and by a *Gaussian fit* (iterative fit of the central
part, +-1.5 sigma, of the histogram), with the key saying which. Positioning errors are estimate
minus true first-interaction point (mm); the edge bias is the median error along the outward
normal for events within ``edge_mm`` of a lateral face (negative = compressed towards the centre;
the median is the offset of the peak of the error distribution and is not dragged by the inward
Compton-scatter tail, which no estimator of the first interaction can remove; the mean is reported
as ``edge_bias_mean_*``).
Timing: coincidence time resolution (CTR) of ``dt_estimate - dt_true`` in ps.

The generic width estimators (:func:`width_at_fraction`, :func:`gaussian_fit`, :func:`width_summary`)
and the paired bootstrap (:func:`fwhm_improvement_ci`) live in :mod:`petspect.metrics.distribution` and
are re-exported here; this module holds what is specific to detectors.
"""

from __future__ import annotations

import numpy as np

from petspect.errors import InputError
from petspect.metrics.distribution import (SIGMA_TO_FWHM, SIGMA_TO_FWTM, fwhm_improvement_ci, gaussian_fit,
                                           width_at_fraction, width_summary)

__all__ = ["SIGMA_TO_FWHM", "SIGMA_TO_FWTM", "width_at_fraction", "gaussian_fit", "width_summary",
           "fwhm_improvement_ci", "edge_masks", "positioning_metrics", "energy_resolution", "timing_metrics",
           "resolution_map"]


def edge_masks(true_mm: np.ndarray, size_mm: tuple[float, float], edge_mm: float) -> np.ndarray:
    """Boolean (n, 2): the event lies within ``edge_mm`` of the lateral faces normal to x / y."""
    half = np.asarray(size_mm, dtype=np.float64) / 2.0
    return np.abs(true_mm[:, :2]) > half - edge_mm


def positioning_metrics(pred_mm: np.ndarray, true_mm: np.ndarray, *, size_mm: tuple[float, float],
                        edge_mm: float = 2.0) -> dict:
    """Positioning figures of merit of one method.

    Parameters
    ----------
    pred_mm, true_mm : numpy.ndarray, shape (n, 3)
        Estimated and true ``(x, y, doi)`` (mm).
    size_mm : (float, float)
        Crystal face (mm).
    edge_mm : float
        Width of the edge band (mm); the centre region is the rest of the face.

    Returns
    -------
    dict
        ``xy_fwhm_mm`` etc. (x and y errors pooled over the whole face), per-axis ``x_*``, ``y_*``,
        ``doi_*`` widths and MAE (mm), ``xy_mae_centre_mm`` / ``xy_mae_edge_mm``,
        ``xy_fwhm_centre_mm`` / ``xy_fwhm_edge_mm``, ``edge_bias_x_mm``, ``edge_bias_y_mm`` (median
        outward error), ``edge_bias_mm`` (largest magnitude), ``edge_bias_mean_{x,y}_mm``, ``n_events``. Widths: plain keys by interpolation,
        ``*_gauss`` by Gaussian fit.
    """
    pred, true = np.asarray(pred_mm, dtype=np.float64), np.asarray(true_mm, dtype=np.float64)
    if pred.shape != true.shape or pred.ndim != 2 or pred.shape[1] != 3:
        raise InputError("pred_mm and true_mm must both be (n, 3)")
    err = pred - true
    out: dict = {"n_events": int(len(err)), "edge_mm": float(edge_mm)}
    for i, ax in enumerate(("x", "y", "doi")):
        if np.isfinite(err[:, i]).sum() >= 20:  # depth is not estimated by fan-beam-trained methods
            out.update({f"{k}_mm": v for k, v in width_summary(err[:, i], f"{ax}_").items()})
    out.update({f"{k}_mm": v for k, v in width_summary(err[:, :2], "xy_").items()})
    edge = edge_masks(true, size_mm, edge_mm)
    region = {"edge": edge, "centre": ~edge}
    for name, m in region.items():
        e = err[:, :2][m]
        if e.size >= 20:
            out[f"xy_mae_{name}_mm"] = float(np.abs(e).mean())
            out[f"xy_fwhm_{name}_mm"] = width_at_fraction(e)
    biases = []
    for i, ax in enumerate(("x", "y")):
        m = edge[:, i]
        outward = err[m, i] * np.sign(true[m, i])
        b = float(np.median(outward)) if m.any() else float("nan")
        out[f"edge_bias_{ax}_mm"] = b
        out[f"edge_bias_mean_{ax}_mm"] = float(np.mean(outward)) if m.any() else float("nan")
        biases.append(abs(b))
    out["edge_bias_mm"] = float(np.nanmax(biases))
    return out


def energy_resolution(total_signal: np.ndarray, groups: np.ndarray | None = None, *,
                      energy_kev: float = 511.0) -> dict:
    """Energy resolution (% FWHM at the photopeak) with an optional per-position gain calibration.

    Parameters
    ----------
    total_signal : numpy.ndarray, shape (n,)
        Summed SiPM signal per event.
    groups : numpy.ndarray, shape (n,), optional
        Calibration group of each event (e.g. pencil-beam index); each group's signal is divided by
        its own photopeak position (Gaussian fit above the Compton edge) before pooling, as is done
        with the position-dependent energy calibration of monolithic detectors.
    energy_kev : float
        Photopeak energy (keV) the peak is scaled to.

    Returns
    -------
    dict
        ``energy_resolution_pct`` (Gaussian-fit FWHM / peak, %), ``photopeak_signal`` (median of the
        groups' photopeak positions) and ``energy_kev`` (n,) calibrated energies.
    """
    s = np.asarray(total_signal, dtype=np.float64)
    if groups is None:
        groups = np.zeros(len(s), dtype=int)
    peaks = np.ones(len(s))
    peak_list = []
    for g in np.unique(groups):
        m = groups == g
        sg = s[m]
        if sg.size < 20:
            peaks[m] = np.nan
            continue
        upper = sg[sg > 0.6 * np.percentile(sg, 95)]  # above the Compton continuum
        p, _ = gaussian_fit(upper) if upper.size >= 20 else (np.median(sg), 0.0)
        peaks[m] = p
        peak_list.append(p)
    energy = s / peaks * energy_kev
    ok = np.isfinite(energy)
    near = energy[ok & (energy > 0.7 * energy_kev)]
    mu, sd = gaussian_fit(near)
    return {"energy_resolution_pct": 100.0 * SIGMA_TO_FWHM * sd / mu, "photopeak_signal": float(np.median(peak_list)),
            "energy_kev": energy}


def timing_metrics(dt_est_ps: np.ndarray, dt_true_ps: np.ndarray) -> dict:
    """Coincidence time resolution of time-difference estimates (ps).

    Returns ``ctr_fwhm_ps`` / ``ctr_fwtm_ps`` (interpolation), ``ctr_fwhm_gauss_ps`` /
    ``ctr_fwtm_gauss_ps`` (Gaussian fit), ``bias_ps`` (mean error), ``mae_ps`` and ``slope``, the
    least-squares slope of the estimates against the true differences (NaN if these do not vary).
    An unbiased estimator has slope 1; a slope below 1 means estimates drawn towards the centre of
    the training distribution, which narrows the error distribution of sources within it without
    any better timing.
    """
    est, true = np.asarray(dt_est_ps, dtype=np.float64), np.asarray(dt_true_ps, dtype=np.float64)
    err = est - true
    w = width_summary(err)
    ok = np.isfinite(err)
    spread = float(np.var(true[ok])) if ok.any() else 0.0
    slope = float(np.cov(est[ok], true[ok])[0, 1] / spread) if spread > 0 and ok.sum() > 2 else float("nan")
    return {"ctr_fwhm_ps": w["fwhm"], "ctr_fwtm_ps": w["fwtm"], "ctr_fwhm_gauss_ps": w["fwhm_gauss"],
            "ctr_fwtm_gauss_ps": w["fwtm_gauss"], "bias_ps": w["mean"], "mae_ps": w["mae"], "slope": slope,
            "n_events": int(err.size)}


def resolution_map(pred_mm: np.ndarray, beam_mm: np.ndarray) -> dict:
    """Per-beam spatial resolution and bias on a pencil-beam grid.

    Parameters
    ----------
    pred_mm : numpy.ndarray, shape (n, 3)
        Estimates (mm).
    beam_mm : numpy.ndarray, shape (n, 2)
        Beam positions ``(x, y)`` (mm) of the events.

    Returns
    -------
    dict
        ``x_mm`` (n_bx,), ``y_mm`` (n_by,) beam coordinates; ``fwhm_mm`` (n_by, n_bx), the mean of the
        x and y robust Gaussian-equivalent FWHMs (2.3548 x 1.4826 x MAD); ``bias_mm`` (n_by, n_bx, 2)
        median error in x and y.
    """
    bx, by = np.unique(beam_mm[:, 0]), np.unique(beam_mm[:, 1])
    fwhm = np.full((len(by), len(bx)), np.nan)
    bias = np.full((len(by), len(bx), 2), np.nan)
    for j, y in enumerate(by):
        for i, x in enumerate(bx):
            m = (beam_mm[:, 0] == x) & (beam_mm[:, 1] == y)
            if m.sum() < 5:
                continue
            e = pred_mm[m, :2] - np.array([x, y])
            med = np.median(e, axis=0)
            fwhm[j, i] = float(np.mean(SIGMA_TO_FWHM * 1.4826 * np.median(np.abs(e - med), axis=0)))
            bias[j, i] = med
    return {"x_mm": bx, "y_mm": by, "fwhm_mm": fwhm, "bias_mm": bias}
