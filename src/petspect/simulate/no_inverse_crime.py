"""No inverse crime: simulate from a finer truth with detector blur, reconstruct on the coarse grid with estimated
additive terms.

Simulating data with the same discrete model that reconstructs them (same projector, same voxel grid, exact
expected scatter and randoms) flatters every reconstruction and every denoiser trained on it: the
"inverse crime" (Kaipio & Somersalo, J Comput Appl Math 198:493, 2007; Guerquin-Kern et al, IEEE TMI
31:626, 2012). A PET cohort here is made instead as follows:

1. **truth**: the subject's phantom is generated again on a grid ``truth_oversample`` times finer (same
   seed, same anatomy, lesions voxelised at the finer sampling), projected with an image-space detector blur
   of ``truth_psf_fwhm_mm`` (crystal size, inter-crystal scatter, photon non-collinearity and positron range
   together; Biograph Vision: 3.6 mm transverse FWHM at 1 cm, NEMA NU 2, van Sluis et al, J Nucl Med
   60:1031, 2019 -- 4 mm is the default for positions across a torso) through the same sinogram geometry,
   efficiencies and calibration; its scatter is the analytic model of the fine activity and attenuation;
2. **measurement**: prompts are a Poisson draw of it; the delayed window an independent Poisson draw of the
   randoms (thinned with the prompts at lower dose levels);
3. **reconstruction** on the coarse grid, without a resolution model unless the configuration has one,
   with the randoms estimated by smoothing the delayed window and the scatter computed from a first OSEM
   image and the coarse attenuation map and scaled to the prompts' tails
   (:mod:`petspect.physics.estimate_pet`). The estimates are stored per level (``additive_est_<level>.npy``).

A SPECT cohort: the truth is the phantom on the ``truth_oversample`` times finer grid, projected with the
collimator-detector response onto the reconstruction's detector pixels (voxel/pixel overlap integration, so
the fine and coarse models differ in their discretisation, not in their pixel size), all energy windows; the
reconstruction uses the coarse grid and the triple-energy-window scatter estimate of each level (no randoms).

The dataset's ``activity`` (the truth for the ``*_vs_truth`` metrics) is the fine truth averaged onto the
coarse grid.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch

from petspect.errors import ConfigError, InputError
from petspect.phantoms.base import Phantom, make_phantom
from petspect.volume import Volume

#: delayed-window smoothing SD in bins (planes, views, radial)
RANDOMS_SMOOTHING_BINS = (1.0, 4.0, 8.0)


def describe(config: Any) -> dict[str, Any]:
    """How a configuration's data are made (goes into dataset.json and summary.json)."""
    acq = config.acquisition
    k = int(getattr(acq, "truth_oversample", 1) or 1)
    est = bool(getattr(acq, "additive_estimate", False))
    pet = config.scanner.modality == "pet"
    crime = not (k > 1 and (est or not pet))
    if pet:
        additive = ("estimated: randoms from the smoothed delayed window, scatter model from a first OSEM image "
                    "scaled to the sinogram tails") if est else "the exact expected scatter and randoms of the simulation"
    else:
        additive = "estimated: triple-energy-window scatter of each level (smoothed); no randoms"
    return {"inverse_crime": crime,
            "truth_grid": f"{k}x finer than the reconstruction grid" if k > 1 else "the reconstruction grid",
            "truth_psf_fwhm_mm": (getattr(acq, "truth_psf_fwhm_mm", None) if pet else "collimator-detector response"
                                  ) if k > 1 else None,
            "reconstruction_psf_fwhm_mm": config.scanner.psf_fwhm_mm if pet else "collimator-detector response",
            "additive_terms": additive,
            "note": None if k > 1 else "simulated and reconstructed with the same model (truth_oversample = 1)"}


def oversampled_phantom(phantom: Phantom, factor: int) -> Phantom:
    """The same phantom (same generator, seed and parameters) on a grid ``factor`` times finer."""
    rec = phantom.record or {}
    params = dict(rec.get("params") or {})
    if "generator" not in rec or "voxel_mm" not in params:
        raise InputError("the phantom record has no generator or voxel size: it cannot be oversampled")
    params["voxel_mm"] = float(params["voxel_mm"]) / factor
    shape = params.get("shape") or list(phantom["activity"].shape)
    params["shape"] = [int(n) * factor for n in shape]
    return make_phantom(rec["generator"], **params)


