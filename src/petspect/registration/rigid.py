"""Intensity-based rigid and affine registration with SimpleITK (Mattes mutual information).

Conventions (ITK's, which petspect keeps): the transform ``T`` maps a point of the **fixed** image's space
to the **moving** image's space (LPS mm), and the moved image is ``moving(T(x))`` sampled on the fixed grid.
:attr:`RegistrationResult.matrix` is ``T`` as a 4x4 matrix acting on homogeneous LPS ``(x, y, z, 1)``.
ITK's physical space is LPS, like :class:`petspect.volume.Volume`'s, so no axis is flipped; only the index
order differs (ITK indexes (x, y, z), petspect arrays (z, y, x)), handled in :func:`to_sitk`.

Method: Mattes mutual information (Mattes et al, IEEE TMI 2003), which does not assume the two
modalities' intensities are related linearly (PET or SPECT to CT or MR), evaluated on every voxel of one
image's grid (a seeded random subset for large images): the anatomical one (CT, MR) against an emission
image, the other image interpolated; optionally the sharper image blurred to the other's resolution;
single-threaded and seeded by default, so a result reproduces bit for bit;
regular-step gradient descent with parameter scales from a physical shift;
a coarse-to-fine pyramid (shrink 4, 2, 1 with Gaussian smoothing). Stages: a translation first (it
converges from further away), then the rigid transform from it, then (``affine``) the affine refinement.
Initialised at the identity (the
scanners' shared frame of reference), or at the grids' centres with ``init="geometry"``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from petspect.errors import InputError
from petspect.volume import Volume

__all__ = ["TRANSFORMS", "RegistrationResult", "to_sitk", "from_sitk", "register", "resample_with_matrix",
           "sitk_threads", "map_points", "transform_matrix", "write_transform", "read_transform"]

TRANSFORMS = ("translation", "rigid", "affine")
#: Default most metric samples (voxels of the sampled grid) per evaluation: every voxel of smaller images.
MAX_SAMPLES = 2 ** 21


@contextlib.contextmanager
def sitk_threads(n: int | None) -> Iterator[None]:
    """SimpleITK's global default thread count set to ``n`` inside the block (``None``: ``OMP_NUM_THREADS`` or
    unchanged); one thread makes a registration's metric sums, and so its result, the same on every run."""
    import SimpleITK as sitk

    old = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    n = n or int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or old
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(n))
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(old)


def to_sitk(volume: Volume) -> Any:
    """A SimpleITK float32 image with the Volume's geometry (ITK index (x, y, z) = array (z, y, x) reversed)."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(volume.numpy().astype(np.float32))
    img.SetSpacing(tuple(float(s) for s in volume.spacing_mm[::-1]))
    img.SetOrigin(tuple(float(o) for o in volume.origin_mm))
    d = np.asarray(volume.direction)[:, [2, 1, 0]]
    img.SetDirection(tuple(float(v) for v in d.reshape(-1)))
    return img


def from_sitk(image: Any, like: Volume) -> Volume:
    """The pixels of a SimpleITK image on ``like``'s grid (unit, modality and meta of ``like``)."""
    import SimpleITK as sitk
    import torch

    arr = sitk.GetArrayFromImage(image)
    if arr.shape != like.shape:
        raise InputError(f"image of shape {arr.shape} is not on the grid of {like!r}")
    return like.with_data(torch.from_numpy(np.ascontiguousarray(arr)))


def transform_matrix(transform: Any) -> np.ndarray:
    """4x4 matrix of an affine-like SimpleITK transform, from the images of the origin and unit points."""
    pts = np.array([[0, 0, 0], [100, 0, 0], [0, 100, 0], [0, 0, 100]], dtype=np.float64)
    img = np.array([transform.TransformPoint(tuple(p)) for p in pts])
    m = np.eye(4)
    m[:3, :3] = (img[1:] - img[0]).T / 100.0
    m[:3, 3] = img[0]
    return m


