"""Measured SPECT projections (DICOM NM TOMO, gated or not, and Interfile) as an acquisition to reconstruct.

:func:`spect_acquisition` turns :class:`~petspect.geometry.spect_data.SpectProjections` read from a camera
into the :class:`~petspect.systems.acquisition.AcquisitionData` that
:func:`~petspect.recon.reconstruct.reconstruct_image` (and ``petspect recon``) reconstructs:

- photopeak: the window chosen by name or energy (:func:`choose_window`); without a choice, the one window
  whose name says photopeak (``EM``, ``PEAK``, ``PHOTO``), else the data's; several candidates are refused
  with the list (a Lu-177 study has photopeaks at 113 and 208 keV);
- system: the recorded orbit (angles and radius per view, so non-circular orbits too) and detector pixels,
  with the collimator (:mod:`petspect.systems.collimators`) chosen by name or from the header's
  CollimatorGridName and Manufacturer (:func:`choose_collimator`), modelled at the photopeak energy; data
  that name no known collimator are refused with the list of presets;
- image grid: ``rows x cols x cols`` voxels of the detector's pixel size, centred on the rotation axis; when
  the NM header places the detector in the patient (ImagePositionPatient of the first detector, TableHeight;
  :func:`nm_image_grid`), the grid carries that position, so the image lies where the patient was and the
  study's CT can be resampled onto it;
- attenuation: a map on that grid (1/mm, 1/cm or HU), or the study's CT in the same frame of reference,
  resampled and converted from HU at the photopeak energy (:func:`mu_on_grid`);
- scatter: the triple-energy-window estimate (Ogawa et al, IEEE TMI 10 (1991) 408) from the windows
  adjacent to the photopeak, smoothed in the detector plane, as the additive term;
- calibration: the per-view frame duration; with the camera's sensitivity (cps/MBq) the image is in
  Bq/mL, without it in arbitrary units proportional to activity (times ``1 cps/MBq / sensitivity``).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import torch

import petspect
from petspect.errors import GeometryError, InputError
from petspect.geometry.spect import ParallelHoleCollimator, get_spect_system, spect_system_names
from petspect.geometry.spect_data import EnergyWindow, SpectProjections
from petspect.materials import hu_to_mu_per_mm
from petspect.physics.spect_scatter import detector_blur, tew_from_projections
from petspect.systems.acquisition import AcquisitionData, Calibration
from petspect.systems.collimators import collimator_from_header, get_collimator
from petspect.systems.records import ImageGridSpec, SpectSystemSpec
from petspect.volume import AXIAL_DIRECTION, Volume

ADJACENT_KEV = 1.0  # a scatter window within this distance of a photopeak edge counts as adjacent
HU_AIR = -1000.0  # CT value outside the CT's field of view when it is resampled onto the SPECT grid
_PEAK_TOKEN = re.compile(r"(^|[^A-Z])(EM\d*|PEAK|PHOTOPEAK|PHOTO|PP)([^A-Z]|$)")


def _window_list(proj: SpectProjections) -> str:
    return ", ".join(f"{i + 1}: {w.name} ({w.lower_kev:g}-{w.upper_kev:g} keV)" for i, w in enumerate(proj.energy_windows))


def _looks_like_photopeak(name: str) -> bool:
    upper = name.upper()
    return "PEAK" in upper or "PHOTO" in upper or bool(_PEAK_TOKEN.search(upper))


def choose_window(proj: SpectProjections, window: str | float | None = None) -> SpectProjections:
    """``proj`` with its photopeak set to ``window``: a window name, ``"#k"`` (1-based index) or an energy in keV.

    Parameters
    ----------
    window : str or float, optional
        A name (case-insensitive; shared names are keyed ``NAME#k``, see
        :func:`petspect.io.nm.unique_window_names`), a 1-based index written ``#k``, or an energy in keV
        (``208``, ``"208keV"``): the window that contains it, the one centred closest when several do.
        ``None``: the one window whose name says photopeak (``EM``, ``PEAK``, ``PHOTO``), else the data's
        photopeak when no window name says so.

    Raises
    ------
    InputError
        No window matches; several match (a shared name, several photopeak names); the list is in the message.
    """
    windows = proj.energy_windows
    if proj.meta.get("energy_window_unknown"):
        kev = None if window is None else re.fullmatch(r"([0-9]+(?:\.[0-9]*)?)\s*(?:kev)?", str(window).strip(),
                                                       flags=re.IGNORECASE)
        if kev is None:
            raise InputError("the data state no energy window (STIR-style header without energy-window keys or "
                             "isotope): give the photopeak energy with --window KEV (e.g. --window 140.5)")
        energy = float(kev.group(1))
        stated = EnergyWindow(f"{energy:g}keV(stated)", 0.9 * energy, 1.1 * energy)
        meta = {k: v for k, v in proj.meta.items() if k != "energy_window_unknown"}
        meta["energy_window"] = f"no energy window in the data: {energy:g} keV +-10 % as stated"
        return dataclasses.replace(proj, energy_windows=[stated, *windows[1:]], photopeak_window=0, meta=meta)
    if window is None:
        cands = [i for i, w in enumerate(windows) if _looks_like_photopeak(w.name)]
        if len(cands) > 1:
            raise InputError(f"the data hold {len(cands)} photopeak windows ({_window_list(proj)}); choose one with "
                             "--window NAME_OR_KEV (e.g. --window 208 for Lu-177's 208 keV peak)")
        index = cands[0] if cands else proj.photopeak_window
    else:
        text = str(window).strip()
        energy = re.fullmatch(r"([0-9]+(?:\.[0-9]*)?)\s*(?:kev)?", text, flags=re.IGNORECASE)
        by_index = re.fullmatch(r"#([0-9]+)", text)
        if by_index:
            k = int(by_index.group(1))
            if not 1 <= k <= len(windows):
                raise InputError(f"window #{k} does not exist; the data hold {_window_list(proj)}")
            index = k - 1
        elif energy and not any(w.name.upper() == text.upper() for w in windows):
            kev = float(energy.group(1))
            cands = [i for i, w in enumerate(windows) if w.lower_kev <= kev <= w.upper_kev]
            if not cands:
                raise InputError(f"no energy window contains {kev:g} keV; the data hold {_window_list(proj)}")
            index = min(cands, key=lambda i: (abs(windows[i].centre_kev - kev), windows[i].width_kev))
        else:
            cands = [i for i, w in enumerate(windows) if w.name.upper() == text.upper()]
            if not cands:
                cands = [i for i, w in enumerate(windows) if w.name.upper().split("#")[0] == text.upper()]
            if len(cands) != 1:
                what = "several windows are named" if cands else "no window is named"
                raise InputError(f"{what} {text!r}; the data hold {_window_list(proj)}; give a name as listed, "
                                 "#INDEX or an energy in keV")
            index = cands[0]
    return dataclasses.replace(proj, photopeak_window=int(index), meta=dict(proj.meta))


def choose_collimator(proj: SpectProjections, collimator: str | ParallelHoleCollimator | None = None
                      ) -> tuple[ParallelHoleCollimator, str]:
    """The collimator model at ``proj``'s photopeak energy, and a sentence saying where it came from.

    ``collimator``: a preset name (:func:`petspect.systems.collimators.collimator_names`; the system presets
    ``spect-lehr`` and ``spect-me`` give their own collimator models, Siemens' LEHR and ME at those presets'
    energies) or a ParallelHoleCollimator; ``None``: the
    header's CollimatorGridName with its Manufacturer (``meta["collimator"]``, ``meta["manufacturer"]``).

    Raises
    ------
    InputError
        No collimator given and none named in the data (or not a known one for the vendor); a
        non-parallel collimator (CollimatorType PINH, FANB, ...).
    """
    energy = proj.energy_windows[proj.photopeak_window].centre_kev
    meta = proj.meta
    if isinstance(collimator, ParallelHoleCollimator):
        return collimator, f"collimator {collimator.name} (given)"
    if isinstance(collimator, str) and collimator.strip().lower() in spect_system_names():
        system = get_spect_system(collimator.strip().lower())  # a petspect preset: its collimator as it models it
        return system.collimator, f"collimator of the {system.name} preset ({system.collimator.name})"
    if collimator is not None:
        ctype = str(meta.get("collimator_type", "") or "").upper()
        if ctype and ctype != "PARA":  # the header's type stands even when a parallel-hole preset is named
            collimator_from_header(None, None, ctype, path=meta.get("source"))
        preset = get_collimator(collimator)
        return preset.at_energy(energy), f"collimator {preset.key} (given): {preset.describe()}"
    preset = collimator_from_header(meta.get("collimator"), meta.get("manufacturer"), meta.get("collimator_type"),
                                    path=meta.get("source"))
    return (preset.at_energy(energy), f"collimator {preset.key} from the header "
                                      f"({meta.get('manufacturer')!r} {meta.get('collimator')!r}): {preset.describe()}")


def nm_image_grid(proj: SpectProjections) -> ImageGridSpec:
    """The reconstruction grid of ``proj``: ``(rows, cols, cols)`` detector pixels, placed in the patient.

    The axial axis runs along the detector rows (row 0 superior: the slice of highest LPS z) and the
    transverse centre is the rotation axis. With the first detector's ImagePositionPatient ``(Sx, Sy, Sz)``
    and TableHeight ``H`` in ``proj.meta`` the grid is placed as PyTomography places it
    in its DICOM reader (``pytomography/io/SPECT/dicom.py::_get_affine_spect_projections``, which aligns the
    study's CT with the projections): rows at ``z = Sz - r dz``; transverse voxel ``i`` at ``Sx - N/2 dx + i dx``,
    ``-N/2 dy - H + j dy`` when ``Sy`` is 0 (GE), else at ``Sx + i dx``, ``Sy + j dy``. Without a position the
    grid is centred on LPS (0, 0, 0).
    """
    n_views, rows, cols = proj.photopeak.shape
    row_mm, col_mm = (float(v) for v in proj.pixel_spacing_mm)
    shape, spacing = (rows, cols, cols), (row_mm, col_mm, col_mm)
    ipp = proj.meta.get("image_position_patient")
    if not ipp:
        centred = tuple(-(n - 1) * d / 2.0 for n, d in zip(reversed(shape), reversed(spacing)))
        return ImageGridSpec(shape, spacing, centred, AXIAL_DIRECTION)
    sx, sy, sz = (float(v) for v in ipp)
    if sy == 0.0:
        sx -= cols / 2 * col_mm
        sy -= cols / 2 * col_mm + float(proj.meta.get("table_height_mm") or 0.0)
    z0 = sz - (rows - 1) * row_mm  # slice 0 is the lowest (the last detector row)
    return ImageGridSpec(shape, spacing, (sx, sy, z0), AXIAL_DIRECTION)


def _adjacent(windows: list[EnergyWindow], peak: EnergyWindow, below: bool) -> EnergyWindow | None:
    """The scatter window next to the photopeak (below or above): the one whose near edge is closest to the
    photopeak's edge, overlapping it by at most ``ADJACENT_KEV`` and leaving a gap of at most 10 % of the
    photopeak energy (cameras may leave a small gap; the TEW formula uses each window's own width)."""
    max_gap = max(ADJACENT_KEV, 0.1 * peak.centre_kev)

    def gap(w: EnergyWindow) -> float:
        return peak.lower_kev - w.upper_kev if below else w.lower_kev - peak.upper_kev

    cands = [w for w in windows if w is not peak and w.name != peak.name and -ADJACENT_KEV <= gap(w) <= max_gap
             and (w.centre_kev < peak.centre_kev if below else w.centre_kev > peak.centre_kev)]
    return min(cands, key=lambda w: abs(gap(w))) if cands else None


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


def load_attenuation(path: Any) -> Volume:
    """An attenuation map or CT for ``--mu``: NIfTI / Interfile / DICOM series, or the CT series of a folder
    that also holds other series (the NM projections of a SPECT/CT study).

    The Volume's ``meta["frame_of_reference_uid"]`` holds the DICOM FrameOfReferenceUID when there is one.
    """
    from pathlib import Path

    import pydicom

    from petspect.io import load
    from petspect.io._paths import is_dicom_file, require_exists

    from petspect.io._guard import reading
    from petspect.io._meta import multi_valued

    p = require_exists(path)
    if not (p.is_dir() or is_dicom_file(p)):
        return load(p)
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file() and is_dicom_file(Path(f)))
    series: dict[str, tuple[str, Any]] = {}
    for f in files:
        with reading(f, "DICOM file"):
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        image_type = [v.upper() for v in multi_valued(getattr(ds, "ImageType", None))]
        if getattr(ds, "Modality", None) == "CT" and "LOCALIZER" not in image_type:  # scouts are no maps
            series.setdefault(str(ds.SeriesInstanceUID), (str(getattr(ds, "FrameOfReferenceUID", "") or ""),
                                                          getattr(ds, "KVP", None)))
    if len(series) > 1:
        raise InputError(f"{p} holds {len(series)} CT series; give the folder of the one to use", path=p)
    if not series:
        return load(p)
    (uid, (frame, kvp)), = series.items()
    try:
        kvp = float(kvp) if kvp not in (None, "") else None
    except (TypeError, ValueError):
        kvp = None
    from petspect.io.dicom_read import read_dicom_series

    vol = read_dicom_series(p, series_uid=uid)
    return vol.with_data(vol.data, meta={**vol.meta, "frame_of_reference_uid": frame or None, "kvp": kvp})


def _to_mu_per_mm(data: torch.Tensor, unit: str, energy_kev: float, kvp: float | None = None) -> torch.Tensor:
    if unit == "1/mm":
        out = data
    elif unit == "1/cm":
        out = data / 10.0
    elif unit == "HU":  # the bone slope depends on the CT's tube voltage (KVP (0018,0060) when known)
        out = hu_to_mu_per_mm(data, energy_kev, kvp=float(kvp) if kvp and 40.0 <= float(kvp) <= 150.0 else 120.0)
    else:
        raise InputError(f"attenuation map unit {unit!r}: give 1/mm, 1/cm or HU")
    if bool((out < 0).any()) or bool((out > 0.1).any()):
        raise InputError("attenuation coefficients must lie within 0-0.1 /mm (water at 140 keV is 0.015 /mm)")
    return out


def mu_on_grid(mu: Volume, grid: ImageGridSpec, energy_kev: float, *, placed: bool = False,
               frame_of_reference_uid: str | None = None, same_frame: bool = False) -> torch.Tensor:
    """An attenuation map on the reconstruction grid, in 1/mm (from 1/mm, 1/cm or HU), shape ``grid.shape``.

    Parameters
    ----------
    mu : Volume
        A map already on the grid (same shape and voxel size), or, when the grid is ``placed`` in the
        patient (:func:`nm_image_grid` from an NM header), a map or CT anywhere in the same patient
        coordinates: it is resampled onto the grid (trilinear; outside the CT: air). HU are converted at
        ``energy_kev`` with :func:`petspect.materials.hu_to_mu_per_mm`.
    frame_of_reference_uid : str, optional
        The NM data's FrameOfReferenceUID; a map whose ``meta["frame_of_reference_uid"]`` differs is refused.
    same_frame : bool
        The user vouches that the map is in the NM's patient coordinates although the UIDs differ (a SPECT/CT
        whose NM and CT were given different frame-of-reference UIDs without moving the patient).

    Raises
    ------
    GeometryError
        Different frames of reference; a map that does not overlap the grid.
    InputError
        A map off the grid when the grid has no patient position; a unit that is not an attenuation unit.
    """
    energy = float(energy_kev)
    target = grid.volume(torch.zeros(tuple(grid.shape)))
    same_size = list(mu.shape) == list(grid.shape) and all(abs(a - b) <= 1e-3 for a, b in
                                                           zip(mu.spacing_mm, grid.spacing_mm))
    # a map of the grid's size without a DICOM frame of reference is taken as registered to the grid
    if mu.same_grid(target) or (same_size and not mu.meta.get("frame_of_reference_uid")):
        return _to_mu_per_mm(mu.data.to(torch.float32), mu.unit, energy)
    if not placed:
        raise InputError(f"the attenuation map ({tuple(mu.shape)} voxels of {tuple(mu.spacing_mm)} mm) is not on the "
                         f"reconstruction grid ({tuple(grid.shape)} voxels of {tuple(grid.spacing_mm)} mm) and the "
                         "projections do not say where they lie in the patient (no ImagePositionPatient); register "
                         "and resample it to that grid first")
    theirs = mu.meta.get("frame_of_reference_uid")
    if not theirs:
        import warnings

        warnings.warn("the attenuation map carries no DICOM frame of reference (NIfTI, Interfile): it is placed by its "
                      "own patient coordinates, which must be those of the SPECT study", stacklevel=3)
    if frame_of_reference_uid and theirs and theirs != frame_of_reference_uid and not same_frame:
        raise GeometryError(f"the attenuation map's frame of reference ({theirs}) is not the SPECT data's "
                            f"({frame_of_reference_uid}): the CT was not acquired with these projections (or not "
                            "registered to them); register it to the SPECT first, or, if the patient did not move "
                            "between the SPECT and this CT, say so with --mu-same-frame")
    if mu.unit not in ("1/mm", "1/cm", "HU"):
        raise InputError(f"attenuation map unit {mu.unit!r}: give 1/mm, 1/cm or HU")
    fill = HU_AIR if mu.unit == "HU" else 0.0
    src = mu.with_data(mu.data.to(torch.float32))
    covered = src.with_data(torch.ones_like(src.data)).resample_to(target, mode="linear", fill_value=0.0).data
    if float(covered.max()) <= 0.0:
        raise GeometryError("the attenuation map does not overlap the SPECT field of view (compare their patient "
                            "positions: the map's origin " + str(tuple(round(v, 1) for v in mu.origin_mm)) +
                            " mm, the SPECT grid's " + str(tuple(round(v, 1) for v in grid.origin_mm)) + " mm)")
    on_grid = src.resample_to(target, mode="linear", fill_value=fill).data
    return _to_mu_per_mm(on_grid, mu.unit, energy, mu.meta.get("kvp")).clamp(min=0.0)


def spect_acquisition(proj: SpectProjections, *, system: str | None = None, scatter: str = "tew",
                      sensitivity_cps_per_mbq: float | None = None, psf: bool = True,
                      tew_smooth_fwhm_mm: float | None = None, mu: Volume | None = None,
                      source: Any = None, collimator: str | ParallelHoleCollimator | None = None,
                      window: str | float | None = None, mu_same_frame: bool = False) -> AcquisitionData:
    """Measured SPECT projections as an :class:`AcquisitionData` (see the module docstring).

    Parameters
    ----------
    proj : SpectProjections
        From :func:`petspect.io.read_nm_projections` or :func:`petspect.io.read_interfile_projections`.
    system : str, optional
        ``spect-lehr`` or ``spect-me``: the collimator of that preset (Siemens LEHR / ME); prefer ``collimator``.
    scatter : {"tew", "none"}
        Scatter estimate used as the additive term (TEW needs a window just below the photopeak).
    sensitivity_cps_per_mbq : float, optional
        The camera's planar sensitivity (cps/MBq) for an image in Bq/mL; else arbitrary units.
    psf : bool
        Model the distance-dependent collimator response.
    tew_smooth_fwhm_mm : float, optional
        Smoothing of the TEW estimate (default two detector pixels; 0: none).
    mu : Volume, optional
        Attenuation map or the study's CT (:func:`mu_on_grid`); without it the image is not attenuation corrected.
    source : optional
        Where the data came from (recorded in the provenance).
    collimator : str or ParallelHoleCollimator, optional
        Collimator preset (:func:`choose_collimator`); default: the one the header names.
    window : str or float, optional
        Photopeak window by name, ``#index`` or energy in keV (:func:`choose_window`).
    mu_same_frame : bool
        Accept a CT whose FrameOfReferenceUID differs from the NM's (:func:`mu_on_grid`).

    Raises
    ------
    InputError
        Unknown or ambiguous window or collimator, bad options (messages list the choices).
    """
    if scatter not in ("tew", "none"):
        raise InputError(f"scatter must be 'tew' or 'none', got {scatter!r}")
    if sensitivity_cps_per_mbq is not None and not sensitivity_cps_per_mbq > 0:
        raise InputError("sensitivity_cps_per_mbq must be positive")
    if system is not None and collimator is not None:
        raise InputError("give the collimator with collimator= (system= is its older name), not both")
    proj = choose_window(proj, window)
    coll, coll_note = choose_collimator(proj, collimator if collimator is not None else system)
    position = str(proj.meta.get("patient_position") or "")
    if position and position != "HFS":
        import warnings

        warnings.warn(f"PatientPosition {position}: petspect's NM geometry (rows superior first, the detector "
                      "placement in the patient) is verified for head-first supine (HFS) only; check the "
                      "image's orientation", stacklevel=2)
    n_views, rows, cols = proj.photopeak.shape
    row_mm, col_mm = (float(v) for v in proj.pixel_spacing_mm)
    additive, scatter_record = (None, {"method": "none"}) if scatter == "none" else tew_additive(
        proj, smooth_fwhm_mm=tew_smooth_fwhm_mm)
    calibrated = sensitivity_cps_per_mbq is not None
    grid = nm_image_grid(proj)
    placed = bool(proj.meta.get("image_position_patient"))
    peak = proj.energy_windows[proj.photopeak_window]
    mu_mm = None if mu is None else mu_on_grid(mu, grid, peak.centre_kev, placed=placed,
                                               frame_of_reference_uid=proj.meta.get("frame_of_reference_uid"),
                                               same_frame=mu_same_frame)
    nuclide = proj.nuclide or ""
    half_life = None  # a camera's nuclide name is free text; the frames are already decay-weighted counts
    system_spec = SpectSystemSpec(
        preset=str(coll.name), nuclide=nuclide, collimator=coll, angles_deg=proj.angles_deg.tolist(),
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
                    "photopeak": f"{peak.name} ({peak.lower_kev:g}-{peak.upper_kev:g} keV)", "collimator": coll_note,
                    "scatter": scatter_record, "meta": dict(proj.meta),
                    "geometry": ("grid placed in the patient from the NM header (ImagePositionPatient, TableHeight)"
                                 if placed else "image centred on the rotation axis; patient coordinates unknown"),
                    "attenuation": "none" if mu is None else f"map given ({mu.unit}), on the grid at "
                                                             f"{peak.centre_kev:g} keV"})
