"""DICOM image series -> Volume: PET, CT, MR slice stacks and multi-frame NM (SPECT) reconstructions.

Geometry: each 2D image (a single-frame instance, or one frame of a multi-frame instance) has an
ImagePositionPatient ``p`` (LPS mm, centre of its first pixel) and ImageOrientationPatient ``(r, c)``
(r: direction of increasing column index, c: of increasing row index). Images are sorted by the
projection ``p . n`` on the slice normal ``n = r x c``; the Volume's direction columns are
``(n, c, r)`` for its axes (z, y, x), its spacing ``(slice gap, PixelSpacing[0], PixelSpacing[1])``.
Slice positions must lie on one line along ``n`` (no gantry tilt) with an even gap
(:class:`~petspect.errors.GeometryError` otherwise).

Values: ``stored * RescaleSlope + RescaleIntercept`` per image, as float32. Units:

======== ================================================================================
PT       BQML -> "Bq/mL"; CNTS -> "Bq/mL" when Philips' (7053,1009) gives the Bq/mL scale,
         otherwise "counts"; GML -> "SUVbw"; CPS -> "cps"
CT       "HU"
NM       Units (0054,1001) when present (BQML -> "Bq/mL", CNTS -> "counts"), else "counts"
MR/other "a.u."
======== ================================================================================

``meta`` holds the modality facts and, for PET, ``suv_factors`` (kind -> factor of the Volume's values,
or None with the reason in ``suv_missing``), never patient identifiers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from petspect.errors import FormatError, GeometryError, MissingTagError, UnitError
from petspect.io._guard import guarded
from petspect.io._meta import multi_valued
from petspect.io.dicom_files import number, pixel_array, read_datasets, require, where
from petspect.io.suv import SUV_KINDS, acquisition_datetime, activity_scale, apply_suv, suv_factors
from petspect.volume import Volume

_PET_UNITS = {"BQML": "Bq/mL", "CNTS": "counts", "GML": "SUVbw", "CPS": "cps", "PROPCNTS": "a.u.", "NONE": "a.u."}
_NM_UNITS = {"BQML": "Bq/mL", "CNTS": "counts", "CPS": "cps", "PROPCNTS": "a.u.", "NONE": "a.u."}


@dataclass
class _Image:
    """One 2D image of a series with its plane geometry and value rescaling."""

    ds: Any
    frame: int | None  # frame index in a multi-frame instance, None for single-frame
    position: np.ndarray  # (3,) LPS mm of the first pixel's centre
    orientation: np.ndarray  # (6,) row then column direction cosines
    spacing_rc: tuple[float, float]  # PixelSpacing: between rows, between columns (mm)
    slope: float
    intercept: float


def _floats(value: Any, n: int, name: str, ds: Any) -> np.ndarray:
    items = [value] if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") else list(value)
    try:
        arr = np.asarray([float(v) for v in items], dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise FormatError(f"{name} is not a list of numbers: {str(value)[:60]!r}", path=where(ds)) from None
    if arr.size != n:
        raise FormatError(f"{name} must have {n} values, got {arr.size}", path=where(ds))
    if not np.all(np.isfinite(arr)):
        raise FormatError(f"{name} holds a non-finite value: {str(value)[:60]!r}", path=where(ds))
    return arr


# RescaleSlope is type 1 in the PET and CT image modules (PS3.3 C.8.9.4, C.8.2.1): reading a missing one as 1
# would give values off by the real slope (x 11.9 in one test series); other modalities may omit it.
_SLOPE_REQUIRED = ("PT", "CT")


def _rescale(ds: Any, slope: Any = None, intercept: Any = None, *, item: Any = None) -> tuple[float, float]:
    """(RescaleSlope, RescaleIntercept) of an image: finite, the slope non-zero; from ``item`` (a functional
    group) when it holds them, else from ``ds``. A missing slope is an error for PET and CT, else 1."""
    src_s = item if item is not None and slope is not None else ds
    src_i = item if item is not None and intercept is not None else ds
    modality = str(getattr(ds, "Modality", "") or "")
    if getattr(src_s, "RescaleSlope", None) in (None, "", b"") and modality in _SLOPE_REQUIRED:
        raise MissingTagError(f"missing RescaleSlope (0028,1053), required for {modality} images; the stored "
                              "integers cannot be turned into values without it", path=where(ds))
    s = number(src_s, "RescaleSlope", 1.0, path=where(ds))
    if s == 0.0:
        raise FormatError("RescaleSlope (0028,1053) is 0: every value would read as the intercept", path=where(ds))
    return s, number(src_i, "RescaleIntercept", 0.0, path=where(ds))


def _single_frame_image(ds: Any) -> _Image:
    return _Image(
        ds, None,
        _floats(require(ds, "ImagePositionPatient"), 3, "ImagePositionPatient", ds),
        _floats(require(ds, "ImageOrientationPatient"), 6, "ImageOrientationPatient", ds),
        tuple(_floats(require(ds, "PixelSpacing"), 2, "PixelSpacing", ds)),
        *_rescale(ds))


def _functional(ds: Any, frame: int, seq: str, keyword: str) -> Any:
    """An attribute from the per-frame functional group of ``frame``, else the shared group."""
    for groups, idx in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        g = getattr(ds, groups, None)
        if g and len(g) > idx and seq in g[idx] and getattr(g[idx][seq][0], keyword, None) is not None:
            return getattr(g[idx][seq][0], keyword)
    return None


def _functional_item(ds: Any, frame: int, seq: str) -> Any:
    """The item of ``seq`` in the per-frame group of ``frame``, else the shared group's, else None."""
    for groups, idx in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        g = getattr(ds, groups, None)
        if g and len(g) > idx and seq in g[idx] and len(g[idx][seq].value):
            return g[idx][seq][0]
    return None


