"""DICOM RT Structure Set -> binary masks on a reference grid.

Each closed planar contour (ContourData: LPS mm points) is mapped to fractional voxel indices with
``reference.world_to_voxel``; it must lie in one slice plane of the reference (within 0.5 voxel of a
slice centre, and flat to 0.25 voxel). Its polygon is filled on that slice with scikit-image's
scan-line fill (a voxel belongs to it when its centre is inside), and the contours of one ROI on one
slice are combined with the **even-odd rule** (exclusive or), so a contour inside another cuts a hole
and disjoint contours add up. POINT and OPEN contours carry no area and are skipped; contours off
the reference grid are dropped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from petspect.errors import FormatError, GeometryError, MixedSeriesError
from petspect.io._guard import guarded
from petspect.io._paths import is_dicom_file, require_exists
from petspect.io.dicom_files import number as dicom_number
from petspect.io.dicom_files import numbers, require, where
from petspect.volume import Volume

_OFF_PLANE_VOXELS = 0.25


def _find_rtstruct(path: Path) -> Any:
    import pydicom

    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    found = []
    for f in files:
        if not is_dicom_file(f):
            continue
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        if getattr(ds, "Modality", None) == "RTSTRUCT":
            found.append(ds)
    if not found:
        raise FormatError("no RTSTRUCT (Modality RTSTRUCT) found", path=path)
    if len(found) > 1:
        names = ", ".join(str(getattr(d, "SOPInstanceUID", "?")) for d in found)
        raise MixedSeriesError(f"{len(found)} RTSTRUCT objects found (SOPInstanceUIDs {names}); pass one file",
                               path=path)
    return found[0]


def rasterize_polygon(points_yx: np.ndarray, shape_yx: tuple[int, int]) -> np.ndarray:
    """Boolean mask (ny, nx) of the pixels whose centres lie inside a polygon given in (y, x) indices."""
    from skimage.draw import polygon

    mask = np.zeros(shape_yx, dtype=bool)
    rr, cc = polygon(points_yx[:, 0], points_yx[:, 1], shape=shape_yx)
    mask[rr, cc] = True
    return mask


def _contour_slice(idx: np.ndarray, nz: int, ds: Any, roi: str) -> int | None:
    """Slice index of a contour in fractional (z, y, x) indices; None when off the grid."""
    kz = idx[:, 0]
    if np.ptp(kz) > 2 * _OFF_PLANE_VOXELS:
        raise GeometryError(f"a contour of ROI {roi!r} is not in a slice plane of the reference grid "
                            f"(spans {np.ptp(kz):.2f} slices); resample the reference first", path=where(ds))
    k = int(np.round(kz.mean()))
    if abs(kz.mean() - k) > 0.5 - 1e-9 or not 0 <= k < nz:
        return None
    return k


@guarded("DICOM RT Structure Set")
def read_rtstruct(path: str | os.PathLike, reference: Volume) -> dict[str, Volume]:
    """Rasterise every ROI of an RT Structure Set onto the grid of ``reference``.

    Parameters
    ----------
    path : str or PathLike
        The RTSTRUCT file, or a folder holding exactly one RTSTRUCT.
    reference : Volume
        Grid to rasterise on (typically the image series the structures were drawn on).

    Returns
    -------
    dict of str to Volume
        ROIName -> uint8 mask (1 inside) on the reference grid, unit "label", modality "SEG", with
        ``meta`` ``{"roi_number", "roi_name", "n_contours", "n_contours_off_grid"}``. ROIs without
        contours give empty masks.

    Raises
    ------
    DataNotFoundError, FormatError, MissingTagError, MixedSeriesError, GeometryError
    """
    ds = _find_rtstruct(require_exists(path))
    names = {int(dicom_number(item, "ROINumber", path=where(ds))): str(getattr(item, "ROIName", "") or
                                                                      f"ROI {item.ROINumber}")
             for item in require(ds, "StructureSetROISequence")}
    nz, ny, nx = reference.shape
    out: dict[str, Volume] = {}
    for item in getattr(ds, "ROIContourSequence", None) or []:
        number = int(dicom_number(item, "ReferencedROINumber", path=where(ds)))
        name = names.get(number, f"ROI {number}")
        mask = np.zeros((nz, ny, nx), dtype=bool)
        n_used = n_off = 0
        for contour in getattr(item, "ContourSequence", None) or []:
            if str(getattr(contour, "ContourGeometricType", "CLOSED_PLANAR")).upper() != "CLOSED_PLANAR":
                continue
            flat = numbers(contour, "ContourData", path=where(ds))
            if len(flat) % 3:
                raise FormatError(f"ContourData (3006,0050) of ROI {name!r} holds {len(flat)} numbers, not (x, y, z) "
                                  "triplets", path=where(ds))
            pts = np.asarray(flat).reshape(-1, 3)
            if len(pts) < 3:
                continue
            idx = reference.world_to_voxel(pts)
            k = _contour_slice(idx, nz, ds, name)
            if k is None:
                n_off += 1
                continue
            mask[k] ^= rasterize_polygon(idx[:, 1:], (ny, nx))
            n_used += 1
        meta = {"roi_number": number, "roi_name": name, "n_contours": n_used, "n_contours_off_grid": n_off}
        out[name] = reference.with_data(torch.from_numpy(mask.astype(np.uint8)), unit="label", modality="SEG",
                                        meta=meta)
    for number, name in names.items():
        if name not in out:
            out[name] = reference.with_data(torch.zeros((nz, ny, nx), dtype=torch.uint8), unit="label", modality="SEG",
                                            meta={"roi_number": number, "roi_name": name, "n_contours": 0,
                                                  "n_contours_off_grid": 0})
    return out
