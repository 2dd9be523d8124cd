"""A 3D Shepp-Logan head phantom of our own: ten ellipsoids, partial-volume voxelised.

The ellipsoid table is the 3D extension of the Shepp-Logan head (Shepp & Logan, IEEE Trans Nucl
Sci 21:21-43, 1974) given by Kak & Slaney, "Principles of Computerized Tomographic Imaging"
(IEEE Press 1988), chapter 3 (3D head phantom table): centres, semi-axes (in units of the half
field) and the rotation about z of each ellipsoid, and additive grey levels. ``variant="modified"``
takes the higher-contrast grey levels of Toft (1996, "The Radon transform", table 1.1) on the same
ellipsoids, as most software does.

Grey levels add where ellipsoids overlap. In the original table they are X-ray attenuation
relative to water-like brain (skull 2.0, brain 1.02), so the mu maps are ``grey x mu_water(E)``
(at 511 and 140 keV attenuation is Compton-dominated, roughly proportional to density);
the activity is ``grey x activity_bq_per_ml_per_unit``.

Orientation: the table's +y (top of the classic picture, anterior) is LPS -y; x is LPS x; z is LPS z.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

import petspect
from petspect.errors import InputError
from petspect.phantoms.base import Phantom
from petspect.phantoms.shapes import Ellipsoid, Grid, rotation_matrix, voxelize

# name, (x0, y0, z0), (a, b, c), phi_deg (rotation about z), grey Kak-Slaney, grey modified (Toft)
SHEPP_LOGAN_3D: tuple[tuple[str, tuple[float, float, float], tuple[float, float, float], float, float, float], ...] = (
    ("skull", (0.0, 0.0, 0.0), (0.69, 0.92, 0.90), 0.0, 2.00, 1.0),
    ("brain", (0.0, -0.0184, 0.0), (0.6624, 0.874, 0.88), 0.0, -0.98, -0.8),
    ("ventricle_right", (0.22, 0.0, 0.0), (0.11, 0.31, 0.22), -18.0, -0.02, -0.2),
    ("ventricle_left", (-0.22, 0.0, 0.0), (0.16, 0.41, 0.28), 18.0, -0.02, -0.2),
    ("upper_ellipsoid", (0.0, 0.35, -0.15), (0.21, 0.25, 0.41), 0.0, 0.01, 0.1),
    ("small_upper", (0.0, 0.1, 0.25), (0.046, 0.046, 0.05), 0.0, 0.01, 0.1),
    ("small_centre", (0.0, -0.1, 0.25), (0.046, 0.046, 0.05), 0.0, 0.01, 0.1),
    ("lower_left", (-0.08, -0.605, 0.0), (0.046, 0.023, 0.05), 0.0, 0.01, 0.1),
    ("lower_centre", (0.0, -0.606, 0.0), (0.023, 0.023, 0.02), 0.0, 0.01, 0.1),
    ("lower_right", (0.06, -0.605, 0.0), (0.023, 0.046, 0.02), 0.0, 0.01, 0.1),
)


def shepp_logan_ellipsoids(size_mm: float = 200.0, variant: str = "kak-slaney") -> list[tuple[str, Ellipsoid, float]]:
    """The phantom's ellipsoids in LPS mm: ``(name, Ellipsoid, grey level)``.

    ``size_mm`` is the side of the cube that the table's [-1, 1] range maps onto.
    """
    if variant not in ("kak-slaney", "modified"):
        raise InputError(f"variant must be 'kak-slaney' or 'modified', got {variant!r}")
    if size_mm <= 0:
        raise InputError(f"size_mm must be positive, got {size_mm}")
    half = size_mm / 2.0
    flip = np.diag([1.0, -1.0, 1.0])  # table +y (anterior) -> LPS -y
    out = []
    for name, c, axes, phi, grey_ks, grey_mod in SHEPP_LOGAN_3D:
        rot = flip @ rotation_matrix((phi,), "z") @ flip  # the same rotation seen in LPS
        centre = flip @ np.asarray(c) * half
        out.append((name, Ellipsoid(centre, np.asarray(axes) * half, rot), grey_ks if variant == "kak-slaney" else grey_mod))
    return out


def make_shepp_logan(*, voxel_mm: float | Sequence[float] = 2.0, seed: int = 0, tracer: str | None = None,
                     size_mm: float = 200.0, variant: str = "kak-slaney", activity_bq_per_ml_per_unit: float = 10000.0,
                     n_sub: int = 4, shape: Sequence[int] | None = None, energies_kev: Sequence[float] = (511.0,),
                     device: Any = "cpu") -> Phantom:
    """The 3D Shepp-Logan phantom (see the module docstring for the table and its sources).

    Parameters
    ----------
    voxel_mm : float or (dz, dy, dx)
    seed : int
        Recorded only (no random part).
    tracer : str, optional
        Recorded in the metadata.
    size_mm : float
        Edge of the cube the unit table maps onto (the skull is 0.92 x size_mm tall).
    variant : {"kak-slaney", "modified"}
        Grey levels of Kak & Slaney (original) or Toft (higher contrast).
    activity_bq_per_ml_per_unit : float
        Activity per grey-level unit.
    n_sub : int
        Supersampling points per axis.
    shape : (nz, ny, nx), optional
        Grid size; default covers ``size_mm`` in every direction.
    energies_kev : sequence of float
        Energies of the mu maps ``grey x mu_water(E)``.

    Returns
    -------
    Phantom
        ``activity``, ``mu_<E>``, ``grey`` (a.u.), ``labels`` (the innermost ellipsoid holding most
        of each voxel); table ``ellipsoids``.
    """
    from petspect.materials import linear_attenuation_per_mm

    vox = (float(voxel_mm),) * 3 if np.isscalar(voxel_mm) else tuple(float(v) for v in voxel_mm)
    ells = shepp_logan_ellipsoids(size_mm, variant)
    if shape is None:
        shape = tuple(int(np.ceil(size_mm / v)) for v in vox)
    grid = Grid.centered(tuple(shape), vox, device=device)
    grey = torch.zeros(grid.shape, dtype=torch.float32, device=grid.device)
    labels = torch.zeros(grid.shape, dtype=torch.int16, device=grid.device)
    rows = []
    for i, (name, ell, level) in enumerate(ells):
        occ = voxelize(ell, grid, n_sub)
        grey += level * occ
        labels[occ > 0.5] = i + 1  # later ellipsoids lie inside earlier ones
        rows.append({"label": i + 1, "name": name, "centre_mm": ell.centre.tolist(), "semi_axes_mm": ell.semi_axes.tolist(),
                     "grey": level, "volume_ml": float(occ.sum()) * grid.voxel_volume_ml})
    grey = grey.clamp(min=0)
    params = {"voxel_mm": voxel_mm if np.isscalar(voxel_mm) else list(vox), "seed": seed, "tracer": tracer,
              "size_mm": size_mm, "variant": variant, "activity_bq_per_ml_per_unit": activity_bq_per_ml_per_unit,
              "n_sub": n_sub, "shape": list(grid.shape), "energies_kev": [float(e) for e in energies_kev]}
    meta = {"phantom": "shepp-logan", "variant": variant, "tracer": tracer}
    volumes = {"activity": grid.volume(grey * activity_bq_per_ml_per_unit, unit="Bq/mL", modality="PT", meta=meta),
               "grey": grid.volume(grey.clone(), unit="a.u.", meta=meta)}
    for e in energies_kev:
        volumes[f"mu_{int(round(float(e)))}"] = grid.volume(grey * linear_attenuation_per_mm("water", float(e)),
                                                            unit="1/mm", meta={**meta, "energy_kev": float(e)})
    volumes["labels"] = grid.volume(labels, unit="label", modality="SEG", meta=meta)
    label_names = {0: "outside", **{i + 1: e[0] for i, e in enumerate(ells)}}
    return Phantom(volumes, label_names, {"ellipsoids": rows},
                   {"generator": "shepp-logan", "params": params, "petspect_version": petspect.__version__})
