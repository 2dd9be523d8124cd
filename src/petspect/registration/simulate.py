"""Simulated misalignments with known ground truth, and how registration is judged (TRE, organ Dice).

* :func:`rigid_matrix` -- a rigid motion (rotations about a centre, then a translation) as a 4x4 LPS
  matrix in ITK's fixed -> moving convention;
* :func:`move_rigidly` -- a known rigid misalignment applied to a volume's geometry (no resampling);
* :func:`respiratory_field` -- a smooth respiratory-like displacement field: the diaphragm and the organs
  below it move along the body axis by up to ``amplitude_mm`` (largest at the dome, fading towards the
  lung apex and the pelvis), with an anterior-posterior component ``ap_ratio`` times as large, the chest
  wall expanding (published diaphragm excursions in free breathing: ~10-20 mm superior-inferior, a few mm
  antero-posterior; Seppenwoolde et al, IJROBP 2002);
* :func:`warp` -- ``image(x + u(x))`` for a displacement field ``u`` (mm) on the image's grid;
* :func:`target_registration_error` -- distance (mm) between where the true and the estimated
  transform send each landmark; :func:`organ_landmarks` -- the organs' centres of mass as landmarks;
* :func:`organ_dice` -- Dice of each organ label after registration.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from petspect.errors import InputError
from petspect.volume import Volume

__all__ = ["rigid_matrix", "move_rigidly", "respiratory_field", "warp", "target_registration_error", "organ_landmarks",
           "organ_dice"]


def rigid_matrix(rotation_deg: Any = (0.0, 0.0, 0.0), translation_mm: Any = (0.0, 0.0, 0.0),
                 centre_mm: Any = (0.0, 0.0, 0.0)) -> np.ndarray:
    """4x4 LPS matrix ``x -> R (x - c) + c + t``, ``R = Rz Ry Rx`` (angles about LPS x, y, z, degrees)."""
    ax, ay, az = (math.radians(float(a)) for a in np.asarray(rotation_deg, dtype=float).reshape(3))
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    r = rz @ ry @ rx
    c = np.asarray(centre_mm, dtype=float).reshape(3)
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = c - r @ c + np.asarray(translation_mm, dtype=float).reshape(3)
    return m


def move_rigidly(volume: Volume, matrix: np.ndarray) -> Volume:
    """The same voxels placed elsewhere: the image content moves by the rigid ``matrix`` (4x4 LPS).

    Only the geometry changes (origin and direction), so no interpolation blurs the data and no border is
    filled: a point ``x`` of the original volume's content sits at ``matrix @ x`` in the result, and
    the fixed -> moving transform that registers the result back onto the original is ``matrix``.
    """
    m = np.asarray(matrix, dtype=np.float64)
    r = m[:3, :3]
    if m.shape != (4, 4) or not np.allclose(r.T @ r, np.eye(3), atol=1e-6) or np.linalg.det(r) < 0:
        raise InputError("move_rigidly takes a rigid 4x4 matrix (a proper rotation and a translation)")
    out = volume.with_data(volume.data)
    out.direction = tuple(tuple(float(v) for v in row) for row in r @ np.asarray(volume.direction))
    out.origin_mm = tuple(float(v) for v in r @ np.asarray(volume.origin_mm) + m[:3, 3])
    return out


def _world_grid(reference: Volume) -> np.ndarray:
    idx = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in reference.shape], indexing="ij"), -1)
    return reference.voxel_to_world(idx)  # (nz, ny, nx, 3) LPS


def respiratory_field(reference: Volume, *, amplitude_mm: float = 12.0, diaphragm_z_mm: float | None = None,
                      width_mm: float = 80.0, ap_ratio: float = 0.3) -> np.ndarray:
    """A respiratory-like displacement field on ``reference``'s grid.

    Parameters
    ----------
    reference : Volume
        The grid (and, when ``diaphragm_z_mm`` is None, its axial centre is the diaphragm level).
    amplitude_mm : float
        Largest superior-inferior displacement (at the diaphragm; signed: positive moves tissue superior).
    diaphragm_z_mm : float, optional
        LPS z of the diaphragm dome.
    width_mm : float
        Gaussian width (standard deviation) of the motion along the body axis.
    ap_ratio : float
        Anterior-posterior displacement relative to the axial one.

    Returns
    -------
    numpy.ndarray, shape (nz, ny, nx, 3)
        Displacement ``u(x)`` in LPS mm ``(ux, uy, uz)`` such that the deformed image is ``I(x + u(x))``.
    """
    if not (math.isfinite(amplitude_mm) and math.isfinite(width_mm) and width_mm > 0):
        raise InputError("amplitude_mm must be finite and width_mm positive")
    w = _world_grid(reference)
    zc = float(w[..., 2].mean()) if diaphragm_z_mm is None else float(diaphragm_z_mm)
    bump = np.exp(-0.5 * ((w[..., 2] - zc) / width_mm) ** 2)
    yc = float(w[..., 1].mean())
    half_y = max(float(np.ptp(w[..., 1])) / 2.0, 1e-6)
    u = np.zeros(w.shape)
    u[..., 2] = amplitude_mm * bump
    # chest and abdominal wall: anterior tissue (small y) moves anterior, scaled with the distance from the centre
    u[..., 1] = ap_ratio * abs(amplitude_mm) * bump * np.clip((w[..., 1] - yc) / half_y, -1.0, 1.0)
    return u


def warp(volume: Volume, displacement_mm: np.ndarray, *, mode: str = "linear") -> Volume:
    """``volume(x + u(x))`` on the volume's own grid (``u``: (nz, ny, nx, 3) LPS mm)."""
    u = np.asarray(displacement_mm, dtype=np.float64)
    if u.shape != (*volume.shape, 3):
        raise InputError(f"displacement must have shape {(*volume.shape, 3)}, got {u.shape}")
    if mode not in ("linear", "nearest"):
        raise InputError(f"mode must be 'linear' or 'nearest', got {mode!r}")
    pts = _world_grid(volume) + u
    k = volume.world_to_voxel(pts)  # (..., 3) in (z, y, x)
    g = np.stack([2 * k[..., a] / max(n - 1, 1) - 1 for a, n in ((2, volume.shape[2]), (1, volume.shape[1]),
                                                                (0, volume.shape[0]))], -1)
    src = volume.data.to(torch.float64)[None, None]
    out = torch.nn.functional.grid_sample(src, torch.from_numpy(g)[None], mode="bilinear" if mode == "linear"
                                          else "nearest", padding_mode="border", align_corners=True)[0, 0]
    if not volume.data.is_floating_point():
        out = out.round().to(volume.data.dtype)
    else:
        out = out.to(volume.data.dtype)
    return volume.with_data(out)


