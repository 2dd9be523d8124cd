"""SPECT scanner model of a simulated cohort (same interface as :class:`~petspect.simulate.systems.PetCohortSystem`).

Acquisition: every energy window of the preset (photopeak and the two TEW scatter windows) is
simulated with :func:`petspect.systems.spect_simulate.expected_spect_counts` (distance-dependent
collimator response, attenuation, object-dependent scatter), on a detector whose pixels match the
image grid (rows = slices, columns = transverse voxels). The stored prompts are all windows
``(windows, views, rows, cols)``; dose levels thin all windows together.

Reconstruction: OSEM of the photopeak with the triple-energy-window scatter estimate of the same
level as the additive term (smoothed, as in clinical practice), attenuation modelled in the projector
(AC) or not (NAC). Images are in full-dose-equivalent Bq/mL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from petspect.errors import ConfigError
from petspect.geometry.spect_data import SpectProjections
from petspect.phantoms.base import Phantom
from petspect.simulate.config import DatasetConfig
from petspect.volume import Volume

#: keys of the phantom's attenuation maps by photopeak energy (keV)
_MU_KEYS = {140: "mu_140", 208: "mu_208", 511: "mu_511"}


def _mu_key(energy_kev: float) -> str:
    best = min(_MU_KEYS, key=lambda e: abs(e - energy_kev))
    if abs(best - energy_kev) > 15:
        raise ConfigError(f"no attenuation map near {energy_kev} keV in the phantom (have {sorted(_MU_KEYS)} keV)")
    return _MU_KEYS[best]


@dataclass
class SpectCohortSystem:
    """SPECT model of one subject (see the module docstring)."""

    config: DatasetConfig
    activity: Volume
    mu: Volume | None
    system: Any
    expected: torch.Tensor
    facts: dict[str, Any]
    info: dict[str, Any]

    @property
    def data_shape(self) -> tuple[int, ...]:
        return tuple(self.expected.shape)

    def expected_full_dose(self) -> torch.Tensor:
        return self.expected

    def additive_full_dose(self) -> torch.Tensor:
        from petspect.physics.spect_scatter import tew_from_projections

        return tew_from_projections(self._projections(self.expected), smooth_fwhm_mm=self.info["tew_smooth_fwhm_mm"])

    def multiplicative(self) -> torch.Tensor:
        return torch.ones(self.expected.shape[1:], dtype=self.expected.dtype)

    def time_window_fraction(self, fraction: float) -> float:
        from petspect.physics.counts import decay_window_fraction

        scan = self.info["scan_s"]
        return decay_window_fraction(0.0, fraction * scan, scan, half_life_s=self.info["half_life_s"])

    def _projections(self, counts: torch.Tensor) -> SpectProjections:
        return SpectProjections(counts, self.facts["angles_deg"], self.facts["radius_mm"], self.facts["pixel_mm"],
                                list(self.system.energy_windows), frame_duration_s=self.facts["frame_duration_s"],
                                photopeak_window=self.system.photopeak_window, nuclide=self.system.nuclide,
                                meta={"system": self.system.name})

    def reconstruct(self, counts: torch.Tensor, fraction: float, algorithm: str, *,
                    attenuation_correction: bool = True) -> Volume:
        from petspect.physics.spect_scatter import tew_from_projections
        from petspect.systems.spect import spect_system_model
        from petspect.simulate.systems import _reconstruct

        proj = self._projections(counts.to(torch.float32))
        scatter = tew_from_projections(proj, smooth_fwhm_mm=self.info["tew_smooth_fwhm_mm"])
        mu = self.mu if attenuation_correction else None
        op = spect_system_model(proj, self.activity, mu=mu, psf=True) * (fraction * self.config.acquisition.sensitivity_scale)
        img = _reconstruct(op, proj.photopeak, scatter, algorithm, self.config, spacing_mm=self.activity.spacing_mm)
        return self.activity.with_data(img, unit="Bq/mL", modality="NM",
                                       meta={"algorithm": algorithm, "attenuation_corrected": attenuation_correction,
                                             "count_fraction": fraction, "scatter_correction": "TEW"})

    def describe(self) -> dict[str, Any]:
        return dict(self.info)


def spect_system(config: DatasetConfig, phantom: Phantom) -> SpectCohortSystem:
    """Build the SPECT cohort system of one subject."""
    from petspect.geometry.spect import get_spect_system
    from petspect.nuclides import half_life_s
    from petspect.physics.spect_scatter import ScatterModel
    from petspect.systems.spect_simulate import expected_spect_counts

    sc, acq = config.scanner, config.acquisition
    system = get_spect_system(sc.preset)
    activity = phantom["activity"]
    energy = system.photon_lines[0][0]
    mu = phantom.volumes.get(_mu_key(energy)) if acq.attenuation else None
    n_views = sc.n_views or system.n_views
    angles, radius = system.circular_orbit(n_views, sc.radius_mm)
    frame_s = acq.scan_s / n_views
    nz, _, nx = activity.shape
    expectation, facts = expected_spect_counts(
        activity, mu, system, angles_deg=angles, radius_mm=radius, frame_duration_s=frame_s,
        detector_shape=(nz, nx), pixel_mm=(activity.spacing_mm[0], activity.spacing_mm[2]),
        scatter=ScatterModel() if acq.scatter else None, psf=True)
    expected = expectation.total * acq.sensitivity_scale
    info = {"modality": "spect", "system": system.name, "nuclide": system.nuclide,
            "half_life_s": half_life_s(system.nuclide), "n_views": n_views, "radius_mm": float(radius[0]),
            "frame_duration_s": frame_s, "scan_s": acq.scan_s, "windows": [w.name for w in system.energy_windows],
            "expected_primary_photopeak": float(expectation.primary[system.photopeak_window].sum()),
            "expected_scatter_photopeak": float(expectation.scatter[system.photopeak_window].sum()),
            "tew_smooth_fwhm_mm": 2.0 * activity.spacing_mm[2]}
    return SpectCohortSystem(config, activity, mu, system, expected, facts, info)
