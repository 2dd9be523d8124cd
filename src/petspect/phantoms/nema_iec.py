"""The NEMA IEC body phantom (NEMA NU 2 image quality; IEC 61675-1), voxelised with partial volumes.

Geometry (mm), as used by OpenGATE ``contrib/phantoms/nemaiec.py`` and NEMA NU 2-2018 section 7.3
------------------------------------------------------------------------------------------------
* Body: 214 mm long outside; cross-section a half-cylinder of radius 150 mm (anterior, LPS -y) on top
  of a 140 x 80 mm box flanked by two quarter-cylinders of radius 80 mm centred at x = +-70 mm;
  3 mm PMMA walls. Interior length :data:`INTERIOR_LENGTH_MM` (NU 2 asks for at least 180 mm).
* Lung insert: PMMA tube, outer radius 25 mm, inner 21 mm, filled with lung-density material, along
  the whole interior on the axis through the centre of the sphere ring, 35 mm from the centre of
  the 150 mm arc.
* Six fillable spheres, inner diameters 37, 28, 22, 17, 13, 10 mm, 1 mm PMMA walls, centres on a
  circle of radius 57.2 mm about the lung-insert axis, 60 deg apart, in one transverse plane 70 mm
  below the inside of the lid (OpenGATE: 27 mm above the body centre in a 194 mm interior).
  The filling stems are not modelled.

Placement in LPS: the lung-insert axis is the z axis (x = y = 0), the body centre is at z = 0 and
the sphere plane at ``z = INTERIOR_LENGTH_MM / 2 - 70``; the arc's centre is at y = +35 mm, so the body
spans y in [-115, 115] mm (anterior is -y) and x in [-150, 150] mm. The 37 mm sphere lies at
-x (patient right), the others follow at 60 deg steps as in OpenGATE.
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
from petspect.phantoms.shapes import (Box, Cylinder, Grid, HalfSpace, Shape, Sphere, Transformed, rotation_matrix,
                                      voxelize)

SPHERE_DIAMETERS_MM = (37.0, 28.0, 22.0, 17.0, 13.0, 10.0)
SPHERE_WALL_MM = 1.0
SPHERE_RING_RADIUS_MM = 57.2
SPHERE_PLANE_BELOW_LID_MM = 70.0
BODY_LENGTH_MM = 214.0
# NU 2 asks for an interior length >= 180 mm; 187 mm makes the background compartment (interior
# minus lung insert and spheres) 9.7 L, the nominal background volume (docs/REFERENCE.md, NU 2-2018 7.3.1).
INTERIOR_LENGTH_MM = 187.0
WALL_MM = 3.0
ARC_RADIUS_MM = 150.0
CORNER_RADIUS_MM = 80.0
CORNER_X_MM = 70.0
LOWER_DEPTH_MM = 80.0
ARC_CENTRE_Y_MM = 35.0  # arc centre relative to the lung-insert axis (posterior, +y)
LUNG_OUTER_RADIUS_MM = 25.0
LUNG_INNER_RADIUS_MM = 21.0


def sphere_plane_z_mm(interior_length_mm: float = INTERIOR_LENGTH_MM) -> float:
    """LPS z (mm) of the sphere centres with the body centred at z = 0."""
    return interior_length_mm / 2.0 - SPHERE_PLANE_BELOW_LID_MM


def sphere_centres_mm(*, ring_angle_deg: float = 0.0, interior_length_mm: float = INTERIOR_LENGTH_MM) -> np.ndarray:
    """LPS centres (6, 3) in mm of the spheres, in the order of :data:`SPHERE_DIAMETERS_MM`.

    Sphere ``k`` lies at angle ``180 + 60 k + ring_angle_deg`` degrees (counter-clockwise from +x
    seen from the feet, in the (x, -y) plane) on the 57.2 mm ring about the lung-insert axis.
    """
    ang = np.radians(180.0 + 60.0 * np.arange(6) + ring_angle_deg)
    z = np.full(6, sphere_plane_z_mm(interior_length_mm))
    return np.stack([SPHERE_RING_RADIUS_MM * np.cos(ang), -SPHERE_RING_RADIUS_MM * np.sin(ang), z], axis=1)


def body_shape(wall_mm: float = 0.0, *, length_mm: float = BODY_LENGTH_MM) -> Shape:
    """The body's outline shrunk by ``wall_mm`` (0: outside surface; 3: the interior), length along z."""
    yc = ARC_CENTRE_Y_MM
    arc = Cylinder((0, yc, 0), ARC_RADIUS_MM - wall_mm, length_mm) & HalfSpace((0, yc, 0), (0, 1, 0))
    # the lower box and the full corner cylinders reach up into the arc (they stay inside it:
    # 70 + 80 = 150 and hypot(70, 100) < 147), so the pieces overlap and the union's SDF has no
    # internal seams that would be mistaken for surface
    depth = LOWER_DEPTH_MM - wall_mm
    box = Box((0, yc + (depth - 100.0) / 2, 0), (2 * CORNER_X_MM, depth + 100.0, length_mm))
    corners = [Cylinder((sx * CORNER_X_MM, yc, 0), CORNER_RADIUS_MM - wall_mm, length_mm) for sx in (-1, 1)]
    return arc | box | corners[0] | corners[1]


