"""The composed PET system model ``A = diag(n a) P G``.

``G`` is the image-space PSF (:class:`petspect.physics.resolution.GaussianPSF`), ``P`` the Joseph
sinogram projector (non-TOF or TOF), ``a`` the attenuation factors and ``n`` the detection
efficiencies (normalisation, including each bin's multiplicity). Expected prompts are
``A x * duration + scatter + randoms``; the statistics live in recon.

Calibration
-----------
The projector gives line integrals (Bq/mL x mm). :func:`pet_calibration_factor` finds ``k`` (counts
per second per unit line integral) such that a 1 Bq point source at the centre of the field of view,
in air, gives ``sensitivity_cps_per_kbq / 1000`` counts per second in the configured sinogram: reduced
geometries (direct planes only, mashed views) carry the counts of the whole scanner, as SSRB-rebinned
3D data do. :func:`pet_system_spec` records a scanner, its sinogram and ``k`` as a typed
:class:`~petspect.systems.records.PetSystemSpec`.
"""

from __future__ import annotations

import math

import torch

from petspect.errors import ConfigError, InputError
from petspect.geometry.pet import PET_SCANNERS, ImageGrid, PetScanner
from petspect.geometry.sinogram import SinogramDefinition
from petspect.operators.base import CompositeOperator, LinearOperator
from petspect.operators.factors import ProjectionFactors
from petspect.physics.attenuation import attenuation_factors
from petspect.physics.resolution import GaussianPSF
from petspect.projectors.pet import PetSinogramProjector
from petspect.systems.records import ImageGridSpec, PetSystemSpec, SinogramSpec
from petspect.volume import Volume

__all__ = ["PET_SENSITIVITY_CPS_PER_KBQ", "PetSystemModel", "pet_calibration_factor", "pet_system_model",
           "pet_system_spec"]

#: NEMA NU 2 total sensitivity (cps/kBq) of the scanner presets (kept with them in geometry.pet.PET_SCANNERS):
#: Biograph Vision 600 16.4 (van Sluis et al, J Nucl Med 60:1031, 2019); HRRT ~ 4.3 (de Jong et al, PMB
#: 52:1505, 2007, 400-650 keV); Inveon 6.72 % = 67.2 cps/kBq (Constantinescu & Mukherjee, PMB 54:2885, 2009).
PET_SENSITIVITY_CPS_PER_KBQ = {name: s.sensitivity_cps_per_kbq for name, s in PET_SCANNERS.items()}  # one registry


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


def pet_calibration_factor(projector, sensitivity_cps_per_kbq: float) -> float:
    """Counts per second per unit line integral (Bq/mL x mm) that gives a scanner its sensitivity.

    A 1 Bq point source in the central voxel, in air, gives ``sensitivity_cps_per_kbq / 1000`` counts
    per second summed over the projector's (non-TOF) sinogram (see the module docstring).
    """
    geometric = projector.non_tof() if getattr(projector, "tof", False) else projector
    grid = geometric.grid
    voxel_ml = math.prod(grid.spacing_mm) * 1e-3
    point = torch.zeros(grid.shape, dtype=torch.float32, device=geometric.device)
    point[tuple(n // 2 for n in grid.shape)] = 1.0 / voxel_ml  # 1 Bq in the central voxel, in Bq/mL
    seen = float(geometric(point).sum())
    if seen <= 0:
        raise ConfigError("the image grid's centre is outside the scanner's field of view")
    return float(sensitivity_cps_per_kbq) * 1e-3 / seen


def pet_system_spec(preset: str, scanner: PetScanner, sino_def: SinogramDefinition, grid: ImageGridSpec, *,
                    tof: bool, sensitivity_cps_per_kbq: float, psf_fwhm_mm=None, single_ring: bool = False,
                    half_life_s: float | None = None) -> PetSystemSpec:
    """The typed record of a PET system on ``grid``, with its calibration factor ``k`` computed here.

    ``scanner`` is used as given (pass ``scanner.non_tof()`` for non-TOF data); ``sino_def`` must be
    defined on it.
    """
    if tof and not scanner.is_tof:
        raise InputError(f"PET preset {preset!r} has no time of flight; drop --tof")
    sinogram = SinogramSpec.of(sino_def)
    projector = PetSinogramProjector(scanner, sinogram.definition(scanner), grid.image_grid(), tof=False)
    k = pet_calibration_factor(projector, sensitivity_cps_per_kbq)
    return PetSystemSpec(preset=preset, scanner=scanner, sinogram=sinogram, tof=bool(tof),
                         sensitivity_cps_per_kbq=float(sensitivity_cps_per_kbq), sensitivity_factor=k,
                         psf_fwhm_mm=psf_fwhm_mm, single_ring=bool(single_ring), half_life_s=half_life_s)
