"""Simulate SPECT acquisitions: every energy window and view from activity and attenuation Volumes.

For each photon line ``l`` of the system (energy ``E_l``, yield ``Y_l``) the expected counts in
window ``w`` are

    ybar_w = sum_l D_l [ F_p,l(w) P_l x + F_s,l(w) / F_s,l(20 %) * s_l ]

* ``P_l``: :class:`~petspect.projectors.spect.SpectProjector` with the attenuation map scaled to
  ``E_l`` (water ratio ``mu_water(E_l) / mu_water(E_mu)``; bone is then slightly off) and the
  collimator at ``E_l`` (septal mu of lead at ``E_l``, intrinsic FWHM scaled by ``sqrt(E_0 / E_l)``);
  ``x`` in Bq/mL times the voxel volume in mL gives Bq.
* ``s_l``: scatter in a 20 % window around ``E_l`` from the broad-beam build-up model of
  :mod:`petspect.physics.spect_scatter`; ``F_p``/``F_s`` the primary and Compton window fractions.
* ``D_l = T S_0 1e-6 / F_p,0(peak) * (Y_l / Y_0) * (eta(E_l) / eta(E_0)) * (g_l / g_0)``: the system
  sensitivity ``S_0`` (cps/MBq, photopeak window, main line) per primary detected at any energy,
  scaled by photon yield, NaI interaction probability ``eta`` and collimator efficiency ``g``.

Counts are Poisson draws of ``ybar`` with a seeded generator (or ``ybar`` itself with ``noise=False``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from petspect.errors import InputError, UnitError
from petspect.geometry.spect import (SpectSystem, get_spect_system, lead_mu_per_mm, nai_interaction_probability,
                                     window_around)
from petspect.geometry.spect_data import SpectProjections
from petspect.materials import linear_attenuation_per_mm
from petspect.physics.spect_scatter import ScatterModel, detector_blur, window_fractions
from petspect.projectors.spect import SpectProjector, check_axial, mu_per_mm_on
from petspect.volume import Volume


@dataclass
class SpectExpectation:
    """Expected counts split into primaries and scatter, each (windows, views, rows, cols)."""

    primary: torch.Tensor
    scatter: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.primary + self.scatter


def activity_bq_per_ml(activity: Volume) -> torch.Tensor:
    """The activity data in Bq/mL (accepts "Bq/mL" and "kBq/mL")."""
    factors = {"Bq/mL": 1.0, "kBq/mL": 1.0e3}
    if activity.unit not in factors:
        raise UnitError(f"activity must be in Bq/mL or kBq/mL, got {activity.unit!r}")
    return activity.data * factors[activity.unit]


def _line_collimator(system: SpectSystem, energy_kev: float):
    e0 = system.photon_lines[0][0]
    c = system.collimator
    return replace(c, septal_mu_per_mm=lead_mu_per_mm(energy_kev),
                   intrinsic_fwhm_mm=c.intrinsic_fwhm_mm * (e0 / energy_kev) ** 0.5)


def expected_spect_counts(activity: Volume, mu: Volume | None, system: SpectSystem | str = "spect-lehr", *,
                          angles_deg=None, radius_mm=None, frame_duration_s: float | None = None,
                          detector_shape: tuple[int, int] | None = None, pixel_mm: tuple[float, float] | None = None,
                          mu_energy_kev: float | None = None, scatter: ScatterModel | None = ScatterModel(),
                          psf: bool = True) -> tuple[SpectExpectation, dict[str, Any]]:
    """Expected primary and scatter counts in every window of ``system`` (module docstring).

    Parameters
    ----------
    activity : Volume
        Activity concentration (Bq/mL or kBq/mL), standard axial orientation; its grid centre is
        put on the rotation axis.
    mu : Volume, optional
        Linear attenuation (1/mm or 1/cm) at ``mu_energy_kev`` (default: the main line's energy);
        resampled onto the activity grid. None: no attenuation and no scatter.
    system : SpectSystem or str
        Preset or system (collimator, lines, windows, sensitivity, defaults).
    angles_deg, radius_mm, frame_duration_s, detector_shape, pixel_mm :
        Acquisition; defaults from the system (circular orbit).
    scatter : ScatterModel, optional
        None: primaries only.
    psf : bool
        Distance-dependent collimator response.

    Returns
    -------
    SpectExpectation, dict
        The expected counts and the acquisition facts (angles, radii, pixel, duration).
    """
    system = get_spect_system(system) if isinstance(system, str) else system
    check_axial(activity, "activity")
    x = activity_bq_per_ml(activity).to(torch.float32)
    mu0 = None if mu is None else mu_per_mm_on(mu, activity).to(x.device, torch.float32)
    if angles_deg is None:
        angles_deg, orbit_r = system.circular_orbit()
        radius_mm = orbit_r if radius_mm is None else radius_mm
    radius_mm = system.radius_mm if radius_mm is None else radius_mm
    duration = system.frame_duration_s if frame_duration_s is None else float(frame_duration_s)
    shape = tuple(system.matrix) if detector_shape is None else tuple(detector_shape)
    pix = (system.pixel_mm, system.pixel_mm) if pixel_mm is None else tuple(pixel_mm)
    e0, y0 = system.photon_lines[0]
    e_mu = e0 if mu_energy_kev is None else float(mu_energy_kev)
    windows = list(system.energy_windows)
    fp0, _ = window_fractions(e0, windows, system.energy_fwhm_kev)
    base = duration * system.sensitivity_cps_per_mbq * 1e-6 * activity.voxel_volume_ml / float(fp0[system.photopeak_window])
    g0, eta0 = system.collimator.geometric_efficiency(), nai_interaction_probability(e0)
    primary = scat = proj = None
    for energy, yld in system.photon_lines:
        coll = _line_collimator(system, energy)
        mu_l = None if mu0 is None else mu0 * (linear_attenuation_per_mm("water", energy)
                                              / linear_attenuation_per_mm("water", e_mu))
        if proj is None:
            proj = SpectProjector(activity.shape, activity.spacing_mm, angles_deg, radius_mm, coll, mu=mu_l, psf=psf,
                                  detector_shape=shape, pixel_mm=pix, device=x.device)
        else:  # another line: same rotations, new attenuation and collimator response
            proj = proj.with_changes(mu=mu_l, collimator=coll)
        p = proj(x)
        rate = base * (yld / y0) * (nai_interaction_probability(energy) / eta0) * (coll.geometric_efficiency() / g0)
        fp, fs = window_fractions(energy, windows, system.energy_fwhm_kev)
        contrib_p = rate * fp.to(p)[:, None, None, None] * p
        primary = contrib_p if primary is None else primary + contrib_p
        if scatter is None or mu_l is None:
            continue
        broad = proj.with_changes(mu=mu_l * scatter.broad_beam_ratio)
        s20 = detector_blur((broad(x) - p).clamp(min=0.0), pix, scatter.kernel_fwhm_mm)
        _, fs20 = window_fractions(energy, [window_around("line20", energy, 0.20)], system.energy_fwhm_kev)
        contrib_s = rate * (fs / fs20).to(p)[:, None, None, None] * s20
        scat = contrib_s if scat is None else scat + contrib_s
    if scat is None:
        scat = torch.zeros_like(primary)
    facts = {"angles_deg": proj.angles_deg.cpu(), "radius_mm": proj.radius_mm.cpu(), "pixel_mm": pix,
             "frame_duration_s": duration}
    return SpectExpectation(primary, scat), facts


def simulate_spect_projections(activity: Volume, mu: Volume | None, system: SpectSystem | str = "spect-lehr", *,
                               noise: bool = True, seed: int = 0, count_scale: float = 1.0,
                               **kwargs) -> SpectProjections:
    """Simulated :class:`SpectProjections` (all windows of ``system``) from activity and mu Volumes.

    Parameters
    ----------
    activity, mu, system :
        As :func:`expected_spect_counts` (which also takes its keyword arguments here).
    noise : bool
        Poisson counts (seeded) or the expected counts.
    seed : int
        Seed of the Poisson draw.
    count_scale : float
        Multiplies the expected counts (e.g. a dose or time fraction) before the draw.

    Returns
    -------
    SpectProjections
        ``counts`` (windows, views, rows, cols) float32; ``meta`` holds the system, collimator,
        sensitivity, scatter model and seed.
    """
    if count_scale <= 0:
        raise InputError(f"count_scale must be positive, got {count_scale}")
    system = get_spect_system(system) if isinstance(system, str) else system
    expected, facts = expected_spect_counts(activity, mu, system, **kwargs)
    counts = expected.total * count_scale
    if noise:
        gen = torch.Generator(device=counts.device).manual_seed(int(seed))
        counts = torch.poisson(counts, generator=gen)
    scatter = kwargs.get("scatter", ScatterModel())
    meta = {"system": system.name, "collimator": system.collimator.name,
            "sensitivity_cps_per_mbq": system.sensitivity_cps_per_mbq, "orbit": "circular"
            if float(facts["radius_mm"].max() - facts["radius_mm"].min()) == 0 else "body-contour",
            "scatter_model": None if scatter is None else {"broad_beam_ratio": scatter.broad_beam_ratio,
                                                            "kernel_fwhm_mm": scatter.kernel_fwhm_mm},
            "noise": bool(noise), "seed": int(seed), "count_scale": float(count_scale), "simulated": True}
    return SpectProjections(counts=counts, angles_deg=facts["angles_deg"], radius_mm=facts["radius_mm"],
                            pixel_spacing_mm=facts["pixel_mm"], energy_windows=list(system.energy_windows),
                            frame_duration_s=facts["frame_duration_s"], photopeak_window=system.photopeak_window,
                            nuclide=system.nuclide, meta=meta)
