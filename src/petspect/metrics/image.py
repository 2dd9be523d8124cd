"""Image-quality metrics: PSNR, SSIM and NRMSE, generic and as the ultra-low-dose PET challenge defines them.

All functions are pure: they take two images of the same shape (torch tensors, numpy arrays or
Volumes, 2D or 3D, any device) and return a Python float. They compute in float64. The generic functions take the
dynamic range as a keyword-only ``data_range`` with no default, because a silent default (dtype range,
or the range of one image) changes the value by orders of magnitude for activity images in Bq/mL.

Conventions
-----------
* ``psnr = 10 log10(data_range**2 / MSE)`` in dB.
* ``nrmse = sqrt(MSE) / data_range``.
* ``ssim``: Wang et al (IEEE TIP 2004) with the defaults of :func:`skimage.metrics.structural_similarity`
  (7-voxel uniform window, K1 = 0.01, K2 = 0.03, sample covariance, border of half a window excluded), or
  an 11-voxel Gaussian window of sigma 1.5 (``gaussian_weights=True``, Wang's choice). The values equal
  scikit-image's to float64 round-off (tested).
* Challenge variants (Ultra-low-dose PET imaging challenge, MICCAI 2022/2023 evaluation code): NRMSE is
  RMSE / (max - min of the reference); PSNR uses the peak ``max(reference)``; SSIM is computed after
  dividing each image by its own maximum, with ``data_range = 1``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from petspect.errors import InputError


def _tensor(x: Any, device: torch.device | None = None) -> torch.Tensor:
    """A tensor view of an array, tensor or petspect Volume (its ``data``)."""
    if hasattr(x, "spacing_mm") and hasattr(x, "data"):
        x = x.data
    return torch.as_tensor(x.detach() if isinstance(x, torch.Tensor) else np.asarray(x), device=device)


def _pair(pred: Any, ref: Any, mask: Any = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Both images as float64 tensors on the reference's device, shapes checked."""
    r = _tensor(ref)
    p = _tensor(pred, r.device)
    if p.shape != r.shape:
        raise InputError(f"prediction and reference shapes differ: {tuple(p.shape)} vs {tuple(r.shape)}")
    if r.numel() == 0:
        raise InputError("images are empty")
    m = None
    if mask is not None:
        m = _tensor(mask, r.device)
        if m.shape != r.shape:
            raise InputError(f"mask shape {tuple(m.shape)} differs from the image shape {tuple(r.shape)}")
        m = m.bool()
        if not m.any():
            raise InputError("mask is empty")
    return p.double(), r.double(), m


def _check_range(data_range: float) -> float:
    dr = float(data_range)
    if not math.isfinite(dr) or dr <= 0:
        raise InputError(f"data_range must be a positive finite number, got {data_range!r}")
    return dr


def _mse(p: torch.Tensor, r: torch.Tensor, m: torch.Tensor | None) -> float:
    d2 = (p - r) ** 2
    return float(d2[m].mean() if m is not None else d2.mean())


def psnr(pred: Any, ref: Any, *, data_range: float, mask: Any = None) -> float:
    """Peak signal-to-noise ratio in dB.

    Parameters
    ----------
    pred, ref : tensor or array, same shape
        Image under test and reference (any unit, the same for both).
    data_range : float
        Peak value of the signal, in the images' unit (e.g. ``ref.max() - ref.min()``); keyword-only.
    mask : tensor or array of bool, optional
        Restrict the mean squared error to these voxels (e.g. the body).

    Returns
    -------
    float
        ``10 log10(data_range**2 / MSE)``; ``inf`` when the images are equal.
    """
    p, r, m = _pair(pred, ref, mask)
    dr = _check_range(data_range)
    mse = _mse(p, r, m)
    return math.inf if mse == 0 else 10.0 * math.log10(dr * dr / mse)


def nrmse(pred: Any, ref: Any, *, data_range: float, mask: Any = None) -> float:
    """Root mean squared error divided by ``data_range`` (dimensionless, not in %).

    Parameters
    ----------
    pred, ref : tensor or array, same shape
    data_range : float
        Normaliser in the images' unit (keyword-only): e.g. the reference's range or its mean.
    mask : tensor or array of bool, optional
        Voxels included.
    """
    p, r, m = _pair(pred, ref, mask)
    return math.sqrt(_mse(p, r, m)) / _check_range(data_range)


