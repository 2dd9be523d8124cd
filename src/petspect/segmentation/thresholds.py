"""Classical PET lesion segmentation: fixed, relative, PERCIST, adaptive and gradient-based thresholds.

All functions take an SUV image ``(z, y, x)`` (NumPy or torch; values are SUV, dimensionless) with its
voxel size ``spacing_mm`` ``(dz, dy, dx)`` and return a boolean mask of the same shape. Connected
components use **18-connectivity** (faces and edges, as the autoPET evaluation does).

Methods (each as clinics use it)
--------------------------------
* ``suv25`` -- SUV >= 2.5 everywhere (a fixed absolute threshold; e.g. Boellaard et al, EJNMMI 2015, FDG
  guideline 2.0, for MTV).
* ``suv41`` / ``suv50`` -- 41 % or 50 % of SUVmax *inside a seed region* (EANM guideline 2.0,
  Boellaard et al 2015: 41 % isocontour; 50 %: Meignan et al). Each seed region (a connected component
  of the seed mask) gets a box ``margin_mm`` larger; inside it the voxels >= fraction x the seed's SUVmax
  that are connected to the seed's maximum form the lesion.
* ``percist`` -- SUV >= ``liver_factor`` x liver SUVmean + 2 SD, the liver measured in a 3 cm sphere at the
  deepest point of the liver mask (PERCIST 1.0, Wahl et al, J Nucl Med 2009;50:122S: 1.5 x mean + 2 SD;
  ``liver_factor=1`` gives the "liver mean + 2 SD" variant).
* ``adaptive`` -- contrast-based: per seed region ``T = BG + fraction (SUVmax - BG)``, BG the median SUV in a
  shell ``[margin_mm, 2 margin_mm]`` around the seed (background-corrected relative threshold, e.g. Daisne
  et al, Radiother Oncol 2003; Nestle et al, J Nucl Med 2005).
* ``gradient`` -- per seed region, a marker-controlled watershed of the gradient magnitude of the
  (Gaussian-smoothed) SUV: inside marker the voxels >= ``inner_fraction`` x SUVmax connected to the maximum,
  outside marker the box border and voxels below the local background; the lesion edge is where the
  gradient is steepest (the idea of gradient-based tools such as PET Edge; Geets et al, EJNMMI 2007).

Seeds: :func:`auto_seeds` takes components of SUV >= ``seed_suv`` (default 2.5) with at least
``min_seed_ml``; a caller may pass its own seed mask (e.g. an RTSTRUCT ROI drawn round each lesion).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from petspect.errors import InputError
from petspect.units import ML_PER_MM3

__all__ = ["ThresholdMethod", "ThresholdParams", "connectivity18", "auto_seeds", "fixed_threshold",
           "percent_of_max", "liver_reference", "percist_threshold", "percist", "adaptive", "gradient",
           "segment_threshold", "DEFAULT_PARAMS", "SEARCH_SPACE"]


class ThresholdMethod(str, Enum):
    """The classical segmentation methods (the names of ``petspect segment --method``)."""

    SUV41 = "suv41"
    SUV50 = "suv50"
    SUV25 = "suv25"
    PERCIST = "percist"
    ADAPTIVE = "adaptive"
    GRADIENT = "gradient"


@dataclass(frozen=True)
class ThresholdParams:
    """Free parameters of the threshold methods (the ones a study tunes on validation).

    Attributes
    ----------
    seed_suv : float
        SUV that seeds a region for the relative, adaptive and gradient methods.
    min_seed_ml : float
        Seeds smaller than this (mL) are dropped.
    margin_mm : float
        Box margin around a seed inside which its lesion may grow (mm).
    fraction : float
        Fraction of SUVmax (relative methods) or of SUVmax - BG (adaptive).
    liver_factor : float
        PERCIST multiplier of the liver mean (1.5 in PERCIST 1.0).
    smooth_mm : float
        FWHM of the Gaussian applied before the gradient (gradient method), mm.
    inner_fraction : float
        Inside-marker level of the gradient method (fraction of SUVmax).
    """

    seed_suv: float = 2.5
    min_seed_ml: float = 0.0
    margin_mm: float = 15.0
    fraction: float = 0.41
    liver_factor: float = 1.5
    smooth_mm: float = 0.0
    inner_fraction: float = 0.8

    def __post_init__(self) -> None:
        for name in ("seed_suv", "margin_mm", "fraction", "liver_factor", "inner_fraction"):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and v > 0):
                raise InputError(f"{name} must be positive and finite, got {v!r}")
        if not 0 < self.fraction < 1 or not 0 < self.inner_fraction < 1:
            raise InputError(f"fraction and inner_fraction must lie in (0, 1), got {self.fraction}, "
                             f"{self.inner_fraction}")
        if self.min_seed_ml < 0 or self.smooth_mm < 0:
            raise InputError("min_seed_ml and smooth_mm must not be negative")


#: The defaults of each method (the published settings).
DEFAULT_PARAMS: dict[ThresholdMethod, ThresholdParams] = {
    ThresholdMethod.SUV41: ThresholdParams(fraction=0.41),
    ThresholdMethod.SUV50: ThresholdParams(fraction=0.50),
    ThresholdMethod.SUV25: ThresholdParams(),
    ThresholdMethod.PERCIST: ThresholdParams(liver_factor=1.5),
    ThresholdMethod.ADAPTIVE: ThresholdParams(fraction=0.5),
    ThresholdMethod.GRADIENT: ThresholdParams(smooth_mm=4.0),
}

#: What a study tunes on validation (the fixed fraction of suv41/suv50 is their definition, not tuned).
SEARCH_SPACE: dict[ThresholdMethod, dict[str, list[float]]] = {
    ThresholdMethod.SUV41: {"seed_suv": [2.0, 2.5, 3.0, 4.0], "margin_mm": [10.0, 20.0]},
    ThresholdMethod.SUV50: {"seed_suv": [2.0, 2.5, 3.0, 4.0], "margin_mm": [10.0, 20.0]},
    ThresholdMethod.SUV25: {"min_seed_ml": [0.0, 0.5, 1.0, 2.0]},
    ThresholdMethod.PERCIST: {"liver_factor": [1.0, 1.25, 1.5], "min_seed_ml": [0.0, 1.0]},
    ThresholdMethod.ADAPTIVE: {"seed_suv": [2.0, 2.5, 3.0, 4.0], "fraction": [0.3, 0.4, 0.5]},
    ThresholdMethod.GRADIENT: {"seed_suv": [2.0, 2.5, 3.0, 4.0], "smooth_mm": [0.0, 4.0]},
}


def connectivity18() -> np.ndarray:
    """The 3x3x3 structuring element of 18-connectivity (faces and edges, not corners)."""
    from scipy import ndimage

    return ndimage.generate_binary_structure(3, 2)


def _as_suv(suv: Any) -> np.ndarray:
    if hasattr(suv, "detach"):
        suv = suv.detach().cpu().numpy()
    a = np.asarray(suv, dtype=np.float64)
    if a.ndim != 3:
        raise InputError(f"an SUV image must be 3D (z, y, x), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InputError(f"the SUV image holds {int((~np.isfinite(a)).sum())} NaN or infinite voxels")
    return a


def _spacing(spacing_mm: Any) -> np.ndarray:
    sp = np.asarray(spacing_mm, dtype=np.float64).reshape(-1)
    if sp.size != 3 or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise InputError(f"spacing_mm must be 3 positive numbers (dz, dy, dx), got {spacing_mm!r}")
    return sp


def _mask(mask: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    if hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    m = np.asarray(mask) != 0
    if m.shape != shape:
        raise InputError(f"{name} has shape {m.shape}, the SUV image {shape}")
    return m


def _drop_small(mask: np.ndarray, spacing: np.ndarray, min_ml: float) -> np.ndarray:
    if min_ml <= 0 or not mask.any():
        return mask
    from scipy import ndimage

    lab, n = ndimage.label(mask, structure=connectivity18())
    sizes = np.bincount(lab.ravel(), minlength=n + 1) * float(np.prod(spacing)) * ML_PER_MM3
    keep = sizes >= min_ml
    keep[0] = False
    return keep[lab]


def fixed_threshold(suv: Any, threshold: float = 2.5, *, spacing_mm: Any = (1.0, 1.0, 1.0),
                    min_ml: float = 0.0) -> np.ndarray:
    """Mask of SUV >= ``threshold`` (components smaller than ``min_ml`` mL dropped)."""
    a = _as_suv(suv)
    if not math.isfinite(threshold):
        raise InputError(f"threshold must be finite, got {threshold!r}")
    return _drop_small(a >= threshold, _spacing(spacing_mm), min_ml)


def auto_seeds(suv: Any, spacing_mm: Any, *, seed_suv: float = 2.5, min_seed_ml: float = 0.0,
               exclude: Any = None) -> np.ndarray:
    """Seed mask: SUV >= ``seed_suv`` components of at least ``min_seed_ml`` mL, outside ``exclude``."""
    m = fixed_threshold(suv, seed_suv, spacing_mm=spacing_mm, min_ml=min_seed_ml)
    if exclude is not None:
        m &= ~_mask(exclude, m.shape, "exclude")
    return m


def _regions(seeds: np.ndarray, spacing: np.ndarray, margin_mm: float):
    """Yield (box slices, seed component mask in the box) for each 18-connected seed component."""
    from scipy import ndimage

    lab, n = ndimage.label(seeds, structure=connectivity18())
    pad = np.ceil(margin_mm / spacing).astype(int)
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is None:
            continue
        box = tuple(slice(max(s.start - p, 0), min(s.stop + p, n_ax)) for s, p, n_ax in zip(sl, pad, seeds.shape))
        yield box, lab[box] == i


def _connected_to(mask: np.ndarray, point: tuple[int, ...]) -> np.ndarray:
    from scipy import ndimage

    if not mask[point]:
        return np.zeros_like(mask)
    lab, _ = ndimage.label(mask, structure=connectivity18())
    return lab == lab[point]


def _per_region(suv: Any, spacing_mm: Any, seeds: Any, margin_mm: float,
                rule: Callable[[np.ndarray, np.ndarray, tuple[int, ...]], np.ndarray]) -> np.ndarray:
    a = _as_suv(suv)
    sp = _spacing(spacing_mm)
    s = _mask(seeds, a.shape, "seeds")
    out = np.zeros(a.shape, dtype=bool)
    for box, seed in _regions(s, sp, margin_mm):
        sub = a[box]
        peak = np.unravel_index(int(np.argmax(np.where(seed, sub, -np.inf))), sub.shape)
        out[box] |= rule(sub, seed, peak)
    return out


def percent_of_max(suv: Any, spacing_mm: Any, seeds: Any, *, fraction: float = 0.41,
                   margin_mm: float = 15.0) -> np.ndarray:
    """Relative threshold: per seed region, voxels >= ``fraction`` x its SUVmax connected to the maximum.

    Parameters
    ----------
    suv : array_like, shape (nz, ny, nx)
    spacing_mm : (dz, dy, dx)
    seeds : array_like of bool, same shape
        One connected component per lesion (18-connectivity); e.g. :func:`auto_seeds`.
    fraction : float
        0.41 (EANM 41 % isocontour) or 0.5.
    margin_mm : float
        How far beyond its seed's bounding box a lesion may reach (mm).
    """
    if not 0 < fraction < 1:
        raise InputError(f"fraction must lie in (0, 1), got {fraction}")

    def rule(sub, seed, peak):
        return _connected_to(sub >= fraction * sub[peak], peak)

    return _per_region(suv, spacing_mm, seeds, margin_mm, rule)


def liver_reference(suv: Any, spacing_mm: Any, liver: Any, *, diameter_mm: float = 30.0) -> tuple[float, float]:
    """(mean, SD) of SUV in a ``diameter_mm`` sphere at the deepest point of the liver mask (PERCIST).

    The sphere is cut to the liver; when the liver is thinner than the sphere the whole mask is used.
    """
    from scipy import ndimage

    a = _as_suv(suv)
    sp = _spacing(spacing_mm)
    m = _mask(liver, a.shape, "liver mask")
    if m.sum() < 2:
        raise InputError("the liver mask holds fewer than 2 voxels: PERCIST needs a liver reference")
    depth = ndimage.distance_transform_edt(m, sampling=sp)
    centre = np.unravel_index(int(np.argmax(depth)), m.shape)
    grids = np.meshgrid(*[(np.arange(n) - c) * s for n, c, s in zip(a.shape, centre, sp)], indexing="ij")
    sphere = (sum(g ** 2 for g in grids) <= (diameter_mm / 2.0) ** 2) & m
    region = a[sphere] if sphere.sum() >= 2 else a[m]
    return float(region.mean()), float(region.std(ddof=1))


def percist_threshold(liver_mean: float, liver_sd: float, *, liver_factor: float = 1.5) -> float:
    """PERCIST threshold ``liver_factor x mean + 2 SD`` (Wahl et al, J Nucl Med 2009;50:122S)."""
    return float(liver_factor * liver_mean + 2.0 * liver_sd)


def percist(suv: Any, spacing_mm: Any, liver: Any, *, liver_factor: float = 1.5, min_ml: float = 0.0) -> np.ndarray:
    """Mask of SUV >= the PERCIST threshold of this image's liver (see :func:`percist_threshold`)."""
    mean, sd = liver_reference(suv, spacing_mm, liver)
    return fixed_threshold(suv, percist_threshold(mean, sd, liver_factor=liver_factor), spacing_mm=spacing_mm,
                           min_ml=min_ml)


