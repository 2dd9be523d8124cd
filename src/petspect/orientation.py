"""Lossless reorientation between any axis-aligned grid and petspect's standard axial orientation.

petspect's models work on the standard axial orientation (:data:`petspect.volume.AXIAL_DIRECTION`: array
axes ``(z, y, x)`` along LPS z, y, x). A Volume whose direction is any signed permutation of those axes
(a NIfTI written with nibabel's identity RAS affine, a coronal DICOM series, a flipped slice order) holds
the same voxels in another order: :func:`to_axial` flips and permutes the array (no interpolation, the
voxel values are kept bit for bit) and :func:`from_axial` puts a result back into the input's orientation,
origin and spacing, so that outputs overlay their inputs. An oblique grid (a direction that is not a signed
permutation) cannot be reordered: :func:`to_axial` refuses it and names the command that resamples it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from petspect.errors import GeometryError
from petspect.volume import AXIAL_DIRECTION, Volume

__all__ = ["AxialView", "axial_grid_covering", "from_axial", "is_axis_aligned", "to_axial"]

#: Command that resamples an oblique image onto an axial grid (said in refusals).
RESAMPLE_HINT = "petspect resample IMAGE --axial --out AXIAL.nii.gz"


@dataclass(frozen=True)
class AxialView:
    """How an axis-aligned grid maps onto the axial orientation.

    ``perm[a]`` is the input array axis that becomes axial axis ``a`` (0: z, 1: y, 2: x); ``flip[a]`` says
    whether it runs the other way. ``shape``, ``spacing_mm``, ``origin_mm`` and ``direction`` are the input's.
    """

    perm: tuple[int, int, int]
    flip: tuple[bool, bool, bool]
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float]
    direction: tuple[tuple[float, ...], ...]

    @property
    def identity(self) -> bool:
        return self.perm == (0, 1, 2) and not any(self.flip)


def _signed_permutation(direction) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]] | None:
    """(perm, flip) when ``direction`` (columns: LPS vectors of the array axes) is a signed permutation."""
    d = np.asarray(direction, dtype=np.float64)
    axial = np.asarray(AXIAL_DIRECTION, dtype=np.float64)
    perm, flip = [], []
    for a in range(3):  # axial axis a points along LPS vector axial[:, a]
        dots = axial[:, a] @ d  # its dot product with every input axis
        j = int(np.argmax(np.abs(dots)))
        if abs(abs(dots[j]) - 1.0) > 1e-4:
            return None
        perm.append(j)
        flip.append(bool(dots[j] < 0))
    if sorted(perm) != [0, 1, 2]:
        return None
    return (perm[0], perm[1], perm[2]), (flip[0], flip[1], flip[2])


def is_axis_aligned(volume: Volume) -> bool:
    """True when the grid's axes are LPS axes (in any order and sense), so :func:`to_axial` is lossless."""
    return _signed_permutation(volume.direction) is not None


def to_axial(volume: Volume, *, what: str = "image") -> tuple[Volume, AxialView]:
    """The same voxels in the standard axial orientation, and how to undo it.

    Returns
    -------
    (Volume, AxialView)
        The reordered Volume (data permuted and flipped, origin at the new voxel ``[0, 0, 0]``, spacing
        permuted; unit, modality and meta kept) and the record that :func:`from_axial` undoes.

    Raises
    ------
    GeometryError
        An oblique grid; the message names the command that resamples it.
    """
    sp = _signed_permutation(volume.direction)
    if sp is None:
        raise GeometryError(f"the {what} is oblique (direction {np.round(np.asarray(volume.direction), 4).tolist()}); "
                            f"petspect reorders axis-aligned grids only: resample it onto an axial grid first, "
                            f"e.g. `{RESAMPLE_HINT}`")
    perm, flip = sp
    view = AxialView(perm, flip, tuple(volume.shape), tuple(volume.spacing_mm), tuple(volume.origin_mm),
                     tuple(tuple(float(v) for v in row) for row in np.asarray(volume.direction)))
    if view.identity:
        return volume, view
    data = volume.data.permute(*perm)
    dims = [a for a in range(3) if flip[a]]
    if dims:
        data = torch.flip(data, dims)
    # the new voxel [0, 0, 0] is the input voxel at the far end of every flipped axis
    corner = np.zeros(3)
    for a in range(3):
        if flip[a]:
            corner[perm[a]] = volume.shape[perm[a]] - 1
    origin = volume.voxel_to_world(corner)
    spacing = tuple(volume.spacing_mm[perm[a]] for a in range(3))
    out = Volume(data.contiguous(), spacing, tuple(float(v) for v in origin), AXIAL_DIRECTION, unit=volume.unit,
                 modality=volume.modality, meta=dict(volume.meta))
    return out, view