def block_mean(volume: Volume, factor: int, like: Volume) -> Volume:
    """Average ``factor^3`` blocks of a fine volume onto the grid of ``like`` (same extent)."""
    x = volume.data.to(torch.float64)
    nz, ny, nx = like.shape
    if tuple(x.shape) != (nz * factor, ny * factor, nx * factor):
        raise InputError(f"fine shape {tuple(x.shape)} is not {factor} x {like.shape}")
    y = x.reshape(nz, factor, ny, factor, nx, factor).mean(dim=(1, 3, 5))
    return like.with_data(y.to(like.data.dtype))


@dataclass
class TruthScan:
    """The fine-grid truth of one subject's full-dose scan.

    Attributes
    ----------
    expected : torch.Tensor
        Expected prompts (trues with detector blur + scatter + randoms), counts, the sinogram's shape.
    randoms : torch.Tensor
        Expected randoms (counts), the mean of the delayed window.
    activity : Volume
        The fine activity averaged onto the reconstruction grid.
    info : dict
    """

    expected: torch.Tensor
    randoms: torch.Tensor
    activity: Volume
    info: dict[str, Any] = field(default_factory=dict)


def _projector(scan: Any) -> Any:
    """The geometric PET projector of a cohort scan (its attenuation-corrected model's base)."""
    from petspect.systems.acquisition import system_model

    if True not in scan._models:
        scan._models[True] = system_model(scan.level_data(torch.zeros(0), 1.0), attenuation=True)
    return scan._models[True].base.projector


def truth_scan(config: Any, phantom: Phantom, system: Any, build_system: Any) -> TruthScan | None:
    """The fine-grid truth of a PET subject, or None when the configuration keeps the single model.

    ``system`` is the subject's reconstruction :class:`~petspect.simulate.systems.CohortScan` (coarse grid);
    ``build_system(config, phantom)`` builds a scan (the caller's, :func:`petspect.simulate.subject.build_system`,
    passed in so that this module does not import the one that imports it).
    """
    from petspect.physics.additive_pet import pet_additive_counts

    acq = config.acquisition
    k = int(getattr(acq, "truth_oversample", 1) or 1)
    if k <= 1:
        return None
    if config.scanner.modality != "pet":
        return _spect_truth(config, phantom, system, k)
    fine_phantom = oversampled_phantom(phantom, k)
    cfg = copy.deepcopy(config)
    cfg.phantom.voxel_mm = float(config.phantom.voxel_mm) / k
    psf = acq.truth_psf_fwhm_mm
    if psf is not None and config.scanner.psf_fwhm_mm is not None:
        psf = max(float(psf), float(config.scanner.psf_fwhm_mm))
    cfg.scanner.psf_fwhm_mm = psf
    cfg.scanner.params = {**config.scanner.params, "n_radial": int(_projector(system).sino_def.n_radial)}
    fine = build_system(cfg, fine_phantom)
    if tuple(fine.data_shape) != tuple(system.data_shape):
        raise ConfigError(f"the truth's sinogram {fine.data_shape} differs from the reconstruction's {system.data_shape}")
    randoms = torch.zeros(fine.data_shape, dtype=torch.float32)
    if acq.randoms and acq.randoms_fraction > 0:
        r = pet_additive_counts(_projector(fine), efficiencies=fine.normalisation,
                                randoms_counts=acq.randoms_fraction * float(fine.info["expected_trues"]))
        randoms = r if r is not None else randoms
    coarse = block_mean(fine_phantom["activity"], k, phantom["activity"])
    info = {"oversample": k, "truth_psf_fwhm_mm": psf, "truth_voxel_mm": cfg.phantom.voxel_mm,
            "expected_trues": fine.info["expected_trues"], "expected_additive": fine.info["expected_additive"],
            "expected_randoms": float(randoms.sum())}
    return TruthScan(fine.expected_full_dose(), randoms, coarse, info)


