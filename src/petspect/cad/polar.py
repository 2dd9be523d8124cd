"""Left-ventricular polar maps ("bull's-eye") and the AHA 17-segment model.

The myocardium is sampled on the mid-wall prolate ellipsoid of the analysis LV frame (:mod:`petspect.cad.cohort`:
the phantom's frame perturbed as an automatic reorientation would be): for ring angle ``theta`` (0 = apex,
90 deg = base plane) and sector angle ``phi`` (0 anterior, 90 septal, 180 inferior, 270 lateral), points
``c + rho (a_m cos(theta) u + b_m sin(theta) (cos(phi) ant + sin(phi) sep))`` for ``rho`` in [0.6, 1.4] are
interpolated trilinearly and the maximum along ``rho`` is kept (maximum-count circumferential profiles,
Garcia EV et al, J Nucl Med 1985;26:17-26). ``a_m``, ``b_m`` are the mid-wall semi-axes.

Segments (Cerqueira MD et al, Circulation 2002;105:539-542), by ring: apex cap theta < 20 deg (segment 17),
apical 20-45 deg (13 anterior, 14 septal, 15 inferior, 16 lateral; 90 deg sectors centred on 0/90/180/270),
mid 45-67.5 deg (7-12) and basal 67.5-90 deg (1-6): anterior, anteroseptal, inferoseptal, inferior,
inferolateral, anterolateral (60 deg sectors starting at -30 deg).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from petspect.errors import InputError

__all__ = ["polar_map", "segment_index", "segment_means", "N_RINGS", "N_SECTORS"]

N_RINGS = 16
N_SECTORS = 36


def _ring_centres(n_rings: int) -> np.ndarray:
    return (np.arange(n_rings) + 0.5) * (90.0 / n_rings)


def _sector_centres(n_sectors: int) -> np.ndarray:
    return (np.arange(n_sectors) + 0.5) * (360.0 / n_sectors) - 90.0


def polar_map(image: np.ndarray, volume, frame: dict, *, n_rings: int = N_RINGS, n_sectors: int = N_SECTORS,
              n_depth: int = 9) -> np.ndarray:
    """Maximum-count polar map ``(n_rings, n_sectors)`` of ``image`` (same grid as the axial Volume ``volume``).

    ``frame``: ``c``, ``u``, ``ant``, ``sep`` (LPS mm / unit vectors), ``long_mm``, ``radius_mm``, ``wall_mm``.
    """
    img = torch.as_tensor(np.asarray(image, dtype=np.float32))
    if img.ndim != 3 or tuple(img.shape) != tuple(volume.shape):
        raise InputError(f"image shape {tuple(img.shape)} does not match the grid {tuple(volume.shape)}")
    th = np.deg2rad(_ring_centres(n_rings))[:, None, None]
    ph = np.deg2rad(_sector_centres(n_sectors))[None, :, None]
    rho = np.linspace(0.6, 1.4, n_depth)[None, None, :]
    a_m = frame["long_mm"] - frame["wall_mm"] / 2.0
    b_m = frame["radius_mm"] - frame["wall_mm"] / 2.0
    c, u, ant, sep = (np.asarray(frame[k], dtype=np.float64) for k in ("c", "u", "ant", "sep"))
    along = rho * a_m * np.cos(th)
    radial = rho * b_m * np.sin(th)
    pts = (c + along[..., None] * u + (radial * np.cos(ph))[..., None] * ant + (radial * np.sin(ph))[..., None] * sep)
    idx = np.asarray(volume.world_to_voxel(pts.reshape(-1, 3)), dtype=np.float64)  # (k, (z, y, x))
    shape = np.asarray(volume.shape, dtype=np.float64)
    norm = 2.0 * idx / np.maximum(shape - 1.0, 1.0) - 1.0
    grid = torch.as_tensor(norm[:, ::-1].copy(), dtype=torch.float32).view(1, 1, 1, -1, 3)
    vals = F.grid_sample(img[None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return vals.view(n_rings, n_sectors, n_depth).amax(-1).numpy()


def segment_index(n_rings: int = N_RINGS, n_sectors: int = N_SECTORS) -> np.ndarray:
    """AHA segment number (1-17) of every polar-map bin, ``(n_rings, n_sectors)``."""
    th = _ring_centres(n_rings)[:, None] * np.ones((1, n_sectors))
    ph = np.ones((n_rings, 1)) * _sector_centres(n_sectors)[None, :]
    seg = np.zeros((n_rings, n_sectors), dtype=np.int64)
    six = ((ph + 30.0) % 360.0 // 60.0).astype(np.int64)  # 0 anterior .. 5 anterolateral
    four = ((ph + 45.0) % 360.0 // 90.0).astype(np.int64)  # 0 anterior, 1 septal, 2 inferior, 3 lateral
    seg[th >= 67.5] = 1 + six[th >= 67.5]
    mid = (th >= 45.0) & (th < 67.5)
    seg[mid] = 7 + six[mid]
    api = (th >= 20.0) & (th < 45.0)
    seg[api] = 13 + four[api]
    seg[th < 20.0] = 17
    return seg


def segment_means(pmap: np.ndarray) -> np.ndarray:
    """Mean of a polar map in each of the 17 segments, ``(17,)`` (segment k at index k - 1)."""
    seg = segment_index(*pmap.shape)
    return np.array([pmap[seg == k].mean() for k in range(1, 18)])