def _window_1d(win_size: int, gaussian: bool, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if gaussian:
        x = torch.arange(win_size, dtype=dtype, device=device) - (win_size - 1) / 2
        w = torch.exp(-0.5 * (x / sigma) ** 2)
        return w / w.sum()
    return torch.full((win_size,), 1.0 / win_size, dtype=dtype, device=device)


def _filter_valid(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Separable correlation with ``w`` along every axis, keeping only fully covered positions."""
    for axis in range(x.ndim):
        moved = x.movedim(axis, -1)
        shape = moved.shape
        out = torch.nn.functional.conv1d(moved.reshape(-1, 1, shape[-1]), w.view(1, 1, -1))
        x = out.reshape(*shape[:-1], out.shape[-1]).movedim(-1, axis)
    return x


def ssim(pred: Any, ref: Any, *, data_range: float, win_size: int | None = None, gaussian_weights: bool = False,
         sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> float:
    """Mean structural similarity of two 2D or 3D images (scikit-image's definition).

    Parameters
    ----------
    pred, ref : tensor or array, same shape, 2D or 3D
    data_range : float
        Dynamic range L of the images (keyword-only); ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2``.
    win_size : int, optional
        Odd window side in voxels: 7 by default, ``2 * int(3.5 sigma + 0.5) + 1`` (11) with Gaussian weights.
    gaussian_weights : bool
        Gaussian window of standard deviation ``sigma`` voxels instead of a uniform one.
    sigma, k1, k2 : float
        Window width and the stabilising constants of Wang et al (2004).

    Returns
    -------
    float
        Mean SSIM over the voxels whose window lies inside the image, in [-1, 1].
    """
    p, r, _ = _pair(pred, ref)
    dr = _check_range(data_range)
    if p.ndim not in (2, 3):
        raise InputError(f"ssim takes 2D or 3D images, got shape {tuple(p.shape)}")
    if win_size is None:
        win_size = 2 * int(3.5 * sigma + 0.5) + 1 if gaussian_weights else 7
    if win_size < 3 or win_size % 2 == 0:
        raise InputError(f"win_size must be odd and at least 3, got {win_size}")
    if min(p.shape) < win_size:
        raise InputError(f"every image side must be at least win_size={win_size}, shape is {tuple(p.shape)}")
    w = _window_1d(win_size, gaussian_weights, sigma, p.dtype, p.device)
    n = win_size**p.ndim
    cov_norm = 1.0 if gaussian_weights else n / (n - 1.0)  # scikit-image: sample covariance for the uniform window
    ux, uy = _filter_valid(p, w), _filter_valid(r, w)
    vx = cov_norm * (_filter_valid(p * p, w) - ux * ux)
    vy = cov_norm * (_filter_valid(r * r, w) - uy * uy)
    vxy = cov_norm * (_filter_valid(p * r, w) - ux * uy)
    c1, c2 = (k1 * dr) ** 2, (k2 * dr) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return float(s.mean())


def _ref_stats(ref: Any) -> tuple[float, float]:
    r = _tensor(ref).double()
    return float(r.max()), float(r.min())


def nrmse_challenge(pred: Any, ref: Any) -> float:
    """NRMSE of the ultra-low-dose PET challenge: RMSE / (max(ref) - min(ref))."""
    hi, lo = _ref_stats(ref)
    if hi <= lo:
        raise InputError("reference is constant: its range (max - min) is zero")
    return nrmse(pred, ref, data_range=hi - lo)


def psnr_challenge(pred: Any, ref: Any) -> float:
    """PSNR of the ultra-low-dose PET challenge: peak = max(ref), in dB."""
    hi, _ = _ref_stats(ref)
    if hi <= 0:
        raise InputError("reference maximum must be positive for the challenge PSNR")
    return psnr(pred, ref, data_range=hi)


def ssim_challenge(pred: Any, ref: Any) -> float:
    """SSIM of the ultra-low-dose PET challenge: each image divided by its own max, then ``data_range = 1``."""
    p, r, _ = _pair(pred, ref)
    pmax, rmax = float(p.max()), float(r.max())
    if pmax <= 0 or rmax <= 0:
        raise InputError("both images need a positive maximum for the challenge SSIM")
    return ssim(p / pmax, r / rmax, data_range=1.0)
