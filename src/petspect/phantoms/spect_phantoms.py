"""SPECT and resolution phantoms: Jaszczak (deluxe-like), Derenzo hot rods, uniform cylinder,
point sources and a line source, voxelised with partial volumes (:mod:`petspect.phantoms.shapes`).

All lengths in mm, LPS; the phantom axis is LPS z and the grid is centred at (0, 0, 0).
Activities are Bq/mL, attenuation maps 1/mm.

Jaszczak dimensions (approx) are those of the Data Spectrum "Deluxe ECT Phantom" (model ECT/DLX/P)
specification sheet: cylinder inside diameter 216 mm and inside height 186 mm; cold-rod insert
88 mm high, six sectors of solid acrylic rods of diameters 4.8, 6.4, 7.9, 9.5, 11.1, 12.7 mm with a
centre-to-centre spacing of twice the diameter; six solid acrylic spheres of diameters 9.5, 12.7,
15.9, 19.1, 25.4, 31.8 mm. The sphere ring radius (60 mm) and the sphere plane (midway between the
rod insert and the lid) are our choice; the real spheres hang on stems at varying heights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

import petspect
from petspect.errors import InputError
from petspect.phantoms.base import Phantom
from petspect.phantoms.compartments import Compartment, compartment_volumes
from petspect.phantoms.shapes import Cylinder, Grid, Shape, Sphere, voxelize, voxelize_many

JASZCZAK_RADIUS_MM = 108.0
JASZCZAK_LENGTH_MM = 186.0
JASZCZAK_WALL_MM = 3.2
JASZCZAK_ROD_DIAMETERS_MM = (4.8, 6.4, 7.9, 9.5, 11.1, 12.7)
JASZCZAK_SPHERE_DIAMETERS_MM = (9.5, 12.7, 15.9, 19.1, 25.4, 31.8)
JASZCZAK_ROD_LENGTH_MM = 88.0
JASZCZAK_ROD_PATTERN_RADIUS_MM = 95.0
JASZCZAK_SPHERE_RING_MM = 60.0


def _voxels(voxel_mm: float | Sequence[float]) -> tuple[float, float, float]:
    vox = (float(voxel_mm),) * 3 if np.isscalar(voxel_mm) else tuple(float(v) for v in voxel_mm)
    if len(vox) != 3 or min(vox) <= 0:
        raise InputError(f"voxel_mm must be positive (one value or three), got {voxel_mm!r}")
    return vox  # type: ignore[return-value]


def _grid(voxel_mm, half_extent_xyz_mm: Sequence[float], shape: Sequence[int] | None, device: Any) -> Grid:
    """Centred axial grid: given ``shape``, or one covering +-half_extent (mm) plus a 6 mm margin."""
    vox = _voxels(voxel_mm)
    if shape is None:
        shape = tuple(int(math.ceil(2 * (half_extent_xyz_mm[2 - a] + 6.0) / vox[a])) for a in range(3))
    return Grid.centered(tuple(int(n) for n in shape), vox, device=device)


def _record(name: str, params: dict[str, Any]) -> dict[str, Any]:
    clean = {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items() if k != "device"}
    return {"generator": name, "params": clean, "petspect_version": petspect.__version__}


def _phantom(name: str, grid: Grid, comps: list[Compartment], energies_kev, params: dict[str, Any],
             tables: dict[str, list[dict[str, Any]]] | None = None) -> Phantom:
    meta = {"phantom": name, "tracer": params.get("tracer")}
    volumes, label_names = compartment_volumes(grid, comps, energies_kev=energies_kev, meta=meta)
    rows = [{"name": c.name, "volume_ml": float(c.fraction.sum()) * grid.voxel_volume_ml,
             "activity_bq_per_ml": c.activity_bq_per_ml, "material": c.material} for c in comps]
    return Phantom(volumes, label_names, {"compartments": rows, **(tables or {})}, _record(name, params))


def rod_sector_centres(rod_diameters_mm: Sequence[float], pattern_radius_mm: float, *,
                       gap_mm: float = 3.0) -> list[np.ndarray]:
    """Rod centres (x, y) of a six-sector rod pattern (Jaszczak cold rods, Derenzo hot rods).

    Sector ``s`` spans the 60 deg wedge about the bisector at ``90 + 60 s`` deg (the first points
    to +y); its rods of diameter ``d`` sit on a triangular lattice of pitch ``2 d`` whose corner lies
    ``d + gap`` from the centre on the bisector, so neighbouring sectors stay ``gap`` apart. Rods
    are kept when they lie wholly inside ``pattern_radius_mm``.

    Returns
    -------
    list of ndarray, each (n_s, 2)
    """
    out = []
    for s, d in enumerate(rod_diameters_mm):
        if d <= 0:
            raise InputError(f"rod diameters must be positive, got {d}")
        bis = math.radians(90.0 + 60.0 * s)
        u1 = 2 * d * np.array([math.cos(bis - math.pi / 6), math.sin(bis - math.pi / 6)])
        u2 = 2 * d * np.array([math.cos(bis + math.pi / 6), math.sin(bis + math.pi / 6)])
        start = (d + gap_mm) * np.array([math.cos(bis), math.sin(bis)])
        n = int(pattern_radius_mm // (2 * d)) + 2
        ij = np.array([(i, j) for i in range(n) for j in range(n)], dtype=np.float64)
        pts = start + ij[:, :1] * u1 + ij[:, 1:] * u2
        out.append(pts[np.linalg.norm(pts, axis=1) + d / 2 <= pattern_radius_mm])
    return out


def _rods(centres: list[np.ndarray], diameters: Sequence[float], z_lo: float, z_hi: float) -> list[Shape]:
    zc, length = (z_lo + z_hi) / 2, z_hi - z_lo
    return [Cylinder((p[0], p[1], zc), d / 2, length) for d, pts in zip(diameters, centres) for p in pts]


def _union_occupancy(shapes: list[Shape], grid: Grid, n_sub: int) -> torch.Tensor:
    """Occupancy of disjoint shapes (summed, clamped to 1)."""
    return voxelize_many(shapes, grid, n_sub).clamp(max=1.0)


def make_jaszczak(*, voxel_mm: float | Sequence[float] = 2.0, seed: int = 0, tracer: str | None = None,
                  background_bq_per_ml: float = 10000.0, rod_diameters_mm: Sequence[float] = JASZCZAK_ROD_DIAMETERS_MM,
                  sphere_diameters_mm: Sequence[float] = JASZCZAK_SPHERE_DIAMETERS_MM, walls: bool = True,
                  n_sub: int = 4, shape: Sequence[int] | None = None,
                  energies_kev: Sequence[float] = (140.0,), device: Any = "cpu") -> Phantom:
    """A deluxe-like Jaszczak phantom: water with activity, cold acrylic rods and spheres.

    Parameters
    ----------
    voxel_mm : float or (dz, dy, dx)
        Voxel size (mm).
    seed : int
        Recorded only (no random part).
    tracer : str, optional
        Recorded in the metadata.
    background_bq_per_ml : float
        Activity concentration of the water.
    rod_diameters_mm, sphere_diameters_mm : sequences of 6 floats
        Cold rods per sector and cold spheres (see the module docstring for the defaults' source).
    walls : bool
        Model the 3.2 mm acrylic cylinder wall (mu of PMMA, no activity).
    n_sub : int
        Supersampling points per axis.
    shape : (nz, ny, nx), optional
        Grid size (default: the phantom plus a margin).
    energies_kev : sequence of float
        Energies of the mu maps (default 140 keV, Tc-99m).
    device : str or torch.device

    Returns
    -------
    Phantom
        ``activity``, ``mu_<E>``, ``labels`` (water, rods, spheres, wall); tables ``rods``, ``spheres``.
    """
    params = dict(locals())
    r_out = JASZCZAK_RADIUS_MM + (JASZCZAK_WALL_MM if walls else 0.0)
    half_len = JASZCZAK_LENGTH_MM / 2 + (JASZCZAK_WALL_MM if walls else 0.0)
    grid = _grid(voxel_mm, (r_out, r_out, half_len), shape, device)
    inner = voxelize(Cylinder((0, 0, 0), JASZCZAK_RADIUS_MM, JASZCZAK_LENGTH_MM), grid, n_sub)
    z_bot = -JASZCZAK_LENGTH_MM / 2
    centres = rod_sector_centres(rod_diameters_mm, JASZCZAK_ROD_PATTERN_RADIUS_MM)
    rods = _union_occupancy(_rods(centres, rod_diameters_mm, z_bot, z_bot + JASZCZAK_ROD_LENGTH_MM), grid, n_sub)
    z_sph = (z_bot + JASZCZAK_ROD_LENGTH_MM + JASZCZAK_LENGTH_MM / 2) / 2
    ang = np.radians(90.0 + 60.0 * np.arange(len(sphere_diameters_mm)))
    sph_c = np.column_stack([JASZCZAK_SPHERE_RING_MM * np.cos(ang), JASZCZAK_SPHERE_RING_MM * np.sin(ang),
                             np.full(len(ang), z_sph)])
    spheres = _union_occupancy([Sphere(c, d / 2) for c, d in zip(sph_c, sphere_diameters_mm)], grid, n_sub)
    comps = [Compartment("water", (inner - rods - spheres).clamp(min=0), background_bq_per_ml, "water"),
             Compartment("cold_rods", rods, 0.0, "pmma"), Compartment("cold_spheres", spheres, 0.0, "pmma")]
    if walls:
        outer = voxelize(Cylinder((0, 0, 0), r_out, 2 * half_len), grid, n_sub)
        comps.append(Compartment("wall", (outer - inner).clamp(min=0), 0.0, "pmma"))
    tables = {"rods": [{"sector": s + 1, "diameter_mm": float(d), "count": int(len(c)),
                        "centres_xy_mm": c.tolist()} for s, (d, c) in enumerate(zip(rod_diameters_mm, centres))],
              "spheres": [{"diameter_mm": float(d), "centre_mm": c.tolist()} for d, c in zip(sphere_diameters_mm, sph_c)]}
    return _phantom("jaszczak", grid, comps, energies_kev, params, tables)


def make_derenzo(*, voxel_mm: float | Sequence[float] = 1.0, seed: int = 0, tracer: str | None = None,
                 rod_diameters_mm: Sequence[float] = (4.8, 6.4, 7.9, 9.5, 11.1, 12.7),
                 rod_bq_per_ml: float = 10000.0, radius_mm: float = 100.0, length_mm: float = 80.0,
                 n_sub: int = 4, shape: Sequence[int] | None = None, energies_kev: Sequence[float] = (511.0,),
                 device: Any = "cpu") -> Phantom:
    """A Derenzo (hot-rod) phantom: hot water-filled rods drilled in an acrylic cylinder.

    Six sectors of rods (``rod_diameters_mm``, one diameter per sector, pitch twice the diameter,
    :func:`rod_sector_centres`) through the whole ``length_mm``; the acrylic has no activity.
    Small-animal versions use e.g. ``rod_diameters_mm=(0.8, 1.0, 1.25, 1.5, 2.0, 2.5)`` with
    ``radius_mm=15``.
    """
    params = dict(locals())
    if radius_mm <= 0 or length_mm <= 0:
        raise InputError("radius_mm and length_mm must be positive")
    grid = _grid(voxel_mm, (radius_mm, radius_mm, length_mm / 2), shape, device)
    body = voxelize(Cylinder((0, 0, 0), radius_mm, length_mm), grid, n_sub)
    centres = rod_sector_centres(rod_diameters_mm, 0.95 * radius_mm)
    rods = _union_occupancy(_rods(centres, rod_diameters_mm, -length_mm / 2, length_mm / 2), grid, n_sub)
    comps = [Compartment("hot_rods", rods, rod_bq_per_ml, "water"),
             Compartment("acrylic", (body - rods).clamp(min=0), 0.0, "pmma")]
    tables = {"rods": [{"sector": s + 1, "diameter_mm": float(d), "count": int(len(c)),
                        "centres_xy_mm": c.tolist()} for s, (d, c) in enumerate(zip(rod_diameters_mm, centres))]}
    return _phantom("derenzo", grid, comps, energies_kev, params, tables)


def make_cylinder(*, voxel_mm: float | Sequence[float] = 2.0, seed: int = 0, tracer: str | None = None,
                  radius_mm: float = 100.0, length_mm: float = 200.0, activity_bq_per_ml: float = 10000.0,
                  wall_mm: float = 0.0, n_sub: int = 4, shape: Sequence[int] | None = None,
                  energies_kev: Sequence[float] = (511.0,), device: Any = "cpu") -> Phantom:
    """A uniform water cylinder along z (uniformity / calibration phantom), optional acrylic wall."""
    params = dict(locals())
    if radius_mm <= 0 or length_mm <= 0 or wall_mm < 0:
        raise InputError("radius_mm and length_mm must be positive and wall_mm >= 0")
    grid = _grid(voxel_mm, (radius_mm + wall_mm, radius_mm + wall_mm, length_mm / 2 + wall_mm), shape, device)
    inner = voxelize(Cylinder((0, 0, 0), radius_mm, length_mm), grid, n_sub)
    comps = [Compartment("water", inner, activity_bq_per_ml, "water")]
    if wall_mm > 0:
        outer = voxelize(Cylinder((0, 0, 0), radius_mm + wall_mm, length_mm + 2 * wall_mm), grid, n_sub)
        comps.append(Compartment("wall", (outer - inner).clamp(min=0), 0.0, "pmma"))
    return _phantom("cylinder", grid, comps, energies_kev, params)


def _splat(grid: Grid, point_mm: np.ndarray) -> torch.Tensor:
    """Trilinear weights (sum 1) of a point on the voxel grid: its centroid is the point."""
    k = np.linalg.solve(grid.affine[:3, :3], np.asarray(point_mm, dtype=np.float64) - grid.affine[:3, 3])
    out = torch.zeros(grid.shape, dtype=torch.float32, device=grid.device)
    base = np.floor(k).astype(int)
    frac = k - base
    for corner in np.ndindex(2, 2, 2):
        idx = base + np.asarray(corner)
        w = float(np.prod(np.where(np.asarray(corner) == 1, frac, 1 - frac)))
        if w > 0 and np.all(idx >= 0) and np.all(idx < np.asarray(grid.shape)):
            out[tuple(int(i) for i in idx)] += w
    if float(out.sum()) < 0.999:
        raise InputError(f"point source at {list(point_mm)} mm lies outside the grid")
    return out


def _fine_n_sub(n_sub: int, grid: Grid, feature_mm: float) -> int:
    """At least ``n_sub``, and enough (a power of two) for 8 sub-samples across a thin feature."""
    need = 8.0 * max(grid.spacing_mm) / feature_mm
    return max(int(n_sub), 2 ** int(math.ceil(math.log2(max(need, 1.0)))))


def _medium(grid: Grid, medium_radius_mm: float | None, medium_length_mm: float, n_sub: int) -> list[Compartment]:
    if medium_radius_mm is None:
        return []
    return [Compartment("water_medium", voxelize(Cylinder((0, 0, 0), medium_radius_mm, medium_length_mm), grid, n_sub),
                        0.0, "water")]


def make_point_sources(*, voxel_mm: float | Sequence[float] = 2.0, seed: int = 0, tracer: str | None = None,
                       positions_mm: Sequence[Sequence[float]] = ((0, 0, 0), (0, 100, 0), (100, 0, 0)),
                       activity_bq: float | Sequence[float] = 1.0e6, diameter_mm: float = 0.0,
                       medium_radius_mm: float | None = None, medium_length_mm: float = 200.0,
                       n_sub: int = 8, shape: Sequence[int] | None = None, energies_kev: Sequence[float] = (511.0,),
                       device: Any = "cpu") -> Phantom:
    """Point sources at any LPS positions (e.g. the NU 2 section 3 resolution positions).

    ``diameter_mm = 0`` spreads each source over its 8 neighbouring voxels by trilinear weights (its
    centroid stays exactly at the position); ``diameter_mm > 0`` makes small uniform spheres. Each
    source holds ``activity_bq`` in total. ``medium_radius_mm`` puts them in a water cylinder
    (no activity; scatter and attenuation medium), else in air (mu 0).
    """
    params = dict(locals())
    pos = np.asarray(positions_mm, dtype=np.float64).reshape(-1, 3)
    acts = np.broadcast_to(np.asarray(activity_bq, dtype=np.float64), (len(pos),))
    half = np.abs(pos).max(axis=0) + max(diameter_mm, 4.0)
    if medium_radius_mm is not None:
        half = np.maximum(half, [medium_radius_mm, medium_radius_mm, medium_length_mm / 2])
    grid = _grid(voxel_mm, half, shape, device)
    comps = []
    for i, (p, a) in enumerate(zip(pos, acts)):
        frac = (voxelize(Sphere(p, diameter_mm / 2), grid, _fine_n_sub(n_sub, grid, diameter_mm)) if diameter_mm > 0
                else _splat(grid, p))
        vol_ml = float(frac.sum()) * grid.voxel_volume_ml
        if vol_ml <= 0:
            raise InputError(f"point source {i} at {p.tolist()} mm lies outside the grid")
        # a point's splat weights are not a material occupancy: it sits in the medium, in air otherwise
        comps.append(Compartment(f"source_{i + 1}", frac, float(a) / vol_ml, "water" if diameter_mm > 0 else None))
    medium = _medium(grid, medium_radius_mm, medium_length_mm, n_sub)
    if medium and diameter_mm > 0:
        medium[0].fraction = (medium[0].fraction - sum(c.fraction for c in comps)).clamp(min=0)
    comps += medium
    tables = {"sources": [{"id": i + 1, "centre_mm": p.tolist(), "activity_bq": float(a)} for i, (p, a) in enumerate(zip(pos, acts))]}
    return _phantom("point-sources", grid, comps, energies_kev, params, tables)


def make_line_source(*, voxel_mm: float | Sequence[float] = 2.0, seed: int = 0, tracer: str | None = None,
                     start_mm: Sequence[float] = (0.0, 45.0, -100.0), end_mm: Sequence[float] = (0.0, 45.0, 100.0),
                     diameter_mm: float = 1.0, activity_bq: float = 1.0e7, medium_radius_mm: float | None = 101.5,
                     medium_length_mm: float = 200.0, n_sub: int = 8, shape: Sequence[int] | None = None,
                     energies_kev: Sequence[float] = (511.0,), device: Any = "cpu") -> Phantom:
    """A line source between two LPS points, in a water cylinder or in air.

    The defaults echo the NEMA NU 2 scatter-fraction phantom (a 203 mm diameter cylinder with the
    line 45 mm off axis; NU 2 uses polyethylene, here water-equivalent). The line is a uniform
    cylinder of ``diameter_mm`` holding ``activity_bq`` in total; thin lines are supersampled with
    at least 8 points across their diameter.
    """
    params = dict(locals())
    p0, p1 = np.asarray(start_mm, dtype=np.float64), np.asarray(end_mm, dtype=np.float64)
    length = float(np.linalg.norm(p1 - p0))
    if length <= 0 or diameter_mm <= 0:
        raise InputError("the line needs two distinct end points and a positive diameter")
    half = np.maximum(np.abs(p0), np.abs(p1)) + diameter_mm
    if medium_radius_mm is not None:
        half = np.maximum(half, [medium_radius_mm, medium_radius_mm, medium_length_mm / 2])
    grid = _grid(voxel_mm, half, shape, device)
    line = voxelize(Cylinder((p0 + p1) / 2, diameter_mm / 2, length, p1 - p0), grid,
                    _fine_n_sub(n_sub, grid, diameter_mm))
    vol_ml = float(line.sum()) * grid.voxel_volume_ml
    if vol_ml <= 0:
        raise InputError("the line source lies outside the grid")
    comps = [Compartment("line_source", line, activity_bq / vol_ml, "water")]
    if medium_radius_mm is not None:
        medium = _medium(grid, medium_radius_mm, medium_length_mm, n_sub)[0]
        medium.fraction = (medium.fraction - line).clamp(min=0)
        comps.append(medium)
    return _phantom("line-source", grid, comps, energies_kev, params,
                    {"line": [{"start_mm": p0.tolist(), "end_mm": p1.tolist(), "activity_bq": activity_bq,
                               "activity_bq_per_mm": activity_bq / length}]})