def _frame_count(ds: Any) -> int:
    n = number(ds, "NumberOfFrames", 1.0)
    if n != int(n) or not 1 <= n <= 1_000_000:
        raise FormatError(f"NumberOfFrames (0028,0008) = {n:g} is not a frame count", path=where(ds))
    return int(n)


def _multiframe_images(ds: Any) -> list[_Image]:
    """Frames of a multi-frame instance: functional groups (per-frame or shared), else NM-style
    stacking from one position along the normal with SpacingBetweenSlices."""
    n = _frame_count(ds)
    images: list[_Image] = []
    if getattr(ds, "PerFrameFunctionalGroupsSequence", None):
        for k in range(n):
            pos = _functional(ds, k, "PlanePositionSequence", "ImagePositionPatient")
            ori = _functional(ds, k, "PlaneOrientationSequence", "ImageOrientationPatient")
            sp = _functional(ds, k, "PixelMeasuresSequence", "PixelSpacing")
            if pos is None or ori is None or sp is None:
                raise MissingTagError(f"frame {k + 1}: missing plane position, orientation or pixel spacing "
                                      "in the functional groups", path=where(ds))
            slope = _functional(ds, k, "PixelValueTransformationSequence", "RescaleSlope")
            inter = _functional(ds, k, "PixelValueTransformationSequence", "RescaleIntercept")
            group = _functional_item(ds, k, "PixelValueTransformationSequence")
            images.append(_Image(ds, k, _floats(pos, 3, "ImagePositionPatient", ds),
                                 _floats(ori, 6, "ImageOrientationPatient", ds),
                                 tuple(_floats(sp, 2, "PixelSpacing", ds)),
                                 *_rescale(ds, slope, inter, item=group)))
        return images
    src = ds
    if getattr(ds, "ImagePositionPatient", None) is None and getattr(ds, "DetectorInformationSequence", None):
        src = ds.DetectorInformationSequence[0]  # NM: plane geometry lives in the detector item
    pos = _floats(require(src, "ImagePositionPatient", path=where(ds)), 3, "ImagePositionPatient", ds)
    ori = _floats(require(src, "ImageOrientationPatient", path=where(ds)), 6, "ImageOrientationPatient", ds)
    gap = number(ds, "SpacingBetweenSlices", None) or number(ds, "SliceThickness", None)
    if gap is None and n > 1:
        raise MissingTagError("missing SpacingBetweenSlices (0018,0088) and SliceThickness (0018,0050)",
                              path=where(ds))
    normal = np.cross(ori[:3], ori[3:])
    sp = tuple(_floats(require(ds, "PixelSpacing"), 2, "PixelSpacing", ds))
    slope, inter = _rescale(ds)
    return [_Image(ds, k, pos + k * float(gap or 0.0) * normal, ori, sp, slope, inter) for k in range(n)]


