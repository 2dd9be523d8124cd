"""Pixel-integrated response matrices: the resampling kernel shared by SPECT projectors and detector blurs.

A Gaussian (or a box) centred on each input sample, integrated over each output pixel, gives a
matrix that maps samples on one 1-D grid to pixels on another. The SPECT projector's collimator
response (:mod:`petspect.projectors.spect`) and the detector-plane smoothing of scatter estimates
(:mod:`petspect.physics.spect_scatter`) both build on it, so it lives below both.
"""

from __future__ import annotations

import torch

__all__ = ["pixel_response_matrices"]


def pixel_response_matrices(out_centres: torch.Tensor, out_width: float, in_centres: torch.Tensor,
                            in_width: float, sigma: torch.Tensor | None) -> torch.Tensor:
    """Response matrices ``(P, n_out, n_in)`` mapping samples to detector pixels, one per plane.

    Parameters
    ----------
    out_centres, in_centres : torch.Tensor, shapes (n_out,), (n_in,)
        Pixel and sample centres along one axis, mm.
    out_width, in_width : float
        Pixel and sample widths, mm.
    sigma : torch.Tensor, shape (P,), optional
        Gaussian standard deviation per plane, mm: the Gaussian centred on each sample is integrated
        over each pixel (columns sum to 1 away from the edges). None: the overlap of the sample's box
        with the pixel over the sample width (``P = 1``; the identity for matching grids).
    """
    du = out_centres[None, :, None] - in_centres[None, None, :]
    if sigma is None:
        lo = torch.maximum(du - out_width / 2, torch.full_like(du, -in_width / 2))
        hi = torch.minimum(du + out_width / 2, torch.full_like(du, in_width / 2))
        return (hi - lo).clamp(min=0.0) / in_width
    sig = sigma.clamp(min=1e-6)[:, None, None]
    return torch.special.ndtr((du + out_width / 2) / sig) - torch.special.ndtr((du - out_width / 2) / sig)
