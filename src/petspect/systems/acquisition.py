"""One acquisition record for PET and SPECT, simulated, from a cohort or measured, and its system model.

An :class:`AcquisitionData` holds what a reconstruction in Bq/mL needs: the prompts, the expected
additive counts (randoms + scatter), the PET multiplicative factors (attenuation, normalisation), the
attenuation map (SPECT attenuates inside its projector), the typed system description
(:class:`~petspect.systems.records.PetSystemSpec` or :class:`~petspect.systems.records.SpectSystemSpec`),
the image grid, the :class:`Calibration` and free-form provenance. :func:`system_model` rebuilds the
calibrated model from it; :func:`petspect.recon.reconstruct.reconstruct` reconstructs it.

Calibration
-----------
The *rate model* ``R`` maps activity concentration in Bq/mL to counts per second in each bin:

* PET: ``R = k diag(n a) P [G]`` (:func:`petspect.systems.pet.pet_system_model`), with ``k``
  (``PetSystemSpec.sensitivity_factor``) set so that 1 Bq at the centre of the field of view, in air,
  gives the scanner's NEMA NU 2 total sensitivity summed over the sinogram;
* SPECT: the rotate-and-sum projector with the sensitivity in cps/MBq per detector head and a 1 s
  frame, i.e. counts/s in each view.

Expected counts are ``c R x + b`` with the *time scale* ``c`` in s (``Calibration.time_scale_s``): the
decay-weighted scan time (PET), that per view (SPECT), ``N / sum(R x)`` for data made with ``N``
expected true counts, and for a dose or time-window level of a cohort the full scan's ``c`` times the
level's count fraction. The calibrated model is ``c R``, so an image is in Bq/mL whichever way the data
were made (full-dose-equivalent Bq/mL for cohort levels: the fraction is in ``c``).

Files
-----
:func:`save_acquisition` / :func:`load_acquisition` write and read the folder format documented in
``docs/acquisition-format.md`` (``acquisition.json`` plus float32 ``.npy`` arrays; a cohort subject
holds several levels that share the system, attenuation and normalisation files).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from petspect._fileio import atomic_dir, check_output_path
from petspect._json import to_jsonable as _json_ready
from petspect.errors import DataNotFoundError, FormatError, InputError
from petspect.geometry.spect_data import EnergyWindow, SpectProjections
from petspect.operators.base import LinearOperator
from petspect.physics.spect_scatter import tew_from_projections
from petspect.projectors.spect import SpectProjector
from petspect.systems.pet import PetSystemModel, pet_system_model
from petspect.systems.records import (ImageGridSpec, Modality, PetSystemSpec, SpectSystemSpec, SystemSpec,
                                      system_spec_from_dict)
from petspect.volume import Volume

__all__ = ["ACQUISITION_JSON", "FORMAT_NAME", "FORMAT_VERSION", "AcquisitionData", "Calibration", "Level",
           "SystemModel", "acquisition_document", "combine_factors", "list_levels", "load_acquisition",
           "save_acquisition", "spect_window_terms", "stored_recon_specs", "system_model"]

ACQUISITION_JSON = "acquisition.json"
FORMAT_NAME = "petspect-acquisition"
FORMAT_VERSION = 2  # 1: one acquisition per folder; 2 adds "levels" and SPECT energy windows (1 still reads)


@dataclass(frozen=True)
class Calibration:
    """How counts relate to Bq/mL (see the module docstring).

    Parameters
    ----------
    time_scale_s : float
        ``c``: the calibrated model is ``c R``.
    unit : str
        Unit of the reconstructed image: "Bq/mL", or "a.u." for measured data without a sensitivity.
    mode : str
        How ``c`` was set: "counts" (from a number of counts or a frame duration), "activity" (scan time
        and activity) or "level" (a cohort's dose or time-window level).
    count_fraction : float
        Share of the full scan's counts in these data (1 for a full scan; a cohort level's dose or
        time-window fraction).
    scan_s, frame_duration_s, nuclide, half_life_s, activity_mbq, activity_scale, voxel_volume_ml,
    expected_true_counts, expected_additive_counts : optional
        The facts behind ``c`` (None where unknown).
    note : str
        Free text (e.g. how to turn arbitrary units into Bq/mL).
    """

    time_scale_s: float
    unit: str = "Bq/mL"
    mode: str = "counts"
    count_fraction: float = 1.0
    scan_s: float | None = None
    frame_duration_s: float | None = None
    nuclide: str | None = None
    half_life_s: float | None = None
    activity_mbq: float | None = None
    activity_scale: float = 1.0
    voxel_volume_ml: float | None = None
    expected_true_counts: float | None = None
    expected_additive_counts: float | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(float(self.time_scale_s)) and float(self.time_scale_s) > 0):
            raise InputError(f"calibration time_scale_s must be positive, got {self.time_scale_s}")
        if not 0 < float(self.count_fraction) <= 1:
            raise InputError(f"count_fraction must be in (0, 1], got {self.count_fraction}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Calibration":
        names = {f.name for f in fields(cls)}
        if "time_scale_s" not in d:
            raise FormatError("calibration lacks 'time_scale_s'")
        known = {k: v for k, v in d.items() if k in names}
        if known.get("note") is None:
            known.pop("note", None)
        if "sensitivity" in d and "note" not in known:  # version 1 of measured SPECT
            known["note"] = str(d["sensitivity"])
        return cls(**known)


@dataclass
class AcquisitionData:
    """One acquisition with what is needed to rebuild its calibrated system model.

    Parameters
    ----------
    prompts : torch.Tensor
        Measured counts: PET ``(planes, views, radial[, tof])``, SPECT photopeak ``(views, rows, cols)``.
    system : PetSystemSpec or SpectSystemSpec
    grid : ImageGridSpec
    calibration : Calibration
    additive : torch.Tensor, optional
        Expected randoms + scatter in counts (SPECT: the scatter estimate), shape of ``prompts``.
    attenuation : torch.Tensor, optional
        PET attenuation factors ``exp(-int mu)`` (non-TOF sinogram shape).
    normalisation : torch.Tensor, optional
        PET detection efficiencies (non-TOF sinogram shape).
    mu_per_mm : torch.Tensor, optional
        Attenuation map on the image grid in 1/mm (SPECT projectors attenuate inside; PET keeps it for
        reference only).
    provenance : dict
        How the data were made: a JSON record written as it is (petspect version, inputs, seed, options).
    """

    prompts: torch.Tensor
    system: SystemSpec
    grid: ImageGridSpec
    calibration: Calibration
    additive: torch.Tensor | None = None
    attenuation: torch.Tensor | None = None
    normalisation: torch.Tensor | None = None
    mu_per_mm: torch.Tensor | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.system, (PetSystemSpec, SpectSystemSpec)):
            raise InputError(f"system must be a PetSystemSpec or SpectSystemSpec, got {type(self.system).__name__}")
        if not isinstance(self.grid, ImageGridSpec) or not isinstance(self.calibration, Calibration):
            raise InputError("grid must be an ImageGridSpec and calibration a Calibration")
        if self.additive is not None and tuple(self.additive.shape) != tuple(self.prompts.shape):
            raise InputError(f"additive shape {tuple(self.additive.shape)} != prompts {tuple(self.prompts.shape)}")
        if self.mu_per_mm is not None and tuple(self.mu_per_mm.shape) != self.grid.shape:
            raise InputError(f"mu_per_mm shape {tuple(self.mu_per_mm.shape)} != grid {self.grid.shape}")
        if self.modality is Modality.SPECT and (self.attenuation is not None or self.normalisation is not None):
            raise InputError("attenuation and normalisation factors are PET terms (SPECT attenuates with mu_per_mm)")
        if self.modality is Modality.SPECT:
            expected = (self.system.n_views, *self.system.detector_shape)
            if tuple(self.prompts.shape) != expected:
                raise InputError(f"SPECT prompts shape {tuple(self.prompts.shape)} != (views, rows, cols) {expected}")

    @property
    def modality(self) -> Modality:
        return self.system.modality

    @property
    def time_scale_s(self) -> float:
        return float(self.calibration.time_scale_s)

    def multiplicative(self, *, attenuation: bool = True) -> torch.Tensor | None:
        """PET factors ``n a`` (``n`` only without ``attenuation``) as float32, None when there are none."""
        return combine_factors(self.normalisation, self.attenuation if attenuation else None)

    def image_volume(self, data: torch.Tensor, **kwargs: Any) -> Volume:
        """A Volume on the acquisition's image grid (the activity image's geometry)."""
        return self.grid.volume(data, **kwargs)


# --------------------------------------------------------------------------- system model
def combine_factors(normalisation: torch.Tensor | None, attenuation: torch.Tensor | None) -> torch.Tensor | None:
    """PET multiplicative factors ``n a`` as float32 (either may be None; None when both are)."""
    factors = None
    for f in (normalisation, attenuation):
        if f is not None:
            factors = f.to(torch.float32) if factors is None else factors * f.to(torch.float32)
    return factors


@dataclass
class SystemModel:
    """The calibrated model of one acquisition: expected counts ``= scale * base(x) + additive``.

    Attributes
    ----------
    base : LinearOperator
        The rate model without ``c``: PET ``diag(n a) P [G]`` in line-integral units (times ``k`` in
        ``scale``), SPECT the projector in counts/s per view.
    scale : float
        ``k c`` (PET) or ``c`` (SPECT).
    modality : Modality
    grid : ImageGridSpec
    attenuation_corrected : bool
        Whether ``base`` models attenuation.
    mu_per_mm : torch.Tensor, optional
        SPECT attenuation map when attenuation corrected (FBP applies Chang's correction with it).
    """

    base: LinearOperator
    scale: float
    modality: Modality
    grid: ImageGridSpec
    attenuation_corrected: bool
    mu_per_mm: torch.Tensor | None = None

    @property
    def operator(self) -> LinearOperator:
        """``scale * base``: Bq/mL on the image grid -> expected counts (without the additive term)."""
        return self.base * self.scale

    def at_scale(self, scale: float) -> "SystemModel":
        """The same model with another ``scale`` (e.g. another dose level of the same scan)."""
        return replace(self, scale=float(scale))


def pet_base_model(system: PetSystemSpec, grid: ImageGridSpec, factors: torch.Tensor | None,
                   device=None) -> PetSystemModel:
    """``diag(f) P [G]`` of a PET system on ``grid`` (centred on the scanner axis)."""
    return pet_system_model(system.scanner, grid.image_grid(), sino_def=system.sinogram_definition(),
                            normalisation=factors, psf_fwhm_mm=system.psf_fwhm_mm, tof=system.tof, device=device)


def spect_base_model(system: SpectSystemSpec, grid: ImageGridSpec, mu_per_mm: torch.Tensor | None,
                     device=None) -> SpectProjector:
    """Rotate-and-sum projector in counts/s per view of a SPECT system on ``grid``."""
    return SpectProjector(grid.shape, grid.spacing_mm, torch.tensor(system.angles_deg, dtype=torch.float64),
                          torch.tensor(system.radius_mm, dtype=torch.float64),
                          system.collimator, mu=mu_per_mm, psf=system.psf, detector_shape=system.detector_shape,
                          pixel_mm=system.pixel_mm, sensitivity_cps_per_mbq=system.sensitivity_cps_per_mbq,
                          frame_duration_s=1.0, device=device)


def system_model(data: AcquisitionData, *, attenuation: bool = True, device=None) -> SystemModel:
    """The calibrated system model of ``data`` (see :class:`SystemModel`).

    Parameters
    ----------
    data : AcquisitionData
    attenuation : bool
        Model attenuation (False: the model of a reconstruction without attenuation correction).
    device : optional
        Where the operator's tensors live.
    """
    if isinstance(data.system, PetSystemSpec):
        base = pet_base_model(data.system, data.grid, data.multiplicative(attenuation=attenuation), device)
        ac = attenuation and data.attenuation is not None
        return SystemModel(base, data.system.sensitivity_factor * data.time_scale_s, Modality.PET, data.grid, ac)
    mu = data.mu_per_mm.to(torch.float32) if (attenuation and data.mu_per_mm is not None) else None
    return SystemModel(spect_base_model(data.system, data.grid, mu, device), data.time_scale_s, Modality.SPECT,
                       data.grid, mu is not None, mu)


# --------------------------------------------------------------------------- files
@dataclass(frozen=True)
class Level:
    """One stored level of a multi-level folder (a cohort subject's dose or time-window scan).

    ``prompts`` and ``additive`` are file names in the folder; the level's additive term is the stored
    ``additive`` array times ``additive_scale`` (the expected full-scan randoms and scatter scaled to the
    level's counts); its time scale is ``time_scale_s``.
    """

    name: str
    prompts: str
    time_scale_s: float
    count_fraction: float
    additive: str | None = None
    additive_scale: float = 1.0


def _entry(name: str, t: torch.Tensor | np.ndarray) -> dict[str, Any]:
    return {"file": name, "shape": list(t.shape)}


def acquisition_document(data: AcquisitionData, files: dict[str, Any], *, levels: list[Level] | None = None,
                         energy_windows: list[dict[str, Any]] | None = None,
                         additive_model: dict[str, Any] | None = None,
                         reconstructions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The ``acquisition.json`` object of ``data`` whose arrays are stored under the names in ``files``.

    ``files`` maps ``prompts``, ``additive``, ``attenuation``, ``normalisation`` and ``mu_per_mm`` to
    ``{"file": name, "shape": [...]}``. ``levels`` lists further levels sharing the system terms;
    ``energy_windows`` (SPECT) says that the prompts files hold every window ``(windows, views, rows, cols)``,
    and ``additive_model`` how the additive term is derived from them (``{"method": "tew", ...}``);
    ``reconstructions`` the settings (``ReconSpec.to_dict()``, one per algorithm, the default first) a
    cohort reconstructed every level with.
    """
    doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "modality": data.modality.value,
           "system": data.system.to_dict(), "grid": data.grid.to_dict(), "calibration": data.calibration.to_dict(),
           "provenance": data.provenance, "files": files}
    if levels:
        doc["levels"] = {lv.name: {"prompts": lv.prompts, "additive": lv.additive, "additive_scale": lv.additive_scale,
                                   "time_scale_s": lv.time_scale_s, "count_fraction": lv.count_fraction}
                         for lv in levels}
    if energy_windows is not None:
        doc["energy_windows"] = energy_windows
    if additive_model is not None:
        doc["additive_model"] = additive_model
    if reconstructions:
        doc["reconstructions"] = reconstructions
    return _json_ready(doc)


def save_acquisition(data: AcquisitionData, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``data`` to a new folder (atomically; refuses to replace one unless ``overwrite``).

    Tensors are stored as float32 ``.npy``; ``acquisition.json`` holds everything else. Returns the folder.
    """
    out = check_output_path(folder, overwrite=overwrite, kind="acquisition")
    files: dict[str, Any] = {}
    with atomic_dir(out, kind="acquisition") as tmp:
        for name in ("prompts", "additive", "attenuation", "normalisation", "mu_per_mm"):
            t = getattr(data, name)
            if t is None:
                continue
            arr = np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())
            np.save(tmp / f"{name}.npy", arr)
            files[name] = _entry(f"{name}.npy", arr)
        doc = acquisition_document(data, files)
        (tmp / ACQUISITION_JSON).write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return out


def _load_array(folder: Path, entry: dict[str, Any] | str) -> torch.Tensor:
    entry = {"file": entry} if isinstance(entry, str) else entry
    path = folder / str(entry["file"])
    if folder.resolve() not in path.resolve().parents:
        raise FormatError(f"{ACQUISITION_JSON} names the array file {str(entry['file'])[:80]!r} outside the folder",
                          path=folder)
    if not path.is_file():
        raise DataNotFoundError(f"array file listed in {ACQUISITION_JSON} is missing", path=path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:  # SyntaxError: a damaged .npy header
        raise FormatError(f"not a readable .npy array: {exc}", path=path) from exc
    if "shape" in entry and list(arr.shape) != list(entry["shape"]):
        raise FormatError(f"shape {list(arr.shape)} != {entry['shape']} recorded in {ACQUISITION_JSON}", path=path)
    return torch.from_numpy(np.ascontiguousarray(arr))


def _read_doc(folder: Path) -> dict[str, Any]:
    doc_path = folder / ACQUISITION_JSON
    if not doc_path.is_file():
        raise DataNotFoundError(f"not an acquisition folder (no {ACQUISITION_JSON})", path=folder)
    try:
        doc = json.loads(doc_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"invalid JSON: {exc}", path=doc_path) from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME or int(doc.get("version", 0)) > FORMAT_VERSION:
        raise FormatError(f"unknown format {doc.get('format')!r} version {doc.get('version')!r}", path=doc_path)
    return doc


def stored_recon_specs(folder: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The reconstruction settings stored with a cohort subject's acquisition, by algorithm, the cohort's
    default (its first algorithm) first; empty when none are stored."""
    specs = _read_doc(Path(folder)).get("reconstructions", [])
    if not isinstance(specs, list) or not all(isinstance(d, dict) and "algorithm" in d for d in specs):
        raise FormatError(f"{ACQUISITION_JSON}: 'reconstructions' must be a list of settings with an algorithm",
                          path=folder)
    return {str(d["algorithm"]): d for d in specs}


def list_levels(folder: str | os.PathLike) -> list[str]:
    """Names of the levels stored in an acquisition folder (empty for a single acquisition)."""
    return list(_read_doc(Path(folder)).get("levels", {}))


def spect_window_terms(counts: torch.Tensor, system: SpectSystemSpec, windows: list[EnergyWindow],
                       additive_model: dict[str, Any] | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Photopeak counts and the additive scatter estimate of SPECT counts held in every energy window.

    Parameters
    ----------
    counts : torch.Tensor, shape (windows, views, rows, cols)
    system : SpectSystemSpec
        Its ``photopeak_window`` names the photopeak among ``windows``.
    windows : list of EnergyWindow
    additive_model : dict, optional
        ``{"method": "tew", "smooth_fwhm_mm": f}``: the triple-energy-window estimate
        (:func:`petspect.physics.spect_scatter.tew_from_projections` with the windows ``scatter_low`` and
        ``scatter_up``, smoothed in the detector plane); ``{"method": "none"}`` or None: no additive term.
    """
    names = [w.name for w in windows]
    if system.photopeak_window.name not in names or counts.ndim != 4 or counts.shape[0] != len(windows):
        raise FormatError(f"counts {tuple(counts.shape)} do not hold the windows {names}")
    peak = names.index(system.photopeak_window.name)
    method = (additive_model or {}).get("method", "none")
    if method == "none":
        return counts[peak], None
    if method != "tew":
        raise FormatError(f"unknown additive_model {additive_model!r}")
    proj = SpectProjections(counts, torch.tensor(system.angles_deg), torch.tensor(system.radius_mm), system.pixel_mm,
                            list(windows), frame_duration_s=1.0, photopeak_window=peak, nuclide=system.nuclide)
    return proj.photopeak, tew_from_projections(proj, smooth_fwhm_mm=additive_model.get("smooth_fwhm_mm"))


def check_acquisition_values(data: AcquisitionData, where: Any = None) -> None:
    """Refuse data every algorithm would turn into a wrong image without a word.

    Raises :class:`~petspect.errors.InputError` for NaN/infinite or negative prompts, additive term,
    attenuation or normalisation factors or attenuation map, and for attenuation or normalisation factors
    that are all zero (every line of response blocked: an all-zero image).
    """
    arrays = {"prompts": data.prompts, "additive": data.additive, "attenuation factors": data.attenuation,
              "normalisation factors": data.normalisation, "mu_per_mm": data.mu_per_mm}
    for name, t in arrays.items():
        if t is None:
            continue
        if not bool(torch.isfinite(t).all()):
            n = int((~torch.isfinite(t)).sum())
            raise InputError(f"{name} hold {n} NaN or infinite values; every reconstruction would be wrong",
                             path=where)
        if bool((t < 0).any()):
            raise InputError(f"{name} hold negative values ({float(t.min()):.4g})", path=where)
        if name.endswith("factors") and t.numel() and not bool((t > 0).any()):
            raise InputError(f"{name} are all zero: every line of response would be blocked and the image all "
                             "zero; recompute them (attenuation factors are exp(-line integral of mu))", path=where)


def load_acquisition(folder: str | os.PathLike, *, level: str | None = None) -> AcquisitionData:
    """Read an acquisition folder (``docs/acquisition-format.md``); ``level`` picks one of several stored.

    Raises
    ------
    DataNotFoundError
        No ``acquisition.json``, or a listed array is missing.
    FormatError
        Unknown format or version, shapes that differ from the record, an unknown level, or any other damage.
    InputError
        Non-finite or negative data, all-zero factors (:func:`check_acquisition_values`).
    """
    from petspect.io._guard import reading

    with reading(folder, "acquisition folder"):
        data = _load_acquisition(Path(folder), level)
    check_acquisition_values(data, folder)
    return data


def _load_acquisition(folder: Path, level: str | None) -> AcquisitionData:
    doc = _read_doc(folder)
    files = doc.get("files", {})
    if "prompts" not in files:
        raise FormatError(f"{ACQUISITION_JSON} lists no prompts", path=folder)
    try:
        system = system_spec_from_dict(doc["system"])
        grid = ImageGridSpec.from_dict(doc["grid"])
        calibration = Calibration.from_dict(doc["calibration"])
    except (KeyError, InputError) as exc:
        raise FormatError(f"{ACQUISITION_JSON}: {exc}", path=folder) from exc
    prompts_entry, additive_entry, additive_scale = files["prompts"], files.get("additive"), 1.0
    if level is not None:
        levels = doc.get("levels", {})
        if level not in levels:
            raise FormatError(f"no level {level!r} here; stored levels: {sorted(levels) or 'none'}", path=folder)
        lv = levels[level]
        prompts_entry = lv["prompts"]
        additive_entry, additive_scale = lv.get("additive"), float(lv.get("additive_scale", 1.0))
        calibration = replace(calibration, time_scale_s=float(lv["time_scale_s"]), mode="level",
                              count_fraction=float(lv["count_fraction"]))
    prompts = _load_array(folder, prompts_entry).to(torch.float32)
    additive = None if additive_entry is None else _load_array(folder, additive_entry).to(torch.float32)
    if additive is not None and additive_scale != 1.0:
        additive = additive * additive_scale
    # version 1 kept the PET factors under "multiplicative"
    mult = files.get("multiplicative", {})
    att, norm = files.get("attenuation", mult.get("attenuation")), files.get("normalisation", mult.get("normalisation"))
    if isinstance(system, SpectSystemSpec) and "energy_windows" in doc:
        try:
            windows = [EnergyWindow(**w) for w in doc["energy_windows"]]
            prompts, additive = spect_window_terms(prompts, system, windows, doc.get("additive_model"))
        except (TypeError, InputError) as exc:
            raise FormatError(f"{ACQUISITION_JSON}: {exc}", path=folder) from exc
    try:
        return AcquisitionData(
            prompts=prompts, system=system, grid=grid, calibration=calibration, additive=additive,
            attenuation=None if att is None else _load_array(folder, att),
            normalisation=None if norm is None else _load_array(folder, norm),
            mu_per_mm=_load_array(folder, files["mu_per_mm"]) if "mu_per_mm" in files else None,
            provenance=doc.get("provenance", {}))
    except InputError as exc:
        raise FormatError(f"{ACQUISITION_JSON}: {exc}", path=folder) from exc