def _stack_geometry(images: list[_Image], path: Any) -> tuple[list[_Image], tuple, tuple, np.ndarray]:
    """Sort images along the slice normal; check parallel planes, colinear positions, even gaps."""
    ori0 = images[0].orientation
    for im in images:
        if not np.allclose(im.orientation, ori0, atol=1e-4):
            raise GeometryError("images are not parallel (ImageOrientationPatient differs)", path=where(im.ds) or path)
        if not np.allclose(im.spacing_rc, images[0].spacing_rc, rtol=1e-5):
            raise GeometryError("PixelSpacing differs between images", path=where(im.ds) or path)
    r, c = ori0[:3] / np.linalg.norm(ori0[:3]), ori0[3:] / np.linalg.norm(ori0[3:])
    if abs(float(r @ c)) > 1e-3:
        raise GeometryError("ImageOrientationPatient row and column directions are not orthogonal", path=path)
    n = np.cross(r, c)
    proj = np.array([im.position @ n for im in images])
    order = np.argsort(proj, kind="stable")
    images = [images[i] for i in order]
    proj = proj[order]
    if len(images) > 1:
        gaps = np.diff(proj)
        if np.any(gaps < 1e-3):
            k = int(np.argmin(gaps))
            raise GeometryError(f"two images at the same slice position {proj[k]:.3f} mm (dynamic or gated "
                                "series? split the frames first)", path=path)
        gap = float(np.mean(gaps))
        tol = max(1e-3, 0.01 * gap)
        if np.max(np.abs(gaps - gap)) > tol:
            raise GeometryError(f"inconsistent slice spacing: gaps from {gaps.min():.4f} to {gaps.max():.4f} mm "
                                "(missing slice?)", path=path)
        p0 = images[0].position
        lateral = [np.linalg.norm((im.position - p0) - (pr - proj[0]) * n) for im, pr in zip(images, proj)]
        if max(lateral) > tol:
            raise GeometryError(f"slice positions drift {max(lateral):.3f} mm sideways from the slice normal "
                                "(gantry tilt is not supported)", path=path)
    else:
        ds0 = images[0].ds
        gap = float(number(ds0, "SpacingBetweenSlices", None) or number(ds0, "SliceThickness", None) or 1.0)
        if gap <= 0:
            raise GeometryError(f"slice thickness {gap:g} mm is not positive", path=where(ds0))
    spacing = (gap, float(images[0].spacing_rc[0]), float(images[0].spacing_rc[1]))
    direction = np.stack([n, c, r], axis=1)
    return images, spacing, tuple(images[0].position), direction


def _pixels(images: list[_Image], scales: np.ndarray) -> np.ndarray:
    """Rescaled float32 pixel values (nz, ny, nx), ``scales`` multiplying each image."""
    cache: dict[int, np.ndarray] = {}
    out = []
    for im, s in zip(images, scales):
        key = id(im.ds)
        if key not in cache:
            cache[key] = pixel_array(im.ds)
        arr = cache[key] if im.frame is None else cache[key].reshape(-1, *cache[key].shape[-2:])[im.frame]
        if arr.ndim != 2:
            raise FormatError(f"expected a 2D image, got shape {arr.shape} (colour or multi-frame?)", path=where(im.ds))
        out.append((arr.astype(np.float64) * im.slope + im.intercept) * s)
    shapes = {a.shape for a in out}
    if len(shapes) > 1:
        raise GeometryError(f"images have different sizes {sorted(shapes)}", path=where(images[0].ds))
    return np.stack(out).astype(np.float32)


def _series_suv_factors(images: list[_Image], earliest: Any, scales: np.ndarray,
                        units: str | None = None) -> tuple[dict, dict]:
    """SUV factors of every kind for the series' values (one float, or one per image) and why any is missing;
    ``units`` stands in for the images' Units (0054,1001) when given."""
    factors: dict[str, Any] = {}
    missing: dict[str, str] = {}
    cache: dict[int, tuple[dict, dict]] = {}
    per_image = []
    for im in images:
        if id(im.ds) not in cache:
            cache[id(im.ds)] = suv_factors(im.ds, earliest_acquisition=earliest, units=units)
        per_image.append(cache[id(im.ds)])
    for kind in SUV_KINDS:
        vals = [f[kind] for f, _ in per_image]
        if any(v is None for v in vals):
            factors[kind], missing[kind] = None, next(r[kind] for _, r in per_image if kind in r)
            continue
        rel = np.asarray(vals) / scales
        same = np.allclose(rel, rel[0], rtol=1e-9, atol=0)
        factors[kind] = float(rel[0]) if same else [float(v) for v in rel]
    return factors, missing


