"""PET attenuation: survival probability of both annihilation photons along each LOR.

For a LOR the two 511 keV photons together cross the whole object chord, so the probability that
neither is absorbed or scattered out is ``a = exp(-integral of mu dl)`` whatever the emission point
(this is what makes PET attenuation correction exact). The line integral uses the same Joseph
projector as the emission model, on the grid of the attenuation map; mu is in 1/mm (a Volume in
"1/cm" is converted explicitly).

References: Kinahan et al., Med Phys 25:2046 (1998); water mu(511 keV) ~ 0.096/cm (xraydb, see
docs/REFERENCE.md).
"""

from __future__ import annotations

import torch

from petspect.errors import InputError, UnitError
from petspect.geometry.pet import ImageGrid
from petspect.operators.base import LinearOperator
from petspect.operators.factors import ProjectionFactors
from petspect.units import MM_PER_CM
from petspect.volume import Volume

__all__ = ["mu_per_mm_tensor", "attenuation_line_integrals", "attenuation_factors", "attenuation_operator"]


def mu_per_mm_tensor(mu: Volume | torch.Tensor, grid: ImageGrid | None = None) -> torch.Tensor:
    """Attenuation map values in 1/mm as a tensor, checking the unit and (for Volumes) the grid.

    A tensor is taken to be in 1/mm already. A Volume must carry unit "1/mm" or "1/cm" and lie on
    ``grid`` (same shape, spacing and origin within 1e-3 mm).
    """
    if isinstance(mu, Volume):
        if mu.unit not in ("1/mm", "1/cm"):
            raise UnitError(f"attenuation map must be in 1/mm or 1/cm, got unit {mu.unit!r}")
        if grid is not None:
            other = ImageGrid.from_volume(mu)
            mine, theirs = grid.spacing_mm + grid.origin_mm, other.spacing_mm + other.origin_mm
            if other.shape != grid.shape or not all(abs(a - b) < 1e-3 for a, b in zip(theirs, mine)):
                raise InputError(f"attenuation map grid {other} differs from the projector grid {grid}; resample it")
        data = mu.data if mu.unit == "1/mm" else mu.data / MM_PER_CM
    else:
        data = torch.as_tensor(mu)
    if grid is not None and tuple(data.shape) != grid.shape:
        raise InputError(f"attenuation map shape {tuple(data.shape)} != image shape {grid.shape}")
    if bool((data < 0).any()):
        raise InputError("attenuation map has negative values")
    if float(data.max()) > 0.05:
        raise UnitError(f"attenuation map maximum {float(data.max()):.3g}/mm is implausible at 511 keV "
                        "(bone ~0.017/mm, titanium ~0.04/mm): is it in 1/cm or HU?")
    return data


def _non_tof(projector: LinearOperator) -> LinearOperator:
    return projector.non_tof() if getattr(projector, "tof", False) else projector


def attenuation_line_integrals(mu: Volume | torch.Tensor, projector: LinearOperator) -> torch.Tensor:
    """Line integrals of mu (dimensionless) along every LOR of ``projector`` (non-TOF shape)."""
    op = _non_tof(projector)
    data = mu_per_mm_tensor(mu, getattr(op, "grid", None))
    device = getattr(op, "device", data.device)
    return op.forward(data.to(device=device, dtype=torch.promote_types(data.dtype, torch.float32)))


def attenuation_factors(mu: Volume | torch.Tensor, projector: LinearOperator) -> torch.Tensor:
    """Attenuation factors ``exp(-int mu dl)`` in (0, 1] for every LOR (non-TOF projection shape)."""
    return torch.exp(-attenuation_line_integrals(mu, projector))


def attenuation_operator(mu: Volume | torch.Tensor, projector: LinearOperator) -> ProjectionFactors:
    """The attenuation as a projection-space operator on the output of ``projector`` (TOF-aware)."""
    return ProjectionFactors(attenuation_factors(mu, projector), projector.out_shape,
                             view_axis=projector.view_axis)
