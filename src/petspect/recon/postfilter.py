"""Image-space post-filters applied to reconstructions (after the last iteration)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from petspect.operators.base import LinearOperator
from petspect.physics.resolution import GaussianPSF
from petspect.recon.objectives import safe_divide


def normalised_filter(blur: LinearOperator) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> G x / G 1``: a blur normalised at the image borders.

    Uniform regions keep their value next to the edges of the grid (and a one-slice image is not
    dimmed by the axial kernel), as in scanner software.
    """
    def apply(x: torch.Tensor) -> torch.Tensor:
        return safe_divide(blur(x), blur(torch.ones_like(x)))

    return apply


def gaussian_post_filter(image_shape: Sequence[int], fwhm_mm: float | Sequence[float],
                         spacing_mm: Sequence[float]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Isotropic (or per-axis) Gaussian post-filter of FWHM ``fwhm_mm``, normalised at the borders."""
    return normalised_filter(GaussianPSF(tuple(image_shape), fwhm_mm, tuple(spacing_mm)))
