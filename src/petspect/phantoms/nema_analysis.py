"""NEMA NU 2 image-quality analysis of any image of the IEC body phantom (simulated or measured).

:func:`analyse_iec` takes a :class:`~petspect.volume.Volume` in any orientation and voxel size,
finds the phantom, its sphere plane and the six spheres by itself, then follows NEMA NU 2-2018
section 7.4: circular ROIs of the sphere inner diameters on the slice through the sphere centres;
12 background ROIs of 37 mm (and concentric 28 ... 10 mm ones) on that slice and on the slices at
+-10 and +-20 mm (60 per size), centred at least 15 mm from the phantom edge and 15 mm from any
sphere; a 30 mm ROI on the lung insert in the same five slices.

Localisation (in :func:`locate_iec`)
------------------------------------
1. Body: Otsu threshold of the smoothed image, background level = median above it, body = above
   half the background level; its axial extent from the body area per slice.
2. Sphere plane: the slice where the body interior (15 mm in from the edge) departs most from the
   background level (|image - background| summed; the lung insert adds the same to every slice).
3. Ring centre: the lung insert is the cold 42 mm disc in slices 30-60 mm from the sphere plane
   (disc-mean template on the cold residual).
4. Ring rotation and handedness: on the sphere plane, disc-mean images of each sphere diameter are
   sampled at the six ring positions (radius 57.2 mm); the area-weighted score
   ``sum_k A_k |mean_k - background|`` (a matched filter) is searched over angle (1 deg) and both handednesses, then angle and centre are refined
   (Nelder-Mead) and the plane height refined by a parabola through the per-slice scores.

ROI means use partial-pixel weights (the ROI disc supersampled on the pixel grid).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from petspect.errors import InputError
from petspect.metrics.nema import (background_variability_pct, cold_contrast_pct, hot_contrast_pct,
                                   lung_residual_pct)
from petspect.phantoms.nema_iec import (LUNG_INNER_RADIUS_MM, LUNG_OUTER_RADIUS_MM, SPHERE_DIAMETERS_MM,
                                        SPHERE_RING_RADIUS_MM, SPHERE_WALL_MM)
from petspect.volume import AXIAL_DIRECTION, Volume

__all__ = ["IecGeometry", "analyse_iec", "locate_iec", "geometry_from_centres", "to_axial"]

BACKGROUND_ROI_COUNT = 12
EDGE_CLEARANCE_MM = 15.0
LUNG_ROI_DIAMETER_MM = 30.0
SLICE_OFFSETS_MM = (0.0, -10.0, 10.0, -20.0, 20.0)
SPHERE_STEP_DEG = 60.0


@dataclass
class IecGeometry:
    """Where the phantom is: LPS mm and degrees.

    Attributes
    ----------
    ring_centre_mm : (x, y)
        Centre of the sphere ring (axis of the lung insert).
    plane_z_mm : float
        LPS z of the sphere centres.
    angle_37mm_deg : float
        ``atan2(y, x)`` of the 37 mm sphere about the ring centre.
    handedness : int
        +1 when the diameters (37, 28, ..., 10) follow at +60 deg steps, -1 at -60 deg steps
        (the petspect phantom unrotated has -1).
    score : float
        Template score of the fit: ``sum_k A_k |mean_k - background| / sum_k A_k`` with ``A_k`` the
        ROI areas (a matched filter of the six sphere discs).
    """

    ring_centre_mm: tuple[float, float]
    plane_z_mm: float
    angle_37mm_deg: float
    handedness: int
    score: float = float("nan")

    def sphere_centres_mm(self) -> np.ndarray:
        """LPS centres (6, 3) of the spheres, in the order of :data:`SPHERE_DIAMETERS_MM`."""
        return _ring_points(np.asarray(self.ring_centre_mm), self.angle_37mm_deg, self.handedness,
                            z=self.plane_z_mm)


def _ring_points(centre_xy: np.ndarray, angle_deg: float, handedness: int, z: float | None = None) -> np.ndarray:
    psi = np.radians(angle_deg + handedness * SPHERE_STEP_DEG * np.arange(6))
    xy = centre_xy[None, :2] + SPHERE_RING_RADIUS_MM * np.stack([np.cos(psi), np.sin(psi)], axis=1)
    return xy if z is None else np.column_stack([xy, np.full(6, z)])


def geometry_from_centres(centres_mm: Any) -> IecGeometry:
    """The :class:`IecGeometry` of six known sphere centres (6, 3), ordered 37 ... 10 mm."""
    c = np.asarray(centres_mm, dtype=np.float64)
    if c.shape != (6, 3):
        raise InputError(f"need six sphere centres (6, 3), got shape {c.shape}")
    centre = c[:, :2].mean(axis=0)
    a0 = math.degrees(math.atan2(c[0, 1] - centre[1], c[0, 0] - centre[0]))
    a1 = math.degrees(math.atan2(c[1, 1] - centre[1], c[1, 0] - centre[0]))
    step = (a1 - a0 + 180.0) % 360.0 - 180.0
    return IecGeometry((float(centre[0]), float(centre[1])), float(c[:, 2].mean()), a0, 1 if step > 0 else -1)


# --------------------------------------------------------------------------- image handling
def to_axial(volume: Volume) -> Volume:
    """The image on an axial grid (direction = identity axes, rows +y, columns +x, slices +z).

    A grid whose axes are LPS axes in any order and sign is permuted and flipped exactly; an oblique
    grid is resampled (trilinear) onto an axial grid covering it at its smallest spacing.
    """
    d = np.asarray(volume.direction)
    perm = np.abs(d).argmax(axis=0)  # LPS axis (0=x, 1=y, 2=z) of each array axis
    if np.allclose(np.abs(d), np.eye(3)[:, perm], atol=1e-6) and sorted(perm) == [0, 1, 2]:
        data = volume.data.detach().cpu()
        flips = [a for a in range(3) if d[perm[a], a] < 0]
        origin = volume.voxel_to_world([(n - 1) if a in flips else 0 for a, n in enumerate(volume.shape)])
        data = data.flip(flips) if flips else data
        order = [int(np.flatnonzero(perm == lps)[0]) for lps in (2, 1, 0)]  # array axes for z, y, x
        sp = [volume.spacing_mm[a] for a in order]
        return Volume(data.permute(order).contiguous(), sp, origin, AXIAL_DIRECTION, unit=volume.unit,
                      modality=volume.modality, meta=volume.meta)
    corners = volume.voxel_to_world(np.array([[i, j, k] for i in (0, volume.shape[0] - 1)
                                              for j in (0, volume.shape[1] - 1) for k in (0, volume.shape[2] - 1)]))
    s = min(volume.spacing_mm)
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    shape = tuple(int(math.floor((hi[2 - a] - lo[2 - a]) / s)) + 1 for a in range(3))
    ref = Volume(torch.zeros(shape, dtype=torch.float32), (s, s, s), lo, AXIAL_DIRECTION)
    return volume.to("cpu", dtype=torch.float32).resample_to(ref)


class _Slices:
    """The axial image as NumPy with its pixel coordinates (mm)."""

    def __init__(self, vol: Volume) -> None:
        self.img = vol.numpy().astype(np.float64)
        self.dz, self.dy, self.dx = vol.spacing_mm
        self.x0, self.y0, self.z0 = vol.origin_mm
        self.nz, self.ny, self.nx = self.img.shape
        self.vol = vol

    def z_of(self, k: Any) -> Any:
        return self.z0 + np.asarray(k) * self.dz

    def k_of(self, z: float) -> float:
        return (z - self.z0) / self.dz

    def pix(self, xy: np.ndarray) -> np.ndarray:
        """Fractional (row, col) of LPS (x, y) points (..., 2)."""
        xy = np.asarray(xy, dtype=np.float64)
        return np.stack([(xy[..., 1] - self.y0) / self.dy, (xy[..., 0] - self.x0) / self.dx], axis=-1)

    def plane(self, z: float, img: np.ndarray | None = None) -> np.ndarray:
        """The image (or ``img`` on the same grid) at height z (mm), linear between slices."""
        img = self.img if img is None else img
        k = float(np.clip(self.k_of(z), 0, self.nz - 1))
        k0 = int(math.floor(k))
        k1 = min(k0 + 1, self.nz - 1)
        w = k - k0
        return (1 - w) * img[k0] + w * img[k1]


def _disc_kernel(diameter_mm: float, dy: float, dx: float, n_sub: int = 4) -> np.ndarray:
    """Normalised partial-pixel disc kernel (rows, cols)."""
    r = diameter_mm / 2.0
    hy, hx = int(math.ceil(r / dy)) + 1, int(math.ceil(r / dx)) + 1
    u = (np.arange(n_sub) + 0.5) / n_sub - 0.5
    yy = (np.arange(-hy, hy + 1)[:, None] + u[None, :]).reshape(-1) * dy
    xx = (np.arange(-hx, hx + 1)[:, None] + u[None, :]).reshape(-1) * dx
    inside = (yy[:, None] ** 2 + xx[None, :] ** 2) <= r * r
    k = inside.reshape(2 * hy + 1, n_sub, 2 * hx + 1, n_sub).mean(axis=(1, 3))
    return k / k.sum()


def _disc_mean(image2d: np.ndarray, diameter_mm: float, dy: float, dx: float) -> np.ndarray:
    from scipy.signal import fftconvolve

    return fftconvolve(image2d, _disc_kernel(diameter_mm, dy, dx), mode="same")


def _spline(image2d: np.ndarray) -> np.ndarray:
    """Cubic B-spline coefficients of an image, for :func:`_sample`."""
    from scipy.ndimage import spline_filter

    return spline_filter(image2d, order=3, mode="nearest")


def _sample(coeffs: np.ndarray, rc: np.ndarray) -> np.ndarray:
    """Cubic-spline values at fractional (row, col) points (..., 2): smooth, so a maximum found by
    the optimiser does not snap to pixel centres as it does with linear interpolation."""
    from scipy.ndimage import map_coordinates

    return map_coordinates(coeffs, np.moveaxis(np.asarray(rc), -1, 0), order=3, mode="nearest", prefilter=False)


# --------------------------------------------------------------------------- localisation
def _body(s: _Slices) -> tuple[np.ndarray, np.ndarray, float]:
    """3D body mask, smoothed image and background level."""
    from scipy.ndimage import binary_fill_holes, gaussian_filter
    from skimage.filters import threshold_otsu

    sm = gaussian_filter(s.img, sigma=[3.0 / s.dz, 3.0 / s.dy, 3.0 / s.dx])
    if not np.isfinite(sm).all() or float(sm.max()) <= float(sm.min()):
        raise InputError("cannot find the phantom: the image is constant or not finite")
    t = threshold_otsu(sm)
    bkg = float(np.median(sm[sm > t]))
    if not np.isfinite(bkg) or bkg <= 0:
        raise InputError("cannot find the phantom: the image has no positive background")
    body = sm > 0.5 * bkg
    for k in range(body.shape[0]):  # the cold lung insert and cold spheres lie inside the body
        body[k] = binary_fill_holes(body[k])
    return body, sm, bkg


def _interior(mask2d: np.ndarray, s: _Slices, inset_mm: float) -> np.ndarray:
    from scipy.ndimage import distance_transform_edt

    return distance_transform_edt(mask2d, sampling=(s.dy, s.dx)) >= inset_mm


def _sphere_plane(s: _Slices, body: np.ndarray, sm: np.ndarray, bkg: float) -> tuple[float, tuple[int, int]]:
    area = body.sum(axis=(1, 2))
    inside = np.flatnonzero(area > 0.5 * area.max())
    margin = int(math.ceil(EDGE_CLEARANCE_MM / s.dz))
    k_lo, k_hi = inside.min() + margin, inside.max() - margin
    if k_hi - k_lo < 2:
        raise InputError("cannot find the phantom: its body spans too few slices")
    sig = np.zeros(s.nz)
    for k in range(k_lo, k_hi + 1):
        m = _interior(body[k], s, EDGE_CLEARANCE_MM)
        sig[k] = np.abs(sm[k][m] - bkg).sum() * s.dy * s.dx
    k = int(np.argmax(sig))
    return float(s.z_of(k) + _parabola_offset(sig, k) * s.dz), (int(inside.min()), int(inside.max()))


def _parabola_offset(values: np.ndarray, k: int) -> float:
    if k <= 0 or k >= len(values) - 1:
        return 0.0
    a, b, c = values[k - 1], values[k], values[k + 1]
    den = a - 2 * b + c
    return float(np.clip(0.5 * (a - c) / den, -0.5, 0.5)) if den < 0 else 0.0


def _lung_centre(s: _Slices, body: np.ndarray, sm: np.ndarray, plane_z: float, body_k: tuple[int, int]) -> np.ndarray:
    ks = [k for k in range(body_k[0], body_k[1] + 1)
          if 30.0 <= abs(s.z_of(k) - plane_z) <= 60.0 and min(k - body_k[0], body_k[1] - k) * s.dz >= EDGE_CLEARANCE_MM]
    if not ks:
        ks = [k for k in range(body_k[0], body_k[1] + 1) if abs(s.z_of(k) - plane_z) >= 25.0] or [int(round(s.k_of(plane_z)))]
    img = sm[ks].mean(axis=0)
    inner = _interior(body[ks].all(axis=0), s, 10.0)
    if not inner.any():
        raise InputError("cannot find the phantom's lung insert: the body interior is empty")
    level = float(np.median(img[inner]))
    cold = np.where(inner, np.clip(level - img, 0, None), 0.0)
    score = _disc_mean(cold, 2 * LUNG_INNER_RADIUS_MM, s.dy, s.dx)
    r, c = np.unravel_index(int(np.argmax(score)), score.shape)
    return np.array([s.x0 + c * s.dx, s.y0 + r * s.dy])


def _ring_score_fn(s: _Slices, plane: np.ndarray, level: float):
    maps = [_spline(_disc_mean(plane - level, d, s.dy, s.dx)) for d in SPHERE_DIAMETERS_MM]
    areas = np.asarray(SPHERE_DIAMETERS_MM) ** 2
    weights = areas / areas.sum()

    def score(centre_xy: np.ndarray, angles_deg: np.ndarray, handedness: int) -> np.ndarray:
        psi = np.radians(np.asarray(angles_deg)[:, None] + handedness * SPHERE_STEP_DEG * np.arange(6)[None])
        xy = centre_xy[None, None, :] + SPHERE_RING_RADIUS_MM * np.stack([np.cos(psi), np.sin(psi)], axis=-1)
        rc = s.pix(xy)
        # matched filter: ROI sums (area x mean), so a small ROI on a big sphere scores less than
        # the big ROI would there, and only the true assignment collects every sphere in full
        return sum(w * np.abs(_sample(m, rc[:, k])) for k, (w, m) in enumerate(zip(weights, maps)))

    return score


def _fit_ring(s: _Slices, plane: np.ndarray, level: float, centre0: np.ndarray) -> tuple[np.ndarray, float, int, float]:
    from scipy.optimize import minimize

    score = _ring_score_fn(s, plane, level)
    angles = np.arange(0.0, 360.0, 1.0)
    best = max(((float(v), float(a), h) for h in (1, -1) for a, v in zip(angles, score(centre0, angles, h))))
    _, a0, hand = best

    def neg(p: np.ndarray) -> float:
        return -float(score(p[:2], np.array([p[2]]), hand)[0])

    res = minimize(neg, np.array([centre0[0], centre0[1], a0]), method="Nelder-Mead",
                   options={"xatol": 0.05, "fatol": 1e-9 * abs(level) + 1e-12, "initial_simplex": np.array(
                       [[centre0[0], centre0[1], a0], [centre0[0] + 3, centre0[1], a0],
                        [centre0[0], centre0[1] + 3, a0], [centre0[0], centre0[1], a0 + 3]])})
    return res.x[:2], float(res.x[2] % 360.0), hand, -float(res.fun)


def locate_iec(volume: Volume) -> IecGeometry:
    """Find the IEC phantom's sphere ring in an image (see the module docstring for the method).

    Parameters
    ----------
    volume : Volume
        Any orientation and voxel size; the phantom axis along LPS z (as scanned).

    Returns
    -------
    IecGeometry
    """
    s = _Slices(to_axial(volume))
    return _locate(s, *_body(s))


def _locate(s: _Slices, body: np.ndarray, sm: np.ndarray, bkg: float) -> IecGeometry:
    plane_z, body_k = _sphere_plane(s, body, sm, bkg)
    centre0 = _lung_centre(s, body, sm, plane_z, body_k)
    level_mask = _interior(body[int(round(s.k_of(plane_z)))], s, EDGE_CLEARANCE_MM)
    # fine pixels are noisy: fit on the smoothed image there, on the image itself otherwise
    plane = s.plane(plane_z, sm if min(s.dy, s.dx) < 1.5 else None)
    level = float(np.median(plane[level_mask]))
    centre, angle, hand, sc = _fit_ring(s, plane, level, centre0)
    plane_z = _refine_plane(s, centre, angle, hand, plane_z, level)
    return IecGeometry((float(centre[0]), float(centre[1])), plane_z, angle, hand, sc)


def _refine_plane(s: _Slices, centre: np.ndarray, angle: float, hand: int, plane_z: float, level: float) -> float:
    k0 = int(round(s.k_of(plane_z)))
    ks = list(range(max(k0 - 3, 0), min(k0 + 4, s.nz)))
    pts = s.pix(_ring_points(centre, angle, hand))
    vals = []
    for k in ks:
        maps = [_spline(_disc_mean(s.img[k] - level, d, s.dy, s.dx)) for d in SPHERE_DIAMETERS_MM]
        vals.append(sum(d * d * abs(float(_sample(m, pts[i][None])[0]))
                        for i, (d, m) in enumerate(zip(SPHERE_DIAMETERS_MM, maps))))
    vals = np.asarray(vals)
    i = int(np.argmax(vals))
    return float(s.z_of(ks[i]) + _parabola_offset(vals, i) * s.dz)


# --------------------------------------------------------------------------- ROI analysis
def _roi(s: _Slices, centre_xy: Sequence[float], diameter_mm: float, n_sub: int = 8) -> tuple[slice, slice, np.ndarray]:
    """Partial-pixel weights of a disc ROI: (row slice, col slice, weights) on the slice grid."""
    r = diameter_mm / 2.0
    rc = s.pix(np.asarray(centre_xy, dtype=np.float64)[:2])
    r0, r1 = max(int(math.floor(rc[0] - r / s.dy)) - 1, 0), min(int(math.ceil(rc[0] + r / s.dy)) + 2, s.ny)
    c0, c1 = max(int(math.floor(rc[1] - r / s.dx)) - 1, 0), min(int(math.ceil(rc[1] + r / s.dx)) + 2, s.nx)
    if r1 <= r0 or c1 <= c0:
        raise InputError(f"ROI at {list(centre_xy)} mm lies outside the image")
    u = (np.arange(n_sub) + 0.5) / n_sub - 0.5
    yy = ((np.arange(r0, r1)[:, None] + u[None]).reshape(-1) - rc[0]) * s.dy
    xx = ((np.arange(c0, c1)[:, None] + u[None]).reshape(-1) - rc[1]) * s.dx
    inside = (yy[:, None] ** 2 + xx[None, :] ** 2) <= r * r
    w = inside.reshape(r1 - r0, n_sub, c1 - c0, n_sub).mean(axis=(1, 3))
    return slice(r0, r1), slice(c0, c1), w


def _roi_stats(img2d: np.ndarray, roi: tuple[slice, slice, np.ndarray]) -> tuple[float, float]:
    """Weighted mean and weighted SD of the pixels in an ROI."""
    rs, cs, w = roi
    v = img2d[rs, cs]
    mean = float((w * v).sum() / w.sum())
    return mean, float(math.sqrt(max((w * (v - mean) ** 2).sum() / w.sum(), 0.0)))


def _background_centres(s: _Slices, body2d: np.ndarray, geo: IecGeometry) -> np.ndarray:
    """12 background ROI centres (x, y): 15 mm clear of the edge, the spheres and the lung insert.

    Candidates are the pixel centres that keep a 37 mm ROI at least 15 mm from the phantom edge,
    from every sphere (outer wall) and from the lung insert; 12 of them are spread by
    farthest-point sampling (starting from the one furthest from the ring centre), then moved one
    at a time to maximise their smallest mutual distance.
    """
    from scipy.ndimage import distance_transform_edt

    r_roi = SPHERE_DIAMETERS_MM[0] / 2.0
    edge = distance_transform_edt(body2d, sampling=(s.dy, s.dx))
    yy, xx = np.meshgrid(s.y0 + np.arange(s.ny) * s.dy, s.x0 + np.arange(s.nx) * s.dx, indexing="ij")
    ok = edge >= EDGE_CLEARANCE_MM + r_roi
    for d, c in zip(SPHERE_DIAMETERS_MM, geo.sphere_centres_mm()):
        ok &= np.hypot(xx - c[0], yy - c[1]) >= d / 2 + SPHERE_WALL_MM + EDGE_CLEARANCE_MM + r_roi
    cx, cy = geo.ring_centre_mm
    dist_ring = np.hypot(xx - cx, yy - cy)
    ok &= dist_ring >= LUNG_OUTER_RADIUS_MM + EDGE_CLEARANCE_MM + r_roi
    cand = np.column_stack([xx[ok], yy[ok]])
    if cand.shape[0] < BACKGROUND_ROI_COUNT:
        raise InputError("not enough background room for the 12 NU 2 background ROIs; is this an IEC phantom?")
    chosen = [int(np.argmax(dist_ring[ok]))]
    dmin = np.hypot(*(cand - cand[chosen[0]]).T)
    for _ in range(BACKGROUND_ROI_COUNT - 1):
        chosen.append(int(np.argmax(dmin)))
        dmin = np.minimum(dmin, np.hypot(*(cand - cand[chosen[-1]]).T))
    return cand[_spread(cand, chosen)]


def _spread(cand: np.ndarray, chosen: list[int], rounds: int = 20) -> list[int]:
    """Move each chosen point in turn to the candidate furthest from all the others (max-min spread)."""
    chosen = list(chosen)
    for _ in range(rounds):
        moved = False
        for i in range(len(chosen)):
            others = cand[[c for j, c in enumerate(chosen) if j != i]]
            dmin = np.linalg.norm(cand[:, None] - others[None], axis=-1).min(axis=1)
            best = int(np.argmax(dmin))
            if dmin[best] > dmin[chosen[i]] + 1e-9:
                chosen[i], moved = best, True
        if not moved:
            break
    return chosen


def _refine_centres(s: _Slices, img2d: np.ndarray, level: float, centres: np.ndarray, radius_mm: float) -> np.ndarray:
    """Move each sphere ROI (within ``radius_mm`` in-plane) to where its |mean - background| peaks."""
    from scipy.optimize import minimize

    out = centres.copy()
    for i, (d, c) in enumerate(zip(SPHERE_DIAMETERS_MM, centres)):
        coeffs = _spline(_disc_mean(img2d - level, d, s.dy, s.dx))

        def neg(p: np.ndarray) -> float:
            if np.hypot(*(p - c[:2])) > radius_mm:
                return 0.0  # no better than an ROI with no contrast at all
            return -abs(float(_sample(coeffs, s.pix(p)[None])[0]))

        simplex = np.array([c[:2], c[:2] + [0.5, 0.0], c[:2] + [0.0, 0.5]])
        res = minimize(neg, c[:2], method="Nelder-Mead", options={"xatol": 0.02, "initial_simplex": simplex})
        out[i, :2] = res.x
    return out


def _slice_indices(s: _Slices, plane_z: float) -> list[int]:
    ks = [int(round(s.k_of(plane_z + off))) for off in SLICE_OFFSETS_MM]
    if min(ks) < 0 or max(ks) >= s.nz:
        raise InputError("the image does not cover the sphere plane +-20 mm that NU 2 analyses")
    return ks


def _hot_flags(hot_spheres: int | Sequence[float] | None, sphere_means: list[float], level: float) -> list[bool]:
    if hot_spheres is None:
        return [m > level for m in sphere_means]
    from petspect.phantoms.nema_iec import _sphere_hot_flags

    return _sphere_hot_flags(hot_spheres)


def _activity_ratio(volume: Volume, activity_ratio: float | None) -> tuple[float, str]:
    if activity_ratio is not None:
        return float(activity_ratio), "argument"
    if "sphere_to_background" in volume.meta:
        return float(volume.meta["sphere_to_background"]), "image metadata"
    return 4.0, "assumed (NU 2 default 4:1)"


def analyse_iec(volume: Volume, *, activity_ratio: float | None = None,
                hot_spheres: int | Sequence[float] | None = None, geometry: IecGeometry | None = None,
                refine_spheres_mm: float = 0.0) -> dict[str, Any]:
    """NEMA NU 2-2018 section 7.4 image-quality analysis of an IEC body phantom image.

    Parameters
    ----------
    volume : Volume
        Reconstructed image (Bq/mL, SUV, counts, ...), any orientation and voxel size, phantom axis
        along LPS z.
    activity_ratio : float, optional
        True hot-sphere to background ratio ``a_H / a_B``; default from ``volume.meta
        ["sphere_to_background"]`` (petspect phantoms set it), else 4.
    hot_spheres : int or sequence of float, optional
        Which spheres are hot (as in :func:`~petspect.phantoms.nema_iec.make_nema_iec`); default:
        a sphere is hot when its ROI mean exceeds the background.
    geometry : IecGeometry, optional
        Known sphere positions (skips :func:`locate_iec`).
    refine_spheres_mm : float
        When > 0, each sphere ROI may move up to this far in-plane from the rigid ring fit to where
        its contrast peaks (real phantoms' spheres sit ~1 mm off nominal; in noisy images this
        biases the small spheres' contrast upwards). 0 (default) keeps the rigid NU 2 template.

    Returns
    -------
    dict
        JSON-serialisable: ``geometry``, ``activity_ratio``, ``spheres`` (per sphere: diameter,
        centre, kind, ROI mean, background mean/SD of its size, ``contrast_pct`` = Q_H or Q_C,
        ``background_variability_pct`` = N), ``background`` (37 mm ROI mean, voxel SD and CV,
        ROI centres), ``lung`` (per-slice and mean residual), ``slices_z_mm``, ``unit``.
    """
    if not 0.0 <= float(refine_spheres_mm) < math.inf:
        raise InputError(f"refine_spheres_mm must be a finite distance >= 0 mm, got {refine_spheres_mm}")
    s = _Slices(to_axial(volume))
    body, sm, bkg = _body(s)
    geo = geometry if geometry is not None else _locate(s, body, sm, bkg)
    ratio, ratio_source = _activity_ratio(volume, activity_ratio)
    ks = _slice_indices(s, geo.plane_z_mm)
    bg_xy = _background_centres(s, body[ks[0]], geo)
    bg = {d: np.array([[_roi_stats(s.img[k], _roi(s, c, d))[0] for c in bg_xy] for k in ks])
          for d in SPHERE_DIAMETERS_MM}  # (5 slices, 12 ROIs) per diameter
    c_b37 = float(bg[SPHERE_DIAMETERS_MM[0]].mean())
    if c_b37 <= 0:
        raise InputError("the background mean is not positive; cannot compute NU 2 contrasts")
    centres = geo.sphere_centres_mm()
    if refine_spheres_mm > 0:
        centres = _refine_centres(s, s.img[ks[0]], c_b37, centres, float(refine_spheres_mm))
    means = [_roi_stats(s.img[ks[0]], _roi(s, c, d))[0] for d, c in zip(SPHERE_DIAMETERS_MM, centres)]
    spheres = []
    for d, c, m, is_hot in zip(SPHERE_DIAMETERS_MM, centres, means, _hot_flags(hot_spheres, means, c_b37)):
        cb = float(bg[d].mean())
        q = hot_contrast_pct(m, cb, ratio) if is_hot else cold_contrast_pct(m, cb)
        spheres.append({"diameter_mm": d, "centre_mm": [float(v) for v in c], "kind": "hot" if is_hot else "cold",
                        "mean": m, "background_mean": cb, "background_sd": float(bg[d].std(ddof=1)),
                        "contrast_pct": float(q), "background_variability_pct": background_variability_pct(bg[d])})
    vox = [_roi_stats(s.img[k], _roi(s, c, SPHERE_DIAMETERS_MM[0])) for k in ks for c in bg_xy]
    voxel_sd = math.sqrt(float(np.mean([sd ** 2 + (m - c_b37) ** 2 for m, sd in vox])))
    lung = [_roi_stats(s.img[k], _roi(s, geo.ring_centre_mm, LUNG_ROI_DIAMETER_MM))[0] for k in ks]
    lung_pct = [float(lung_residual_pct(v, c_b37)) for v in lung]
    return {
        "unit": volume.unit,
        "activity_ratio": ratio, "activity_ratio_source": ratio_source,
        "geometry": {**asdict(geo), "ring_centre_mm": list(geo.ring_centre_mm)},
        "slices_z_mm": [float(s.z_of(k)) for k in ks],
        "spheres": spheres,
        "background": {"mean": c_b37, "voxel_sd": voxel_sd, "cv_pct": voxel_sd / c_b37 * 100.0,
                       "roi_centres_mm": [[float(v) for v in c] for c in bg_xy]},
        "lung": {"roi_diameter_mm": LUNG_ROI_DIAMETER_MM, "mean": float(np.mean(lung)),
                 "residual_pct": float(np.mean(lung_pct)), "per_slice_pct": lung_pct},
    }