def target_registration_error(true_points_mm: Any, estimated_points_mm: Any) -> np.ndarray:
    """Euclidean distance (mm) between corresponding true and estimated positions (n, 3) -> (n,)."""
    a, b = np.asarray(true_points_mm, dtype=float), np.asarray(estimated_points_mm, dtype=float)
    if a.shape != b.shape or a.shape[-1] != 3:
        raise InputError(f"landmarks must be matching (n, 3) arrays, got {a.shape} and {b.shape}")
    return np.linalg.norm(a - b, axis=-1)


def organ_landmarks(labels: Volume, *, min_voxels: int = 20) -> dict[int, np.ndarray]:
    """LPS centre of mass (mm) of every label with at least ``min_voxels`` voxels."""
    from scipy import ndimage

    lab = labels.numpy().astype(np.int64)
    ids = [int(i) for i in np.unique(lab) if i > 0 and (lab == i).sum() >= min_voxels]
    cents = ndimage.center_of_mass(np.ones(lab.shape), lab, ids)
    return {i: labels.voxel_to_world(np.asarray(c)) for i, c in zip(ids, cents)}


def organ_dice(a: Volume | np.ndarray, b: Volume | np.ndarray, labels: Any) -> dict[int, float]:
    """Dice of each label in ``labels`` between two label maps (NaN where both lack it)."""
    x = a.numpy() if isinstance(a, Volume) else np.asarray(a)
    y = b.numpy() if isinstance(b, Volume) else np.asarray(b)
    if x.shape != y.shape:
        raise InputError(f"label maps differ in shape: {x.shape} and {y.shape}")
    out = {}
    for lab in labels:
        p, q = x == lab, y == lab
        s = p.sum() + q.sum()
        out[int(lab)] = float(2 * (p & q).sum() / s) if s else math.nan
    return out
