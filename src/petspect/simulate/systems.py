"""Scanner models of a simulated cohort: expected data of the full-dose scan and the reconstructions.

:func:`petspect.simulate.subject.build_system` turns a :class:`~petspect.simulate.config.DatasetConfig` and a subject's phantom
into a :class:`PetCohortSystem` or :class:`SpectCohortSystem`. Both expose the same small interface
used by :mod:`petspect.simulate.subject`:

* ``expected_full_dose()`` -- expected prompts (counts) of the full-dose scan, additive terms included;
* ``additive_full_dose()`` and ``multiplicative()`` -- the additive (randoms + scatter) and
  multiplicative (attenuation x normalisation) terms, stored with the data;
* ``time_window_fraction(f)`` -- share of the counts in the first fraction ``f`` of the scan (decay);
* ``reconstruct(counts, fraction, algorithm, attenuation_correction)`` -- an image Volume in
  full-dose-equivalent Bq/mL;
* ``describe()`` -- JSON record of the system (enough to rebuild it with the config).

Calibration (PET)
-----------------
The projector gives line integrals (Bq/mL x mm). A calibration factor ``k`` (counts per second per
unit line integral) is set so that a 1 Bq point source at the centre of the field of view, in air,
gives ``sensitivity_cps_per_kbq / 1000`` counts per second in the configured sinogram: reduced
geometries (direct planes only, mashed views) carry the counts of the whole scanner, as SSRB-rebinned
3D data do, so the noise of every level is that of the real scanner. Expected counts of a scan of
``T`` s with the decay of the nuclide are ``k * T_eff * (A x)`` with ``T_eff = (1 - exp(-lambda T)) /
lambda`` (activity at the scan start); reconstructions use the same operator, so they return Bq/mL.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from petspect.errors import ConfigError
from petspect.phantoms.base import Phantom
from petspect.simulate.config import DatasetConfig
from petspect.volume import Volume

#: NEMA NU 2 total sensitivity (cps/kBq) of the scanners the PET presets resemble:
#: Biograph Vision 600 16.4 (van Sluis et al, J Nucl Med 60:1031, 2019); HRRT ~ 4.3 (de Jong et al, PMB
#: 52:1505, 2007, 400-650 keV); Inveon 6.72 % = 67.2 cps/kBq (Constantinescu & Mukherjee, PMB 54:2885, 2009).
PET_SENSITIVITY_CPS_PER_KBQ = {"wholebody": 16.4, "brain": 4.3, "small-animal": 67.2}

_NUCLIDE_OF_TRACER = {"fdg": "F-18", "psma": "Ga-68", "dotatate": "Ga-68", "amyloid": "F-18", "dat": "F-18"}


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


def _check_in_fov(activity: Volume, fov_radius_mm: float) -> None:
    """Refuse activity outside the transaxial field of view (it would be reconstructed wrongly, silently)."""
    data = activity.data
    nz, ny, nx = data.shape
    dz, dy, dx = activity.spacing_mm
    y = (torch.arange(ny, dtype=torch.float64) - (ny - 1) / 2) * dy
    x = (torch.arange(nx, dtype=torch.float64) - (nx - 1) / 2) * dx
    r = torch.sqrt(y[:, None] ** 2 + x[None, :] ** 2)
    hot = (data > 0).any(dim=0)
    if bool(hot.any()) and float(r[hot].max()) > fov_radius_mm:
        raise ConfigError(f"activity reaches {float(r[hot].max()):.0f} mm from the axis, beyond the sinogram's "
                          f"transaxial field of view ({fov_radius_mm:.0f} mm): raise scanner.params n_radial")


def _split_params(cls: type, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in params.items() if k in names}, {k: v for k, v in params.items() if k not in names}


def map_beta(op, beta_relative: float) -> float:
    """Absolute prior weight of a relative ``beta``: ``beta_relative`` times the mean sensitivity.

    The Poisson log-likelihood is in counts and its gradient scales with the sensitivity ``A^T 1``
    (counts per unit image value); the RDP or quadratic penalty scales with the image values. Weighting
    the penalty by the mean sensitivity over the field of view makes one relative beta give the same
    smoothing at every dose level, scan time and image unit.
    """
    sens = op.adjoint(torch.ones(op.out_shape, dtype=torch.float32))
    inside = sens > 0
    if not bool(inside.any()):
        raise ConfigError("the system has zero sensitivity everywhere")
    return float(beta_relative) * float(sens[inside].mean())


def _reconstruct(op, data: torch.Tensor, additive: torch.Tensor | None, algorithm: str, config: DatasetConfig,
                 spacing_mm=None) -> torch.Tensor:
    """Run one of the configured algorithms on calibrated data (image in the operator's input unit).

    ``config.recon.post_filter_fwhm_mm`` (when set) applies a border-normalised Gaussian post-filter to
    OSEM and MLEM images; MAP images are not post-filtered (their prior is the regularisation, as with
    clinical penalised-likelihood reconstructions).
    """
    from petspect.recon.em import mlem, osem

    rc = config.recon
    post = None
    if rc.post_filter_fwhm_mm:
        from petspect.recon.postfilter import gaussian_post_filter

        post = gaussian_post_filter(op.in_shape, float(rc.post_filter_fwhm_mm), spacing_mm)
    if algorithm == "osem":
        return osem(op, data, additive=additive, n_iter=rc.iterations, n_subsets=rc.subsets, post_filter=post,
                    progress=False)
    if algorithm == "mlem":
        return mlem(op, data, additive=additive, n_iter=rc.iterations * rc.subsets, post_filter=post, progress=False)
    if algorithm == "map":
        from petspect.recon.map import bsrem
        from petspect.recon.priors import make_prior

        prior = make_prior(rc.prior, spacing_mm=spacing_mm)
        return bsrem(op, data, prior, map_beta(op, rc.beta), additive=additive, n_iter=max(rc.iterations * 2, 4),
                     n_subsets=rc.subsets, progress=False)
    raise ConfigError(f"algorithm {algorithm!r} is not available for cohort reconstructions")


@dataclass
class PetCohortSystem:
    """PET scanner model of one subject (see the module docstring)."""

    config: DatasetConfig
    activity: Volume
    model_ac: Any
    model_nac: Any
    calibration: float
    scan_eff_s: float
    additive: torch.Tensor
    info: dict[str, Any]

    @property
    def data_shape(self) -> tuple[int, ...]:
        return tuple(self.model_ac.out_shape)

    def _op(self, ac: bool, fraction: float):
        return (self.model_ac if ac else self.model_nac) * (self.calibration * self.scan_eff_s * fraction)

    def expected_full_dose(self) -> torch.Tensor:
        return self._op(True, 1.0)(self.activity.data.to(torch.float32)) + self.additive

    def additive_full_dose(self) -> torch.Tensor:
        return self.additive

    def multiplicative(self) -> torch.Tensor:
        return self.model_ac.multiplicative_factors

    def time_window_fraction(self, fraction: float) -> float:
        from petspect.physics.counts import decay_window_fraction

        scan = self.config.acquisition.scan_s
        return decay_window_fraction(0.0, fraction * scan, scan, half_life_s=self.info["half_life_s"])

    def reconstruct(self, counts: torch.Tensor, fraction: float, algorithm: str, *,
                    attenuation_correction: bool = True) -> Volume:
        op = self._op(attenuation_correction, fraction)
        img = _reconstruct(op, counts.to(torch.float32), self.additive * fraction, algorithm, self.config,
                           spacing_mm=self.activity.spacing_mm)
        return self.activity.with_data(img, unit="Bq/mL", modality="PT",
                                       meta={"algorithm": algorithm, "attenuation_corrected": attenuation_correction,
                                             "count_fraction": fraction})

    def describe(self) -> dict[str, Any]:
        return dict(self.info)


def pet_system(config: DatasetConfig, phantom: Phantom) -> PetCohortSystem:
    from petspect.geometry.pet import ImageGrid, get_pet_scanner
    from petspect.geometry.sinogram import SinogramDefinition, default_n_radial
    from petspect.nuclides import half_life_s
    from petspect.physics.counts import effective_scan_s
    from petspect.systems.pet import pet_system_model

    sc, acq = config.scanner, config.acquisition
    scanner = get_pet_scanner(sc.preset)
    scanner_over, rest = _split_params(type(scanner), sc.params)
    scanner = dataclasses.replace(scanner, **scanner_over) if scanner_over else scanner
    if not sc.tof:
        scanner = scanner.non_tof()
    sino_over, unknown = _split_params(SinogramDefinition, rest)
    if unknown:
        raise ConfigError(f"unknown scanner.params {sorted(unknown)} (neither PetScanner nor SinogramDefinition fields)")
    activity = phantom["activity"]
    grid = ImageGrid(activity.shape, activity.spacing_mm)  # centred on the scanner axis
    if "n_radial" not in sino_over:  # radial bins that cover the image grid's inscribed circle, no more
        width_mm = max(grid.shape[1] * grid.spacing_mm[1], grid.shape[2] * grid.spacing_mm[2]) + 2 * max(grid.spacing_mm)
        sino_over["n_radial"] = default_n_radial(
            dataclasses.replace(scanner, fov_diameter_mm=min(width_mm, scanner.fov_diameter_mm)))
    sino = SinogramDefinition(scanner, max_ring_diff=sc.max_ring_difference, view_mashing=sc.view_mashing, **sino_over)
    _check_in_fov(activity, float(np.abs(sino.radial_positions_mm()).max()))
    mu = phantom.volumes.get("mu_511") if acq.attenuation else None
    mu_t = mu.data.to(torch.float32) if mu is not None else None
    norm = None
    if acq.normalisation:
        from petspect.physics.normalization import simulate_efficiencies

        norm = simulate_efficiencies(sino, seed=int(config.seed))
    model_ac = pet_system_model(scanner, grid, sino_def=sino, mu=mu_t, normalisation=norm, psf_fwhm_mm=sc.psf_fwhm_mm,
                                tof=sc.tof)
    model_nac = pet_system_model(scanner, grid, sino_def=sino, mu=None, normalisation=norm, psf_fwhm_mm=sc.psf_fwhm_mm,
                                 tof=sc.tof)
    sens = PET_SENSITIVITY_CPS_PER_KBQ.get(sc.preset, 10.0) * acq.sensitivity_scale
    calibration = pet_calibration_factor(model_nac.projector, sens)
    tracer = (phantom.record.get("params", {}) or {}).get("tracer", config.phantom.tracer) or "fdg"
    nuclide = phantom.record.get("nuclide") or _NUCLIDE_OF_TRACER.get(str(tracer).lower(), "F-18")
    t_half = half_life_s(nuclide)
    scan_eff = effective_scan_s(acq.scan_s, half_life_s=t_half)
    trues = model_ac(activity.data.to(torch.float32)) * (calibration * scan_eff)
    additive = _pet_additive(config, model_ac, trues, activity, mu_t, norm, calibration * scan_eff)
    info = {"modality": "pet", "scanner": dataclasses.asdict(scanner),
            "sinogram": {"span": sino.span, "max_ring_diff": sino.max_ring_diff, "view_mashing": sino.view_mashing,
                         "n_radial": sino.n_radial, "shape": list(model_ac.out_shape)},
            "sensitivity_cps_per_kbq": sens, "calibration_counts_per_s_per_line_integral": calibration,
            "nuclide": nuclide, "half_life_s": t_half, "scan_s": acq.scan_s, "scan_eff_s": scan_eff,
            "expected_trues": float(trues.sum()), "expected_additive": float(additive.sum())}
    return PetCohortSystem(config, activity, model_ac, model_nac, calibration, scan_eff, additive, info)


def _pet_additive(config, model, trues, activity, mu, norm, scale) -> torch.Tensor:
    """Expected scatter + randoms (counts) of the full-dose scan
    (:func:`petspect.physics.additive_pet.pet_additive_counts`).

    Scatter (with an attenuation map): at its physical magnitude (``scale`` counts per unit of the
    estimate), or rescaled to ``scatter_fraction`` of the trues when that is set; randoms:
    ``randoms_fraction`` of the trues. Both follow the efficiencies ``norm``.
    """
    from petspect.physics.additive_pet import pet_additive_counts

    acq = config.acquisition
    total_trues = float(trues.sum())
    scatter = acq.scatter and mu is not None
    by_fraction = scatter and acq.scatter_fraction is not None
    additive = pet_additive_counts(
        model.projector, activity=activity.data.to(torch.float32), mu=mu, efficiencies=norm,
        scatter_counts=acq.scatter_fraction / (1 - acq.scatter_fraction) * total_trues if by_fraction else None,
        scatter_scale=scale if scatter and not by_fraction else None,
        randoms_counts=acq.randoms_fraction * total_trues if acq.randoms else 0.0)
    return torch.zeros(trues.shape, dtype=trues.dtype) if additive is None else additive.to(trues.dtype)
