"""Measured SPECT projections (DICOM NM TOMO, gated or not, and Interfile) as an acquisition to reconstruct.

:func:`spect_acquisition` turns :class:`~petspect.geometry.spect_data.SpectProjections` read from a camera
into the :class:`~petspect.systems.acquisition.AcquisitionData` that
:func:`~petspect.recon.reconstruct.reconstruct_image` (and ``petspect recon``) reconstructs:

- data: the photopeak window's counts, ``(views, rows, cols)``;
- system: the recorded orbit (angles and radius per view) and detector pixels, with the collimator of a
  petspect preset (``spect-lehr`` for Tc-99m, ``spect-me`` for Lu-177) for the distance-dependent response;
- image grid: ``rows x cols x cols`` voxels of the detector's pixel size, centred on the rotation axis
  (the patient coordinates of the NM header are not used; the image is attenuation corrected only with an
  attenuation map the user has registered to this grid, ``mu``: CT registration to the NM geometry is not
  done here);
- scatter: the triple-energy-window estimate (Ogawa et al, IEEE TMI 10 (1991) 408) from the windows
  adjacent to the photopeak, smoothed in the detector plane, as the additive term;
- calibration: the per-view frame duration; with the camera's sensitivity (cps/MBq) the image is in
  Bq/mL, without it in arbitrary units proportional to activity (times ``1 cps/MBq / sensitivity``).
"""

from __future__ import annotations

from typing import Any

import torch

import petspect
from petspect.errors import ConfigError, InputError
from petspect.geometry.spect import get_spect_system
from petspect.geometry.spect_data import EnergyWindow, SpectProjections
from petspect.materials import hu_to_mu_per_mm
from petspect.physics.spect_scatter import detector_blur, tew_from_projections
from petspect.systems.acquisition import AcquisitionData, Calibration
from petspect.systems.records import ImageGridSpec, SpectSystemSpec
from petspect.volume import Volume

ADJACENT_KEV = 1.0  # a scatter window within this distance of a photopeak edge counts as adjacent


def default_system(nuclide: str | None) -> str:
    """The SPECT preset for a nuclide name: ``spect-lehr`` for Tc-99m (and unknown), ``spect-me`` for Lu-177."""
    name = (nuclide or "").lower().replace("-", "").replace(" ", "")
    if not name or "tc99" in name or "technetium" in name:
        return "spect-lehr"
    if "lu177" in name or "lutetium" in name:
        return "spect-me"
    raise ConfigError(f"no default SPECT system for nuclide {nuclide!r}; choose one (spect-lehr, spect-me)")


def _adjacent(windows: list[EnergyWindow], peak: EnergyWindow, below: bool) -> EnergyWindow | None:
    if below:
        cands = [w for w in windows if w is not peak and abs(w.upper_kev - peak.lower_kev) <= ADJACENT_KEV]
    else:
        cands = [w for w in windows if w is not peak and abs(w.lower_kev - peak.upper_kev) <= ADJACENT_KEV]
    return cands[0] if cands else None


def tew_additive(proj: SpectProjections, *, smooth_fwhm_mm: float | None = None) -> tuple[torch.Tensor, dict]:
    """TEW scatter in the photopeak from the windows adjacent to it (upper optional), counts (views, rows, cols).

    ``smooth_fwhm_mm`` (default two detector pixels) smooths the noisy estimate in the detector plane (a
    Gaussian normalised at the detector edges, so that a flat estimate stays flat).
    Returns the estimate and a record of the windows used.
    """
    peak = proj.energy_windows[proj.photopeak_window]
    low = _adjacent(proj.energy_windows, peak, below=True)
    up = _adjacent(proj.energy_windows, peak, below=False)
    if low is None:
        have = [(w.name, w.lower_kev, w.upper_kev) for w in proj.energy_windows]
        raise InputError(f"TEW scatter needs a window just below the photopeak {peak.lower_kev}-{peak.upper_kev} keV; "
                         f"have {have} (or reconstruct without scatter correction)")
    est = tew_from_projections(proj, low=low.name, up=None if up is None else up.name)
    fwhm = 2.0 * max(proj.pixel_spacing_mm) if smooth_fwhm_mm is None else float(smooth_fwhm_mm)
    if fwhm > 0:  # normalised at the detector edges: smoothing an estimate must not lose its level there
        est = detector_blur(est, proj.pixel_spacing_mm, fwhm) / detector_blur(
            torch.ones_like(est[:1]), proj.pixel_spacing_mm, fwhm)
    record = {"method": "TEW", "photopeak": peak.name, "lower": low.name, "upper": None if up is None else up.name,
              "smooth_fwhm_mm": fwhm}
    return est.to(torch.float32), record


