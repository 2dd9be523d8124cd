"""Voxel grids for phantom voxelisation: shape, spacing, LPS origin and direction, on a device.

:class:`Grid` follows the conventions of :class:`~petspect.volume.Volume` (array axes (z, y, x), mm,
LPS); :func:`as_grid` accepts a Grid, a Volume or ``(shape, spacing_mm[, origin_mm[, direction]])``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from petspect.errors import InputError
from petspect.volume import AXIAL_DIRECTION, Volume, _as_triple

Bounds = tuple[np.ndarray, np.ndarray]  # (lo_xyz, hi_xyz) in mm, LPS

__all__ = ["Bounds", "Grid", "MAX_GRID_VOXELS", "as_grid"]

#: Most voxels of a phantom grid (4 GB per float32 volume; a phantom holds several volumes).
MAX_GRID_VOXELS = 1_000_000_000


@dataclass(frozen=True)
class Grid:
    """A voxel grid in LPS mm (same conventions as :class:`~petspect.volume.Volume`).

    Parameters
    ----------
    shape : (int, int, int)
        ``(nz, ny, nx)``.
    spacing_mm : (float, float, float)
        ``(dz, dy, dx)`` in mm.
    origin_mm : (float, float, float)
        LPS ``(x, y, z)`` of the centre of voxel ``[0, 0, 0]``.
    direction : 3x3
        Column ``j`` is the LPS unit vector of array axis ``j``.
    device : torch.device
        Where voxelised tensors are made.
    """

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[tuple[float, float, float], ...] = AXIAL_DIRECTION
    device: torch.device = torch.device("cpu")

    def __post_init__(self) -> None:
        shp = tuple(int(n) for n in self.shape)
        if len(shp) != 3 or min(shp) < 1:
            raise InputError(f"grid shape must be 3 positive integers, got {self.shape!r}")
        if math.prod(shp) > MAX_GRID_VOXELS:
            raise InputError(f"grid shape {shp} has {math.prod(shp):.3g} voxels (at most {MAX_GRID_VOXELS:.0e}, "
                             f"{4 * MAX_GRID_VOXELS / 1e9:.0f} GB per float32 volume); choose larger voxels")
        sp = _as_triple(self.spacing_mm, "spacing_mm")
        if min(sp) <= 0:
            raise InputError(f"spacing_mm must be positive, got {sp}")
        object.__setattr__(self, "shape", shp)
        object.__setattr__(self, "spacing_mm", sp)
        object.__setattr__(self, "origin_mm", _as_triple(self.origin_mm, "origin_mm"))
        d = np.asarray(self.direction, dtype=np.float64)
        if d.shape != (3, 3) or not np.allclose(d.T @ d, np.eye(3), atol=1e-4):
            raise InputError("grid direction must be an orthonormal 3x3 matrix")
        object.__setattr__(self, "direction", tuple(tuple(float(v) for v in row) for row in d))
        object.__setattr__(self, "device", torch.device(self.device))

    @classmethod
    def from_volume(cls, volume: Volume) -> "Grid":
        """The grid of a Volume (on the Volume's device)."""
        return cls(volume.shape, volume.spacing_mm, volume.origin_mm, volume.direction, volume.device)

    @classmethod
    def centered(cls, shape: Sequence[int], spacing_mm: float | Sequence[float], *,
                 centre_mm: Sequence[float] = (0.0, 0.0, 0.0), device: Any = "cpu") -> "Grid":
        """An axial grid whose centre lies at LPS ``centre_mm`` (default the origin)."""
        sp = (float(spacing_mm),) * 3 if np.isscalar(spacing_mm) else _as_triple(spacing_mm, "spacing_mm")
        shp = tuple(int(n) for n in shape)
        c = _as_triple(centre_mm, "centre_mm")
        # axial: LPS x, y, z run along array axes x, y, z = (2, 1, 0)
        origin = tuple(c[i] - (shp[2 - i] - 1) * sp[2 - i] / 2.0 for i in range(3))
        return cls(shp, sp, origin, AXIAL_DIRECTION, device)

    @property
    def affine(self) -> np.ndarray:
        """4x4 float64 matrix from homogeneous index ``(kz, ky, kx, 1)`` to LPS ``(x, y, z, 1)``."""
        linear = np.asarray(self.direction) @ np.diag(self.spacing_mm)
        return np.block([[linear, np.reshape(self.origin_mm, (3, 1))], [np.zeros((1, 3)), np.ones((1, 1))]])

    @property
    def voxel_volume_ml(self) -> float:
        return math.prod(self.spacing_mm) * 1e-3

    def world(self, z: slice = slice(None), y: slice = slice(None), x: slice = slice(None),
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """LPS positions (mm) of voxel centres of an index box, shape ``(nz', ny', nx', 3)``."""
        axes = [torch.arange(n, device=self.device, dtype=torch.float64)[s]
                for n, s in zip(self.shape, (z, y, x))]
        k = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
        a = torch.as_tensor(self.affine, dtype=torch.float64, device=self.device)
        return (k @ a[:3, :3].T + a[:3, 3]).to(dtype)

    def volume(self, data: torch.Tensor, **kwargs: Any) -> Volume:
        """A Volume on this grid holding ``data`` (``unit``, ``modality``, ``meta`` passed on)."""
        return Volume(data, self.spacing_mm, self.origin_mm, self.direction, **kwargs)

    def index_box(self, bounds_mm: Bounds | None, margin: int = 1) -> tuple[slice, slice, slice] | None:
        """Index slices covering an LPS axis-aligned box (plus ``margin`` voxels); None if empty."""
        if bounds_mm is None:
            return (slice(0, self.shape[0]), slice(0, self.shape[1]), slice(0, self.shape[2]))
        lo, hi = (np.asarray(b, dtype=np.float64) for b in bounds_mm)
        corners = np.array([[(lo, hi)[i][0], (lo, hi)[j][1], (lo, hi)[k][2]]
                            for i in (0, 1) for j in (0, 1) for k in (0, 1)])
        corners = np.clip(corners, -1e9, 1e9)
        idx = (corners - self.affine[:3, 3]) @ np.linalg.inv(self.affine[:3, :3]).T
        out = []
        for axis in range(3):
            a = max(int(math.floor(idx[:, axis].min())) - margin, 0)
            b = min(int(math.ceil(idx[:, axis].max())) + 1 + margin, self.shape[axis])
            if b <= a:
                return None
            out.append(slice(a, b))
        return tuple(out)  # type: ignore[return-value]


def as_grid(grid: Any, *, device: Any = None) -> Grid:
    """A :class:`Grid` from a Grid, a Volume, or ``(shape, spacing_mm[, origin_mm[, direction]])``."""
    if isinstance(grid, Grid):
        g = grid
    elif isinstance(grid, Volume):
        g = Grid.from_volume(grid)
    elif isinstance(grid, (tuple, list)) and 2 <= len(grid) <= 4:
        shape, spacing = grid[0], grid[1]
        sp = (float(spacing),) * 3 if np.isscalar(spacing) else spacing
        g = Grid(tuple(shape), sp, *grid[2:]) if len(grid) > 2 else Grid.centered(shape, sp)
    else:
        raise InputError("grid must be a Grid, a Volume or (shape, spacing_mm[, origin_mm])")
    if device is not None and torch.device(device) != g.device:
        g = Grid(g.shape, g.spacing_mm, g.origin_mm, g.direction, torch.device(device))
    return g