def from_axial(volume: Volume, view: AxialView) -> Volume:
    """Put an axial Volume on the input grid that :func:`to_axial` recorded (the exact inverse reordering).

    ``volume`` must have the axial shape of that grid; unit, modality and meta are its own.
    """
    if view.identity:
        return volume
    expect = tuple(view.shape[view.perm[a]] for a in range(3))
    if tuple(volume.shape) != expect:
        raise GeometryError(f"from_axial: image shape {tuple(volume.shape)} is not the axial shape {expect} of the "
                            "input grid")
    data = volume.data
    dims = [a for a in range(3) if view.flip[a]]
    if dims:
        data = torch.flip(data, dims)
    inverse = tuple(int(np.argsort(view.perm)[i]) for i in range(3))
    data = data.permute(*inverse).contiguous()
    return Volume(data, view.spacing_mm, view.origin_mm, view.direction, unit=volume.unit, modality=volume.modality,
                  meta=dict(volume.meta))


#: Most voxels :func:`axial_grid_covering` makes (4 GB in float32, before the resampling's own buffers).
MAX_GRID_VOXELS = 1_000_000_000


def axial_grid_covering(volume: Volume, voxel_mm: float | None = None) -> Volume:
    """An empty axial grid (zeros) that covers every voxel centre of ``volume`` (e.g. an oblique image).

    ``voxel_mm``: isotropic voxel size; default the image's smallest spacing. Resample onto it with
    ``volume.resample_to(grid)`` (trilinear: concentrations are kept, totals to the interpolation's accuracy).
    """
    size = float(voxel_mm) if voxel_mm is not None else float(min(volume.spacing_mm))
    if not size > 0:
        raise GeometryError(f"voxel size must be positive, got {voxel_mm}")
    n = np.asarray(volume.shape) - 1
    corners = np.asarray([[a, b, c] for a in (0, n[0]) for b in (0, n[1]) for c in (0, n[2])], dtype=float)
    world = volume.voxel_to_world(corners)  # LPS x, y, z
    lo, hi = world.min(axis=0), world.max(axis=0)
    counts = np.floor((hi - lo) / size + 1e-6).astype(int) + 1  # x, y, z
    shape = (int(counts[2]), int(counts[1]), int(counts[0]))
    n_voxels = int(np.prod(counts, dtype=np.float64))
    if n_voxels > MAX_GRID_VOXELS:
        raise GeometryError(f"an axial grid of {size:g} mm voxels covering this image has {shape} = {n_voxels:.3g} "
                            f"voxels (at most {MAX_GRID_VOXELS:.0e}, {4 * MAX_GRID_VOXELS / 1e9:.0f} GB in float32); "
                            f"choose a larger voxel size (the image's spacing is {tuple(volume.spacing_mm)} mm)")
    return Volume(torch.zeros(shape, dtype=torch.float32), (size, size, size), tuple(float(v) for v in lo),
                  AXIAL_DIRECTION, unit=volume.unit, modality=volume.modality)