def _sphere_hot_flags(hot_spheres: int | Sequence[float]) -> list[bool]:
    if isinstance(hot_spheres, (int, np.integer)) and not isinstance(hot_spheres, bool):
        if not 0 <= int(hot_spheres) <= 6:
            raise InputError(f"hot_spheres must be 0..6 (the smallest n are hot), got {hot_spheres}")
        return [i >= 6 - int(hot_spheres) for i in range(6)]
    wanted = [float(d) for d in hot_spheres]
    unknown = [d for d in wanted if d not in SPHERE_DIAMETERS_MM]
    if unknown:
        raise InputError(f"hot_spheres lists unknown diameters {unknown}; spheres are {SPHERE_DIAMETERS_MM} mm")
    return [d in wanted for d in SPHERE_DIAMETERS_MM]


def _default_shape(voxel_mm: Sequence[float], body_bounds: tuple[np.ndarray, np.ndarray]) -> tuple[int, int, int]:
    """Grid (nz, ny, nx) centred at the LPS origin that holds the body with an 8 mm margin."""
    half_xyz = np.maximum(np.abs(body_bounds[0]), np.abs(body_bounds[1])) + 8.0
    return tuple(int(math.ceil(2 * half_xyz[2 - a] / voxel_mm[a])) for a in range(3))  # type: ignore[return-value]


class _Pose:
    """Rigid placement of the phantom: rotation ``rotation_deg`` about z, then a shift ``offset_mm``."""

    def __init__(self, rotation_deg: float, offset_mm: Sequence[float]) -> None:
        self.rotation = rotation_matrix((rotation_deg,), "z")
        self.offset = np.asarray(offset_mm, dtype=np.float64).reshape(3)

    def shape(self, s: Shape) -> Shape:
        return Transformed(s, self.rotation, self.offset)

    def point(self, p: np.ndarray) -> np.ndarray:
        return self.rotation @ np.asarray(p, dtype=np.float64) + self.offset


def _iec_compartments(grid: Grid, n_sub: int, hot: list[bool], pmma_walls: bool, pose: _Pose, *, bg: float,
                      hot_conc: float, ring_angle_deg: float) -> tuple[list[Compartment], list[dict[str, Any]]]:
    ilen = INTERIOR_LENGTH_MM

    def occ(s: Shape) -> torch.Tensor:
        return voxelize(pose.shape(s), grid, n_sub)

    f_int = occ(body_shape(WALL_MM, length_mm=ilen))
    lung_in = occ(Cylinder((0, 0, 0), LUNG_INNER_RADIUS_MM, ilen))
    wall_total = torch.zeros_like(f_int)
    if pmma_walls:
        wall_total += occ(body_shape(0.0)) - f_int
        lung_out = occ(Cylinder((0, 0, 0), LUNG_OUTER_RADIUS_MM, ilen))
        wall_total += lung_out - lung_in
    else:
        lung_out = lung_in
    comps, rows = [], []
    occupied = lung_out.clone()
    for k, (d, c, is_hot) in enumerate(zip(SPHERE_DIAMETERS_MM, sphere_centres_mm(ring_angle_deg=ring_angle_deg), hot)):
        inner = occ(Sphere(c, d / 2))
        outer = occ(Sphere(c, d / 2 + SPHERE_WALL_MM)) if pmma_walls else inner
        wall_total += outer - inner
        occupied += outer
        conc = hot_conc if is_hot else 0.0
        comps.append(Compartment(f"sphere_{d:g}mm", inner, conc, "water"))
        rows.append({"id": k + 1, "diameter_mm": d, "centre_mm": [float(v) for v in pose.point(c)], "hot": is_hot,
                     "volume_ml": 4 / 3 * math.pi * (d / 2) ** 3 * 1e-3,
                     "voxelised_volume_ml": float(inner.sum()) * grid.voxel_volume_ml,
                     "activity_bq_per_ml": conc})
    background = (f_int - occupied).clamp(min=0)
    comps = [Compartment("background", background, bg, "water"), Compartment("lung_insert", lung_in, 0.0, "lung"),
             *comps]
    if pmma_walls:
        comps.append(Compartment("pmma_wall", wall_total.clamp(min=0), 0.0, "pmma"))
    return comps, rows