def mu_on_grid(mu: Volume, shape: list[int], spacing_mm: list[float], energy_kev: float) -> torch.Tensor:
    """An attenuation map already on the reconstruction grid, in 1/mm (from 1/mm, 1/cm or HU).

    The map must have been registered to the SPECT image beforehand (same shape and voxel size; the image is
    centred on the rotation axis, slice 0 the superior detector row); HU are converted at ``energy_kev`` with
    :func:`petspect.materials.hu_to_mu_per_mm`.
    """
    if list(mu.shape) != list(shape) or any(abs(a - b) > 1e-3 for a, b in zip(mu.spacing_mm, spacing_mm)):
        raise InputError(f"the attenuation map ({tuple(mu.shape)} voxels of {tuple(mu.spacing_mm)} mm) is not on the "
                         f"reconstruction grid ({tuple(shape)} voxels of {tuple(spacing_mm)} mm); register and "
                         "resample it to that grid first")
    data = mu.data.to(torch.float32)
    if mu.unit == "1/mm":
        out = data
    elif mu.unit == "1/cm":
        out = data / 10.0
    elif mu.unit == "HU":
        out = hu_to_mu_per_mm(data, energy_kev)
    else:
        raise InputError(f"attenuation map unit {mu.unit!r}: give 1/mm, 1/cm or HU")
    if bool((out < 0).any()) or bool((out > 0.1).any()):
        raise InputError("attenuation coefficients must lie within 0-0.1 /mm (water at 140 keV is 0.015 /mm)")
    return out


def spect_acquisition(proj: SpectProjections, *, system: str | None = None, scatter: str = "tew",
                      sensitivity_cps_per_mbq: float | None = None, psf: bool = True,
                      tew_smooth_fwhm_mm: float | None = None, mu: Volume | None = None,
                      source: Any = None) -> AcquisitionData:
    """Measured SPECT projections as an :class:`AcquisitionData` (see the module docstring).

    Parameters
    ----------
    proj : SpectProjections
        From :func:`petspect.io.read_nm_projections` or :func:`petspect.io.read_interfile_projections`.
    system : str, optional
        SPECT preset whose collimator models the detector response (default: :func:`default_system`).
    scatter : {"tew", "none"}
        Scatter estimate used as the additive term.
    sensitivity_cps_per_mbq : float, optional
        The camera's planar sensitivity (cps/MBq) for an image in Bq/mL; else arbitrary units.
    psf : bool
        Model the distance-dependent collimator response.
    tew_smooth_fwhm_mm : float, optional
        Smoothing of the TEW estimate (default two detector pixels; 0: none).
    mu : Volume, optional
        Attenuation map registered to the reconstruction grid (:func:`mu_on_grid`); without it the image is
        not attenuation corrected.
    source : optional
        Where the data came from (recorded in the provenance).
    """
    if scatter not in ("tew", "none"):
        raise InputError(f"scatter must be 'tew' or 'none', got {scatter!r}")
    if sensitivity_cps_per_mbq is not None and not sensitivity_cps_per_mbq > 0:
        raise InputError("sensitivity_cps_per_mbq must be positive")
    preset = system or default_system(proj.nuclide)
    spect = get_spect_system(preset)
    n_views, rows, cols = proj.photopeak.shape
    row_mm, col_mm = (float(v) for v in proj.pixel_spacing_mm)
    additive, scatter_record = (None, {"method": "none"}) if scatter == "none" else tew_additive(
        proj, smooth_fwhm_mm=tew_smooth_fwhm_mm)
    calibrated = sensitivity_cps_per_mbq is not None
    grid = ImageGridSpec((rows, cols, cols), (row_mm, col_mm, col_mm))
    peak = proj.energy_windows[proj.photopeak_window]
    mu_mm = None if mu is None else mu_on_grid(mu, list(grid.shape), list(grid.spacing_mm), peak.centre_kev)
    nuclide = proj.nuclide or spect.nuclide
    half_life = None  # a camera's nuclide name is free text; the frames are already decay-weighted counts
    system_spec = SpectSystemSpec(
        preset=preset, nuclide=nuclide, collimator=spect.collimator, angles_deg=proj.angles_deg.tolist(),
        radius_mm=proj.radius_mm.tolist(), psf=bool(psf), detector_shape=(rows, cols), pixel_mm=(row_mm, col_mm),
        sensitivity_cps_per_mbq=float(sensitivity_cps_per_mbq or 1.0), photopeak_window=peak, measured=True,
        half_life_s=half_life)
    calibration = Calibration(
        time_scale_s=float(proj.frame_duration_s), mode="counts", unit="Bq/mL" if calibrated else "a.u.",
        frame_duration_s=float(proj.frame_duration_s), nuclide=nuclide, half_life_s=half_life,
        note="" if calibrated else "no sensitivity given: the image times 1 cps/MBq / the camera's sensitivity is Bq/mL")
    return AcquisitionData(
        prompts=proj.photopeak.to(torch.float32), system=system_spec, grid=grid, calibration=calibration,
        additive=additive, mu_per_mm=mu_mm,
        provenance={"petspect": petspect.__version__, "source": None if source is None else str(source),
                    "scatter": scatter_record, "meta": dict(proj.meta),
                    "geometry": "image centred on the rotation axis; patient coordinates not used",
                    "attenuation": "none" if mu is None else f"registered map given ({mu.unit})"})