def _background(sub: np.ndarray, seed: np.ndarray, spacing: np.ndarray, margin_mm: float) -> float:
    from scipy import ndimage

    dist = ndimage.distance_transform_edt(~seed, sampling=spacing)
    shell = (dist > margin_mm / 2.0) & (dist <= margin_mm)
    if not shell.any():
        shell = ~seed
    return float(np.median(sub[shell])) if shell.any() else 0.0


def adaptive(suv: Any, spacing_mm: Any, seeds: Any, *, fraction: float = 0.5, margin_mm: float = 15.0) -> np.ndarray:
    """Contrast-based threshold ``BG + fraction (SUVmax - BG)`` per seed region (see the module docstring)."""
    if not 0 < fraction < 1:
        raise InputError(f"fraction must lie in (0, 1), got {fraction}")
    sp = _spacing(spacing_mm)

    def rule(sub, seed, peak):
        bg = _background(sub, seed, sp, margin_mm)
        return _connected_to(sub >= bg + fraction * (sub[peak] - bg), peak)

    return _per_region(suv, spacing_mm, seeds, margin_mm, rule)


def gradient(suv: Any, spacing_mm: Any, seeds: Any, *, margin_mm: float = 15.0, smooth_mm: float = 4.0,
             inner_fraction: float = 0.8) -> np.ndarray:
    """Gradient-based segmentation: marker-controlled watershed of |grad SUV| per seed region."""
    from scipy import ndimage
    from skimage.segmentation import watershed

    from petspect.units import FWHM_PER_SIGMA

    sp = _spacing(spacing_mm)

    def rule(sub, seed, peak):
        img = sub if smooth_mm <= 0 else ndimage.gaussian_filter(sub, smooth_mm / FWHM_PER_SIGMA / sp, mode="nearest")
        grad = ndimage.gaussian_gradient_magnitude(img, 0.5) if min(img.shape) > 1 else np.abs(img)
        bg = _background(sub, seed, sp, margin_mm)
        markers = np.zeros(sub.shape, dtype=np.int32)
        border = np.ones(sub.shape, dtype=bool)
        border[tuple(slice(1, -1) if n > 2 else slice(None) for n in sub.shape)] = False
        markers[border | (sub <= bg)] = 1
        inner = _connected_to(sub >= inner_fraction * sub[peak], peak)
        markers[inner] = 2
        ws = watershed(grad, markers, connectivity=connectivity18())
        return _connected_to(ws == 2, peak)

    return _per_region(suv, spacing_mm, seeds, margin_mm, rule)


