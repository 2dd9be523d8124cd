"""Segmentation-based attenuation maps: from MR (air / lung / soft tissue, optionally bone) and from NAC PET.

MR-based (the PET/MR vendors' Dixon approach, Martinez-Moeller et al, J Nucl Med 50:520, 2009): the body
outline from the MR signal (holes filled), inside it large dark regions are lung, everything else soft
tissue; cortical bone, dark on T1/Dixon, is soft tissue unless a UTE-like bone image is given (Keereman et
al, J Nucl Med 51:812, 2010), which adds a bone class. NAC-based: the body outline of the
non-attenuation-corrected PET filled with water.

Class values at 511 keV (approx, as the vendors use them): air 0, lung 0.0224/cm, soft tissue 0.100/cm
(Martinez-Moeller 2009), bone 0.151/cm (Keereman 2010); water for the NAC outline from xraydb
(:func:`petspect.materials.linear_attenuation_per_mm`, ~0.096/cm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from petspect.errors import InputError

__all__ = ["MU_CLASSES_PER_MM", "MrSegmentation", "body_outline", "mr_segmentation_mu", "nac_body_mask",
           "nac_outline_mu"]

#: 511 keV class values in 1/mm (module docstring)
MU_CLASSES_PER_MM = {"air": 0.0, "lung": 0.00224, "soft_tissue": 0.0100, "bone": 0.0151}


@dataclass(frozen=True)
class MrSegmentation:
    """Thresholds of :func:`mr_segmentation_mu` (fractions of the image's 99th percentile inside the body).

    Parameters
    ----------
    body_fraction : float
        Body outline: signal above this fraction.
    lung_fraction : float
        Inside the body, signal below this fraction is dark (lung, air, bone).
    lung_min_ml : float
        Dark connected regions smaller than this are soft tissue (bone, vessels, noise), larger are lung.
    bone_r2_per_ms : float
        UTE R2 map (:func:`petspect.ac.mr_contrasts.ute_bone_image`) above this is bone (soft tissue ~0.02/ms,
        rib/vertebra mixtures 0.09-0.15/ms, skull ~0.9/ms).
    lung : bool
        Look for lungs (False for head scans, as the vendors' head pipelines).
    """

    body_fraction: float = 0.08
    lung_fraction: float = 0.25
    lung_min_ml: float = 40.0
    bone_r2_per_ms: float = 0.05
    lung: bool = True


def _check_image(img, what: str) -> np.ndarray:
    a = np.asarray(img.data if hasattr(img, "data") else img, dtype=np.float32)
    if a.ndim != 3:
        raise InputError(f"{what} must be a 3D image (z, y, x), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InputError(f"{what} holds NaN or infinite values")
    if float(np.percentile(a, 99)) <= 0:
        raise InputError(f"{what} is empty (99th percentile <= 0)")
    return a


def body_outline(image, fraction: float, *, smooth_vox: float = 0.0, keep_edge: bool = True) -> np.ndarray:
    """Body mask: image (smoothed transaxially by ``smooth_vox`` voxels SD) above ``fraction`` of its 99.5th
    percentile, slice-wise closed (``keep_edge``: edge-padded, so a body cut by the image edge keeps it) and holes filled;
    3D components of at least 5 % of the largest kept (the trunk and the arms, not noise). Returns bool
    (z, y, x)."""
    a = _check_image(image, "image")
    if not 0 < fraction < 1:
        raise InputError(f"fraction must be in (0, 1), got {fraction}")
    sm = ndimage.gaussian_filter(a, (0, smooth_vox, smooth_vox)) if smooth_vox > 0 else a
    mask = sm > fraction * float(np.percentile(sm, 99.5))
    # closing pads with the edge values: a body cut by the field of view keeps its border voxels (plain
    # binary_closing erodes 2 voxels wherever the mask touches the image edge)
    if keep_edge:
        closed = [ndimage.binary_closing(np.pad(m, 2, mode="edge"), iterations=2)[2:-2, 2:-2] for m in mask]
    else:  # the former behaviour, kept for the NAC outline (see nac_body_mask)
        closed = [ndimage.binary_closing(m, iterations=2) for m in mask]
    mask = np.stack([ndimage.binary_fill_holes(m) for m in closed])
    lab, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = ndimage.sum(mask, lab, index=range(1, n + 1))
    return np.isin(lab, 1 + np.nonzero(sizes >= 0.05 * sizes.max())[0])


def nac_body_mask(nac, *, fraction: float = 0.35, keep_edge: bool = False) -> np.ndarray:
    """Body outline of a NAC PET image: smoothed (one voxel SD) above ``fraction`` of the median of the voxels
    above 2 % of the maximum (a body level that hot organs, e.g. PSMA kidneys, do not set), holes filled.

    ``keep_edge`` False keeps the former edge erosion (2 voxels where the body touches the image edge): with
    the edge kept, MLAA started from :func:`nac_outline_mu` with its SSS scatter ended farther from the CT's
    line integrals (tests/recon/test_mlaa.py: 0.130 -> 0.171 against 0.148 -> 0.119); not yet understood."""
    a = _check_image(nac, "NAC image")
    sm = ndimage.gaussian_filter(a, (0, 1.0, 1.0))
    ref = float(np.median(sm[sm > 0.02 * sm.max()]))
    top = float(np.percentile(sm, 99.5))
    return body_outline(a, min(0.99, max(1e-4, fraction * ref / top)), smooth_vox=1.0, keep_edge=keep_edge)


def nac_outline_mu(nac, *, fraction: float = 0.35, water_mu_per_mm: float | None = None) -> torch.Tensor:
    """:func:`nac_body_mask` filled with water: mu (1/mm), float32 (z, y, x)."""
    from petspect.materials import linear_attenuation_per_mm

    mu_w = linear_attenuation_per_mm("water", 511.0) if water_mu_per_mm is None else float(water_mu_per_mm)
    return torch.from_numpy(nac_body_mask(nac, fraction=fraction).astype(np.float32) * mu_w)


def mr_segmentation_mu(mr, *, spacing_mm, bone_image=None, settings: MrSegmentation | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-based mu map from an MR image (and optionally a UTE-like bone image).

    Parameters
    ----------
    mr : array or Volume, shape (z, y, x)
        T1-weighted or Dixon-like magnitude image (a.u.).
    spacing_mm : (float, float, float)
        Voxel size (z, y, x), for the lung volume threshold.
    bone_image : array or Volume, optional
        UTE R2 map (1/ms) where cortical bone is high; without it there is no bone class.
    settings : MrSegmentation, optional

    Returns
    -------
    (mu, classes) : (torch.Tensor, torch.Tensor)
        mu in 1/mm (float32) and the class map (uint8: 0 air, 1 lung, 2 soft tissue, 3 bone).
    """
    s = settings or MrSegmentation()
    a = _check_image(mr, "MR image")
    body = body_outline(a, s.body_fraction)
    ref = float(np.percentile(a[body], 99)) if body.any() else float(np.percentile(a, 99))
    dark = body & (a < s.lung_fraction * ref)
    # seeds: dark regions that survive an opening (thin dark shells such as the skull do not), grown back
    # over the connected dark voxels (morphological reconstruction), so lung edges are kept
    seeds = np.stack([ndimage.binary_opening(m, iterations=1) for m in dark])
    lab, n = ndimage.label(seeds)
    voxel_ml = float(np.prod(spacing_mm)) * 1e-3
    lung = np.zeros_like(dark)
    if n and s.lung:
        sizes = ndimage.sum(seeds, lab, index=range(1, n + 1)) * voxel_ml
        lung = ndimage.binary_propagation(np.isin(lab, 1 + np.nonzero(sizes >= s.lung_min_ml)[0]), mask=dark)
    classes = np.where(body, 2, 0).astype(np.uint8)
    classes[lung] = 1
    if bone_image is not None:
        b = _check_image(bone_image, "bone image")
        if b.shape != a.shape:
            raise InputError(f"bone image shape {b.shape} != MR shape {a.shape}")
        classes[body & ~lung & (ndimage.gaussian_filter(b, (0, 0.5, 0.5)) > s.bone_r2_per_ms)] = 3
    lut = np.array([MU_CLASSES_PER_MM[k] for k in ("air", "lung", "soft_tissue", "bone")], dtype=np.float32)
    return torch.from_numpy(lut[classes]), torch.from_numpy(classes)
