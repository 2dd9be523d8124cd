"""Reconstruct PET raw data again with a given attenuation map: scatter re-estimated with that map.

The one path every AC method's map takes (CT, segmentation, MLAA, synthetic CT from NAC or MR, predicted
attenuation factors): attenuation factors from the map (or given), a first OSEM image with the randoms
estimate only, the single-scatter simulation of that image with the same map scaled to the sinogram tails
(:func:`petspect.physics.scatter_sss.sss_tail_fitted`), and the final OSEM with randoms + scatter.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from petspect.errors import InputError

__all__ = ["CorrectedPet", "reconstruct_with_mu", "reconstruct_nac", "with_scatter"]


@dataclass
class CorrectedPet:
    """Final image (Bq/mL, (z, y, x)), the scatter estimate (counts, non-TOF) and the tail-fit record."""

    image: torch.Tensor
    scatter: torch.Tensor | None
    info: dict


def _spec(iterations: int, subsets: int, post_filter_fwhm_mm: float | None):
    from petspect.recon.reconstruct import ReconSpec

    return ReconSpec(algorithm="osem", iterations=int(iterations), subsets=int(subsets),
                     post_filter_fwhm_mm=post_filter_fwhm_mm)


def reconstruct_nac(data, *, iterations: int = 3, subsets: int = 6, post_filter_fwhm_mm: float | None = None
                    ) -> torch.Tensor:
    """Non-attenuation-corrected OSEM image (randoms subtracted in the model, no scatter), (z, y, x)."""
    from petspect.recon.reconstruct import reconstruct_image

    return reconstruct_image(replace(data, attenuation=None), _spec(iterations, subsets, post_filter_fwhm_mm),
                             attenuation=False, progress=False).data


def reconstruct_with_mu(data, mu_per_mm: torch.Tensor | None = None, *, attenuation: torch.Tensor | None = None,
                        scatter_mu_per_mm: torch.Tensor | None = None, scatter: bool = True,
                        scatter_counts: torch.Tensor | None = None, iterations: int = 3,
                        subsets: int = 6, post_filter_fwhm_mm: float | None = None, sss_settings=None) -> CorrectedPet:
    """Attenuation- (and scatter-) corrected OSEM of ``data`` with the map ``mu_per_mm`` (module docstring).

    Parameters
    ----------
    data : AcquisitionData
        PET prompts (TOF or not) with the randoms estimate as ``additive``.
    mu_per_mm : torch.Tensor, optional
        Attenuation map on the data's grid (1/mm). Either it or ``attenuation``.
    attenuation : torch.Tensor, optional
        Attenuation factors (non-TOF sinogram shape), e.g. predicted from TOF data.
    scatter_mu_per_mm : torch.Tensor, optional
        Map for the scatter simulation when only ``attenuation`` is given (default: ``mu_per_mm``; without
        any map the scatter is skipped and ``info`` says so).
    scatter : bool
        Estimate scatter (SSS, tail-fitted).
    scatter_counts : torch.Tensor, optional
        A scatter estimate (counts, non-TOF sinogram shape) to use instead of SSS (e.g. a network's).
    """
    from petspect.physics.attenuation import attenuation_factors
    from petspect.physics.scatter_sss import sss_tail_fitted
    from petspect.recon.reconstruct import reconstruct_image
    from petspect.systems.acquisition import system_model

    if (mu_per_mm is None) == (attenuation is None):
        raise InputError("give an attenuation map (mu_per_mm) or attenuation factors, not both")
    model0 = system_model(replace(data, attenuation=None), attenuation=False)
    projector = model0.base.projector
    if attenuation is None:
        mu = torch.as_tensor(mu_per_mm, dtype=torch.float32)
        if tuple(mu.shape) != data.grid.shape:
            raise InputError(f"mu map shape {tuple(mu.shape)} != the data's image grid {data.grid.shape}")
        attenuation = attenuation_factors(mu, projector).cpu()
    att = torch.as_tensor(attenuation, dtype=torch.float32)
    spec = _spec(iterations, subsets, post_filter_fwhm_mm)
    with_att = replace(data, attenuation=att)
    info: dict = {"scatter": "none"}
    smu = mu_per_mm if scatter_mu_per_mm is None else scatter_mu_per_mm
    tof_bins = data.prompts.shape[-1] if data.prompts.ndim == 4 else 1
    randoms = None if data.additive is None else (data.additive.sum(-1) if data.prompts.ndim == 4 else data.additive)
    if scatter_counts is not None:
        sc = torch.as_tensor(scatter_counts, dtype=torch.float32).clamp_min(0)
        if tuple(sc.shape) != tuple(att.shape):
            raise InputError(f"scatter_counts shape {tuple(sc.shape)} != the sinogram's {tuple(att.shape)}")
        additive = sc if randoms is None else randoms + sc
        if data.prompts.ndim == 4:
            additive = (additive / tof_bins)[..., None].expand(-1, -1, -1, tof_bins).contiguous()
        img = reconstruct_image(replace(with_att, additive=additive), spec, progress=False).data
        return CorrectedPet(img, sc, {"scatter": "given"})
    if not scatter or smu is None:
        return CorrectedPet(reconstruct_image(with_att, spec, progress=False).data, None, info)
    first = reconstruct_image(with_att, replace(spec, iterations=1, post_filter_fwhm_mm=None), progress=False).data.clamp_min(0)
    counts_per_unit = float(data.system.sensitivity_factor) * data.time_scale_s
    smu_t = torch.as_tensor(smu, dtype=torch.float32)
    # the tails are the lines that miss the object of the scatter map (predicted factors are never exactly 1)
    tail_att = att if scatter_mu_per_mm is None else attenuation_factors(smu_t, projector).cpu()
    sc, fit = sss_tail_fitted(data.prompts, first, smu_t, projector,
                              attenuation_factors=tail_att, efficiencies=data.normalisation, randoms=randoms,
                              counts_per_unit=counts_per_unit, settings=sss_settings)
    additive = sc if randoms is None else randoms + sc
    if data.prompts.ndim == 4:
        additive = (additive / tof_bins)[..., None].expand(-1, -1, -1, tof_bins).contiguous()
    info = {"scatter": "sss, tail-fitted", **fit}
    img = reconstruct_image(replace(with_att, additive=additive), spec, progress=False).data
    return CorrectedPet(img, sc, info)


def with_scatter(data, mu_per_mm: torch.Tensor, **kwargs):
    """``data`` whose additive term also holds the SSS scatter estimated with ``mu_per_mm`` (spread evenly over
    the TOF bins), and the :class:`CorrectedPet` it came from; e.g. the input of MLAA."""
    res = reconstruct_with_mu(data, mu_per_mm, **kwargs)
    if res.scatter is None:
        return data, res
    sc = res.scatter
    if data.prompts.ndim == 4:
        sc = (sc / data.prompts.shape[-1])[..., None].expand_as(data.prompts)
    additive = sc if data.additive is None else data.additive + sc
    return replace(data, additive=additive.contiguous()), res