def _affine_sitk(matrix: np.ndarray) -> Any:
    import SimpleITK as sitk

    t = sitk.AffineTransform(3)
    t.SetMatrix(tuple(float(v) for v in np.asarray(matrix)[:3, :3].reshape(-1)))
    t.SetTranslation(tuple(float(v) for v in np.asarray(matrix)[:3, 3]))
    return t


@dataclass
class RegistrationResult:
    """Outcome of :func:`register`.

    Attributes
    ----------
    moved : Volume
        The moving image resampled on the fixed grid (moving's unit and modality).
    matrix : numpy.ndarray (4, 4)
        Fixed-space LPS point -> moving-space LPS point (mm).
    metric : float
        Final metric value (negative mutual information: lower is better).
    transform : str
        "translation", "rigid" or "affine".
    settings : dict
        What was run (metric, bins, sampling, pyramid, iterations, stop condition).
    """

    moved: Volume
    matrix: np.ndarray
    metric: float
    transform: str
    settings: dict[str, Any] = field(default_factory=dict)

    def map_points(self, points_lps_mm: Any) -> np.ndarray:
        """Moving-space positions (..., 3) of fixed-space LPS points (..., 3)."""
        return map_points(self.matrix, points_lps_mm)


def map_points(matrix: np.ndarray, points_lps_mm: Any) -> np.ndarray:
    """Apply a 4x4 LPS matrix to points (..., 3) in mm."""
    p = np.asarray(points_lps_mm, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    return p @ m[:3, :3].T + m[:3, 3]


def resample_with_matrix(moving: Volume, fixed: Volume, matrix: np.ndarray, *, mode: str = "linear",
                         fill_value: float = 0.0) -> Volume:
    """``moving(T(x))`` on the fixed grid for a 4x4 fixed -> moving LPS matrix ``T``."""
    import SimpleITK as sitk

    if mode not in ("linear", "nearest"):
        raise InputError(f"mode must be 'linear' or 'nearest', got {mode!r}")
    interp = sitk.sitkLinear if mode == "linear" else sitk.sitkNearestNeighbor
    out = sitk.Resample(to_sitk(moving), to_sitk(fixed), _affine_sitk(matrix), interp, float(fill_value),
                        sitk.sitkFloat32)
    res = from_sitk(out, fixed)
    res = res.with_data(res.data, unit=moving.unit, modality=moving.modality, meta=dict(moving.meta))
    if not moving.data.is_floating_point():
        res = res.with_data(res.data.round().to(moving.data.dtype))
    return res


def register(moving: Volume, fixed: Volume, *, transform: str = "rigid", metric: str = "mi", bins: int = 64,
             sampling: float | None = None, shrink: tuple[int, ...] = (4, 2, 1),
             smoothing_vox: tuple[float, ...] = (2, 1, 0),
             iterations: int = 200, init: str = "identity", seed: int = 0, threads: int = 1,
             fixed_mask: Volume | None = None, learning_rate: float = 1.0,
             pad_mm: float = 60.0, sample_on: str = "auto", moving_fwhm_mm: float = 0.0,
             fixed_fwhm_mm: float = 0.0) -> RegistrationResult:
    """Register ``moving`` onto ``fixed`` (both any grid, any modality) by maximising mutual information.

    Parameters
    ----------
    moving, fixed : Volume
    transform : {"translation", "rigid", "affine"}
    metric : {"mi", "mse"}
        Mattes mutual information (multi-modal), or mean squares (same modality and scale).
    bins : int
        Histogram bins of the mutual information (64: on the SPECT/CT development phantoms, 32, 50, 64 and 80
        bins gave mean TREs of 1.05, 0.91, 0.75 and 0.69 mm with every voxel sampled).
    sampling : float, optional
        Fraction of the sampled grid's voxels used by the metric (seeded random), in (0, 1]; 1 uses every voxel
        (no random draw). Default: every voxel up to :data:`MAX_SAMPLES`, else a random fraction of about that
        many. A random half (the earlier default) left the SPECT/CT optimum noisy (BENCHMARKS.md).
    shrink, smoothing_vox : tuple
        Pyramid shrink factors and Gaussian smoothing (in voxels of each level).
    iterations : int
        Most optimiser iterations per level.
    init : {"identity", "geometry"}
        Start at the identity (shared frame of reference) or align the grids' centres.
    seed : int
        Seed of the metric sampling (SimpleITK gets ``seed + 1``: it reads 0 as "seed from the clock").
    threads : int
        SimpleITK threads. With one thread (the default) and a given ``seed`` the result is bit-reproducible
        and does not depend on the machine's core count; more threads are faster.
    fixed_mask : Volume, optional
        Voxels of the fixed grid the metric uses (non-zero).
    learning_rate : float
        First step of the regular-step gradient descent (mm-equivalent, scales from a physical shift);
        ``affine`` runs ``rigid`` first, then refines with a tenth of it.
    pad_mm : float
        The moving image is extended by this margin filled with its minimum (background), so that a fixed
        point mapped beyond the moving grid compares with background instead of dropping out of the metric
        (mutual information otherwise rewards sliding the images apart, as the sample drops to few points).
    sample_on : {"auto", "fixed", "moving"}
        Grid whose voxels the metric samples; the other image is interpolated. ``"moving"`` registers
        ``fixed`` onto ``moving`` and inverts the transform (rigid and affine transforms invert exactly).
        ``"auto"`` samples on the anatomical image (modality CT or MR) when the other is an emission image
        (PT or NM), otherwise on ``fixed``: interpolating a sharp image at sub-voxel offsets blurs it, which
        biases mutual information towards grid-aligned positions (Pluim et al, Comput Vis Image Underst
        2000;77:211-232); a smooth SPECT or PET loses almost nothing to interpolation. On the simulated
        SPECT/CT at 8 mm this halved the mean TRE (BENCHMARKS.md). ``fixed_mask`` needs ``fixed`` sampling.
    moving_fwhm_mm, fixed_fwhm_mm : float
        Gaussian blur (FWHM, mm; 0: none) applied to each image before the metric sees it (the moved image
        is resampled from the unblurred ``moving``). Blurring the anatomical image to the emission image's
        resolution (e.g. ``moving_fwhm_mm=12`` for a CT against a SPECT of 12 mm FWHM) compares images of one
        resolution; on the simulated SPECT/CT at 8 mm it lowered the TRE further (BENCHMARKS.md).

    Returns
    -------
    RegistrationResult
    """
    import SimpleITK as sitk

    if transform not in TRANSFORMS:
        raise InputError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    if metric not in ("mi", "mse"):
        raise InputError(f"metric must be 'mi' or 'mse', got {metric!r}")
    if init not in ("identity", "geometry"):
        raise InputError(f"init must be 'identity' or 'geometry', got {init!r}")
    if sample_on not in ("auto", "fixed", "moving"):
        raise InputError(f"sample_on must be 'auto', 'fixed' or 'moving', got {sample_on!r}")
    if not (np.isfinite(moving_fwhm_mm) and np.isfinite(fixed_fwhm_mm) and moving_fwhm_mm >= 0
            and fixed_fwhm_mm >= 0):
        raise InputError(f"blur FWHMs must be finite and >= 0 mm, got {moving_fwhm_mm}, {fixed_fwhm_mm}")
    if sample_on == "moving" and fixed_mask is not None:
        raise InputError("fixed_mask selects fixed voxels: use it with sample_on='fixed' (or 'auto')")
    bad_sampling = sampling is not None and not 0 < sampling <= 1
    if bad_sampling or bins < 4 or iterations < 1 or len(shrink) != len(smoothing_vox) or threads < 1:
        raise InputError("need 0 < sampling <= 1, bins >= 4, iterations >= 1, threads >= 1 and one smoothing per "
                         "shrink level")
    for name, v in (("moving", moving), ("fixed", fixed)):
        if not isinstance(v, Volume):
            raise InputError(f"{name} must be a Volume, got {type(v).__name__}")
        if v.data.is_floating_point() and not bool(v.data.isfinite().all()):
            raise InputError(f"the {name} image holds NaN or infinite voxels")
        if float(v.data.max()) == float(v.data.min()):
            raise InputError(f"the {name} image is constant: nothing to register on")
    if sample_on == "auto":
        anatomical, emission = ("CT", "MR"), ("PT", "NM")
        swap = fixed_mask is None and moving.modality in anatomical and fixed.modality in emission
    else:
        swap = sample_on == "moving"
    m_blur, f_blur = _blurred(moving, moving_fwhm_mm), _blurred(fixed, fixed_fwhm_mm)
    f_vol, m_vol = (m_blur, f_blur) if swap else (f_blur, m_blur)  # the metric samples f_vol's voxels
    if sampling is None:
        sampling = min(1.0, MAX_SAMPLES / float(np.prod(f_vol.shape)))
    with sitk_threads(threads):
        f_img, m_img = to_sitk(f_vol), to_sitk(m_vol)
        if pad_mm > 0:  # sampled points beyond the interpolated grid then see background, not "no sample"
            pad = [int(np.ceil(pad_mm / s)) for s in m_img.GetSpacing()]
            m_img = sitk.ConstantPad(m_img, pad, pad, float(m_vol.data.min()))
        centre = f_img.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2.0 for n in f_img.GetSize()])
        mask = None
        if fixed_mask is not None:
            mask = sitk.Cast(to_sitk(fixed_mask.with_data((fixed_mask.data != 0).float())), sitk.sitkUInt8)
        opts = dict(metric=metric, bins=bins, sampling=sampling, shrink=shrink, smoothing_vox=smoothing_vox,
                    iterations=iterations, seed=seed, mask=mask)
        base = sitk.TranslationTransform(3)
        if init == "geometry":  # start with the grids' centres on each other (fixed point x -> x + offset)
            m_centre = m_img.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2.0 for n in m_img.GetSize()])
            base.SetOffset(tuple(float(a - b) for a, b in zip(m_centre, centre)))
        final, reg = _run(f_img, m_img, base, learning_rate, **opts)
        stages = [reg.GetOptimizerStopConditionDescription()]
        if transform in ("rigid", "affine"):  # translation first (robust), then the rotations from there
            rig = sitk.Euler3DTransform()
            rig.SetCenter(centre)
            rig.SetTranslation(tuple(float(v) for v in transform_matrix(final)[:3, 3]))
            final, reg = _run(f_img, m_img, rig, learning_rate, **opts)
            stages.append(reg.GetOptimizerStopConditionDescription())
        if transform == "affine":  # rigid first, then the affine refinement from it with a smaller step
            aff = sitk.AffineTransform(3)
            aff.SetCenter(centre)
            m0 = transform_matrix(final)
            aff.SetMatrix(tuple(float(v) for v in m0[:3, :3].reshape(-1)))
            aff.SetTranslation(tuple(float(v) for v in (m0[:3, 3] + m0[:3, :3] @ np.asarray(centre)
                                                          - np.asarray(centre))))
            final, reg = _run(f_img, m_img, aff, 0.1 * learning_rate, **opts)
            stages.append(reg.GetOptimizerStopConditionDescription())
        matrix = transform_matrix(final)  # f_vol -> m_vol
        if swap:
            matrix = np.linalg.inv(matrix)
        settings = {"metric": "mattes_mi" if metric == "mi" else "mean_squares", "bins": int(bins),
                    "sampling": float(sampling), "seed": int(seed), "shrink": list(shrink),
                    "smoothing_vox": list(smoothing_vox), "iterations": int(iterations), "init": init,
                    "learning_rate": float(learning_rate), "stop": stages, "threads": int(threads),
                    "sampled_on": "moving" if swap else "fixed", "moving_fwhm_mm": float(moving_fwhm_mm),
                    "fixed_fwhm_mm": float(fixed_fwhm_mm), "pad_mm": float(pad_mm),
                    "iterations_run": int(reg.GetOptimizerIteration())}
        moved = resample_with_matrix(moving, fixed, matrix)
        return RegistrationResult(moved, matrix, float(reg.GetMetricValue()), transform, settings)


