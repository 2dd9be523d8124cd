"""IBSI image processing: interpolation, ROI masks, re-segmentation, outlier filtering, discretisation.

Follows chapter 2 of the IBSI reference manual (Zwanenburg A et al., arXiv:1612.07003): the ROI
becomes a *morphological mask* (used for shape) and an *intensity mask* (the morphological mask after
re-segmentation and outlier filtering, used for every intensity and texture feature). Arrays are
NumPy, voxel order (z, y, x), spacing in mm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from petspect.errors import InputError
from petspect.radiomics.settings import MAX_GREY_LEVELS, Discretisation, RadiomicsSettings

#: Most voxels of the resampled grid around one ROI (a few GB in float64 with its masks).
MAX_RESAMPLED_VOXELS = 100_000_000

__all__ = ["ProcessedROI", "resample", "intensity_mask", "discretise", "process"]


@dataclass(frozen=True)
class ProcessedROI:
    """The image and masks every feature family reads.

    Attributes
    ----------
    image : ndarray float64, (nz, ny, nx)
        Intensities after interpolation (image unit).
    morph_mask : ndarray bool
        Morphological mask.
    int_mask : ndarray bool
        Intensity mask (morphological mask after re-segmentation / outlier filtering).
    levels : ndarray int64
        Grey levels 1..n_levels inside ``int_mask`` (0 outside).
    n_levels : int
        Number of grey levels Ng.
    spacing_mm : (float, float, float)
    """

    image: np.ndarray
    morph_mask: np.ndarray
    int_mask: np.ndarray
    levels: np.ndarray
    n_levels: int
    spacing_mm: tuple[float, float, float]


def _check_inputs(image: np.ndarray, mask: np.ndarray, spacing_mm) -> tuple[np.ndarray, np.ndarray, tuple]:
    image = np.asarray(image, dtype=np.float64)
    mask = np.asarray(mask)
    if image.ndim != 3:
        raise InputError(f"radiomics needs a 3D image (z, y, x), got shape {image.shape}")
    if mask.shape != image.shape:
        raise InputError(f"mask shape {mask.shape} differs from image shape {image.shape}")
    sp = tuple(float(s) for s in spacing_mm)
    if len(sp) != 3 or not all(math.isfinite(s) and s > 0 for s in sp):
        raise InputError(f"spacing_mm must be 3 positive numbers, got {spacing_mm}")
    mask = mask > 0.5 if mask.dtype.kind == "f" else mask.astype(bool)
    if not mask.any():
        raise InputError("the ROI mask is empty")
    if not np.isfinite(image[mask]).all():
        raise InputError("the image holds NaN or infinite values inside the ROI")
    return image, mask, sp


def resample(image: np.ndarray, mask: np.ndarray, spacing_mm, new_spacing_mm, *, interpolation: str = "linear",
             mask_threshold: float = 0.5, round_intensities: bool = False
             ) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Interpolate image and mask onto a grid of ``new_spacing_mm`` with the same centre (IBSI 2.4).

    The new grid has ``ceil(n * s / s_new)`` voxels per axis and is centred on the old grid's centre; only
    its part around the ROI (the ROI's bounding box plus the local-intensity reach) is computed and returned.
    The mask is interpolated linearly and thresholded at ``mask_threshold``.

    Returns
    -------
    image, mask, spacing_mm
    """
    from scipy.ndimage import map_coordinates

    image, mask, sp = _check_inputs(image, mask, spacing_mm)
    new = tuple(float(s) for s in new_spacing_mm)
    shape_old = np.array(image.shape, dtype=float)
    shape_new = np.ceil(shape_old * np.array(sp) / np.array(new)).astype(int)
    idx = np.argwhere(mask)
    lo, hi = idx.min(0), idx.max(0)
    reach = (3.0 / (4.0 * math.pi) * 1000.0) ** (1.0 / 3.0)
    margins = [(reach + 2 * new[ax]) / sp[ax] + 2 for ax in range(3)]
    # new voxels around the ROI, counted before any array is made (a spacing of 1e-6 mm must not allocate)
    n_new = math.prod(min(float(shape_new[ax]), (hi[ax] - lo[ax] + 2 * margins[ax]) * sp[ax] / new[ax] + 1)
                      for ax in range(3))
    if n_new > MAX_RESAMPLED_VOXELS:
        raise InputError(f"resampling to {new} mm voxels gives about {n_new:.3g} voxels around the ROI (at most "
                         f"{MAX_RESAMPLED_VOXELS}); choose a spacing nearer the image's {sp} mm")
    coords = []
    for ax in range(3):
        # voxel centres of the new grid, in old-grid voxel units, both grids centred on the same point
        c = (np.arange(shape_new[ax]) - (shape_new[ax] - 1) / 2.0) * new[ax] / sp[ax] + (shape_old[ax] - 1) / 2.0
        # only the part of the (whole-image) new grid around the ROI is evaluated: same values, less work
        coords.append(c[(c >= lo[ax] - margins[ax]) & (c <= hi[ax] + margins[ax])])
    grid = np.meshgrid(*coords, indexing="ij")
    order = {"nearest": 0, "linear": 1, "cubic": 3}[interpolation]
    img = map_coordinates(image, grid, order=order, mode="nearest", prefilter=order > 1)
    if round_intensities:
        img = np.round(img)
    msk = map_coordinates(mask.astype(np.float64), grid, order=1, mode="constant", cval=0.0) >= mask_threshold
    if not msk.any():
        raise InputError(f"the ROI vanishes when resampled to {new} mm")
    return img, msk, new