def segment_threshold(method: ThresholdMethod | str, suv: Any, spacing_mm: Any, *,
                      params: ThresholdParams | None = None, liver: Any = None, seeds: Any = None,
                      exclude: Any = None) -> np.ndarray:
    """Run one classical method by name.

    Parameters
    ----------
    method : ThresholdMethod or str
        ``suv41``, ``suv50``, ``suv25``, ``percist``, ``adaptive`` or ``gradient``.
    suv : array_like, shape (nz, ny, nx)
        SUV image (SUVbw or SUL; dimensionless).
    spacing_mm : (dz, dy, dx)
    params : ThresholdParams, optional
        Defaults: :data:`DEFAULT_PARAMS` of the method.
    liver : array_like of bool, optional
        Liver mask; needed by ``percist``.
    seeds : array_like of bool, optional
        Seed regions of the seeded methods; default :func:`auto_seeds` with ``params.seed_suv``.
    exclude : array_like of bool, optional
        Voxels never seeded (e.g. bladder, brain: physiological uptake).

    Returns
    -------
    numpy.ndarray of bool, shape (nz, ny, nx)
    """
    try:
        m = ThresholdMethod(str(getattr(method, "value", method)).lower())
    except ValueError:
        raise InputError(f"unknown threshold method {method!r}; choose one of "
                         f"{[x.value for x in ThresholdMethod]}") from None
    p = params or DEFAULT_PARAMS[m]
    a = _as_suv(suv)
    ex = None if exclude is None else _mask(exclude, a.shape, "exclude")
    if m is ThresholdMethod.SUV25:
        out = fixed_threshold(a, 2.5, spacing_mm=spacing_mm, min_ml=p.min_seed_ml)
    elif m is ThresholdMethod.PERCIST:
        if liver is None:
            raise InputError("percist needs a liver mask (PERCIST's reference region)")
        out = percist(a, spacing_mm, liver, liver_factor=p.liver_factor, min_ml=p.min_seed_ml)
    else:
        s = (auto_seeds(a, spacing_mm, seed_suv=p.seed_suv, min_seed_ml=p.min_seed_ml) if seeds is None
             else _mask(seeds, a.shape, "seeds"))
        if ex is not None:
            s = s & ~ex
        if m in (ThresholdMethod.SUV41, ThresholdMethod.SUV50):
            frac = 0.41 if m is ThresholdMethod.SUV41 else 0.50
            out = percent_of_max(a, spacing_mm, s, fraction=frac, margin_mm=p.margin_mm)
        elif m is ThresholdMethod.ADAPTIVE:
            out = adaptive(a, spacing_mm, s, fraction=p.fraction, margin_mm=p.margin_mm)
        else:
            out = gradient(a, spacing_mm, s, margin_mm=p.margin_mm, smooth_mm=p.smooth_mm,
                           inner_fraction=p.inner_fraction)
    if ex is not None:
        out &= ~ex
    return out
