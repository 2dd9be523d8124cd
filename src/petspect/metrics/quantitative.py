"""Quantitative PET metrics: SUVmean/SUVmax/SUVpeak per region, their bias, and contrast recovery.

Images are 3D ``(z, y, x)`` tensors or arrays in any activity unit (Bq/mL or SUV: a bias in % does not
depend on it); label maps are integer arrays of the same shape; voxel sizes ``spacing_mm`` are
``(dz, dy, dx)`` in mm. Everything is computed in float64 on the CPU (numpy) and returned as floats.

Conventions
-----------
* Bias in % is ``(pred - ref) / ref * 100``: positive when the prediction over-estimates.
* SUVpeak is the largest mean inside a sphere of ``peak_diameter_mm`` (12 mm: the "1 mL" sphere of
  PERCIST and QIBA, 0.905 mL exactly) whose centre is a voxel centre inside the region; the sphere may
  extend outside the region, not outside the image. Voxels are weighted by the fraction of their volume
  inside the sphere (sub-sampled 5 x 5 x 5), so the sphere volume is right for anisotropic voxels too.
  Wahl et al, J Nucl Med 2009 (PERCIST 1.0).
* TLM (total lesion metabolism / activity) is the sum of values times the voxel volume in mL.
* Contrast recovery (NEMA NU 2 image quality): ``CR = (C_lesion / C_bkg - 1) / (true_ratio - 1) * 100`` %;
  background variability ``BV = SD_bkg / C_bkg * 100`` %.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from petspect.errors import InputError
from petspect.units import ML_PER_MM3

STATS = ("mean", "max", "peak", "tlm")


def _np(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "spacing_mm") and hasattr(x, "data"):  # a petspect Volume
        x = x.data
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != 3:
        raise InputError(f"{name} must be a 3D (z, y, x) array, got shape {arr.shape}")
    return arr


def _spacing(spacing_mm: Sequence[float]) -> tuple[float, float, float]:
    sp = tuple(float(s) for s in spacing_mm)
    if len(sp) != 3 or not all(math.isfinite(s) and s > 0 for s in sp):
        raise InputError(f"spacing_mm must be 3 positive numbers (dz, dy, dx), got {spacing_mm!r}")
    return sp  # type: ignore[return-value]


def sphere_kernel(spacing_mm: Sequence[float], diameter_mm: float = 12.0, *, subsamples: int = 5) -> np.ndarray:
    """Weights of a sphere on the voxel grid: the fraction of each voxel's volume inside it.

    Parameters
    ----------
    spacing_mm : (dz, dy, dx)
        Voxel size in mm.
    diameter_mm : float
        Sphere diameter in mm, centred on the central voxel's centre.
    subsamples : int
        Sub-voxel samples per axis used to estimate the fractions.

    Returns
    -------
    numpy.ndarray, shape (2 kz + 1, 2 ky + 1, 2 kx + 1)
        Weights in [0, 1]; their sum times the voxel volume approximates the sphere volume.
    """
    sp = _spacing(spacing_mm)
    if not diameter_mm > 0:
        raise InputError(f"diameter_mm must be positive, got {diameter_mm!r}")
    r = diameter_mm / 2.0
    half = [int(math.ceil(r / s + 0.5)) for s in sp]
    offs = (np.arange(subsamples) + 0.5) / subsamples - 0.5  # sub-voxel positions in voxel units
    axes = [((np.arange(-h, h + 1)[:, None] + offs[None, :]) * s) for h, s in zip(half, sp)]
    # axes: kernel index (z, y, x), then sub-sample (z, y, x)
    dz = axes[0][:, None, None, :, None, None]
    dy = axes[1][None, :, None, None, :, None]
    dx = axes[2][None, None, :, None, None, :]
    inside = (dz**2 + dy**2 + dx**2) <= r * r
    w = inside.mean(axis=(3, 4, 5))
    nz = np.argwhere(w > 0)
    lo, hi = nz.min(axis=0), nz.max(axis=0) + 1
    return w[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]


def suv_peak(image: Any, mask: Any, spacing_mm: Sequence[float], *, diameter_mm: float = 12.0) -> float:
    """Largest mean of ``image`` in a sphere centred on a voxel of ``mask`` (see the module conventions).

    Parameters
    ----------
    image : 3D tensor or array
        Activity (Bq/mL) or SUV.
    mask : 3D bool tensor or array
        Region whose voxels may hold the sphere centre.
    spacing_mm : (dz, dy, dx)
    diameter_mm : float
        Sphere diameter (12 mm: about 1 mL).

    Returns
    -------
    float
        SUVpeak in the image's unit. Near the image edge the mean is over the part of the sphere inside.
    """
    from scipy.ndimage import correlate

    img = _np(image, "image").astype(np.float64)
    m = _np(mask, "mask").astype(bool)
    if m.shape != img.shape:
        raise InputError(f"mask shape {m.shape} differs from image shape {img.shape}")
    if not m.any():
        raise InputError("mask is empty: SUVpeak needs at least one voxel")
    k = sphere_kernel(spacing_mm, diameter_mm)
    pad = [s // 2 for s in k.shape]
    idx = np.argwhere(m)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + 1 + np.asarray(pad), img.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))  # crop: only centres inside the mask matter
    sub, inside = img[box], np.ones(img[box].shape)
    num = correlate(sub, k, mode="constant", cval=0.0)
    den = correlate(inside, k, mode="constant", cval=0.0)
    return float((num / den)[m[box]].max())


def region_stats(image: Any, mask: Any, spacing_mm: Sequence[float], stats: Sequence[str] = ("mean", "max", "peak"),
                 *, peak_diameter_mm: float = 12.0) -> dict[str, float]:
    """SUVmean, SUVmax, SUVpeak and TLM of one region.

    Returns a dict ``{stat: value}`` in the image's unit (``tlm`` in unit x mL).
    """
    img = _np(image, "image").astype(np.float64)
    m = _np(mask, "mask").astype(bool)
    unknown = set(stats) - set(STATS)
    if unknown:
        raise InputError(f"unknown stats {sorted(unknown)}; choose from {STATS}")
    if not m.any():
        raise InputError("region is empty")
    vals = img[m]
    sp = _spacing(spacing_mm)
    out = {"mean": lambda: float(vals.mean()), "max": lambda: float(vals.max()),
           "peak": lambda: suv_peak(img, m, sp, diameter_mm=peak_diameter_mm),
           "tlm": lambda: float(vals.sum() * math.prod(sp) * ML_PER_MM3)}
    return {s: out[s]() for s in stats}


def _spacing_of(spacing_mm: Sequence[float] | None, stats: Sequence[str], *images: Any) -> tuple[float, float, float]:
    """Explicit spacing, else a Volume's; required (no silent 1 mm) when SUVpeak or TLM is asked for."""
    if spacing_mm is not None:
        return _spacing(spacing_mm)
    for im in images:
        if hasattr(im, "spacing_mm"):
            return _spacing(im.spacing_mm)
    if {"peak", "tlm"} & set(stats):
        raise InputError("spacing_mm is needed for SUVpeak and TLM (or pass Volumes, which carry it)")
    return (1.0, 1.0, 1.0)


