"""Evaluation of denoised images against the full-dose reference: image quality, SUV bias, noise and contrast.

Conventions (named in every metric key; see docs/REFERENCE.md, "Evaluation conventions")
------------------------------------------------------------------------------------
* ``psnr_db``, ``ssim``, ``nrmse``: generic definitions (:mod:`petspect.metrics.image`) over the whole
  volume with ``data_range = max(ref) - min(ref)`` (the scikit-image convention with an explicit range).
* ``psnr_challenge_db``, ``ssim_challenge``, ``nrmse_challenge``: the ultra-low-dose PET challenge
  variants (peak = max(ref); SSIM after dividing each image by its own max; NRMSE by the reference range).
* ``suvmean_bias_pct``: mean over organs of the signed SUVmean bias ``(pred - ref) / ref * 100`` against the
  full-dose reference; ``suvmean_abs_bias_pct`` the mean of its absolute value. Organs are the labelled
  regions of at least ``min_organ_ml`` (default 5 mL), lesions excluded.
* ``suvmax_bias_pct``, ``suvpeak_bias_pct``, ``lesion_suvmean_bias_pct`` (and ``*_abs_*``): the same per lesion
  (instances of the ``lesions`` map); SUVpeak in a 12 mm sphere (PERCIST).
* ``*_vs_truth_pct``: the same biases against the true activity instead of the reference reconstruction.
* ``liver_cov_pct``: background variability in the liver eroded by one voxel, ``SD / mean * 100`` (spatial, one
  realisation; it includes the phantom's texture, equal for all methods).
* ``total_activity_ratio``: output total / input total (sum over the volume; 1 for a method that keeps
  the activity; see :func:`total_activity_ratio`).
* ``cho_dprime``: channelised Hotelling observer detectability of the lesions (computed over all subjects
  from lesion-present / lesion-absent ROI pairs, :func:`lesion_roi_positions`, :mod:`petspect.evaluation.observer`).
* ``lesion_cr_pct``: mean contrast recovery of lesions, ``(C_les / C_bkg - 1) / (A_les / A_bkg - 1) * 100``
  with ``C`` the image and ``A`` the true activity, the background a 2-voxel shell around each lesion in
  its own organ (NEMA NU 2 definition with the true ratio from the phantom). Lesions under 1 mL or whose
  true ratio is within 0.5 of 1 are skipped.

Biases are unit-free, so images in Bq/mL or SUV give the same numbers. Every function returns plain floats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from petspect.errors import InputError
from petspect.volume import Volume

IMAGE_METRICS = ("psnr_db", "ssim", "nrmse", "psnr_challenge_db", "ssim_challenge", "nrmse_challenge")
#: direction of "better" per metric, for report tables ("abs-lower": closest to 0)
BETTER = {"psnr_db": "higher", "ssim": "higher", "nrmse": "lower", "psnr_challenge_db": "higher",
          "ssim_challenge": "higher", "nrmse_challenge": "lower", "suvmean_bias_pct": "abs-lower",
          "suvmean_abs_bias_pct": "lower", "suvmax_bias_pct": "abs-lower", "suvmax_abs_bias_pct": "lower",
          "suvpeak_bias_pct": "abs-lower", "lesion_suvmean_bias_pct": "abs-lower", "liver_cov_pct": "lower",
          "lesion_cr_pct": "higher", "cho_dprime": "higher"}


@dataclass
class Subject:
    """One evaluation subject: the full-dose reference, truth and label maps, all on one grid.

    Attributes
    ----------
    name : str
    reference : Volume
        Full-dose reconstruction (the target).
    truth : Volume or None
        True activity (for ``*_vs_truth`` biases and contrast recovery).
    labels : Volume or None
        Organ label map; ``label_names`` maps its ids to names.
    lesions : Volume or None
        Lesion instance map (0 = none).
    label_names : dict int -> str
    """

    name: str
    reference: Volume
    truth: Volume | None = None
    labels: Volume | None = None
    lesions: Volume | None = None
    label_names: Mapping[int, str] | None = None


def _np(x: Any) -> np.ndarray:
    if isinstance(x, Volume):
        x = x.data
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def image_metrics(pred: Any, ref: Any) -> dict[str, float]:
    """PSNR (dB), SSIM and NRMSE, generic (reference range) and challenge conventions (see module docstring)."""
    from petspect.metrics import nrmse, nrmse_challenge, psnr, psnr_challenge, ssim, ssim_challenge

    p, r = _np(pred), _np(ref)
    rng = float(r.max() - r.min())
    if not rng > 0:
        raise InputError("the reference is constant: image metrics need a positive range")
    return {"psnr_db": psnr(p, r, data_range=rng), "ssim": ssim(p, r, data_range=rng),
            "nrmse": nrmse(p, r, data_range=rng), "psnr_challenge_db": psnr_challenge(p, r),
            "ssim_challenge": ssim_challenge(p, r), "nrmse_challenge": nrmse_challenge(p, r)}


def organ_names(subject: Subject, *, min_organ_ml: float = 5.0) -> dict[int, str]:
    """Organs of a subject evaluated for SUVmean bias: labelled regions of at least ``min_organ_ml``."""
    if subject.labels is None:
        return {}
    lab = subject.labels.numpy().astype(np.int64)
    counts = np.bincount(lab.ravel().clip(0))
    names = dict(subject.label_names or {})
    vox_ml = subject.labels.voxel_volume_ml
    return {int(i): names.get(int(i), f"label_{i}") for i in np.nonzero(counts)[0]
            if i > 0 and counts[i] * vox_ml >= min_organ_ml and names.get(int(i), "") not in ("background", "lesion")}


def _mean_bias(table: Mapping[str, Mapping[str, float]], stat: str) -> tuple[float, float]:
    vals = [v[stat] for v in table.values() if math.isfinite(v.get(stat, math.nan))]
    if not vals:
        return math.nan, math.nan
    return float(np.mean(vals)), float(np.mean(np.abs(vals)))


def _lesion_names(lesions: np.ndarray) -> dict[int, str]:
    return {int(i): f"lesion_{int(i)}" for i in np.unique(lesions) if i > 0}


def bias_metrics(pred: Any, ref: Any, subject: Subject, *, suffix: str = "",
                 organs: Mapping[int, str] | None = None) -> dict[str, float]:
    """Organ SUVmean and lesion SUVmean/SUVmax/SUVpeak biases of ``pred`` against ``ref`` (in %)."""
    from petspect.metrics import region_bias

    p, r = _np(pred), _np(ref)
    out: dict[str, float] = {}
    sp = subject.reference.spacing_mm
    organs = organ_names(subject) if organs is None else organs
    if subject.labels is not None and organs:
        tab = region_bias(p, r, subject.labels.numpy(), organs, ("mean",), sp)
        out[f"suvmean_bias{suffix}_pct"], out[f"suvmean_abs_bias{suffix}_pct"] = _mean_bias(tab, "mean")
    if subject.lesions is not None:
        les = subject.lesions.numpy().astype(np.int64)
        names = _lesion_names(les)
        if names:
            tab = region_bias(p, r, les, names, ("mean", "max", "peak"), sp)
            out[f"suvmax_bias{suffix}_pct"], out[f"suvmax_abs_bias{suffix}_pct"] = _mean_bias(tab, "max")
            out[f"suvpeak_bias{suffix}_pct"], out[f"suvpeak_abs_bias{suffix}_pct"] = _mean_bias(tab, "peak")
            out[f"lesion_suvmean_bias{suffix}_pct"], _ = _mean_bias(tab, "mean")
    return out


def _shell(mask: np.ndarray, width: int) -> np.ndarray:
    from scipy.ndimage import binary_dilation

    return binary_dilation(mask, iterations=width) & ~mask


def lesion_contrast(image: Any, subject: Subject, *, shell_voxels: int = 2, min_lesion_ml: float = 1.0) -> float:
    """Mean contrast recovery (%) of the subject's lesions against a local shell background (module docstring).

    Lesions smaller than ``min_lesion_ml`` (default 1 mL, about the SUVpeak sphere) are skipped: in a few
    voxels the mean is one noise sample. Returns NaN when no lesion is usable.
    """
    from petspect.metrics import contrast_recovery

    if subject.lesions is None or subject.truth is None:
        return math.nan
    img, act = _np(image), _np(subject.truth)
    les = subject.lesions.numpy().astype(np.int64)
    lab = subject.labels.numpy().astype(np.int64) if subject.labels is not None else np.zeros_like(les)
    crs = []
    vox_ml = subject.lesions.voxel_volume_ml
    for i in _lesion_names(les):
        m = les == i
        if m.sum() * vox_ml < min_lesion_ml:
            continue
        organ = np.bincount(lab[m]).argmax()
        bkg = _shell(m, shell_voxels) & (les == 0) & (lab == organ)
        if bkg.sum() < 2 or act[bkg].mean() <= 0:
            continue
        ratio = float(act[m].mean() / act[bkg].mean())
        if abs(ratio - 1.0) < 0.5 or img[bkg].mean() == 0:
            continue
        crs.append(contrast_recovery(img, m, bkg, ratio)["contrast_recovery_pct"])
    return float(np.mean(crs)) if crs else math.nan


def liver_cov(image: Any, subject: Subject, *, organ: str = "liver", erode_voxels: int = 1) -> float:
    """Coefficient of variation (%) of ``image`` in the organ (default the liver); NaN without it.

    The organ mask is eroded by ``erode_voxels`` (when at least 10 voxels remain), so the organ's edge, where
    the image falls to its neighbours' uptake, does not count as noise.
    """
    if subject.labels is None:
        return math.nan
    ids = [i for i, n in (subject.label_names or {}).items() if n == organ]
    if not ids:
        return math.nan
    m = subject.labels.numpy().astype(np.int64) == int(ids[0])
    if subject.lesions is not None:
        m &= subject.lesions.numpy() == 0
    if erode_voxels > 0:
        from scipy.ndimage import binary_erosion

        inner = binary_erosion(m, iterations=erode_voxels)
        m = inner if inner.sum() >= 10 else m
    if m.sum() < 2:
        return math.nan
    v = _np(image)[m]
    return float(v.std(ddof=1) / v.mean() * 100.0) if v.mean() != 0 else math.nan


def evaluate_image(pred: Any, subject: Subject, *, reference: bool = False) -> dict[str, float]:
    """All metrics of one image of one subject (``reference=True``: the reference itself, no image metrics)."""
    out = {} if reference else image_metrics(pred, subject.reference)
    if not reference:
        out.update(bias_metrics(pred, subject.reference, subject))
    if subject.truth is not None:
        out.update(bias_metrics(pred, subject.truth, subject, suffix="_vs_truth"))
    out["liver_cov_pct"] = liver_cov(pred, subject)
    out["lesion_cr_pct"] = lesion_contrast(pred, subject)
    return out


def mean_metrics(per_subject: Sequence[Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    """Average ``[{method: {metric: value}}]`` over subjects, ignoring NaN; metrics NaN everywhere are dropped."""
    out: dict[str, dict[str, float]] = {}
    methods = list(dict.fromkeys(m for s in per_subject for m in s))
    for m in methods:
        keys = list(dict.fromkeys(k for s in per_subject for k in s.get(m, {})))
        row = {}
        for k in keys:
            vals = [s[m][k] for s in per_subject if m in s and k in s[m] and math.isfinite(s[m][k])]
            if vals:
                row[k] = float(np.mean(vals))
        out[m] = row
    return out


def noise_bias_points(images: Mapping[Any, Any], subject: Subject) -> list[dict[str, float]]:
    """``[{"setting", "liver_cov_pct", "lesion_cr_pct", "suvmax_bias_pct"}]`` of one subject, one per image."""
    pts = []
    for setting, img in images.items():
        b = bias_metrics(img, subject.reference, subject, organs={})
        pts.append({"setting": setting, "liver_cov_pct": liver_cov(img, subject),
                    "lesion_cr_pct": lesion_contrast(img, subject),
                    "suvmax_bias_pct": b.get("suvmax_bias_pct", math.nan)})
    return pts


def mean_curve(per_subject: Sequence[Sequence[Mapping[str, float]]]) -> list[dict[str, float]]:
    """Average noise-bias points setting by setting over subjects (same settings in the same order)."""
    if not per_subject:
        return []
    out = []
    for j, first in enumerate(per_subject[0]):
        row: dict[str, float] = {"setting": first["setting"]}
        for k in first:
            if k != "setting":
                vals = [s[j][k] for s in per_subject if math.isfinite(s[j][k])]
                row[k] = float(np.mean(vals)) if vals else math.nan
        out.append(row)
    return out


def total_activity_ratio(output: Any, input_image: Any) -> float:
    """Output total / input total (sums over the volume); NaN when the input total is not positive."""
    t_in = float(_np(input_image).sum())
    return float(_np(output).sum()) / t_in if t_in > 0 else math.nan


def lesion_roi_positions(lesions: Any, size_px: int) -> list[tuple[int, int, int]]:
    """Centres ``(z, y, x)`` of the square ROIs (side ``size_px``, odd) on each lesion's central slice.

    The centre is the lesion's centroid rounded to a voxel, on the axial slice through it; lesions whose
    ROI would leave the grid are skipped (a partial ROI would not be the same task).
    """
    les = _np(lesions).astype(np.int64)
    if size_px < 3 or size_px % 2 == 0:
        raise InputError(f"the ROI side must be odd and >= 3, got {size_px}")
    h = size_px // 2
    out = []
    for i in np.unique(les):
        if i <= 0:
            continue
        zz, yy, xx = np.nonzero(les == i)
        c = (int(round(zz.mean())), int(round(yy.mean())), int(round(xx.mean())))
        if h <= c[1] < les.shape[1] - h and h <= c[2] < les.shape[2] - h and 0 <= c[0] < les.shape[0]:
            out.append(c)
    return out


def extract_rois(image: Any, positions: Sequence[tuple[int, int, int]], size_px: int) -> np.ndarray:
    """ROIs ``(n, size, size)`` of ``image`` at ``positions`` (from :func:`lesion_roi_positions`)."""
    img = _np(image)
    h = size_px // 2
    if not positions:
        return np.zeros((0, size_px, size_px))
    return np.stack([img[z, y - h:y + h + 1, x - h:x + h + 1] for z, y, x in positions])
