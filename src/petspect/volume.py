"""The Volume data model: a 3D image on a physical grid in patient (DICOM LPS) coordinates.

Conventions (the only place they are defined)
---------------------------------------------
* ``data`` is a torch tensor of shape ``(nz, ny, nx)``: voxel order (z, y, x).
* ``spacing_mm`` is ``(dz, dy, dx)`` in mm, in the same order as the array axes.
* World coordinates are DICOM patient coordinates LPS, written ``(x, y, z)`` in mm: x grows to the
  patient's Left, y to Posterior, z to Superior.
* ``origin_mm`` is the LPS ``(x, y, z)`` position of the centre of voxel ``[0, 0, 0]`` (DICOM
  ImagePositionPatient of the first slice).
* ``direction`` is a 3x3 matrix whose column ``j`` is the LPS unit vector along array axis ``j``
  (j = 0 for z/slices, 1 for y/rows, 2 for x/columns). The standard axial orientation (rows running
  Left, columns running Posterior, slices Superior) is ``[[0, 0, 1], [0, 1, 0], [1, 0, 0]]``.

So the world position of index ``k = (kz, ky, kx)`` is ``origin + direction @ (spacing * k)``.
NIfTI's RAS affine is converted to and from this at the io boundary only (:mod:`petspect.io.nifti`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from petspect.errors import InputError
from petspect.units import ML_PER_MM3

AXIAL_DIRECTION = ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0))


def _as_triple(value: Any, name: str) -> tuple[float, float, float]:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size != 3 or not np.all(np.isfinite(arr)):
        raise InputError(f"{name} must be 3 finite numbers, got {value!r}")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


@dataclass
class Volume:
    """A 3D image with its physical grid, unit and metadata.

    Parameters
    ----------
    data : torch.Tensor or array_like, shape (nz, ny, nx)
        Voxel values. Arrays are converted to tensors (dtype kept; float64 stays float64).
    spacing_mm : (float, float, float)
        Voxel size (dz, dy, dx) in mm; all positive.
    origin_mm : (float, float, float)
        LPS position (x, y, z) in mm of the centre of voxel [0, 0, 0].
    direction : array_like, shape (3, 3)
        Column j is the LPS unit vector of array axis j (z, y, x order); orthonormal.
    unit : str
        Unit of the values: "Bq/mL", "SUVbw", "HU", "1/cm", "counts", "label", ...
    modality : str, optional
        "PT", "CT", "NM", "MR", "SEG", ... (DICOM Modality where it applies).
    meta : dict
        Free JSON-serialisable metadata (series description, SUV factors, decay correction, ...).
        No patient identifiers are put here by petspect's readers.
    """

    data: torch.Tensor
    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[tuple[float, float, float], ...] = AXIAL_DIRECTION
    unit: str = "a.u."
    modality: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.data, torch.Tensor):
            self.data = torch.as_tensor(np.ascontiguousarray(self.data))
        if self.data.ndim != 3:
            raise InputError(f"Volume data must be 3D (z, y, x), got shape {tuple(self.data.shape)}")
        self.spacing_mm = _as_triple(self.spacing_mm, "spacing_mm")
        if min(self.spacing_mm) <= 0:
            raise InputError(f"spacing_mm must be positive, got {self.spacing_mm}")
        self.origin_mm = _as_triple(self.origin_mm, "origin_mm")
        d = np.asarray(self.direction, dtype=np.float64)
        if d.shape != (3, 3) or not np.all(np.isfinite(d)):
            raise InputError(f"direction must be a 3x3 matrix, got {self.direction!r}")
        if not np.allclose(d.T @ d, np.eye(3), atol=1e-4):
            raise InputError("direction must be orthonormal (columns are unit vectors at right angles)")
        self.direction = tuple(tuple(float(v) for v in row) for row in d)

    # ------------------------------------------------------------------ grid
    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape (nz, ny, nx)."""
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        return self.data.device

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in mL."""
        return math.prod(self.spacing_mm) * ML_PER_MM3

    @property
    def extent_mm(self) -> tuple[float, float, float]:
        """Size of the grid along (z, y, x) in mm (voxel count times spacing)."""
        return tuple(n * s for n, s in zip(self.shape, self.spacing_mm))  # type: ignore[return-value]

    @property
    def affine(self) -> np.ndarray:
        """4x4 float64 matrix mapping homogeneous index (kz, ky, kx, 1) to LPS (x, y, z, 1) in mm."""
        a = np.eye(4)
        a[:3, :3] = np.asarray(self.direction) * np.asarray(self.spacing_mm)[None, :]
        a[:3, 3] = self.origin_mm
        return a

    def voxel_to_world(self, index_zyx: Any) -> np.ndarray:
        """LPS positions (..., 3) in mm of (fractional) voxel indices (..., 3) in (z, y, x) order."""
        k = np.asarray(index_zyx, dtype=np.float64)
        a = self.affine
        return k @ a[:3, :3].T + a[:3, 3]

    def world_to_voxel(self, points_lps_mm: Any) -> np.ndarray:
        """Fractional voxel indices (..., 3) in (z, y, x) order of LPS points (..., 3) in mm."""
        p = np.asarray(points_lps_mm, dtype=np.float64)
        a = self.affine
        return (p - a[:3, 3]) @ np.linalg.inv(a[:3, :3]).T

    def same_grid(self, other: "Volume", *, atol_mm: float = 1e-3) -> bool:
        """True when ``other`` has the same shape and the same voxel positions (within ``atol_mm``)."""
        return self.shape == other.shape and np.allclose(self.affine, other.affine, atol=atol_mm)

    # ------------------------------------------------------------------ construction helpers
    def with_data(self, data: Any, *, unit: str | None = None, modality: str | None = None,
                  meta: dict[str, Any] | None = None) -> "Volume":
        """A new Volume on the same grid with other values (and optionally another unit)."""
        return Volume(data, self.spacing_mm, self.origin_mm, self.direction,
                      unit=self.unit if unit is None else unit,
                      modality=self.modality if modality is None else modality,
                      meta=copy.deepcopy(self.meta) if meta is None else meta)

    @classmethod
    def centered(cls, data: Any, spacing_mm: Any, **kwargs: Any) -> "Volume":
        """A Volume in the standard axial orientation whose grid centre is the LPS origin (0, 0, 0)."""
        t = data if isinstance(data, torch.Tensor) else torch.as_tensor(np.asarray(data))
        sp = _as_triple(spacing_mm, "spacing_mm")
        # axial: array axes z, y, x run along LPS z, y, x
        origin = tuple(-(n - 1) * s / 2.0 for n, s in zip(reversed(t.shape), reversed(sp)))
        return cls(t, sp, origin, AXIAL_DIRECTION, **kwargs)

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> "Volume":
        """Copy (or move) the data to a device and/or dtype; geometry and metadata are kept."""
        return self.with_data(self.data.to(device=device, dtype=dtype))

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (copied to the CPU when needed)."""
        return self.data.detach().cpu().numpy()

    # ------------------------------------------------------------------ geometry operations
    def crop(self, z: slice = slice(None), y: slice = slice(None), x: slice = slice(None)) -> "Volume":
        """Sub-volume by index ranges (step 1); the origin moves so world positions are unchanged."""
        sl = (z, y, x)
        starts = []
        for s, n in zip(sl, self.shape):
            if s.step not in (None, 1):
                raise InputError("crop takes slices with step 1; use resample_to for other grids")
            start, stop, _ = s.indices(n)
            if stop <= start:
                raise InputError(f"empty crop {s} of an axis of length {n}")
            starts.append(start)
        origin = self.voxel_to_world(np.asarray(starts, dtype=np.float64))
        out = self.with_data(self.data[sl].clone())
        out.origin_mm = tuple(float(v) for v in origin)
        return out

    def bounding_box(self, mask: torch.Tensor | None = None, *, margin_voxels: int = 0) -> tuple[slice, slice, slice]:
        """Index slices of the smallest box holding the non-zero voxels of ``mask`` (default: data)."""
        m = (self.data if mask is None else mask) != 0
        if not bool(m.any()):
            raise InputError("bounding_box of an empty mask")
        out = []
        for axis in range(3):
            other = tuple(a for a in range(3) if a != axis)
            idx = torch.nonzero(m.any(dim=other[1]).any(dim=other[0])).flatten()
            lo = max(int(idx.min()) - margin_voxels, 0)
            hi = min(int(idx.max()) + 1 + margin_voxels, self.shape[axis])
            out.append(slice(lo, hi))
        return tuple(out)  # type: ignore[return-value]

    def resample_to(self, reference: "Volume", *, mode: str = "linear", fill_value: float = 0.0) -> "Volume":
        """Resample onto the grid of ``reference`` (on this volume's device).

        Parameters
        ----------
        reference : Volume
            Grid to sample on (shape, spacing, origin, direction); its data are not used.
        mode : {"linear", "nearest"}
            Trilinear interpolation, or nearest neighbour (for label maps).
        fill_value : float
            Value of reference voxels whose centre falls outside this volume.

        Returns
        -------
        Volume
            Same unit and metadata as ``self``, on the reference grid. Point sampling: no
            anti-aliasing is applied when downsampling.
        """
        if mode not in ("linear", "nearest"):
            raise InputError(f"mode must be 'linear' or 'nearest', got {mode!r}")
        dev = self.data.device
        # index of each reference voxel in this volume's index space: M = A_self^-1 A_ref
        m = np.linalg.inv(self.affine) @ reference.affine
        m_t = torch.as_tensor(m, dtype=torch.float64, device=dev)
        axes = [torch.arange(n, dtype=torch.float64, device=dev) for n in reference.shape]
        kz, ky, kx = torch.meshgrid(*axes, indexing="ij")
        ones = torch.ones_like(kz)
        src = torch.stack([kz, ky, kx, ones], dim=-1) @ m_t.T  # (..., 4) in (z, y, x, 1)
        grid = []
        for axis in (2, 1, 0):  # grid_sample wants (x, y, z) = (W, H, D)
            n = self.shape[axis]
            c = src[..., axis]
            grid.append(c * (2.0 / (n - 1)) - 1.0 if n > 1 else torch.where(c.abs() <= 0.5, 0.0, 2.0) * torch.ones_like(c))
        g = torch.stack(grid, dim=-1)
        work_dtype = self.data.dtype if self.data.is_floating_point() else torch.float64
        inp = self.data.to(work_dtype)[None, None]
        fill = torch.as_tensor(fill_value, dtype=work_dtype, device=dev)
        out = torch.nn.functional.grid_sample(
            inp - fill, g.to(work_dtype)[None], mode="bilinear" if mode == "linear" else "nearest",
            padding_mode="zeros", align_corners=True,
        )[0, 0] + fill
        if not self.data.is_floating_point():
            out = out.round().to(self.data.dtype)
        res = reference.with_data(out, unit=self.unit, modality=self.modality, meta=copy.deepcopy(self.meta))
        return res

    def __repr__(self) -> str:
        return (f"Volume(shape={self.shape}, spacing_mm={tuple(round(s, 4) for s in self.spacing_mm)}, "
                f"origin_mm={tuple(round(o, 3) for o in self.origin_mm)}, unit={self.unit!r}, "
                f"modality={self.modality!r}, dtype={self.data.dtype}, device={self.data.device})")