def region_bias(pred: Any, ref: Any, labels: Any, label_names: Mapping[int, str],
                stats: Sequence[str] = ("mean", "max", "peak"), spacing_mm: Sequence[float] | None = None, *,
                peak_diameter_mm: float = 12.0) -> dict[str, dict[str, float]]:
    """Bias in % of regional statistics of ``pred`` against ``ref``, per organ or per lesion.

    Parameters
    ----------
    pred, ref : 3D tensor, array or Volume
        Predicted and reference images (same unit).
    labels : 3D integer array (or Volume)
        Label map: organs, or lesion instances (one label per lesion).
    label_names : mapping int -> str
        Labels to evaluate and their names (e.g. ``{1: "liver", 2: "lesion_1"}``). A label absent from
        ``labels`` is reported with NaN biases rather than dropped silently.
    stats : sequence of {"mean", "max", "peak", "tlm"}
    spacing_mm : (dz, dy, dx), optional
        Voxel size in mm; default: that of ``pred`` or ``ref`` when they are Volumes. SUVpeak's sphere and
        TLM need it, so it is required for them otherwise.
    peak_diameter_mm : float
        SUVpeak sphere diameter.

    Returns
    -------
    dict
        ``{name: {"mean": bias_pct, ..., "ref_mean": value, "pred_mean": value, ...}}`` with
        ``bias_pct = (pred - ref) / ref * 100`` (NaN when the reference statistic is 0).
    """
    sp = _spacing_of(spacing_mm, stats, pred, ref)
    p, r, lab = _np(pred, "pred"), _np(ref, "ref"), _np(labels, "labels")
    if not p.shape == r.shape == lab.shape:
        raise InputError(f"shapes differ: pred {p.shape}, ref {r.shape}, labels {lab.shape}")
    result: dict[str, dict[str, float]] = {}
    for value, name in label_names.items():
        mask = lab == value
        if not mask.any():
            result[name] = {s: math.nan for s in stats}
            continue
        sp_ = region_stats(p, mask, sp, stats, peak_diameter_mm=peak_diameter_mm)
        sr_ = region_stats(r, mask, sp, stats, peak_diameter_mm=peak_diameter_mm)
        entry = {s: (sp_[s] - sr_[s]) / sr_[s] * 100.0 if sr_[s] != 0 else math.nan for s in stats}
        entry.update({f"ref_{s}": sr_[s] for s in stats})
        entry.update({f"pred_{s}": sp_[s] for s in stats})
        result[name] = entry
    return result


