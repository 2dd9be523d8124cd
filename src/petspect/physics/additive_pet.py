"""Expected additive background of PET data: scattered plus random coincidences, in counts.

The prompts of a PET scan are ``y = n a P x + s + r``: trues, scatter ``s`` and randoms ``r``
(Cherry, Sorenson & Phelps, Physics in Nuclear Medicine, ch. 18). This module builds ``s + r`` in the
projector's data shape from their models:

- scatter: the object-dependent analytic estimate of :func:`petspect.physics.scatter_pet.scatter_estimate`,
  either at its physical magnitude (times a calibration in counts) or rescaled to a requested total;
- randoms: :func:`petspect.physics.randoms.uniform_randoms` (in proportion to each bin's crystal pairs,
  equal singles), rescaled to a requested total;

both times the detector efficiencies when they are given (a randoms rate ``2 tau S_i S_j`` follows the
efficiencies of the two crystals through their singles, as the scatter does through its detection), and,
for TOF data, spread evenly over the TOF bins (both are flat in time at the scale of the bins).
"""

from __future__ import annotations

import torch

from petspect.errors import InputError
from petspect.physics.randoms import randoms_to_tof, uniform_randoms
from petspect.physics.scatter_pet import scatter_estimate

__all__ = ["pet_additive_counts"]


def pet_additive_counts(projector, *, activity=None, mu=None, efficiencies: torch.Tensor | None = None,
                        scatter_counts: float | None = None, scatter_scale: float | None = None,
                        randoms_counts: float = 0.0) -> torch.Tensor | None:
    """Expected scatter + randoms (counts) for ``projector``'s data.

    Parameters
    ----------
    projector : PetSinogramProjector
        The projector of the data (TOF or not).
    activity : torch.Tensor or Volume, shape (nz, ny, nx), optional
        Emission image on the projector's grid (Bq/mL); needed for scatter.
    mu : torch.Tensor or Volume, optional
        Attenuation map on the same grid (1/mm); needed for scatter.
    efficiencies : torch.Tensor, shape (n_planes, n_views, n_radial), optional
        Detector efficiencies (normalisation factors) that multiply both terms.
    scatter_counts : float, optional
        Total scatter counts: the scatter estimate is rescaled to it.
    scatter_scale : float, optional
        Without ``scatter_counts``: counts per unit of the scatter estimate (the factor that turns the
        attenuated trues ``a P x`` into counts), i.e. scatter at its physical magnitude.
    randoms_counts : float
        Total randoms counts (0: none).

    Returns
    -------
    torch.Tensor or None
        Shape ``projector.out_shape`` (float32, CPU), or ``None`` when neither term is asked for.
    """
    want_scatter = (scatter_counts is not None and scatter_counts > 0) or (scatter_counts is None
                                                                          and scatter_scale is not None)
    if (scatter_counts is not None and scatter_counts < 0) or randoms_counts < 0 or (
            scatter_scale is not None and scatter_scale < 0):
        raise InputError("scatter_counts, scatter_scale and randoms_counts must be >= 0")
    if not want_scatter and randoms_counts <= 0:
        return None
    shape = tuple(projector.out_shape[:3])
    eff = torch.ones(shape) if efficiencies is None else efficiencies.detach().to("cpu", torch.float32)
    if tuple(eff.shape) != shape:
        raise InputError(f"efficiencies have shape {tuple(eff.shape)}, the data {shape}")
    additive = torch.zeros(shape, dtype=torch.float32)
    if want_scatter:
        if activity is None or mu is None:
            raise InputError("simulating scatter needs the activity and the attenuation map (mu)")
        scatter = scatter_estimate(activity, mu, projector).to("cpu", torch.float32) * eff
        if scatter_counts is not None:
            scatter = scatter * (scatter_counts / max(float(scatter.sum()), 1e-30))
        else:
            scatter = scatter * scatter_scale
        additive = additive + scatter
    if randoms_counts > 0:
        randoms = uniform_randoms(projector.sino_def, 1.0) * eff
        additive = additive + randoms * (randoms_counts / float(randoms.sum()))
    if getattr(projector, "tof", False):
        additive = randoms_to_tof(additive, projector.out_shape[3])
    return additive
