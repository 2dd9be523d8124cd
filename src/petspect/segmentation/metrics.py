"""Lesion segmentation metrics as the autoPET challenge defines them, plus MTV and TLG bias.

autoPET (Gatidis et al, Sci Data 2022; the challenge's evaluation script, connectivity 18):

* **Dice** over the whole volume, ``2 |P n G| / (|P| + |G|)``; undefined (NaN) for a scan without lesions,
  which autoPET leaves out of the mean Dice;
* **false-positive volume** (mL): the voxels of predicted 18-connected components that touch no true
  lesion;
* **false-negative volume** (mL): the voxels of true lesions that touch no predicted voxel.

Lesion-wise detection (the autoPET III additions): a true lesion is *detected* when at least
``min_overlap_voxels`` of its voxels are predicted; **sensitivity** = detected / true lesions (NaN without
lesions); **false positives per scan** = number of predicted components touching no true lesion.

True lesions are the instances of an instance map when one is given (the simulator's ``lesions``), else
the 18-connected components of the true mask. MTV and TLG bias compare the predicted and the true mask on
the same SUV image: ``100 (X_pred - X_true) / X_true`` %.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from petspect.errors import InputError
from petspect.segmentation.volumes import _arr, _voxel_ml, label_lesions

__all__ = ["SegmentationScores", "dice", "fp_fn_volume_ml", "lesion_detection", "score_segmentation",
           "METRIC_NAMES", "BETTER"]

#: The metrics a segmentation study reports (metrics.json keys).
METRIC_NAMES = ("dice", "fp_volume_ml", "fn_volume_ml", "lesion_sensitivity", "fp_per_scan", "mtv_bias_pct",
                "tlg_bias_pct")
#: Which way each metric is better (``petspect.evaluation.Better`` values).
BETTER = {"dice": "higher", "fp_volume_ml": "lower", "fn_volume_ml": "lower", "lesion_sensitivity": "higher",
          "fp_per_scan": "lower", "mtv_bias_pct": "abs-lower", "tlg_bias_pct": "abs-lower"}


def _pair(pred: Any, truth: Any) -> tuple[np.ndarray, np.ndarray]:
    p, t = _arr(pred), _arr(truth)
    if p.shape != t.shape:
        raise InputError(f"prediction {p.shape} and truth {t.shape} differ in shape")
    if p.ndim != 3:
        raise InputError(f"masks must be 3D (z, y, x), got shape {p.shape}")
    return p != 0, t


def dice(pred: Any, truth: Any) -> float:
    """Volume Dice of two binary masks; NaN when the truth is empty (autoPET leaves such scans out of Dice)."""
    p, t = _pair(pred, truth)
    t = t != 0
    if not t.any():
        return math.nan
    return float(2.0 * (p & t).sum() / (p.sum() + t.sum()))


def _truth_instances(truth: np.ndarray) -> tuple[np.ndarray, list[int]]:
    t = truth.astype(np.int64)
    if t.max() > 1:  # an instance map
        return t, [int(i) for i in np.unique(t) if i > 0]
    lab, n = label_lesions(t)
    return lab.astype(np.int64), list(range(1, n + 1))


def fp_fn_volume_ml(pred: Any, truth: Any, spacing_mm: Any) -> tuple[float, float]:
    """(false-positive volume, false-negative volume) in mL, as autoPET defines them (module docstring)."""
    p, t = _pair(pred, truth)
    vml = _voxel_ml(spacing_mm)
    tb = t != 0
    plab, n_p = label_lesions(p)
    fp = 0
    if n_p:
        touching = np.unique(plab[tb & (plab > 0)])
        sizes = np.bincount(plab.ravel(), minlength=n_p + 1)
        fp_ids = np.setdiff1d(np.arange(1, n_p + 1), touching)
        fp = int(sizes[fp_ids].sum())
    tlab, ids = _truth_instances(t)
    fn = 0
    if ids:
        hit = set(int(i) for i in np.unique(tlab[p & (tlab > 0)]))
        sizes_t = np.bincount(tlab.ravel(), minlength=int(tlab.max()) + 1)
        fn = int(sum(sizes_t[i] for i in ids if i not in hit))
    return fp * vml, fn * vml


def lesion_detection(pred: Any, truth: Any, *, min_overlap_voxels: int = 1) -> tuple[float, int, int, int]:
    """(sensitivity, detected, true lesions, false-positive components) of a prediction."""
    if int(min_overlap_voxels) < 1:
        raise InputError(f"min_overlap_voxels must be >= 1, got {min_overlap_voxels}")
    p, t = _pair(pred, truth)
    tlab, ids = _truth_instances(t)
    overlap = np.bincount(tlab[p].ravel(), minlength=int(tlab.max()) + 1) if ids else np.zeros(1, int)
    detected = sum(1 for i in ids if overlap[i] >= min_overlap_voxels)
    plab, n_p = label_lesions(p)
    tb = t != 0
    n_fp = n_p - len(np.unique(plab[tb & (plab > 0)])) if n_p else 0
    sens = detected / len(ids) if ids else math.nan
    return float(sens), int(detected), len(ids), int(n_fp)


@dataclass(frozen=True)
class SegmentationScores:
    """One scan's scores (the :data:`METRIC_NAMES`), NaN where undefined (no true lesion)."""

    dice: float
    fp_volume_ml: float
    fn_volume_ml: float
    lesion_sensitivity: float
    fp_per_scan: float
    mtv_bias_pct: float
    tlg_bias_pct: float
    mtv_true_ml: float
    mtv_pred_ml: float
    n_lesions: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def score_segmentation(pred: Any, truth: Any, suv: Any, spacing_mm: Any, *,
                       min_overlap_voxels: int = 1) -> SegmentationScores:
    """Every autoPET metric plus MTV/TLG bias of one scan.

    Parameters
    ----------
    pred : array_like of bool, (nz, ny, nx)
    truth : array_like of int, (nz, ny, nx)
        Binary mask or lesion instance map.
    suv : array_like, (nz, ny, nx)
        The SUV image both TLGs are computed on.
    spacing_mm : (dz, dy, dx)
    """
    from petspect.segmentation.volumes import mtv_ml, tlg

    p, t = _pair(pred, truth)
    tb = t != 0
    d = dice(p, tb)
    fp_ml, fn_ml = fp_fn_volume_ml(p, t, spacing_mm)
    sens, _, n_true, n_fp = lesion_detection(p, t, min_overlap_voxels=min_overlap_voxels)
    mt, mp = mtv_ml(tb, spacing_mm), mtv_ml(p, spacing_mm)
    tt, tp = tlg(suv, tb, spacing_mm), tlg(suv, p, spacing_mm)
    mtv_bias = 100.0 * (mp - mt) / mt if mt > 0 else math.nan
    tlg_bias = 100.0 * (tp - tt) / tt if tt > 0 else math.nan
    return SegmentationScores(d, fp_ml, fn_ml, sens, float(n_fp), mtv_bias, tlg_bias, mt, mp, n_true)
