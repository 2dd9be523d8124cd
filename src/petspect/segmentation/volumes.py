"""Metabolic tumour volume (MTV) and total lesion glycolysis (TLG), for a whole mask and per lesion.

* ``MTV = N_voxels x V_voxel`` (mL);
* ``TLG = SUVmean x MTV = sum(SUV) x V_voxel`` (SUV x mL, often written "g"); Larson et al, Clin Positron
  Imaging 1999 (total lesion glycolysis).

Lesions are the 18-connected components of the mask (faces and edges, as autoPET counts them), or the
instances of a label map when one is given.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from petspect.errors import InputError
from petspect.units import ML_PER_MM3

__all__ = ["LesionStats", "mtv_ml", "tlg", "label_lesions", "lesion_table", "lesion_table_csv"]


def _arr(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _voxel_ml(spacing_mm: Any) -> float:
    sp = np.asarray(spacing_mm, dtype=np.float64).reshape(-1)
    if sp.size != 3 or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise InputError(f"spacing_mm must be 3 positive numbers, got {spacing_mm!r}")
    return float(np.prod(sp)) * ML_PER_MM3


def mtv_ml(mask: Any, spacing_mm: Any) -> float:
    """Metabolic tumour volume (mL) of a mask with voxels of ``spacing_mm`` (dz, dy, dx)."""
    return float((_arr(mask) != 0).sum()) * _voxel_ml(spacing_mm)


def tlg(suv: Any, mask: Any, spacing_mm: Any) -> float:
    """Total lesion glycolysis ``sum(SUV in mask) x V_voxel`` (SUV x mL)."""
    a, m = _arr(suv).astype(np.float64), _arr(mask) != 0
    if a.shape != m.shape:
        raise InputError(f"the SUV image {a.shape} and the mask {m.shape} differ in shape")
    return float(a[m].sum()) * _voxel_ml(spacing_mm)


def label_lesions(mask: Any) -> tuple[np.ndarray, int]:
    """(instance map int32, count): 18-connected components of a binary mask, numbered 1..n."""
    from scipy import ndimage

    from petspect.segmentation.thresholds import connectivity18

    m = _arr(mask) != 0
    if m.ndim != 3:
        raise InputError(f"a mask must be 3D (z, y, x), got shape {m.shape}")
    lab, n = ndimage.label(m, structure=connectivity18())
    return lab.astype(np.int32), int(n)


@dataclass(frozen=True)
class LesionStats:
    """One lesion's figures (a row of the per-lesion table).

    Attributes
    ----------
    lesion : int
        Instance number (1..n).
    n_voxels : int
    mtv_ml : float
    tlg : float
        SUV x mL.
    suv_max, suv_mean : float
    centroid_x_mm, centroid_y_mm, centroid_z_mm : float
        LPS centre of mass of the lesion's voxels (mm); NaN without a geometry.
    """

    lesion: int
    n_voxels: int
    mtv_ml: float
    tlg: float
    suv_max: float
    suv_mean: float
    centroid_x_mm: float = math.nan
    centroid_y_mm: float = math.nan
    centroid_z_mm: float = math.nan


def lesion_table(suv: Any, mask: Any, spacing_mm: Any, *, instances: Any = None,
                 affine: np.ndarray | None = None) -> list[LesionStats]:
    """Per-lesion MTV, TLG, SUVmax and SUVmean.

    Parameters
    ----------
    suv : array_like (nz, ny, nx)
    mask : array_like (nz, ny, nx)
        Binary lesion mask (used when ``instances`` is None).
    spacing_mm : (dz, dy, dx)
    instances : array_like of int, optional
        Instance map (0 background); its labels are the lesions instead of the mask's components.
    affine : (4, 4) array, optional
        Index (z, y, x, 1) -> LPS (x, y, z, 1) mm (:attr:`petspect.volume.Volume.affine`) for the centroids.
    """
    from scipy import ndimage

    a = _arr(suv).astype(np.float64)
    if instances is None:
        lab, _ = label_lesions(mask)
    else:
        lab = _arr(instances).astype(np.int64)
    if lab.shape != a.shape:
        raise InputError(f"the SUV image {a.shape} and the mask {lab.shape} differ in shape")
    ids = [int(i) for i in np.unique(lab) if i > 0]
    if not ids:
        return []
    vml = _voxel_ml(spacing_mm)
    counts = ndimage.sum_labels(np.ones_like(a), lab, ids)
    sums = ndimage.sum_labels(a, lab, ids)
    maxs = ndimage.maximum(a, lab, ids)
    cents = ndimage.center_of_mass(np.ones_like(a), lab, ids)
    rows = []
    for i, n, s, mx, c in zip(ids, counts, sums, maxs, cents):
        xyz = (np.asarray(c) @ affine[:3, :3].T + affine[:3, 3]) if affine is not None else [math.nan] * 3
        rows.append(LesionStats(i, int(n), float(n) * vml, float(s) * vml, float(mx), float(s) / float(n),
                                float(xyz[0]), float(xyz[1]), float(xyz[2])))
    return rows


def lesion_table_csv(rows: list[LesionStats]) -> str:
    """The per-lesion table as CSV text (header: the :class:`LesionStats` field names; units in the names)."""
    buf = io.StringIO()
    names = [f.name for f in fields(LesionStats)]
    w = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    w.writeheader()
    for r in rows:
        d = asdict(r)
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in d.items()})
    return buf.getvalue()
