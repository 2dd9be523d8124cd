"""Simulate an acquisition from an activity image: the typed record that ``petspect project`` writes.

:func:`simulate_acquisition` projects an activity Volume (Bq/mL) with a preset PET or SPECT system
and draws Poisson prompts, returning the one acquisition record of petspect,
:class:`~petspect.systems.acquisition.AcquisitionData` (its calibration and folder format are
documented there and in ``docs/acquisition-format.md``). Reconstruct it with
:func:`petspect.recon.reconstruct.reconstruct_image` (or ``petspect recon``).

The record, its files and the system model live in :mod:`petspect.systems.acquisition`; the names are
re-exported here. :func:`reconstruct_acquisition` is the keyword form of
:func:`~petspect.recon.reconstruct.reconstruct_image` and :func:`system_model` returns the calibrated
operator (``SystemModel.operator``), both kept for existing callers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import petspect
from petspect.errors import ConfigError, InputError
from petspect.geometry.pet import PET_SCANNERS, get_pet_scanner
from petspect.geometry.sinogram import SinogramDefinition
from petspect.geometry.spect import SPECT_SYSTEMS, get_spect_system
from petspect.nuclides import half_life_s as nuclide_half_life
from petspect.physics.additive_pet import pet_additive_counts
from petspect.physics.attenuation import attenuation_factors, mu_per_mm_tensor
from petspect.physics.counts import effective_scan_s, poisson_sample
from petspect.physics.normalization import simulate_efficiencies
from petspect.recon.reconstruct import ReconSpec, reconstruct_image
from petspect.operators.base import LinearOperator
from petspect.systems import acquisition as _acq
from petspect.systems.acquisition import (ACQUISITION_JSON, AcquisitionData, Calibration, SystemModel,
                                          combine_factors, load_acquisition, pet_base_model, save_acquisition,
                                          spect_base_model)
from petspect.systems.pet import PET_SENSITIVITY_CPS_PER_KBQ, pet_system_spec
from petspect.systems.records import ImageGridSpec, PetSystemSpec, SpectSystemSpec
from petspect.volume import AXIAL_DIRECTION, Volume

__all__ = ["ACQUISITION_JSON", "AcquisitionData", "Calibration", "PET_PRESETS", "SPECT_PRESETS", "SystemModel",
           "load_acquisition", "reconstruct_acquisition", "save_acquisition", "simulate_acquisition", "system_model"]

PET_PRESETS = tuple(PET_SCANNERS)  # the names of the preset registries (geometry.pet, geometry.spect)
SPECT_PRESETS = tuple(SPECT_SYSTEMS)


def _pet_spec(preset: str, grid: ImageGridSpec, *, tof: bool, single_ring: bool, span: int,
              max_ring_diff: int | None, view_mashing: int, n_radial: int | None, psf_fwhm_mm: Any,
              half_life_s: float) -> PetSystemSpec:
    scanner = get_pet_scanner(preset, single_ring=single_ring)
    if tof and not scanner.is_tof:
        raise InputError(f"PET preset {preset!r} has no time of flight; drop --tof")
    scanner = scanner if tof else scanner.non_tof()
    sino = SinogramDefinition(scanner, span=span, max_ring_diff=max_ring_diff, view_mashing=view_mashing,
                              n_radial=n_radial)
    return pet_system_spec(preset, scanner, sino, grid, tof=tof, sensitivity_cps_per_kbq=PET_SENSITIVITY_CPS_PER_KBQ[preset],
                           psf_fwhm_mm=psf_fwhm_mm, single_ring=single_ring, half_life_s=half_life_s)


def _spect_spec(preset: str, grid: ImageGridSpec, *, n_views: int | None, radius_mm: float | None, psf: bool,
                nuclide: str | None) -> SpectSystemSpec:
    s = get_spect_system(preset)
    angles, radii = s.circular_orbit(n_views=n_views, radius_mm=radius_mm)
    nz, ny, nx = grid.shape
    dz, dy, dx = grid.spacing_mm
    h = min(dy, dx)
    cols = int(np.ceil(max(ny * dy, nx * dx) / h - 1e-9))
    nuclide = nuclide or s.nuclide
    return SpectSystemSpec(preset=preset, nuclide=nuclide, collimator=s.collimator, angles_deg=angles.tolist(),
                           radius_mm=radii.tolist(), psf=bool(psf), detector_shape=(nz, cols), pixel_mm=(dz, h),
                           sensitivity_cps_per_mbq=s.sensitivity_cps_per_mbq, photopeak_window=s.photopeak,
                           half_life_s=nuclide_half_life(nuclide))


def _pet_additive(model, x, mu, trues, efficiencies, scatter_fraction, randoms_fraction) -> torch.Tensor | None:
    """Expected scatter and randoms in counts, as fractions of the expected prompts
    (:func:`petspect.physics.additive_pet.pet_additive_counts`)."""
    # checked before the early return: a negative or NaN fraction must be refused, not silently taken as 0
    if not (scatter_fraction >= 0 and randoms_fraction >= 0 and scatter_fraction + randoms_fraction < 1):
        raise InputError(f"scatter_fraction and randoms_fraction must be >= 0 with a sum < 1 (fractions of the "
                         f"prompts), got {scatter_fraction} and {randoms_fraction}")
    if scatter_fraction == 0 and randoms_fraction == 0:
        return None
    if scatter_fraction > 0 and mu is None:
        raise InputError("simulating scatter needs the attenuation map (--mu)")

    n_prompts = float(trues.sum()) / (1 - scatter_fraction - randoms_fraction)
    return pet_additive_counts(model.projector, activity=x, mu=mu, efficiencies=efficiencies,
                               scatter_counts=scatter_fraction * n_prompts, randoms_counts=randoms_fraction * n_prompts)

def _mu_tensor(mu: Volume | None, activity: Volume) -> torch.Tensor | None:
    if mu is None:
        return None
    if not mu.same_grid(activity):
        raise InputError("the attenuation map must be on the activity image's grid (resample it first)")

    return mu_per_mm_tensor(mu).to(torch.float32)

def _time_scale(mode_counts: float | None, scan_s: float | None, rate_total: float, half_life_s: float | None,
                n_views: int) -> tuple[str, float]:
    if (mode_counts is None) == (scan_s is None):
        raise InputError("give either the number of true counts or the scan time (with the activity), not both")
    if rate_total <= 0:
        raise InputError("the activity image projects to nothing: is it empty or outside the field of view?")
    if mode_counts is not None:
        if not mode_counts > 0:
            raise InputError(f"counts must be positive, got {mode_counts}")
        return "counts", float(mode_counts) / rate_total
    return "activity", effective_scan_s(float(scan_s), half_life_s=half_life_s) / n_views


def simulate_acquisition(activity: Volume, system: str, *, mu: Volume | None = None, tof: bool = False,
                         n_counts: float | None = None, scan_s: float | None = None,
                         activity_mbq: float | None = None, seed: int = 0, nuclide: str | None = None,
                         single_ring: bool = False, span: int = 1, max_ring_diff: int | None = None,
                         view_mashing: int = 1, n_radial: int | None = None, psf_fwhm_mm: Any = None,
                         normalisation: bool | torch.Tensor = False, n_views: int | None = None,
                         radius_mm: float | None = None, spect_psf: bool = True, scatter_fraction: float = 0.0,
                         randoms_fraction: float = 0.0, provenance: dict[str, Any] | None = None) -> AcquisitionData:
    """Project an activity image with a preset system and draw Poisson prompts.

    Parameters
    ----------
    activity : Volume
        Activity concentration in Bq/mL (unit "Bq/mL"), standard axial orientation; its grid is the
        reconstruction grid (centred on the scanner axis).
    system : str
        ``wholebody``, ``brain``, ``small-animal`` (PET) or ``spect-lehr``, ``spect-me`` (SPECT).
    mu : Volume, optional
        Attenuation map on the same grid, 1/mm or 1/cm (511 keV for PET, the photopeak for SPECT).
    tof : bool
        TOF sinograms (``wholebody`` only).
    n_counts : float, optional
        Expected number of true counts (scales the data, see :mod:`petspect.systems.acquisition`). Or:
    scan_s : float, optional
        Scan duration in s, with the image's activity (optionally rescaled by ``activity_mbq``).
    activity_mbq : float, optional
        Rescale the image so its total activity is this many MBq (needs ``scan_s``).
    seed : int
        Seed of the Poisson draw.
    nuclide : str, optional
        For decay during the scan (default F-18 for PET, the preset's nuclide for SPECT).
    single_ring, span, max_ring_diff, view_mashing, n_radial, psf_fwhm_mm, normalisation
        PET geometry (2D single-ring mode, michelogram, mashing), image-space PSF, and detection
        efficiencies: True simulates them (:func:`petspect.physics.normalization.simulate_efficiencies`
        seeded with ``seed``), or give a tensor of the non-TOF sinogram shape.
    n_views, radius_mm, spect_psf
        SPECT orbit (default: the preset's) and collimator response on/off.
    scatter_fraction, randoms_fraction : float
        PET additive terms as fractions of the expected prompts (analytic scatter, uniform randoms).
    provenance : dict, optional
        Extra facts to record (input file names, command line).

    Returns
    -------
    AcquisitionData
    """
    if (n_counts is None) == (scan_s is None):
        raise InputError("give either the number of true counts or the scan time (with the activity), not both")
    if activity.unit != "Bq/mL":
        raise InputError(f"activity image must be in Bq/mL, got unit {activity.unit!r}")
    if not np.allclose(np.asarray(activity.direction), np.asarray(AXIAL_DIRECTION), atol=1e-6):
        raise InputError("the activity image must be in the standard axial orientation: reorder an axis-aligned "
                         "image with petspect.orientation.to_axial (lossless; petspect project does it), resample "
                         "an oblique one (petspect resample IMAGE --axial)")
    if not (scatter_fraction >= 0 and randoms_fraction >= 0 and scatter_fraction + randoms_fraction < 1):
        raise InputError(f"scatter_fraction and randoms_fraction must be >= 0 with a sum < 1 (fractions of the "
                         f"prompts), got {scatter_fraction} and {randoms_fraction}")  # before any projection
    x = activity.data.to(torch.float32)
    if bool((x < 0).any()) or not bool(torch.isfinite(x).all()):
        raise InputError("activity image must be finite and non-negative")
    activity_scale = 1.0
    if activity_mbq is not None:
        if scan_s is None:
            raise InputError("activity_mbq rescales the image for an acquisition of scan_s seconds; give scan_s")
        if not 0 < activity_mbq < float("inf"):
            raise InputError(f"activity_mbq must be a positive total activity in MBq, got {activity_mbq}")
        total_bq = float(x.sum()) * activity.voxel_volume_ml
        if total_bq <= 0:
            raise InputError("activity image is empty; cannot rescale it to activity_mbq")
        activity_scale = activity_mbq * 1e6 / total_bq
        x = x * activity_scale
    grid = ImageGridSpec.from_volume(activity)
    mu_t = _mu_tensor(mu, activity)
    key = system.lower()
    norm = att = None
    if key in PET_PRESETS:
        nuclide = nuclide or "F-18"
        spec: PetSystemSpec | SpectSystemSpec = _pet_spec(
            key, grid, tof=tof, single_ring=single_ring, span=span, max_ring_diff=max_ring_diff,
            view_mashing=view_mashing, n_radial=n_radial, psf_fwhm_mm=psf_fwhm_mm, half_life_s=nuclide_half_life(nuclide))
        geometric = pet_base_model(spec, grid, None).projector
        if normalisation is True:
            norm = simulate_efficiencies(geometric.sino_def, seed=int(seed))
        elif isinstance(normalisation, torch.Tensor):
            norm = normalisation.to(torch.float32)
        if mu_t is not None:
            att = attenuation_factors(mu_t, geometric).to(torch.float32)
        views = 1
    elif key in SPECT_PRESETS:
        if tof:
            raise InputError("TOF is a PET option")
        spec = _spect_spec(key, grid, n_views=n_views, radius_mm=radius_mm, psf=spect_psf, nuclide=nuclide)
        nuclide = spec.nuclide
        views = spec.n_views
    else:
        raise ConfigError(f"unknown system {system!r}; choose one of {PET_PRESETS + SPECT_PRESETS}")
    t_half = spec.half_life_s
    # the rate model R (counts/s per Bq/mL) = k * base
    if isinstance(spec, PetSystemSpec):
        base, k = pet_base_model(spec, grid, combine_factors(norm, att)), spec.sensitivity_factor
    else:
        base, k = spect_base_model(spec, grid, mu_t), 1.0
    trues_rate = base(x) * k
    mode, c = _time_scale(n_counts, scan_s, float(trues_rate.sum()), t_half, views)
    trues = trues_rate * c
    additive = None
    if key in PET_PRESETS:
        additive = _pet_additive(base, x, mu_t, trues, norm, scatter_fraction, randoms_fraction)
    elif scatter_fraction > 0 or randoms_fraction > 0:
        raise InputError("SPECT scatter is not simulated here (use the dataset engine's TEW model)")
    expected = trues if additive is None else trues + additive
    prompts = poisson_sample(expected, torch.Generator().manual_seed(int(seed)))
    calibration = Calibration(time_scale_s=c, unit="Bq/mL", mode=mode, scan_s=scan_s, nuclide=nuclide,
                              half_life_s=t_half, activity_mbq=activity_mbq, activity_scale=activity_scale,
                              voxel_volume_ml=activity.voxel_volume_ml, expected_true_counts=float(trues.sum()),
                              expected_additive_counts=0.0 if additive is None else float(additive.sum()))
    prov = {"petspect_version": petspect.__version__, "seed": int(seed), "n_counts": n_counts,
            "scatter_fraction": scatter_fraction, "randoms_fraction": randoms_fraction, **(provenance or {})}
    return AcquisitionData(prompts, spec, grid, calibration, additive, attenuation=att, normalisation=norm,
                           mu_per_mm=mu_t, provenance=prov)


def reconstruct_acquisition(data: AcquisitionData, algorithm: str = "osem", *, n_iter: int = 4, n_subsets: int = 8,
                            beta: float = 0.0, prior: str = "rdp", gamma: float = 2.0, attenuation: bool = True,
                            post_filter_fwhm_mm: float | None = None, fbp_window: str = "hann",
                            fbp_cutoff: float = 1.0, callback=None, compute_objective: bool = False,
                            device=None, progress: bool | None = None) -> Volume:
    """Reconstruct an acquisition in Bq/mL on its image grid (keyword form of
    :func:`petspect.recon.reconstruct.reconstruct_image`; ``beta`` is relative, see
    :mod:`petspect.recon.reconstruct`)."""
    spec = ReconSpec(algorithm=algorithm, iterations=n_iter, subsets=n_subsets, beta=beta, prior=prior, gamma=gamma,
                     post_filter_fwhm_mm=post_filter_fwhm_mm, fbp_window=fbp_window, fbp_cutoff=fbp_cutoff)
    return reconstruct_image(data, spec, attenuation=attenuation, device=device, callback=callback,
                             compute_objective=compute_objective, progress=progress)


def system_model(data: AcquisitionData, *, attenuation: bool = True, device=None) -> LinearOperator:
    """The calibrated operator ``c R`` of ``data`` (Bq/mL -> expected counts without the additive term):
    ``petspect.systems.acquisition.system_model(...).operator``."""
    return _acq.system_model(data, attenuation=attenuation, device=device).operator
