"""Partial-volume-correct voxelisation of analytic shapes, in mm and LPS, on any device.

Every shape is a signed distance function (SDF): negative inside, positive outside, in mm, and
**1-Lipschitz** (it never grows faster than the true distance to the surface). That property lets
:func:`fractional_occupancy` classify a voxel from the SDF at its centre alone when
``|sdf| > half-diagonal`` (the whole voxel lies on one side), and supersample only the voxels that the
surface may cross: ``n_sub`` points per axis (``n_sub**3`` per voxel) on a regular sub-grid; the
fraction of sub-points inside is the voxel's occupancy in ``[0, 1]``. Exact SDFs (sphere, box,
capped cylinder, half-space) and the scaled ellipsoid bound ``min(a) * (|p / a| - 1)`` are 1-Lipschitz,
and so are unions (min), intersections (max) and differences (``max(a, -b)``).

Any callable mapping LPS points ``(..., 3)`` in mm to a float SDF or a boolean "inside" tensor
``(...)`` can also be voxelised with :func:`fractional_occupancy` (``lipschitz=False`` then
supersamples every voxel in ``bounds_mm``).

Grids
-----
:class:`Grid` holds the shape ``(nz, ny, nx)``, spacing ``(dz, dy, dx)``, origin (LPS x, y, z of voxel
``[0, 0, 0]``), direction (as :class:`~petspect.volume.Volume`) and device. Build one with
:meth:`Grid.from_volume`, :meth:`Grid.centered` or :func:`as_grid` (Grid, Volume, or a tuple
``(shape, spacing_mm[, origin_mm])``).

Example
-------
>>> g = Grid.centered((64, 64, 64), 2.0)
>>> occ = voxelize(Sphere((0, 0, 0), 10.0) - Sphere((0, 0, 0), 5.0), g, n_sub=4)
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from petspect.errors import InputError
from petspect.phantoms.grid import Bounds, Grid, as_grid
from petspect.volume import _as_triple

__all__ = [
    "Grid", "as_grid", "fractional_occupancy", "voxelize", "voxelize_many", "rotation_matrix",
    "Shape", "Sphere", "Ellipsoid", "Cylinder", "Box", "HalfSpace", "Union", "Intersection",
    "Difference", "Transformed", "half_cylinder",
]


# --------------------------------------------------------------------------- voxelisation
def _inside(values: torch.Tensor) -> torch.Tensor:
    return values if values.dtype == torch.bool else values <= 0


def _child_offsets(axes: torch.Tensor, f: int) -> torch.Tensor:
    """Offsets (f**3, 3) of the centres of the f x f x f sub-cells of a cell with edge vectors ``axes`` (rows)."""
    u = (torch.arange(f, dtype=axes.dtype, device=axes.device) + 0.5) / f - 0.5
    return torch.stack(torch.meshgrid(u, u, u, indexing="ij"), dim=-1).reshape(-1, 3) @ axes


def _prime_factors(n: int) -> list[int]:
    out, p = [], 2
    while n > 1:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return out or [1]


def _refine(fn: Callable, centres: torch.Tensor, axes: torch.Tensor, factors: list[int], max_points: int) -> torch.Tensor:
    """Fraction inside of cells (centres (B, 3), edge vectors ``axes``) by nested subdivision.

    Each level splits the cells into ``f**3`` children; with a 1-Lipschitz SDF a child whose centre
    lies further than its half-diagonal from the surface is wholly in or out and is not split
    further. The leaves are the points of the regular ``prod(factors)``-per-axis sub-grid, so the
    result equals sampling all of them, at a fraction of the cost.
    """
    f, rest = factors[0], factors[1:]
    offsets = _child_offsets(axes, f)
    child_axes = axes / f
    half_diag = 0.5 * float(torch.linalg.vector_norm(child_axes.sum(dim=0))) + 1e-4
    out = torch.empty(centres.shape[0], dtype=torch.float32, device=centres.device)
    step = max(1, max_points // offsets.shape[0])
    for i in range(0, centres.shape[0], step):
        pts = centres[i:i + step, None, :] + offsets[None]
        vals = fn(pts)
        if rest:
            frac = (vals <= -half_diag).to(torch.float32)
            edge = vals.abs() < half_diag
            if bool(edge.any()):
                frac[edge] = _refine(fn, pts[edge], child_axes, rest, max_points)
        else:
            frac = _inside(vals).to(torch.float32)
        out[i:i + step] = frac.mean(dim=-1)
    return out


def fractional_occupancy(sdf_fn: Callable[[torch.Tensor], torch.Tensor], grid: Any, n_sub: int = 4, *,
                         bounds_mm: Bounds | None = None, lipschitz: bool = False,
                         max_points: int = 1 << 21, dtype: torch.dtype = torch.float32,
                         out: torch.Tensor | None = None) -> torch.Tensor:
    """Fraction of each voxel inside a region, by supersampling.

    Parameters
    ----------
    sdf_fn : callable
        Maps LPS points ``(..., 3)`` in mm (a tensor on the grid's device) to a signed distance
        ``(...)`` (inside where <= 0) or a boolean inside mask ``(...)``.
    grid : Grid, Volume or tuple
        The voxel grid (see :func:`as_grid`); the result is on its device.
    n_sub : int
        Sub-points per axis per voxel (``n_sub**3`` per voxel); the occupancy error of a boundary
        voxel is about ``1 / n_sub**2``-ish on smooth surfaces.
    bounds_mm : (lo_xyz, hi_xyz), optional
        An LPS box holding the whole region; voxels outside it are 0 without evaluation.
    lipschitz : bool
        True when ``sdf_fn`` returns a 1-Lipschitz signed distance (all :class:`Shape` SDFs do):
        voxels whose centre lies further than the half-diagonal from the surface are then set to
        0 or 1 directly and the others are subdivided level by level (prime factors of ``n_sub``),
        refining only the sub-cells the surface may cross; the result is the same as sampling
        all ``n_sub**3`` points. Use a power of two (4, 8) for the most savings.
    max_points : int
        Points evaluated at once (bounds memory: about ``max_points * 3 * 4`` bytes per batch).
    dtype : torch.dtype
        Dtype of the point coordinates handed to ``sdf_fn``.
    out : torch.Tensor, optional
        Add the occupancy into this float32 tensor of the grid's shape (and return it).

    Returns
    -------
    torch.Tensor, shape (nz, ny, nx), float32
        Occupancy in ``[0, 1]``; ``sum * voxel volume`` is the region's volume.
    """
    if int(n_sub) < 1:
        raise InputError(f"n_sub must be >= 1, got {n_sub}")
    g = as_grid(grid)
    if out is None:
        out = torch.zeros(g.shape, dtype=torch.float32, device=g.device)
    box = g.index_box(bounds_mm)
    if box is None:
        return out
    axes = torch.as_tensor(g.affine[:3, :3].T, dtype=dtype, device=g.device)  # rows: voxel edge vectors
    factors = _prime_factors(int(n_sub)) if lipschitz else [int(n_sub)]
    half_diag = 0.5 * math.sqrt(sum(s * s for s in g.spacing_mm)) + 1e-4
    ny, nx = box[1].stop - box[1].start, box[2].stop - box[2].start
    slab = max(1, max_points // (ny * nx))
    for z0 in range(box[0].start, box[0].stop, slab):
        zs = slice(z0, min(z0 + slab, box[0].stop))
        pts = g.world(zs, box[1], box[2], dtype=dtype)
        if lipschitz:
            d = sdf_fn(pts)
            if d.dtype == torch.bool:
                raise InputError("lipschitz=True needs a float signed distance, not a boolean mask")
            occ = (d <= -half_diag).to(torch.float32)
            edge = d.abs() < half_diag
        else:
            occ = torch.zeros(pts.shape[:-1], dtype=torch.float32, device=g.device)
            edge = torch.ones(pts.shape[:-1], dtype=torch.bool, device=g.device)
        if bool(edge.any()):
            occ[edge] = _refine(sdf_fn, pts[edge], axes, factors, max_points)
        out[zs, box[1], box[2]] += occ
    return out


def _axial_slices(grid: Grid) -> bool:
    """True when the grid's slices are transverse (array axis 0 along LPS +-z)."""
    return bool(np.allclose(np.abs(np.asarray(grid.direction)[:, 0]), (0.0, 0.0, 1.0)))


def _z_overlap(grid: Grid, z0: float, z1: float) -> torch.Tensor:
    """Exact fraction (nz,) of each slice's thickness inside ``[z0, z1]``."""
    dz = grid.spacing_mm[0]
    z = grid.origin_mm[2] + grid.direction[2][0] * dz * torch.arange(grid.shape[0], device=grid.device, dtype=torch.float64)
    return ((torch.clamp(z + dz / 2, max=z1) - torch.clamp(z - dz / 2, min=z0)).clamp(min=0) / dz).to(torch.float32)


def _cross_section(section: "Shape", grid: Grid, n_sub: int, **kwargs: Any) -> torch.Tensor:
    """Occupancy (1, ny, nx) of a z-invariant section on one slice of the grid."""
    one_slice = Grid((1, *grid.shape[1:]), grid.spacing_mm, grid.origin_mm, grid.direction, grid.device)
    b = section.bounds()
    bounds = None if b is None else (np.r_[b[0][:2], -np.inf], np.r_[b[1][:2], np.inf])
    return fractional_occupancy(section.sdf, one_slice, n_sub, bounds_mm=bounds, lipschitz=True, **kwargs)


def voxelize(shape: "Shape", grid: Any, n_sub: int = 4, **kwargs: Any) -> torch.Tensor:
    """Fractional occupancy ``(nz, ny, nx)`` of a :class:`Shape` on a grid (see :func:`fractional_occupancy`).

    A prism along LPS z (cylinders and boxes along z, and their unions, intersections and
    differences, see :meth:`Shape.z_extrusion`) on a grid whose slices are transverse is voxelised
    as the outer product of its supersampled cross-section on one slice and the exact overlap of
    each slice with its z range: the same answer for a fraction of the work.
    """
    return voxelize_many([shape], grid, n_sub, **kwargs)


def voxelize_many(shapes: Sequence["Shape"], grid: Any, n_sub: int = 4, **kwargs: Any) -> torch.Tensor:
    """Summed occupancy ``(nz, ny, nx)`` of several shapes (e.g. disjoint rods), see :func:`voxelize`.

    Prisms along z sharing a z range share one cross-section image, so hundreds of rods cost about
    as much as one slice per rod.
    """
    g = as_grid(grid)
    out = torch.zeros(g.shape, dtype=torch.float32, device=g.device)
    sections: dict[tuple[float, float], torch.Tensor] = {}
    for shape in shapes:
        ext = shape.z_extrusion() if _axial_slices(g) else None
        if ext is None:
            fractional_occupancy(shape.sdf, g, n_sub, bounds_mm=shape.bounds(), lipschitz=True, out=out, **kwargs)
            continue
        cross = _cross_section(ext[0], g, n_sub, **kwargs)
        key = (ext[1], ext[2])
        sections[key] = cross if key not in sections else sections[key] + cross
    for (z0, z1), cross in sections.items():
        out += _z_overlap(g, z0, z1)[:, None, None] * cross
    return out


# --------------------------------------------------------------------------- geometry helpers
def rotation_matrix(angles_deg: Sequence[float] = (0.0, 0.0, 0.0), order: str = "zyx") -> np.ndarray:
    """3x3 rotation (float64) composed of rotations about LPS axes, applied in ``order``.

    ``angles_deg[i]`` is the angle about axis ``order[i]``; ``"zyx"`` means first about z, then y,
    then x (R = Rx @ Ry @ Rz). Positive angles turn counter-clockwise looking down the axis.
    """
    if len(order) != len(angles_deg) or set(order) - set("xyz"):
        raise InputError(f"order {order!r} must name one axis (x, y, z) per angle")
    r = np.eye(3)
    for ax, ang in zip(order, angles_deg):
        c, s = math.cos(math.radians(ang)), math.sin(math.radians(ang))
        i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[ax]
        m = np.eye(3)
        m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
        r = m @ r
    return r


def _rot(rotation: Any) -> np.ndarray:
    r = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
    if r.shape != (3, 3) or not np.allclose(r.T @ r, np.eye(3), atol=1e-6):
        raise InputError("rotation must be an orthonormal 3x3 matrix (columns = the shape's axes in LPS)")
    return r


def _unit(v: Any, name: str) -> np.ndarray:
    a = np.asarray(_as_triple(v, name))
    n = np.linalg.norm(a)
    if n == 0:
        raise InputError(f"{name} must be a non-zero vector")
    return a / n


def _t(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(a, dtype=like.dtype, device=like.device)


def _local(points: torch.Tensor, centre: np.ndarray, rotation: np.ndarray) -> torch.Tensor:
    """Coordinates of LPS points in the shape's frame (columns of ``rotation`` = local axes)."""
    return (points - _t(centre, points)) @ _t(rotation, points)


def _positive(v: Any, name: str) -> np.ndarray:
    a = np.asarray(_as_triple(v, name)) if not np.isscalar(v) else np.full(3, float(v))
    if np.any(a <= 0):
        raise InputError(f"{name} must be positive, got {v!r}")
    return a


# --------------------------------------------------------------------------- shapes
class Shape(abc.ABC):
    """A region of space given by a 1-Lipschitz signed distance in mm (negative inside).

    Subclasses implement :meth:`sdf` (points ``(..., 3)`` LPS mm -> ``(...)``) and :meth:`bounds`
    (LPS axis-aligned box, or None when unbounded). ``a | b``, ``a & b``, ``a - b`` build unions,
    intersections and differences.
    """

    @abc.abstractmethod
    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        """Signed distance (mm, negative inside) at LPS points ``(..., 3)`` in mm."""

    def bounds(self) -> Bounds | None:
        return None

    def z_extrusion(self) -> tuple["Shape", float, float] | None:
        """``(section, z0, z1)`` when the shape is a prism along LPS z: inside iff ``section`` (whose
        SDF does not depend on z) holds the point and ``z0 <= z <= z1``; else None."""
        return None

    def contains(self, points: torch.Tensor) -> torch.Tensor:
        """Boolean mask of the points inside (sdf <= 0)."""
        return self.sdf(points) <= 0

    def occupancy(self, grid: Any, n_sub: int = 4, **kwargs: Any) -> torch.Tensor:
        """Fractional occupancy on ``grid`` (see :func:`voxelize`)."""
        return voxelize(self, grid, n_sub, **kwargs)

    def __or__(self, other: "Shape") -> "Shape":
        return Union(self, other)

    def __and__(self, other: "Shape") -> "Shape":
        return Intersection(self, other)

    def __sub__(self, other: "Shape") -> "Shape":
        return Difference(self, other)


class Sphere(Shape):
    """Ball of ``radius_mm`` about LPS ``centre_mm``; exact SDF ``|p - c| - r``."""

    def __init__(self, centre_mm: Sequence[float], radius_mm: float) -> None:
        self.centre = np.asarray(_as_triple(centre_mm, "centre_mm"))
        self.radius = float(_positive(radius_mm, "radius_mm")[0])

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(points - _t(self.centre, points), dim=-1) - self.radius

    def bounds(self) -> Bounds:
        return self.centre - self.radius, self.centre + self.radius

    @property
    def volume_ml(self) -> float:
        return 4.0 / 3.0 * math.pi * self.radius ** 3 * 1e-3


class Ellipsoid(Shape):
    """Ellipsoid with semi-axes ``semi_axes_mm`` along the columns of ``rotation``.

    The SDF is the bound ``min(a) * (|q| - 1)`` with ``q = local / a``: exact sign, 1-Lipschitz
    (exact for a sphere).
    """

    def __init__(self, centre_mm: Sequence[float], semi_axes_mm: Sequence[float], rotation: Any = None) -> None:
        self.centre = np.asarray(_as_triple(centre_mm, "centre_mm"))
        self.semi_axes = _positive(semi_axes_mm, "semi_axes_mm")
        self.rotation = _rot(rotation)

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        q = _local(points, self.centre, self.rotation) / _t(self.semi_axes, points)
        return (torch.linalg.vector_norm(q, dim=-1) - 1.0) * float(self.semi_axes.min())

    def bounds(self) -> Bounds:
        half = np.sqrt(((self.rotation * self.semi_axes[None, :]) ** 2).sum(axis=1))
        return self.centre - half, self.centre + half


class Cylinder(Shape):
    """Right circular cylinder: ``radius_mm``, ``length_mm`` (None = infinite) along ``axis``.

    Exact SDF of a capped cylinder centred at ``centre_mm``.
    """

    def __init__(self, centre_mm: Sequence[float], radius_mm: float, length_mm: float | None = None,
                 axis: Sequence[float] = (0.0, 0.0, 1.0)) -> None:
        self.centre = np.asarray(_as_triple(centre_mm, "centre_mm"))
        self.radius = float(_positive(radius_mm, "radius_mm")[0])
        self.length = None if length_mm is None else float(_positive(length_mm, "length_mm")[0])
        self.axis = _unit(axis, "axis")

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        p = points - _t(self.centre, points)
        h = p @ _t(self.axis, points)
        radial = torch.linalg.vector_norm(p - h[..., None] * _t(self.axis, points), dim=-1) - self.radius
        if self.length is None:
            return radial
        along = h.abs() - 0.5 * self.length
        outside = torch.sqrt(radial.clamp(min=0) ** 2 + along.clamp(min=0) ** 2)
        return outside + torch.maximum(radial, along).clamp(max=0)

    def z_extrusion(self) -> tuple[Shape, float, float] | None:
        if abs(abs(self.axis[2]) - 1.0) > 1e-9:
            return None
        if self.length is None:
            return self, -math.inf, math.inf
        zc = float(self.centre[2])
        return _ZSection(self, zc), zc - self.length / 2, zc + self.length / 2

    def bounds(self) -> Bounds | None:
        if self.length is None:
            return None
        half = 0.5 * self.length * np.abs(self.axis) + self.radius * np.sqrt(np.clip(1 - self.axis ** 2, 0, 1))
        return self.centre - half, self.centre + half


class Box(Shape):
    """Rectangular box of full edge lengths ``size_mm`` along the columns of ``rotation``; exact SDF."""

    def __init__(self, centre_mm: Sequence[float], size_mm: Sequence[float], rotation: Any = None) -> None:
        self.centre = np.asarray(_as_triple(centre_mm, "centre_mm"))
        self.half = 0.5 * _positive(size_mm, "size_mm")
        self.rotation = _rot(rotation)

    @classmethod
    def from_corners(cls, lo_mm: Sequence[float], hi_mm: Sequence[float]) -> "Box":
        """Axis-aligned box between two LPS corners."""
        lo, hi = np.asarray(_as_triple(lo_mm, "lo_mm")), np.asarray(_as_triple(hi_mm, "hi_mm"))
        return cls((lo + hi) / 2, hi - lo)

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        q = _local(points, self.centre, self.rotation).abs() - _t(self.half, points)
        outside = torch.linalg.vector_norm(q.clamp(min=0), dim=-1)
        return outside + q.max(dim=-1).values.clamp(max=0)

    def z_extrusion(self) -> tuple[Shape, float, float] | None:
        k = np.flatnonzero(np.abs(np.abs(self.rotation[2]) - 1.0) < 1e-9)
        if k.size != 1:
            return None
        zc, h = float(self.centre[2]), float(self.half[k[0]])
        return _ZSection(self, zc), zc - h, zc + h

    def bounds(self) -> Bounds:
        half = np.abs(self.rotation) @ self.half
        return self.centre - half, self.centre + half


class HalfSpace(Shape):
    """Points ``p`` with ``(p - point_mm) . normal <= 0``: ``normal`` points OUT of the region."""

    def __init__(self, point_mm: Sequence[float], normal: Sequence[float]) -> None:
        self.point = np.asarray(_as_triple(point_mm, "point_mm"))
        self.normal = _unit(normal, "normal")

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        return (points - _t(self.point, points)) @ _t(self.normal, points)

    def z_extrusion(self) -> tuple[Shape, float, float] | None:
        return (self, -math.inf, math.inf) if abs(self.normal[2]) < 1e-12 else None

    def bounds(self) -> Bounds | None:
        """A half-infinite box when the normal is along an axis (so intersections can use it)."""
        axis = np.flatnonzero(np.abs(np.abs(self.normal) - 1.0) < 1e-12)
        if axis.size != 1:
            return None
        lo, hi = np.full(3, -np.inf), np.full(3, np.inf)
        (hi if self.normal[axis[0]] > 0 else lo)[axis[0]] = self.point[axis[0]]
        return lo, hi


class _ZSection(Shape):
    """A shape's cross-section at ``z``, extended along z: ``sdf(x, y, z) = shape.sdf(x, y, z_section)``.

    Projection onto a plane is 1-Lipschitz, so the SDF stays 1-Lipschitz with the right sign.
    """

    def __init__(self, shape: Shape, z_mm: float) -> None:
        self.shape, self.z = shape, float(z_mm)

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        return self.shape.sdf(torch.cat([points[..., :2], torch.full_like(points[..., 2:], self.z)], dim=-1))

    def bounds(self) -> Bounds | None:
        b = self.shape.bounds()
        return None if b is None else (np.r_[b[0][:2], -np.inf], np.r_[b[1][:2], np.inf])


class _Combination(Shape):
    def __init__(self, *shapes: Shape) -> None:
        if len(shapes) < 2 or not all(isinstance(s, Shape) for s in shapes):
            raise InputError(f"{type(self).__name__} needs at least two Shapes")
        self.shapes = shapes


class Union(_Combination):
    """Points in any of the shapes (SDF = min)."""

    def z_extrusion(self) -> tuple[Shape, float, float] | None:
        ext = [s.z_extrusion() for s in self.shapes]
        if any(e is None for e in ext) or len({(e[1], e[2]) for e in ext}) != 1:
            return None
        return Union(*(e[0] for e in ext)), ext[0][1], ext[0][2]

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        return torch.stack([s.sdf(points) for s in self.shapes]).min(dim=0).values

    def bounds(self) -> Bounds | None:
        bs = [s.bounds() for s in self.shapes]
        if any(b is None for b in bs):
            return None
        return np.min([b[0] for b in bs], axis=0), np.max([b[1] for b in bs], axis=0)


class Intersection(_Combination):
    """Points in all of the shapes (SDF = max)."""

    def z_extrusion(self) -> tuple[Shape, float, float] | None:
        ext = [s.z_extrusion() for s in self.shapes]
        if any(e is None for e in ext):
            return None
        return Intersection(*(e[0] for e in ext)), max(e[1] for e in ext), min(e[2] for e in ext)

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        return torch.stack([s.sdf(points) for s in self.shapes]).max(dim=0).values

    def bounds(self) -> Bounds | None:
        bs = [b for b in (s.bounds() for s in self.shapes) if b is not None]
        if not bs:
            return None
        return np.max([b[0] for b in bs], axis=0), np.min([b[1] for b in bs], axis=0)


class Difference(Shape):
    """Points in ``a`` but not in ``b`` (SDF = max(a, -b))."""

    def __init__(self, a: Shape, b: Shape) -> None:
        self.a, self.b = a, b

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        return torch.maximum(self.a.sdf(points), -self.b.sdf(points))

    def bounds(self) -> Bounds | None:
        return self.a.bounds()

    def z_extrusion(self) -> tuple[Shape, float, float] | None:
        ea, eb = self.a.z_extrusion(), self.b.z_extrusion()
        if ea is None or eb is None or eb[1] > ea[1] or eb[2] < ea[2]:
            return None
        return Difference(ea[0], eb[0]), ea[1], ea[2]


class Transformed(Shape):
    """A shape rotated by ``rotation`` (3x3, about the LPS origin) and then moved by ``translation_mm``.

    ``sdf(p) = shape.sdf(R^T (p - t))``; rigid motions keep the SDF 1-Lipschitz.
    """

    def __init__(self, shape: Shape, rotation: Any = None, translation_mm: Sequence[float] = (0.0, 0.0, 0.0)) -> None:
        self.shape, self.rotation = shape, _rot(rotation)
        self.translation = np.asarray(_as_triple(translation_mm, "translation_mm"))

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        return self.shape.sdf(_local(points, self.translation, self.rotation))

    def bounds(self) -> Bounds | None:
        b = self.shape.bounds()
        if b is None or not (np.all(np.isfinite(b[0])) and np.all(np.isfinite(b[1]))):
            return None
        corners = np.array([[b[i][0], b[j][1], b[k][2]] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
        moved = corners @ self.rotation.T + self.translation
        return moved.min(axis=0), moved.max(axis=0)

    def z_extrusion(self) -> tuple[Shape, float, float] | None:
        ext = self.shape.z_extrusion()
        if ext is None or abs(self.rotation[2, 2] - 1.0) > 1e-9:
            return None
        tz = float(self.translation[2])
        return Transformed(ext[0], self.rotation, self.translation), ext[1] + tz, ext[2] + tz


def half_cylinder(centre_mm: Sequence[float], radius_mm: float, length_mm: float | None,
                  axis: Sequence[float], keep_direction: Sequence[float]) -> Shape:
    """The half of a cylinder on the side of its axis that ``keep_direction`` points to.

    ``keep_direction`` must be perpendicular to ``axis``; e.g. axis (0, 0, 1) and keep (0, -1, 0)
    keeps the anterior half (LPS y < centre y).
    """
    a, k = _unit(axis, "axis"), _unit(keep_direction, "keep_direction")
    if abs(float(a @ k)) > 1e-6:
        raise InputError("keep_direction must be perpendicular to the cylinder axis")
    return Intersection(Cylinder(centre_mm, radius_mm, length_mm, axis), HalfSpace(centre_mm, -k))