def _blurred(volume: Volume, fwhm_mm: float) -> Volume:
    """``volume`` smoothed by a Gaussian of ``fwhm_mm`` (borders: nearest value), or itself for 0."""
    if fwhm_mm <= 0:
        return volume
    import torch
    from scipy import ndimage

    from petspect.units import fwhm_to_sigma

    sigma_vox = fwhm_to_sigma(fwhm_mm) / np.asarray(volume.spacing_mm, dtype=float)
    out = ndimage.gaussian_filter(volume.numpy().astype(np.float32), sigma_vox, mode="nearest")
    return volume.with_data(torch.from_numpy(out))


def _run(f_img: Any, m_img: Any, initial: Any, learning_rate: float, *, metric: str, bins: int, sampling: float,
         shrink: tuple[int, ...], smoothing_vox: tuple[float, ...], iterations: int, seed: int,
         mask: Any) -> tuple[Any, Any]:
    import SimpleITK as sitk

    reg = sitk.ImageRegistrationMethod()
    if metric == "mi":
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=int(bins))
    else:
        reg.SetMetricAsMeanSquares()
    if sampling < 1.0:
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        # SimpleITK reads a seed of 0 as "seed from the wall clock" (sitkWallClock): never pass it 0
        reg.SetMetricSamplingPercentage(float(sampling), int(seed) + 1)
    else:  # every voxel, no random draw
        reg.SetMetricSamplingStrategy(reg.NONE)
    if mask is not None:
        reg.SetMetricFixedMask(mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=float(learning_rate), minStep=1e-5,
                                                 numberOfIterations=int(iterations), relaxationFactor=0.6,
                                                 gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([int(s) for s in shrink])
    reg.SetSmoothingSigmasPerLevel([float(s) for s in smoothing_vox])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetInitialTransform(initial, inPlace=False)
    return reg.Execute(f_img, m_img), reg


def write_transform(matrix: np.ndarray, path: str | os.PathLike, *, info: dict[str, Any] | None = None,
                    overwrite: bool = False) -> Path:
    """Write a fixed -> moving LPS matrix as an ITK transform file (``.tfm``, read by 3D Slicer, ITK,
    SimpleITK) with a JSON twin (``.json``: the 4x4 matrix and ``info``)."""
    import SimpleITK as sitk

    from petspect._fileio import atomic_path, atomic_write_text, check_output_path

    p = check_output_path(path, overwrite=overwrite)
    if p.suffix != ".tfm":
        raise InputError(f"the transform file must end in .tfm, got {p.name!r}", path=p)
    twin = check_output_path(p.with_suffix(".json"), overwrite=overwrite)
    with atomic_path(p, suffix=".tfm") as tmp:
        sitk.WriteTransform(_affine_sitk(matrix), str(tmp))
    doc = {"convention": "fixed-space LPS (x, y, z, 1) mm -> moving-space LPS mm (ITK)",
           "matrix": np.asarray(matrix, dtype=float).round(9).tolist(), **(info or {})}
    atomic_write_text(twin, json.dumps(doc, indent=1) + "\n")
    return p


def read_transform(path: str | os.PathLike) -> np.ndarray:
    """The 4x4 matrix of an affine-like ITK transform file."""
    import SimpleITK as sitk

    from petspect.errors import FormatError
    from petspect.io._paths import require_exists

    p = require_exists(path)
    try:
        t = sitk.ReadTransform(str(p))
    except RuntimeError as e:
        raise FormatError(f"not a readable ITK transform: {str(e).splitlines()[0] if str(e) else e}", path=p) from None
    return transform_matrix(t)