def _pet_units_and_meta(images: list[_Image]) -> tuple[str, np.ndarray, dict[str, Any]]:
    """Volume unit, per-image scale from rescaled values to that unit, and PET facts with SUV factors."""
    ds0 = images[0].ds
    units = str(getattr(ds0, "Units", "") or "").strip().upper()
    if not units:  # research tools may leave Units (0054,1001) out: values of unknown unit, ratios still hold
        import warnings

        warnings.warn(f"{where(ds0)}: PET series without Units (0054,1001); values loaded in arbitrary units "
                      "(a.u.); state the unit with --unit where a command needs it", stacklevel=4)
    acq = [a for a in (acquisition_datetime(im.ds) for im in images) if a is not None]
    earliest = min(acq) if acq else None
    scales = np.ones(len(images))
    unit = _PET_UNITS.get(units, units.lower()) if units else "a.u."
    if units == "CNTS":
        act = [activity_scale(im.ds, earliest_acquisition=earliest) for im in images]
        if all(a is not None for a in act):
            scales, unit = np.asarray(act, dtype=np.float64), "Bq/mL"
    factors, missing = _series_suv_factors(images, earliest, scales)
    extra: dict[str, Any] = {}
    if not units:  # the header's dose, weight and times still hold: the factors the values would have in Bq/mL,
        # taken only when the user states that unit (petspect.io.stated_units.state_unit)
        extra["suv_factors_if_bqml"], extra["suv_missing_if_bqml"] = _series_suv_factors(images, earliest, scales,
                                                                                       units="BQML")
    rp = (getattr(ds0, "RadiopharmaceuticalInformationSequence", None) or [None])[0]
    meta = {"dicom_units": units, "decay_correction": str(getattr(ds0, "DecayCorrection", "")),
            "corrected_image": multi_valued(getattr(ds0, "CorrectedImage", None)),
            "suv_factors": factors, "suv_missing": missing, **extra,
            "radionuclide_half_life_s": number(rp, "RadionuclideHalfLife", None, path=where(ds0))
            if rp is not None else None}
    return unit, scales, meta


def images_to_volume(datasets: list[Any], path: Any = None) -> Volume:
    """Stack the images of one series (single- or multi-frame instances) into a Volume."""
    ds0 = datasets[0]
    modality = str(getattr(ds0, "Modality", "") or "") or None
    images: list[_Image] = []
    for ds in datasets:
        if _frame_count(ds) == 1 and not getattr(ds, "PerFrameFunctionalGroupsSequence", None):
            images.append(_single_frame_image(ds))
        else:
            images += _multiframe_images(ds)
    images, spacing, origin, direction = _stack_geometry(images, path)
    meta: dict[str, Any] = {"series_description": str(getattr(ds0, "SeriesDescription", "") or ""),
                            "manufacturer": str(getattr(ds0, "Manufacturer", "") or ""),
                            "dicom_modality": modality}
    scales = np.ones(len(images))
    if modality == "PT":
        unit, scales, pet = _pet_units_and_meta(images)
        meta.update(pet)
    elif modality == "CT":
        unit = "HU"
    elif modality == "NM":
        unit = _NM_UNITS.get(str(getattr(ds0, "Units", "") or "").upper(), "counts")
    else:
        unit = "a.u."
    data = torch.from_numpy(_pixels(images, scales))
    return Volume(data, spacing, origin, direction, unit=unit, modality=modality, meta=meta)


@guarded("DICOM series")
def read_dicom_series(path: str | os.PathLike, *, suv: str | None = None, series_uid: str | None = None) -> Volume:
    """Read one DICOM image series (a folder or one file) into a Volume.

    Parameters
    ----------
    path : str or PathLike
        Folder holding the series (searched recursively), or one (multi-frame) DICOM file.
    suv : {"bw", "bsa", "lbm_james", "lbm_janmahasatian", "ibw"}, optional
        Return SUV of this kind (PET only).
    series_uid : str, optional
        Which series to read when the folder holds several.

    Returns
    -------
    Volume
        See the module docstring for geometry, values, units and meta.

    Raises
    ------
    FormatError, MissingTagError, GeometryError, MixedSeriesError, UnsupportedTransferSyntaxError,
    UnitError (SUV of a non-PET series)
    """
    datasets = read_datasets(path, series_uid=series_uid)
    ds0 = datasets[0]
    modality = getattr(ds0, "Modality", None)
    if suv is not None and modality != "PT":
        raise UnitError(f"SUV asked of a {modality} series; SUV is defined for PET (PT) only", path=path)
    image_type = [v.upper() for v in multi_valued(getattr(ds0, "ImageType", None))]
    if modality == "NM" and not any("RECON" in v for v in image_type):
        kind = "/".join(image_type)
        raise FormatError(f"NM instance of ImageType {kind} is projection or planar data, "
                          "not a reconstructed volume; read it with petspect.io.read_nm_projections", path=path)
    if modality in ("RTSTRUCT", "SEG", "RTPLAN", "RTDOSE", "SR", "PR", "REG"):
        raise FormatError(f"a {modality} object is not an image series (RTSTRUCT: petspect.io.read_rtstruct)",
                          path=path)
    vol = images_to_volume(datasets, path)
    return vol if suv is None else apply_suv(vol, suv, path=path)
