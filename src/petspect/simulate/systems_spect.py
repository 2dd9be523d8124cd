"""SPECT scan of a simulated cohort (a :class:`~petspect.simulate.systems.CohortScan`, as for PET).

Acquisition: every energy window of the preset (photopeak and the two TEW scatter windows) is
simulated with :func:`petspect.systems.spect_simulate.expected_spect_counts` (distance-dependent
collimator response, attenuation, object-dependent scatter), on a detector whose pixels match the
image grid (rows = slices, columns = transverse voxels). The stored prompts are all windows
``(windows, views, rows, cols)``; dose levels thin all windows together.

Reconstruction: the photopeak with the triple-energy-window scatter estimate of the same level as the
additive term (smoothed over two pixels, as in clinical practice; the record's ``additive_model``),
attenuation modelled in the projector (AC) or not (NAC). Images are in full-dose-equivalent Bq/mL.
"""

from __future__ import annotations

import torch

from petspect.errors import ConfigError
from petspect.geometry.spect import get_spect_system
from petspect.nuclides import half_life_s
from petspect.phantoms.base import Phantom
from petspect.physics.spect_scatter import ScatterModel
from petspect.projectors.spect import mu_per_mm_on
from petspect.simulate.config import DatasetConfig
from petspect.simulate.systems import CohortScan
from petspect.systems.acquisition import Calibration
from petspect.systems.records import ImageGridSpec, SpectSystemSpec
from petspect.systems.spect_simulate import expected_spect_counts

__all__ = ["spect_system"]

#: keys of the phantom's attenuation maps by photopeak energy (keV)
_MU_KEYS = {140: "mu_140", 208: "mu_208", 511: "mu_511"}


def _mu_key(energy_kev: float) -> str:
    best = min(_MU_KEYS, key=lambda e: abs(e - energy_kev))
    if abs(best - energy_kev) > 15:
        raise ConfigError(f"no attenuation map near {energy_kev} keV in the phantom (have {sorted(_MU_KEYS)} keV)")
    return _MU_KEYS[best]


def spect_system(config: DatasetConfig, phantom: Phantom, *,
                 detector: tuple[tuple[int, int], tuple[float, float]] | None = None) -> CohortScan:
    """The SPECT scan of one subject (see the module docstring).

    ``detector`` -- ``((rows, cols), (row_mm, col_mm))`` -- overrides the detector matrix that otherwise
    matches the image grid: the fine-grid truth of :mod:`petspect.simulate.no_inverse_crime` is projected
    onto the reconstruction's detector pixels (voxel/pixel overlap integration).
    """
    sc, acq = config.scanner, config.acquisition
    system = get_spect_system(sc.preset)
    if phantom.nuclide is not None and phantom.nuclide != system.nuclide:  # the phantom's tracer decides
        raise ConfigError(f"the phantom's tracer is labelled with {phantom.nuclide}, but SPECT system {system.name!r} "
                          f"images {system.nuclide}; choose a system for {phantom.nuclide}")
    activity = phantom["activity"]
    energy = system.photon_lines[0][0]
    mu = phantom.volumes.get(_mu_key(energy)) if acq.attenuation else None
    n_views = sc.n_views or system.n_views
    angles, radius = system.circular_orbit(n_views, sc.radius_mm)
    frame_s = acq.scan_s / n_views
    nz, _, nx = activity.shape
    det_shape, det_mm = ((nz, nx), (activity.spacing_mm[0], activity.spacing_mm[2])) if detector is None else (
        (int(detector[0][0]), int(detector[0][1])), (float(detector[1][0]), float(detector[1][1])))
    expectation, facts = expected_spect_counts(
        activity, mu, system, angles_deg=angles, radius_mm=radius, frame_duration_s=frame_s,
        detector_shape=det_shape, pixel_mm=det_mm,
        scatter=ScatterModel() if acq.scatter else None, psf=True)
    expected = expectation.total * acq.sensitivity_scale
    t_half = half_life_s(system.nuclide)
    spec = SpectSystemSpec(preset=sc.preset, nuclide=system.nuclide, collimator=system.collimator,
                           angles_deg=facts["angles_deg"].tolist(), radius_mm=facts["radius_mm"].tolist(), psf=True,
                           detector_shape=det_shape, pixel_mm=facts["pixel_mm"],
                           sensitivity_cps_per_mbq=system.sensitivity_cps_per_mbq * acq.sensitivity_scale,
                           photopeak_window=system.photopeak, half_life_s=t_half)
    grid = ImageGridSpec.from_volume(activity)
    calibration = Calibration(time_scale_s=frame_s, unit="Bq/mL", mode="activity", scan_s=acq.scan_s,
                              frame_duration_s=frame_s, nuclide=system.nuclide, half_life_s=t_half,
                              voxel_volume_ml=grid.voxel_volume_ml)
    smooth = 2.0 * activity.spacing_mm[2]
    info = {"modality": "spect", "system": system.name, "nuclide": system.nuclide,
            "half_life_s": t_half, "n_views": n_views, "radius_mm": float(radius[0]),
            "frame_duration_s": frame_s, "scan_s": acq.scan_s, "windows": [w.name for w in system.energy_windows],
            "expected_primary_photopeak": float(expectation.primary[system.photopeak_window].sum()),
            "expected_scatter_photopeak": float(expectation.scatter[system.photopeak_window].sum()),
            "tew_smooth_fwhm_mm": smooth}
    mu_t = None if mu is None else mu_per_mm_on(mu, activity).to(torch.float32)
    return CohortScan(config, activity, spec, grid, calibration, expected, info, mu_per_mm=mu_t,
                      energy_windows=list(system.energy_windows),
                      additive_model={"method": "tew", "smooth_fwhm_mm": smooth})