def make_nema_iec(*, voxel_mm: float | Sequence[float] = 2.0, seed: int = 0, tracer: str | None = None,
                  sphere_to_background: float = 4.0, background_bq_per_ml: float = 5300.0,
                  pmma_walls: bool = True, hot_spheres: int | Sequence[float] = 6, n_sub: int = 4,
                  shape: Sequence[int] | None = None, energies_kev: Sequence[float] = (511.0,),
                  ring_angle_deg: float = 0.0, rotation_deg: float = 0.0,
                  offset_mm: Sequence[float] = (0.0, 0.0, 0.0), device: Any = "cpu") -> Phantom:
    """The NEMA IEC body phantom with partial-volume-correct activity, mu and label maps.

    Parameters
    ----------
    voxel_mm : float or (dz, dy, dx)
        Voxel size in mm.
    seed : int
        Recorded only: the phantom has no random part (same arguments give identical volumes).
    tracer : str, optional
        Tracer name recorded in the metadata (e.g. "fdg"); it does not change the geometry.
    sphere_to_background : float
        Hot-sphere to background activity-concentration ratio (NU 2: 4; 8 optional).
    background_bq_per_ml : float
        Background concentration (NU 2-2018: 5.3 kBq/mL at the scan start).
    pmma_walls : bool
        Model the PMMA walls (3 mm body, 2 mm lung tube, 1 mm spheres; no activity, mu of PMMA).
        False gives an idealised phantom whose compartments touch with no walls.
    hot_spheres : int or sequence of float
        Number of hot spheres, the smallest first (6 = all hot, NU 2-2012+; 4 = 37 and 28 mm cold,
        NU 2-2007), or the diameters (mm) of the hot ones. The others are cold (no activity).
    n_sub : int
        Supersampling points per axis per voxel.
    shape : (nz, ny, nx), optional
        Grid size; default covers the body with an 8 mm margin. The grid is centred at LPS (0, 0, 0).
    energies_kev : sequence of float
        Photon energies of the mu maps (``"mu_511"``, ``"mu_140"`` for 140 keV, ...), 1/mm.
    ring_angle_deg : float
        Extra rotation of the sphere ring about the lung-insert axis (degrees).
    rotation_deg, offset_mm : float, (x, y, z)
        Pose of the whole phantom: rotation about the LPS z axis (degrees), then a shift (mm).
    device : str or torch.device
        Device of the volumes.

    Returns
    -------
    Phantom
        Volumes ``activity`` (Bq/mL), ``mu_<E>`` (1/mm), ``labels``; tables ``spheres`` (nominal and
        voxelised volumes, centres, activity) and ``compartments`` (voxelised volumes in mL).
    """
    if sphere_to_background <= 0 or background_bq_per_ml < 0:
        raise InputError("sphere_to_background must be > 0 and background_bq_per_ml >= 0")
    if tracer is not None:
        from petspect.phantoms.tracers import get_tracer

        get_tracer(tracer)  # raises InputError on an unknown tracer
    hot = _sphere_hot_flags(hot_spheres)
    vox = (float(voxel_mm),) * 3 if np.isscalar(voxel_mm) else tuple(float(v) for v in voxel_mm)
    pose = _Pose(rotation_deg, offset_mm)
    if shape is None:
        shape = _default_shape(vox, pose.shape(body_shape(0.0)).bounds())
    grid = Grid.centered(tuple(shape), vox, device=device)
    comps, rows = _iec_compartments(grid, n_sub, hot, pmma_walls, pose, bg=background_bq_per_ml,
                                    hot_conc=background_bq_per_ml * sphere_to_background,
                                    ring_angle_deg=ring_angle_deg)
    params = {"voxel_mm": voxel_mm if np.isscalar(voxel_mm) else list(vox), "seed": seed, "tracer": tracer,
              "sphere_to_background": sphere_to_background, "background_bq_per_ml": background_bq_per_ml,
              "pmma_walls": pmma_walls, "hot_spheres": hot_spheres if isinstance(hot_spheres, int) else list(hot_spheres),
              "n_sub": n_sub, "shape": list(grid.shape), "energies_kev": [float(e) for e in energies_kev],
              "ring_angle_deg": ring_angle_deg, "rotation_deg": rotation_deg,
              "offset_mm": [float(v) for v in pose.offset]}
    meta = {"phantom": "nema-iec", "tracer": tracer, "sphere_to_background": sphere_to_background,
            "sphere_plane_z_mm": float(pose.point((0, 0, sphere_plane_z_mm()))[2])}
    volumes, label_names = compartment_volumes(grid, comps, energies_kev=energies_kev, meta=meta)
    compartments = [{"name": c.name, "volume_ml": float(c.fraction.sum()) * grid.voxel_volume_ml,
                     "activity_bq_per_ml": c.activity_bq_per_ml, "material": c.material} for c in comps]
    return Phantom(volumes=volumes, label_names=label_names, tables={"spheres": rows, "compartments": compartments},
                   record={"generator": "nema-iec", "params": params, "petspect_version": petspect.__version__})
