"""Scanner models of a simulated cohort: the typed acquisition record of every scan and level.

:func:`pet_system` (here) and :func:`petspect.simulate.systems_spect.spect_system` turn a
:class:`~petspect.simulate.config.DatasetConfig` and a subject's phantom into a :class:`CohortScan`:
the subject's system record (:class:`~petspect.systems.records.PetSystemSpec` or
:class:`~petspect.systems.records.SpectSystemSpec`), image grid, full-scan calibration, expected
full-dose counts and the additive and multiplicative terms. A dose or time-window level of the scan is
the same record with the level's counts and its count fraction in the time scale
(:meth:`CohortScan.level_data`), reconstructed by the one :func:`petspect.recon.reconstruct.reconstruct`
with the :class:`~petspect.recon.reconstruct.ReconSpec` of :func:`recon_spec`, so ``petspect recon
DATASET/SUBJECT --level d010`` (which reads the same record from the subject's ``acquisition.json``)
gives the cohort's image.

Calibration (PET): :func:`petspect.systems.pet.pet_calibration_factor` (NEMA NU 2 sensitivity of the
preset's scanner, times ``acquisition.sensitivity_scale``); a scan of ``T`` s with the decay of the
nuclide has the time scale ``T_eff = (1 - exp(-lambda T)) / lambda`` (activity at the scan start).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from petspect.errors import ConfigError
from petspect.geometry.pet import get_pet_scanner
from petspect.geometry.sinogram import SinogramDefinition, default_n_radial
from petspect.geometry.spect_data import EnergyWindow
from petspect.nuclides import half_life_s
from petspect.phantoms.base import Phantom
from petspect.phantoms.tracers import nuclide_of_tracer, pet_nuclide
from petspect.physics.additive_pet import pet_additive_counts
from petspect.physics.attenuation import attenuation_factors
from petspect.physics.counts import decay_window_fraction, effective_scan_s
from petspect.physics.normalization import simulate_efficiencies
from petspect.recon.reconstruct import ReconSpec, absolute_beta, reconstruct_image
from petspect.simulate.config import DatasetConfig
from petspect.systems.acquisition import (AcquisitionData, Calibration, SystemModel, pet_base_model,
                                          spect_window_terms, system_model)
from petspect.systems.pet import PET_SENSITIVITY_CPS_PER_KBQ, pet_calibration_factor, pet_system_spec
from petspect.systems.records import ImageGridSpec, PetSystemSpec, SystemSpec
from petspect.volume import Volume


__all__ = ["CohortScan", "PET_SENSITIVITY_CPS_PER_KBQ", "map_beta", "pet_calibration_factor", "pet_system",
           "recon_spec"]


def recon_spec(config: DatasetConfig, algorithm: str) -> ReconSpec:
    """The reconstruction settings a cohort uses for ``algorithm`` (from ``config.recon``).

    OSEM: ``iterations`` x ``subsets``; MLEM: ``iterations * subsets`` iterations (the same number of
    updates); MAP (BSREM): ``max(2 iterations, 4)`` iterations with the relative ``beta`` and ``prior``,
    no post-filter (the prior is the regularisation, as with clinical penalised-likelihood
    reconstructions); FBP: Hann-windowed ramp. ``post_filter_fwhm_mm`` applies to all but MAP.
    """
    rc = config.recon
    post = rc.post_filter_fwhm_mm or None
    if algorithm == "osem":
        return ReconSpec("osem", iterations=rc.iterations, subsets=rc.subsets, post_filter_fwhm_mm=post)
    if algorithm == "mlem":
        return ReconSpec("mlem", iterations=rc.iterations * rc.subsets, subsets=1, post_filter_fwhm_mm=post)
    if algorithm == "map":
        return ReconSpec("map", iterations=max(rc.iterations * 2, 4), subsets=rc.subsets, beta=rc.beta, prior=rc.prior)
    if algorithm == "fbp":
        return ReconSpec("fbp", iterations=0, subsets=1, post_filter_fwhm_mm=post)
    raise ConfigError(f"algorithm {algorithm!r} is not available for cohort reconstructions")


def map_beta(op, beta_relative: float) -> float:
    """Absolute prior weight of a relative ``beta`` (:func:`petspect.recon.reconstruct.absolute_beta`)."""
    return absolute_beta(op, beta_relative)


@dataclass
class CohortScan:
    """One scan of a subject: its acquisition record without the prompts (see the module docstring).

    Attributes
    ----------
    system, grid, calibration
        The typed record; ``calibration`` is that of the full-dose scan.
    expected : torch.Tensor
        Expected full-dose prompts (PET sinogram with the additive term; SPECT every energy window,
        ``(windows, views, rows, cols)``).
    additive : torch.Tensor, optional
        PET expected full-dose randoms + scatter (counts); SPECT: None (each level's TEW estimate).
    attenuation, normalisation : torch.Tensor, optional
        PET factors (non-TOF sinogram shape).
    mu_per_mm : torch.Tensor, optional
        Attenuation map on the image grid (SPECT models attenuation with it).
    energy_windows, additive_model
        SPECT: the windows the counts hold and how the additive term is derived from them.
    info : dict
        JSON description recorded in ``subject.json``.
    """

    config: DatasetConfig
    activity: Volume
    system: SystemSpec
    grid: ImageGridSpec
    calibration: Calibration
    expected: torch.Tensor
    info: dict[str, Any]
    additive: torch.Tensor | None = None
    attenuation: torch.Tensor | None = None
    normalisation: torch.Tensor | None = None
    mu_per_mm: torch.Tensor | None = None
    energy_windows: list[EnergyWindow] | None = None
    additive_model: dict[str, Any] | None = None
    _models: dict[bool, SystemModel] = field(default_factory=dict, repr=False)

    @property
    def data_shape(self) -> tuple[int, ...]:
        return tuple(self.expected.shape)

    def expected_full_dose(self) -> torch.Tensor:
        return self.expected

    def time_window_fraction(self, fraction: float) -> float:
        """Share of the scan's decays in its first ``fraction`` of the scan time."""
        scan = float(self.calibration.scan_s)
        return decay_window_fraction(0.0, fraction * scan, scan, half_life_s=self.calibration.half_life_s)

    def level_data(self, counts: torch.Tensor, fraction: float) -> AcquisitionData:
        """The acquisition record of one level: its counts, with ``fraction`` of the full scan's counts."""
        cal = replace(self.calibration, time_scale_s=self.calibration.time_scale_s * fraction, mode="level",
                      count_fraction=float(fraction))
        counts = counts.to(torch.float32)
        if self.energy_windows is not None:
            prompts, additive = spect_window_terms(counts, self.system, self.energy_windows, self.additive_model)
        else:
            prompts, additive = counts, None if self.additive is None else self.additive * fraction
        return AcquisitionData(prompts, self.system, self.grid, cal, additive, attenuation=self.attenuation,
                               normalisation=self.normalisation, mu_per_mm=self.mu_per_mm)

    def reconstruct(self, counts: torch.Tensor, fraction: float, algorithm: str, *,
                    attenuation_correction: bool = True, additive: torch.Tensor | None = None,
                    spec: ReconSpec | None = None) -> Volume:
        """Reconstruct one level with the cohort's settings for ``algorithm`` (full-dose-equivalent Bq/mL).

        h4: ``additive`` (the level's estimated scatter + randoms, counts; :mod:`petspect.simulate.no_inverse_crime`)
        replaces the model's exact expectation; ``spec`` replaces the cohort's settings (a tuned MAP).
        """
        data = self.level_data(counts, fraction)
        if additive is not None:
            data = replace(data, additive=additive.to(torch.float32))
        if attenuation_correction not in self._models:  # one model per scan; levels differ in their scale only
            self._models[attenuation_correction] = system_model(data, attenuation=attenuation_correction)
        model = self._models[attenuation_correction]
        scale = data.time_scale_s * (self.system.sensitivity_factor if isinstance(self.system, PetSystemSpec) else 1.0)
        return reconstruct_image(data, spec or recon_spec(self.config, algorithm), system=model.at_scale(scale),
                                 progress=False)

    def describe(self) -> dict[str, Any]:
        return dict(self.info)


def _split_params(cls: type, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in params.items() if k in names}, {k: v for k, v in params.items() if k not in names}


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


def pet_system(config: DatasetConfig, phantom: Phantom) -> CohortScan:
    """The PET scan of one subject (see the module docstring)."""
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
    grid = ImageGridSpec.from_volume(activity)
    image_grid = grid.image_grid()  # centred on the scanner axis
    if "n_radial" not in sino_over:  # radial bins that cover the image grid's inscribed circle, no more
        width_mm = max(image_grid.shape[1] * image_grid.spacing_mm[1],
                       image_grid.shape[2] * image_grid.spacing_mm[2]) + 2 * max(image_grid.spacing_mm)
        sino_over["n_radial"] = default_n_radial(
            dataclasses.replace(scanner, fov_diameter_mm=min(width_mm, scanner.fov_diameter_mm)))
    sino = SinogramDefinition(scanner, max_ring_diff=sc.max_ring_difference, view_mashing=sc.view_mashing, **sino_over)
    _check_in_fov(activity, float(np.abs(sino.radial_positions_mm()).max()))
    tracer = (phantom.record.get("params", {}) or {}).get("tracer", config.phantom.tracer) or "fdg"
    nuclide = pet_nuclide(phantom.nuclide or nuclide_of_tracer(tracer), tracer)
    t_half = half_life_s(nuclide)
    sens = PET_SENSITIVITY_CPS_PER_KBQ.get(sc.preset, 10.0) * acq.sensitivity_scale
    spec = pet_system_spec(sc.preset, scanner, sino, grid, tof=sc.tof, sensitivity_cps_per_kbq=sens,
                           psf_fwhm_mm=sc.psf_fwhm_mm, half_life_s=t_half)
    geometric = pet_base_model(spec, grid, None).projector
    mu = phantom.volumes.get("mu_511") if acq.attenuation else None
    mu_t = mu.data.to(torch.float32) if mu is not None else None
    norm = simulate_efficiencies(geometric.sino_def, seed=int(config.seed)) if acq.normalisation else None
    att = attenuation_factors(mu_t, geometric).to(torch.float32) if mu_t is not None else None
    scan_eff = effective_scan_s(acq.scan_s, half_life_s=t_half)
    calibration = Calibration(time_scale_s=scan_eff, unit="Bq/mL", mode="activity", scan_s=acq.scan_s,
                              nuclide=nuclide, half_life_s=t_half, voxel_volume_ml=grid.voxel_volume_ml)
    full = AcquisitionData(torch.zeros(0), spec, grid, calibration, attenuation=att, normalisation=norm)
    model = system_model(full)
    trues = model.operator(activity.data.to(torch.float32))
    additive = _pet_additive(config, model.base, trues, activity, mu_t, norm, model.scale)
    info = {"modality": "pet", "scanner": dataclasses.asdict(scanner),
            "sinogram": {**dataclasses.asdict(spec.sinogram), "shape": list(model.base.out_shape)},
            "sensitivity_cps_per_kbq": sens, "calibration_counts_per_s_per_line_integral": spec.sensitivity_factor,
            "nuclide": nuclide, "half_life_s": t_half, "scan_s": acq.scan_s, "scan_eff_s": scan_eff,
            "expected_trues": float(trues.sum()), "expected_additive": float(additive.sum())}
    scan = CohortScan(config, activity, spec, grid, replace(calibration, expected_true_counts=float(trues.sum()),
                                                            expected_additive_counts=float(additive.sum())),
                      trues + additive, info, additive=additive, attenuation=att, normalisation=norm)
    scan._models[True] = model
    return scan


def _pet_additive(config, model, trues, activity, mu, norm, scale) -> torch.Tensor:
    """Expected scatter + randoms (counts) of the full-dose scan
    (:func:`petspect.physics.additive_pet.pet_additive_counts`).

    Scatter (with an attenuation map): at its physical magnitude (``scale`` counts per unit of the
    estimate), or rescaled to ``scatter_fraction`` of the trues when that is set; randoms:
    ``randoms_fraction`` of the trues. Both follow the efficiencies ``norm``.
    """
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