def intensity_mask(image: np.ndarray, morph_mask: np.ndarray, *, resegment_range=None,
                   outlier_sigma: float | None = None) -> np.ndarray:
    """The intensity mask: re-segmentation to a range, then outlier filtering (IBSI 2.5)."""
    m = morph_mask.copy()
    if resegment_range is not None:
        lo, hi = resegment_range
        m &= (image >= lo) & (image <= hi)
    if outlier_sigma is not None and m.any():
        vals = image[morph_mask]
        mu, sd = vals.mean(), vals.std()
        m &= np.abs(image - mu) <= outlier_sigma * sd
    if not m.any():
        raise InputError("re-segmentation left no voxel in the intensity mask")
    return m


def discretise(image: np.ndarray, mask: np.ndarray, settings: RadiomicsSettings) -> tuple[np.ndarray, int]:
    """Grey levels 1..Ng inside ``mask`` (0 outside) and Ng (IBSI 2.7).

    * ``none``: the intensities must be integers >= 1; they are the grey levels, Ng = max.
    * ``fbn``: ``floor(Nb (x - min) / (max - min)) + 1``, the maximum put in bin Nb; Ng = Nb.
    * ``fbs``: ``floor((x - x_lo) / w) + 1`` with ``x_lo`` the lower re-segmentation bound (else the ROI
      minimum); Ng = the highest bin present.
    """
    vals = image[mask]
    levels = np.zeros(image.shape, dtype=np.int64)
    disc = settings.discretisation
    if disc is Discretisation.NONE:
        if np.any(vals < 1) or np.any(vals != np.round(vals)):
            raise InputError("discretisation 'none' needs integer intensities >= 1 in the ROI "
                             "(use 'fbn' or 'fbs' for measured images)")
        lv = np.round(vals).astype(np.int64)
        n = int(lv.max())
        if n > MAX_GREY_LEVELS:
            raise InputError(f"discretisation 'none' takes the intensities as grey levels, and the ROI's reach "
                             f"{n} grey levels (at most {MAX_GREY_LEVELS}); use 'fbn' or 'fbs' for this image")
    elif disc is Discretisation.FBN:
        nb = int(settings.n_bins)
        lo, hi = float(vals.min()), float(vals.max())
        if hi > lo:
            lv = np.floor(nb * (vals - lo) / (hi - lo)).astype(np.int64) + 1
            lv = np.minimum(lv, nb)
        else:
            lv = np.ones(vals.shape, dtype=np.int64)
        n = nb
    else:
        w = float(settings.bin_width)
        lo = float(vals.min())
        if settings.resegment_range is not None and math.isfinite(settings.resegment_range[0]):
            lo = settings.resegment_range[0]
        lv = np.floor((vals - lo) / w).astype(np.int64) + 1
        lv = np.maximum(lv, 1)
        n = int(lv.max())
        if n > MAX_GREY_LEVELS:
            raise InputError(f"fixed bin size {w} gives {n} grey levels; choose a larger bin_width for this image's unit")
    levels[mask] = lv
    return levels, n