def _spect_truth(config: Any, phantom: Phantom, system: Any, k: int) -> TruthScan:
    """The fine-grid truth of a SPECT subject on the reconstruction's detector (module docstring)."""
    from petspect.simulate.systems_spect import spect_system

    fine_phantom = oversampled_phantom(phantom, k)
    cfg = copy.deepcopy(config)
    cfg.phantom.voxel_mm = float(config.phantom.voxel_mm) / k
    spec = system.system
    fine = spect_system(cfg, fine_phantom, detector=(tuple(spec.detector_shape), tuple(spec.pixel_mm)))
    if tuple(fine.data_shape) != tuple(system.data_shape):
        raise ConfigError(f"the truth's projections {fine.data_shape} differ from the reconstruction's "
                          f"{system.data_shape}")
    expected = fine.expected_full_dose()
    coarse = block_mean(fine_phantom["activity"], k, phantom["activity"])
    info = {"oversample": k, "truth_voxel_mm": cfg.phantom.voxel_mm,
            "expected_primary_photopeak": fine.info["expected_primary_photopeak"],
            "expected_scatter_photopeak": fine.info["expected_scatter_photopeak"]}
    return TruthScan(expected, torch.zeros_like(expected), coarse, info)


def estimate_additive(system: Any, phantom: Phantom, prompts: torch.Tensor, delayed: torch.Tensor | None,
                      fraction: float, config: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    """Scatter + randoms of one level as a scanner estimates them (module docstring, step 3).

    Parameters
    ----------
    system : CohortScan
        The reconstruction scan (coarse grid).
    phantom : Phantom
        The coarse phantom (its ``mu_511`` is the scanner's CT-based attenuation map).
    prompts : torch.Tensor
        The level's prompts (counts).
    delayed : torch.Tensor or None
        The level's delayed-window counts (None: no randoms).
    fraction : float
        The level's count fraction.
    config : DatasetConfig

    Returns
    -------
    (torch.Tensor, dict)
        The additive estimate in the level's counts and a record (scatter scale, tail bins).
    """
    from dataclasses import replace

    from petspect.physics.estimate_pet import smoothed_delayed_randoms, tail_fitted_scatter
    from petspect.physics.scatter_pet import scatter_estimate
    from petspect.simulate.systems import recon_spec

    from petspect.physics.randoms import randoms_to_tof

    y = prompts.to(torch.float32)
    # TOF prompts (planes, views, radial, tof): the estimate is made on the TOF-summed sinogram and spread evenly
    # over the TOF bins, as the simulation spreads its scatter and randoms (physics.additive_pet) -- h1, issue 17
    n_tof = int(y.shape[3]) if y.ndim == 4 else 0

    def spread(t: torch.Tensor) -> torch.Tensor:
        return randoms_to_tof(t, n_tof) if n_tof else t

    eff = (system.normalisation if system.normalisation is not None else torch.ones(y.shape[:3])).to(torch.float32)
    randoms = torch.zeros(y.shape[:3], dtype=torch.float32)
    if delayed is not None:
        d = delayed.sum(-1) if delayed.ndim == 4 else delayed
        randoms = smoothed_delayed_randoms(d, sigma_bins=RANDOMS_SMOOTHING_BINS, efficiencies=eff)
    info: dict[str, Any] = {"randoms_total": float(randoms.sum())}
    mu = phantom.volumes.get("mu_511")
    if not (config.acquisition.scatter and config.acquisition.attenuation and mu is not None
            and system.attenuation is not None):
        return spread(randoms), info
    first = replace(recon_spec(config, "osem"), iterations=1, post_filter_fwhm_mm=None)
    x0 = system.reconstruct(y, fraction, "osem", additive=spread(randoms) + 1e-3, spec=first)
    shape = scatter_estimate(x0.data.clamp_min(0), mu.data.to(torch.float32), _projector(system)) * eff
    scatter, fit = tail_fitted_scatter(y, shape, system.attenuation.to(torch.float32), randoms=randoms)
    info.update({"scatter_total": float(scatter.sum()), **fit})
    return spread(randoms + scatter).to(torch.float32), info
