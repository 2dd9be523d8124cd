"""The SPECT system model: the rotate-and-sum projector set up from measured or planned projections.

:func:`spect_system_model` takes the orbit, detector pixels, frame duration and collimator from
:class:`~petspect.geometry.spect_data.SpectProjections` (as read from DICOM NM or Interfile) or from a
system preset, resamples the attenuation map onto the image grid, and returns the calibrated
:class:`~petspect.projectors.spect.SpectProjector` (Bq/mL -> counts per view).

The rest of the SPECT model lives next to this module: :mod:`petspect.systems.spect_simulate`
(expected counts in every energy window, with object scatter) and :mod:`petspect.systems.spect_chang`
(Chang's first-order attenuation correction from the same projector's attenuation).
"""

from __future__ import annotations

import torch

from petspect.errors import GeometryError, InputError
from petspect.geometry.spect import ParallelHoleCollimator, SpectSystem, get_spect_system
from petspect.geometry.spect_data import SpectProjections
from petspect.projectors.spect import SpectProjector, check_axial, mu_per_mm_on
from petspect.volume import Volume

__all__ = ["COLLIMATOR_SYSTEMS", "spect_system_model"]

#: Presets for collimator names as written in DICOM (CollimatorGridName); Siemens' ME is "MELP".
COLLIMATOR_SYSTEMS = {"LEHR": "spect-lehr", "ME": "spect-me", "MELP": "spect-me"}




def _system_for(data: SpectProjections) -> SpectSystem | None:
    """The preset named by ``meta["system"]``, else by the nuclide (Tc-99m, Lu-177 in any spelling,
    DICOM's "^99m^Technetium" included), else by ``meta["collimator"]``; None when nothing matches."""
    name = data.meta.get("system")
    key = "".join(ch for ch in (data.nuclide or "").lower() if ch.isalnum())
    if not name and "99m" in key and ("tc" in key or "technetium" in key):
        name = "spect-lehr"
    if not name and "177" in key and "lu" in key:
        name = "spect-me"
    if not name:
        name = COLLIMATOR_SYSTEMS.get(str(data.meta.get("collimator", "")).strip().upper())
    return get_spect_system(name) if name else None


def _vendor_collimator(data: SpectProjections) -> ParallelHoleCollimator | None:
    """The vendor's collimator (:mod:`petspect.systems.collimators`) at the photopeak energy when the data name
    both the collimator and a known manufacturer (GE's LEHR is not Siemens' LEHR); None when they do not.

    Raises InputError when the vendor is known but the name is not one of its presets (never a guess)."""
    from petspect.systems.collimators import collimator_from_header, vendor_of

    name, maker = str(data.meta.get("collimator", "") or ""), data.meta.get("manufacturer")
    if not name.strip() or vendor_of(maker) is None:
        return None
    preset = collimator_from_header(name, maker, data.meta.get("collimator_type"))
    return preset.at_energy(data.energy_windows[data.photopeak_window].centre_kev)


def spect_system_model(projections_or_geometry: SpectProjections | SpectSystem | str,
                       image_grid: Volume | tuple | None = None, *, mu: Volume | torch.Tensor | None = None,
                       psf: bool = True, collimator: ParallelHoleCollimator | str | None = None,
                       sensitivity_cps_per_mbq: float | None = None, dtype: torch.dtype = torch.float32,
                       device=None) -> SpectProjector:
    """The SPECT system model for measured or planned projections.

    Parameters
    ----------
    projections_or_geometry : SpectProjections or SpectSystem or str
        Measured data (angles, radii, pixel spacing, detector matrix and frame duration are taken
        from it; ``meta["system"]``, the nuclide or ``meta["collimator"]`` picks the preset, and a collimator
        named with a known manufacturer is that vendor's, :mod:`petspect.systems.collimators`) or a system preset
        (its default circular orbit and matrix).
    image_grid : Volume or (shape, voxel_mm), optional
        Reconstruction grid (standard axial orientation, centred on the rotation axis). Default: the
        detector grid, ``(rows, cols, cols)`` with voxels ``(row_mm, col_mm, col_mm)``.
    mu : Volume or torch.Tensor, optional
        Attenuation at the photopeak energy; a Volume (1/mm or 1/cm) is resampled onto ``image_grid``,
        a tensor is taken in 1/mm on that grid.
    psf : bool
        Distance-dependent collimator response.
    collimator : ParallelHoleCollimator or str, optional
        Overrides the collimator of the preset.
    sensitivity_cps_per_mbq : float, optional
        System sensitivity; default ``meta["sensitivity_cps_per_mbq"]`` or the preset's. With a
        sensitivity the image is in Bq/mL and the model gives counts; without, voxel sums.

    Returns
    -------
    SpectProjector
        Maps an image of ``image_grid``'s shape to the photopeak projections ``(views, rows, cols)``.
    """
    if isinstance(projections_or_geometry, SpectProjections):
        data = projections_or_geometry
        system = _system_for(data)
        angles, radius = data.angles_deg, data.radius_mm
        rows, cols = (int(v) for v in data.counts.shape[2:])
        pixel, duration = data.pixel_spacing_mm, data.frame_duration_s
        sens = data.meta.get("sensitivity_cps_per_mbq")
    else:
        system = (get_spect_system(projections_or_geometry) if isinstance(projections_or_geometry, str)
                  else projections_or_geometry)
        angles, radius = system.circular_orbit()
        rows, cols = system.matrix
        pixel, duration, sens = (system.pixel_mm, system.pixel_mm), system.frame_duration_s, None
    coll = collimator if collimator is not None else (system.collimator if system is not None else None)
    if collimator is None and isinstance(projections_or_geometry, SpectProjections):
        coll = _vendor_collimator(projections_or_geometry) or coll
    if psf and coll is None:
        raise InputError("spect_system_model: the data name no SPECT system or known nuclide; pass collimator=")
    sens = sensitivity_cps_per_mbq or sens or (system.sensitivity_cps_per_mbq if system is not None else None)
    mu_t = None
    if image_grid is None:
        shape, voxel = (rows, cols, cols), (pixel[0], pixel[1], pixel[1])
    elif isinstance(image_grid, Volume):
        check_axial(image_grid, "image_grid")
        shape, voxel = image_grid.shape, image_grid.spacing_mm
        if isinstance(mu, Volume):
            mu_t = mu_per_mm_on(mu, image_grid)
    else:
        shape, voxel = tuple(image_grid[0]), tuple(image_grid[1])
    if mu is not None and mu_t is None:
        if isinstance(mu, Volume):
            check_axial(mu, "mu")
            if tuple(mu.shape) != tuple(shape):
                raise GeometryError(f"mu grid {mu.shape} differs from the image grid {tuple(shape)}; "
                                    "pass image_grid as a Volume to resample")
            mu_t = mu_per_mm_on(mu, mu)
        else:
            mu_t = torch.as_tensor(mu)
    return SpectProjector(shape, voxel, angles, radius, coll, mu=mu_t, psf=psf, detector_shape=(rows, cols),
                          pixel_mm=pixel, sensitivity_cps_per_mbq=sens, frame_duration_s=duration, dtype=dtype,
                          device=device)