def _crop(image: np.ndarray, mask: np.ndarray, spacing_mm) -> tuple[np.ndarray, np.ndarray]:
    """Crop to the ROI's bounding box plus the local-intensity sphere's reach (6.2 mm) and one voxel, so the
    texture matrices scale with the ROI, not the image; no feature sees beyond that margin."""
    idx = np.argwhere(mask)
    lo, hi = idx.min(0), idx.max(0) + 1
    reach = (3.0 / (4.0 * math.pi) * 1000.0) ** (1.0 / 3.0)
    margin = np.ceil(reach / np.asarray(spacing_mm)).astype(int) + 1
    sl = tuple(slice(max(0, a - m), min(n, b + m)) for a, b, m, n in zip(lo, hi, margin, image.shape))
    return image[sl], mask[sl]


def _check_finite_near_roi(image: np.ndarray, mask: np.ndarray, spacing_mm, settings: RadiomicsSettings) -> None:
    """Refuse NaN / infinite voxels that interpolation or the local-intensity sphere would read.

    Inside the ROI they are refused by :func:`_check_inputs`; just outside it they would otherwise be smeared
    into the ROI by resampling or turn ``loc_peak_*`` into NaN without a word. Voxels farther away than the
    sphere's reach (6.2 mm) plus two new voxels plus the interpolation kernel are never read and may be NaN
    (e.g. outside a scanner's field of view).
    """
    reach = (3.0 / (4.0 * math.pi) * 1000.0) ** (1.0 / 3.0)
    new = settings.spacing_mm or spacing_mm
    idx = np.argwhere(mask)
    lo, hi = idx.min(0), idx.max(0) + 1
    margin = np.ceil((reach + 2.0 * np.asarray(new)) / np.asarray(spacing_mm)).astype(int) + 4
    sl = tuple(slice(max(0, a - m), min(n, b + m)) for a, b, m, n in zip(lo, hi, margin, image.shape))
    bad = ~np.isfinite(image[sl])
    if bad.any():
        where = tuple(int(i + s.start) for i, s in zip(np.argwhere(bad)[0], sl))
        raise InputError(f"the image holds {int(bad.sum())} NaN or infinite voxel(s) next to the ROI (first at "
                         f"(z, y, x) = {where}), where interpolation and the local-intensity sphere read it")


def process(image: np.ndarray, mask: np.ndarray, spacing_mm, settings: RadiomicsSettings) -> ProcessedROI:
    """Interpolation, masks and discretisation in the IBSI order."""
    image, mask, sp = _check_inputs(image, mask, spacing_mm)
    _check_finite_near_roi(image, mask, sp, settings)
    if settings.spacing_mm is not None and tuple(settings.spacing_mm) != sp:
        image, mask, sp = resample(image, mask, sp, settings.spacing_mm, interpolation=settings.interpolation,
                                   mask_threshold=settings.mask_threshold,
                                   round_intensities=settings.round_intensities)
    image, mask = _crop(image, mask, sp)
    imask = intensity_mask(image, mask, resegment_range=settings.resegment_range,
                           outlier_sigma=settings.outlier_sigma)
    levels, n = discretise(image, imask, settings)
    return ProcessedROI(image=image, morph_mask=mask, int_mask=imask, levels=levels, n_levels=n, spacing_mm=sp)