def contrast_recovery(img: Any, lesion_mask: Any, bkg_mask: Any, true_ratio: float) -> dict[str, float]:
    """Contrast recovery and background variability (NEMA NU 2 style) of one hot lesion.

    Parameters
    ----------
    img : 3D tensor or array
    lesion_mask, bkg_mask : 3D bool
        Lesion ROI and background ROI.
    true_ratio : float
        True lesion-to-background activity ratio (e.g. 4 for 4:1); must differ from 1.

    Returns
    -------
    dict
        ``contrast_recovery_pct``, ``background_variability_pct``, ``lesion_mean``, ``background_mean``.
    """
    x = _np(img, "img").astype(np.float64)
    lm, bm = _np(lesion_mask, "lesion_mask").astype(bool), _np(bkg_mask, "bkg_mask").astype(bool)
    if not (lm.shape == bm.shape == x.shape):
        raise InputError("image and masks must have the same shape")
    if not lm.any() or bm.sum() < 2:
        raise InputError("lesion mask must hold a voxel and background mask at least two")
    if not math.isfinite(true_ratio) or true_ratio == 1:
        raise InputError(f"true_ratio must be finite and differ from 1, got {true_ratio!r}")
    cl, cb = float(x[lm].mean()), float(x[bm].mean())
    if cb == 0:
        raise InputError("background mean is zero")
    return {"contrast_recovery_pct": (cl / cb - 1.0) / (true_ratio - 1.0) * 100.0,
            "background_variability_pct": float(x[bm].std(ddof=1)) / cb * 100.0,
            "lesion_mean": cl, "background_mean": cb}


def noise_bias_curve(images_by_setting: Mapping[Any, Any], lesion_mask: Any, bkg_mask: Any, true_ratio: float, *,
                     noise: str = "spatial") -> list[dict[str, Any]]:
    """Points of a contrast-recovery versus noise curve, one per setting (iterations, filter, dose...).

    Parameters
    ----------
    images_by_setting : mapping setting -> image or sequence of images
        Each value is one 3D image or several noise realisations of it (a list, or a 4D array with the
        realisations first). Settings keep their order (e.g. increasing iteration number).
    lesion_mask, bkg_mask : 3D bool
    true_ratio : float
        True lesion-to-background ratio.
    noise : {"spatial", "ensemble"}
        ``spatial``: background variability SD_bkg / C_bkg of each realisation (averaged);
        ``ensemble``: voxel-wise standard deviation across realisations averaged over the background,
        divided by the background mean (needs at least 2 realisations; excludes anatomical texture).

    Returns
    -------
    list of dict
        ``{"setting", "contrast_recovery_pct", "noise_pct", "n_realisations"}``, CR averaged over realisations.
    """
    if noise not in ("spatial", "ensemble"):
        raise InputError(f"noise must be 'spatial' or 'ensemble', got {noise!r}")
    bm = _np(bkg_mask, "bkg_mask").astype(bool)
    points = []
    for setting, images in images_by_setting.items():
        if isinstance(images, (list, tuple)):
            reals = [_np(x, f"image of setting {setting!r}") for x in images]
        else:
            arr = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
            reals = [_np(arr, f"image of setting {setting!r}")] if arr.ndim == 3 else [_np(x, "image") for x in arr]
        crs = [contrast_recovery(x, lesion_mask, bkg_mask, true_ratio) for x in reals]
        if noise == "spatial":
            level = float(np.mean([c["background_variability_pct"] for c in crs]))
        else:
            if len(reals) < 2:
                raise InputError(f"ensemble noise needs at least 2 realisations, setting {setting!r} has {len(reals)}")
            stack = np.stack(reals).astype(np.float64)
            level = float(stack.std(axis=0, ddof=1)[bm].mean() / stack.mean(axis=0)[bm].mean() * 100.0)
        points.append({"setting": setting, "contrast_recovery_pct": float(np.mean([c["contrast_recovery_pct"]
                                                                                     for c in crs])),
                       "noise_pct": level, "n_realisations": len(reals)})
    return points
