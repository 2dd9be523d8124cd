"""Image-space resolution model: a separable Gaussian point-spread function.

The PSF of a PET system (positron range, acollinearity, crystal size, depth of interaction) is
approximated by a shift-invariant 3D Gaussian with a FWHM per axis, applied in image space before
projection (``A = P G``), as in resolution-modelled OSEM. The kernel is sampled at voxel centres,
truncated at ``truncate`` standard deviations and normalised to sum 1 (so uniform regions keep
their value); convolution uses zero padding, so the operator matrix is symmetric and the operator
is self-adjoint.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from petspect.errors import InputError
from petspect.operators.base import LinearOperator
from petspect.units import fwhm_to_sigma

__all__ = ["GaussianPSF", "gaussian_kernel_1d", "convolve_axis"]


def gaussian_kernel_1d(fwhm_mm: float, spacing_mm: float, *, truncate: float = 3.0,
                       dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """Normalised Gaussian sampled at voxel centres, shape (2 h + 1,), ``h = ceil(truncate sigma / spacing)``."""
    if fwhm_mm < 0 or spacing_mm <= 0:
        raise InputError(f"need fwhm_mm >= 0 and spacing_mm > 0, got {fwhm_mm}, {spacing_mm}")
    sigma_vox = fwhm_to_sigma(fwhm_mm) / spacing_mm
    if sigma_vox == 0:
        return torch.ones(1, dtype=dtype, device=device)
    half = max(1, int(math.ceil(truncate * sigma_vox)))
    x = torch.arange(-half, half + 1, dtype=dtype, device=device)
    k = torch.exp(-0.5 * (x / sigma_vox) ** 2)
    return k / k.sum()


def convolve_axis(x: torch.Tensor, kernel: torch.Tensor, axis: int) -> torch.Tensor:
    """Zero-padded 'same' convolution of ``x`` with a symmetric 1D kernel along ``axis``."""
    if kernel.numel() == 1:
        return x
    moved = x.movedim(axis, -1)
    shape = moved.shape
    out = torch.nn.functional.conv1d(moved.reshape(-1, 1, shape[-1]), kernel.view(1, 1, -1),
                                     padding=kernel.numel() // 2)
    return out.reshape(shape).movedim(-1, axis)


class GaussianPSF(LinearOperator):
    """Separable Gaussian blur of an image (self-adjoint).

    Parameters
    ----------
    image_shape : (int, int, int)
        Image shape (nz, ny, nx).
    fwhm_mm : float or (float, float, float)
        PSF FWHM along (z, y, x), mm (0 on an axis: no blur there).
    voxel_mm : float or (float, float, float)
        Voxel size (dz, dy, dx), mm.
    truncate : float
        Kernel half-width in standard deviations.
    """

    def __init__(self, image_shape: Sequence[int], fwhm_mm, voxel_mm, *, truncate: float = 3.0) -> None:
        super().__init__(image_shape, image_shape)
        if len(self.in_shape) != 3:
            raise InputError(f"image_shape must be (nz, ny, nx), got {image_shape}")
        self.fwhm_mm = _triple(fwhm_mm, "fwhm_mm")
        self.voxel_mm = _triple(voxel_mm, "voxel_mm")
        if min(self.voxel_mm) <= 0 or min(self.fwhm_mm) < 0:
            raise InputError("voxel_mm must be positive and fwhm_mm non-negative")
        self.truncate = float(truncate)

    def _kernels(self, like: torch.Tensor) -> list[torch.Tensor]:
        return [gaussian_kernel_1d(f, s, truncate=self.truncate, dtype=like.dtype, device=like.device)
                for f, s in zip(self.fwhm_mm, self.voxel_mm)]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        for axis, k in enumerate(self._kernels(x)):
            x = convolve_axis(x, k, axis)
        return x

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self._forward(y)  # symmetric kernels with zero padding: G^T = G

    def extra_repr(self) -> str:
        return f"fwhm_mm={self.fwhm_mm}, voxel_mm={self.voxel_mm}"


def _triple(value, name: str) -> tuple[float, float, float]:
    vals = [float(v) for v in (value if isinstance(value, (list, tuple)) else [value] * 3)]
    if len(vals) != 3 or not all(math.isfinite(v) for v in vals):
        raise InputError(f"{name} must be a number or 3 numbers (z, y, x), got {value!r}")
    return (vals[0], vals[1], vals[2])
