"""Join images of several bed positions into one image, weighting their overlap.

Each bed's image covers an axial range; where two beds overlap, the joined image is their weighted mean,
each weight falling linearly to zero at the end of its bed (a bed's first and last slices are its
noisiest: they see the fewest views of the collimator response). Away from the overlaps each bed's
image is kept as it is. This is the linear feathering that multi-bed SPECT and PET software apply; see
e.g. PyTomography's ``stitch_multibed`` for the alternatives (mid-slice cut, transition-error minimisation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from petspect.errors import GeometryError, InputError
from petspect.volume import AXIAL_DIRECTION, Volume

__all__ = ["bed_decay_factors", "join_beds"]


def bed_decay_factors(start_times_s: Sequence[float | None], half_life_s: float | None) -> list[float] | None:
    """Factors that bring each bed's image to the activity at the first bed's start: ``2^((t_b - t_0) / T1/2)``.

    Each bed's counts reflect the activity present while it was acquired; joining beds of a short-lived nuclide
    (Tc-99m: 6 h; beds ~20 min apart differ by ~4 %) needs them at one reference time. Returns None when a start
    time or the half-life is unknown (the images are then joined as they are).
    """
    if half_life_s is None or not half_life_s > 0 or any(t is None for t in start_times_s) or not start_times_s:
        return None
    t0 = min(float(t) for t in start_times_s)
    return [2.0 ** ((float(t) - t0) / float(half_life_s)) for t in start_times_s]


def _axial_positions(vol: Volume) -> np.ndarray:
    """LPS z (mm) of each slice centre."""
    idx = np.zeros((vol.shape[0], 3))
    idx[:, 0] = np.arange(vol.shape[0])
    return vol.voxel_to_world(idx)[:, 2]


def join_beds(images: Sequence[Volume]) -> Volume:
    """One image from the images of several bed positions (same transverse grid, axial offsets).

    Parameters
    ----------
    images : sequence of Volume
        Each ``(z, y, x)`` in the standard axial orientation with the same transverse grid (shape, spacing,
        x-y origin) and slice thickness, in the same unit; their axial ranges may overlap.

    Returns
    -------
    Volume
        On the union of their axial ranges (slices of the first image's thickness, from the lowest bed up);
        a slice of one bed only is that bed's slice; in an overlap ``sum_b w_b I_b / sum_b w_b`` with
        ``w_b`` the distance (mm, plus half a slice) from the slice to the nearer end of bed ``b``.
        ``meta["beds"]`` records each bed's axial range.

    Raises
    ------
    GeometryError
        Different transverse grids, orientations or slice thicknesses; a gap between beds.
    InputError
        No image, or different units.
    """
    if not images:
        raise InputError("join_beds: no image given")
    first = images[0]
    for v in images[1:]:
        if v.shape[1:] != first.shape[1:] or not np.allclose(v.spacing_mm, first.spacing_mm, atol=1e-3):
            raise GeometryError(f"bed images differ in transverse grid or slice thickness: {first.shape} of "
                                f"{first.spacing_mm} mm and {v.shape} of {v.spacing_mm} mm")
        if not np.allclose(np.asarray(v.direction), np.asarray(first.direction), atol=1e-6):
            raise GeometryError("bed images differ in orientation")
        if not np.allclose(v.origin_mm[:2], first.origin_mm[:2], atol=1e-2):
            raise GeometryError(f"bed images differ in transverse position: {first.origin_mm[:2]} and "
                                f"{v.origin_mm[:2]} mm (x, y)")
        if v.unit != first.unit:
            raise InputError(f"bed images are in different units: {first.unit!r} and {v.unit!r}")
    if not np.allclose(np.asarray(first.direction), np.asarray(AXIAL_DIRECTION), atol=1e-6):
        raise GeometryError("join_beds needs the standard axial orientation (slices along LPS z)")
    if len(images) == 1:
        return first
    dz = float(first.spacing_mm[0])
    zs = [_axial_positions(v) for v in images]
    lo, hi = min(float(z.min()) for z in zs), max(float(z.max()) for z in zs)
    n = int(round((hi - lo) / dz)) + 1
    z_out = lo + dz * np.arange(n)
    acc = torch.zeros((n, *first.shape[1:]), dtype=torch.float64, device=first.data.device)
    wsum = torch.zeros(n, dtype=torch.float64, device=first.data.device)
    for v, z in zip(images, zs):
        zmin, zmax = float(z.min()), float(z.max())
        # linear interpolation of this bed's slices at the output positions, inside its range
        frac = (z_out - zmin) / dz
        inside = (z_out >= zmin - 1e-3 * dz) & (z_out <= zmax + 1e-3 * dz)
        k0 = np.clip(np.floor(frac + 1e-9).astype(int), 0, v.shape[0] - 1)
        k1 = np.clip(k0 + 1, 0, v.shape[0] - 1)
        t = torch.as_tensor(np.clip(frac - k0, 0.0, 1.0), dtype=torch.float64, device=acc.device)[:, None, None]
        data = v.data.to(torch.float64)
        sampled = data[torch.as_tensor(k0)] * (1 - t) + data[torch.as_tensor(k1)] * t
        w = np.where(inside, np.minimum(z_out - zmin, zmax - z_out) + 0.5 * dz, 0.0)
        wt = torch.as_tensor(w, dtype=torch.float64, device=acc.device)
        acc += sampled * wt[:, None, None]
        wsum += wt
    if bool((wsum <= 0).any()):
        raise GeometryError("the beds leave a gap along the axis; join_beds needs contiguous or overlapping beds")
    out = (acc / wsum[:, None, None]).to(first.data.dtype)
    origin = (first.origin_mm[0], first.origin_mm[1], lo)
    beds = [[round(float(z.min()), 3), round(float(z.max()), 3)] for z in zs]
    return Volume(out, first.spacing_mm, origin, first.direction, unit=first.unit, modality=first.modality,
                  meta={**first.meta, "beds": beds, "bed_join": "linear overlap weighting"})
