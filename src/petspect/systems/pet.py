"""The composed PET system model ``A = diag(n a) P G``.

``G`` is the image-space PSF (:class:`petspect.physics.resolution.GaussianPSF`), ``P`` the Joseph
sinogram projector (non-TOF or TOF), ``a`` the attenuation factors and ``n`` the detection
efficiencies (normalisation, including each bin's multiplicity). Expected prompts are
``A x * duration + scatter + randoms``; the statistics live in recon.
"""

from __future__ import annotations

import torch

from petspect.errors import InputError
from petspect.geometry.pet import ImageGrid, PetScanner
from petspect.geometry.sinogram import SinogramDefinition
from petspect.operators.base import CompositeOperator, LinearOperator
from petspect.physics.attenuation import attenuation_factors
from petspect.physics.resolution import GaussianPSF
from petspect.projectors.pet import PetSinogramProjector
from petspect.operators.factors import ProjectionFactors
from petspect.volume import Volume

__all__ = ["PetSystemModel", "pet_system_model"]


class PetSystemModel(CompositeOperator):
    """``diag(f) P [G]`` with the parts kept as attributes.

    Attributes
    ----------
    projector : PetSinogramProjector
        The geometric projector ``P``.
    multiplicative_factors : torch.Tensor
        ``f = efficiencies x attenuation factors``, non-TOF sinogram shape; divide data by it (where
        positive) to correct them.
    psf : GaussianPSF or None
    """

    def __init__(self, factors: ProjectionFactors, projector: LinearOperator, psf: LinearOperator | None) -> None:
        super().__init__([factors, projector] + ([psf] if psf is not None else []))
        self.projector = projector
        self.psf = psf

    @property
    def multiplicative_factors(self) -> torch.Tensor:
        return self.ops[0].factors

    def correction_factors(self) -> torch.Tensor:
        """``1 / f`` where ``f > 0``, else 0 (non-TOF sinogram shape)."""
        return self.ops[0].inverse().factors


def pet_system_model(scanner: PetScanner, image_grid: ImageGrid | Volume, *, sino_def: SinogramDefinition | None = None,
                     mu: Volume | torch.Tensor | None = None, normalisation: torch.Tensor | None = None,
                     psf_fwhm_mm=None, tof: bool = False, device=None) -> PetSystemModel:
    """Build the PET system model ``diag(n a) P G`` for a scanner and an image grid.

    Parameters
    ----------
    scanner : PetScanner
    image_grid : ImageGrid or Volume
        The image grid (a Volume gives its grid).
    sino_def : SinogramDefinition, optional
        Default: span 1, all ring differences, no mashing.
    mu : Volume or Tensor, optional
        Attenuation map on the image grid, 1/mm (Volume "1/cm" accepted); None: no attenuation.
    normalisation : torch.Tensor, optional
        Detection efficiencies ``n`` (non-TOF sinogram shape), e.g. from
        :func:`petspect.physics.normalization.simulate_efficiencies`; None: all ones.
    psf_fwhm_mm : float or (float, float, float), optional
        Image-space Gaussian PSF FWHM (z, y, x); None: no resolution model.
    tof : bool
        TOF sinogram output.
    device : optional
        Where to hold the operator's tensors (default: the CPU, or the device of ``mu``).
    """
    grid = ImageGrid.from_volume(image_grid) if isinstance(image_grid, Volume) else image_grid
    proj = PetSinogramProjector(scanner, sino_def, grid, tof=tof)
    dev = device if device is not None else (mu.device if mu is not None and hasattr(mu, "device") else None)
    if dev is not None:
        proj = proj.to(dev)
    base_shape = proj.out_shape[:3]
    factors = torch.ones(base_shape, dtype=torch.float32, device=proj.device)
    if normalisation is not None:
        if tuple(normalisation.shape) != base_shape:
            raise InputError(f"normalisation shape {tuple(normalisation.shape)} != sinogram shape {base_shape}")
        factors = factors * normalisation.to(factors)
    if mu is not None:
        factors = factors * attenuation_factors(mu, proj).to(factors)
    psf = None
    if psf_fwhm_mm is not None:
        psf = GaussianPSF(grid.shape, psf_fwhm_mm, grid.spacing_mm)
    return PetSystemModel(ProjectionFactors(factors, proj.out_shape, view_axis=1), proj, psf)
