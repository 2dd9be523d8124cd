"""Self-describing acquisition data: prompts, additive and multiplicative terms, system and calibration.

An :class:`AcquisitionData` holds everything needed to reconstruct a simulated (or imported) scan in
Bq/mL: the prompts, the expected additive counts (randoms + scatter), the multiplicative projection
factors (PET attenuation and normalisation), the attenuation map (SPECT attenuation is inside the
projector), a JSON description of the system (preset name and *every* geometry and physics parameter,
so the operator is rebuilt exactly), the image grid, the calibration and the provenance.

Calibration
-----------
The *rate model* ``R`` maps activity concentration in Bq/mL to counts per second in each bin:

* PET: ``R = k diag(n a) P [G]`` (:func:`petspect.systems.pet.pet_system_model`), with ``k``
  set so that 1 Bq at the centre of the field of view, in air, gives the scanner's NEMA NU 2 total
  sensitivity (``simulate.systems.PET_SENSITIVITY_CPS_PER_KBQ`` / 1000 counts per second) summed over
  the sinogram (reduced geometries such as direct planes only carry the whole scanner's counts, as
  SSRB-rebinned data do).
* SPECT: the rotate-and-sum projector with the preset's sensitivity in cps/MBq per detector head
  (:class:`petspect.projectors.spect.SpectProjector` with a 1 s frame), i.e. counts/s in each view.

The expected counts are ``c R x + b`` with the *time scale* ``c`` in s: from ``--activity-mbq/--scan-s``
``c = int_0^T exp(-lambda t) dt`` (PET) or that divided by the number of views (SPECT: each view is
acquired for ``T / n_views``); from ``--counts N``, ``c = N / sum(R x)``. ``c`` is recorded, and
:func:`system_model` returns ``c R``, so a reconstruction returns Bq/mL whichever way the data were made.

Folder layout (:func:`save_acquisition` / :func:`load_acquisition`)
-------------------------------------------------------------------
``acquisition.json`` (format, modality, system, grid, calibration, provenance, file names and shapes),
``prompts.npy``, and where present ``additive.npy``, ``multiplicative_<name>.npy`` and
``mu_per_mm.npy`` (float32, C order).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from petspect._fileio import atomic_dir, check_output_path
from petspect.errors import ConfigError, DataNotFoundError, FormatError, InputError
from petspect.operators.base import LinearOperator
from petspect.volume import AXIAL_DIRECTION, Volume

__all__ = ["ACQUISITION_JSON", "AcquisitionData", "PET_PRESETS", "SPECT_PRESETS", "load_acquisition",
           "reconstruct_acquisition", "save_acquisition", "simulate_acquisition", "system_model"]

ACQUISITION_JSON = "acquisition.json"
FORMAT_NAME = "petspect-acquisition"
FORMAT_VERSION = 1
PET_PRESETS = ("wholebody", "brain", "small-animal")
SPECT_PRESETS = ("spect-lehr", "spect-me")


@dataclass
class AcquisitionData:
    """One acquisition with what is needed to rebuild its calibrated system model.

    Parameters
    ----------
    prompts : torch.Tensor
        Measured counts, shape of the projection data (PET ``(planes, views, radial[, tof])``, SPECT
        ``(views, rows, cols)``).
    system : dict
        ``{"modality": "PET"|"SPECT", "preset": str, ...}`` with every parameter of the model (see
        :func:`system_model`).
    grid : dict
        Image grid: ``shape`` (z, y, x), ``spacing_mm`` (dz, dy, dx), ``origin_mm`` (LPS x, y, z of voxel
        [0, 0, 0]) and ``direction`` of the activity image the data were made from.
    calibration : dict
        ``time_scale_s`` (c above), ``unit`` ("Bq/mL"), ``mode`` ("counts" or "activity") and the facts
        behind them (sensitivity, scan time, half-life, voxel volume, expected true counts).
    additive : torch.Tensor, optional
        Expected randoms + scatter in counts, shape of ``prompts``.
    multiplicative : dict of str to torch.Tensor
        Projection-space factors (PET: ``"attenuation"``, ``"normalisation"``), non-TOF sinogram shape.
    mu_per_mm : torch.Tensor, optional
        Attenuation map on the image grid in 1/mm (SPECT projectors attenuate inside).
    provenance : dict
        How the data were made (petspect version, inputs, seed, options).
    """

    prompts: torch.Tensor
    system: dict[str, Any]
    grid: dict[str, Any]
    calibration: dict[str, Any]
    additive: torch.Tensor | None = None
    multiplicative: dict[str, torch.Tensor] = field(default_factory=dict)
    mu_per_mm: torch.Tensor | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        modality = str(self.system.get("modality", "")).upper()
        if modality not in ("PET", "SPECT"):
            raise InputError(f"system['modality'] must be 'PET' or 'SPECT', got {self.system.get('modality')!r}")
        self.system["modality"] = modality
        for key in ("shape", "spacing_mm"):
            if key not in self.grid:
                raise InputError(f"grid needs {key!r}")
        if "time_scale_s" not in self.calibration or not float(self.calibration["time_scale_s"]) > 0:
            raise InputError("calibration needs a positive 'time_scale_s'")
        if self.additive is not None and tuple(self.additive.shape) != tuple(self.prompts.shape):
            raise InputError(f"additive shape {tuple(self.additive.shape)} != prompts {tuple(self.prompts.shape)}")
        if self.mu_per_mm is not None and tuple(self.mu_per_mm.shape) != tuple(self.grid["shape"]):
            raise InputError(f"mu_per_mm shape {tuple(self.mu_per_mm.shape)} != grid {tuple(self.grid['shape'])}")

    @property
    def modality(self) -> str:
        return self.system["modality"]

    @property
    def time_scale_s(self) -> float:
        return float(self.calibration["time_scale_s"])

    def image_volume(self, data: torch.Tensor, **kwargs: Any) -> Volume:
        """A Volume on the acquisition's image grid (the activity image's geometry)."""
        g = self.grid
        if "origin_mm" not in g:
            return Volume.centered(data, tuple(g["spacing_mm"]), **kwargs)
        return Volume(data, tuple(g["spacing_mm"]), tuple(g["origin_mm"]),
                      tuple(tuple(r) for r in g.get("direction", AXIAL_DIRECTION)), **kwargs)


# --------------------------------------------------------------------------- files
def _json_ready(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, (np.generic,)):
        return obj.item()
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    return obj


def _save_array(folder: Path, name: str, t: torch.Tensor) -> dict[str, Any]:
    arr = t.detach().to("cpu", torch.float32).numpy()
    np.save(folder / name, np.ascontiguousarray(arr))
    return {"file": name, "shape": list(arr.shape)}


def save_acquisition(data: AcquisitionData, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``data`` to a new folder (atomically; refuses to replace one unless ``overwrite``).

    Returns the folder path. Tensors are stored as float32 ``.npy``; the JSON holds everything else.
    """
    out = check_output_path(folder, overwrite=overwrite)
    files: dict[str, Any] = {}
    with atomic_dir(out) as tmp:
        files["prompts"] = _save_array(tmp, "prompts.npy", data.prompts)
        if data.additive is not None:
            files["additive"] = _save_array(tmp, "additive.npy", data.additive)
        files["multiplicative"] = {k: _save_array(tmp, f"multiplicative_{k}.npy", v)
                                   for k, v in data.multiplicative.items()}
        if data.mu_per_mm is not None:
            files["mu_per_mm"] = _save_array(tmp, "mu_per_mm.npy", data.mu_per_mm)
        doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "modality": data.modality,
               "system": data.system, "grid": data.grid, "calibration": data.calibration,
               "provenance": data.provenance, "files": files}
        (tmp / ACQUISITION_JSON).write_text(json.dumps(_json_ready(doc), indent=2), encoding="utf-8")
    return out


def _load_array(folder: Path, entry: dict[str, Any]) -> torch.Tensor:
    path = folder / entry["file"]
    if not path.is_file():
        raise DataNotFoundError("array file listed in acquisition.json is missing", path=path)
    arr = np.load(path, allow_pickle=False)
    if list(arr.shape) != list(entry["shape"]):
        raise FormatError(f"shape {list(arr.shape)} != {entry['shape']} recorded in acquisition.json", path=path)
    return torch.from_numpy(np.ascontiguousarray(arr))


def load_acquisition(folder: str | os.PathLike) -> AcquisitionData:
    """Read an acquisition folder written by :func:`save_acquisition`."""
    folder = Path(folder)
    doc_path = folder / ACQUISITION_JSON
    if not doc_path.is_file():
        raise DataNotFoundError(f"not an acquisition folder (no {ACQUISITION_JSON})", path=folder)
    try:
        doc = json.loads(doc_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FormatError(f"invalid JSON: {exc}", path=doc_path) from exc
    if doc.get("format") != FORMAT_NAME or int(doc.get("version", 0)) > FORMAT_VERSION:
        raise FormatError(f"unknown format {doc.get('format')!r} version {doc.get('version')!r}", path=doc_path)
    files = doc["files"]
    return AcquisitionData(
        prompts=_load_array(folder, files["prompts"]),
        system=doc["system"], grid=doc["grid"], calibration=doc["calibration"],
        additive=_load_array(folder, files["additive"]) if "additive" in files else None,
        multiplicative={k: _load_array(folder, v) for k, v in files.get("multiplicative", {}).items()},
        mu_per_mm=_load_array(folder, files["mu_per_mm"]) if "mu_per_mm" in files else None,
        provenance=doc.get("provenance", {}))


# --------------------------------------------------------------------------- system models
def _pet_scanner(system: dict[str, Any]):
    from petspect.geometry.pet import PetScanner

    p = dict(system["scanner"])
    for key in ("crystal_size_mm", "energy_window_kev", "block_crystals"):
        p[key] = tuple(p[key])
    return PetScanner(**p)


def _pet_rate_model(system: dict[str, Any], grid: dict[str, Any], factors: torch.Tensor | None, device=None):
    """``diag(f) P [G]`` (line integrals x factors) for a recorded PET system."""
    from petspect.geometry.pet import ImageGrid
    from petspect.geometry.sinogram import SinogramDefinition
    from petspect.systems.pet import pet_system_model

    scanner = _pet_scanner(system)
    s = system["sinogram"]
    sino = SinogramDefinition(scanner, span=int(s["span"]), max_ring_diff=int(s["max_ring_diff"]),
                              view_mashing=int(s["view_mashing"]), n_radial=int(s["n_radial"]))
    image_grid = ImageGrid(tuple(grid["shape"]), tuple(grid["spacing_mm"]))  # centred on the scanner axis
    return pet_system_model(scanner, image_grid, sino_def=sino, normalisation=factors,
                            psf_fwhm_mm=system.get("psf_fwhm_mm"), tof=bool(system["tof"]), device=device)


def _spect_rate_model(system: dict[str, Any], grid: dict[str, Any], mu: torch.Tensor | None, device=None):
    """Rotate-and-sum projector in counts/s per view for a recorded SPECT system."""
    from petspect.geometry.spect import ParallelHoleCollimator
    from petspect.projectors.spect import SpectProjector

    coll = ParallelHoleCollimator(**system["collimator"])
    return SpectProjector(tuple(grid["shape"]), tuple(grid["spacing_mm"]), torch.tensor(system["angles_deg"]),
                          torch.tensor(system["radius_mm"]), coll, mu=mu, psf=bool(system["psf"]),
                          detector_shape=tuple(system["detector_shape"]), pixel_mm=tuple(system["pixel_mm"]),
                          sensitivity_cps_per_mbq=float(system["sensitivity_cps_per_mbq"]), frame_duration_s=1.0,
                          device=device)


def _base_model(system, grid, multiplicative, mu, *, attenuation: bool, device=None) -> tuple[LinearOperator, float]:
    """The uncalibrated model and the factor to counts/s: PET ``(diag(f) P [G], k)``, SPECT ``(projector, 1)``."""
    if system["modality"] == "PET":
        factors = None
        for name, f in multiplicative.items():
            if name == "attenuation" and not attenuation:
                continue
            factors = f.to(torch.float32) if factors is None else factors * f.to(torch.float32)
        return _pet_rate_model(system, grid, factors, device), float(system["sensitivity_factor"])
    mu = mu.to(torch.float32) if (attenuation and mu is not None) else None
    return _spect_rate_model(system, grid, mu, device), 1.0


def system_model(data: AcquisitionData, *, attenuation: bool = True, device=None) -> LinearOperator:
    """The calibrated system model ``c R``: Bq/mL on the image grid -> expected counts (without ``b``).

    Parameters
    ----------
    data : AcquisitionData
    attenuation : bool
        Include attenuation (False: the model of a reconstruction without attenuation correction).
    device : optional
        Where the operator's tensors live.
    """
    base, k = _base_model(data.system, data.grid, data.multiplicative, data.mu_per_mm, attenuation=attenuation,
                          device=device)
    return base * (k * data.time_scale_s)


# --------------------------------------------------------------------------- simulation
def _grid_of(volume: Volume) -> dict[str, Any]:
    return {"shape": list(volume.shape), "spacing_mm": list(volume.spacing_mm), "origin_mm": list(volume.origin_mm),
            "direction": [list(r) for r in volume.direction]}


def _pet_system(preset: str, grid: dict[str, Any], *, tof: bool, single_ring: bool, span: int,
                max_ring_diff: int | None, view_mashing: int, n_radial: int | None,
                psf_fwhm_mm: Any) -> dict[str, Any]:
    from petspect.geometry.pet import get_pet_scanner
    from petspect.geometry.sinogram import SinogramDefinition
    from petspect.simulate.systems import PET_SENSITIVITY_CPS_PER_KBQ, pet_calibration_factor

    scanner = get_pet_scanner(preset, single_ring=single_ring)
    if tof and not scanner.is_tof:
        raise InputError(f"PET preset {preset!r} has no time of flight; drop --tof")
    scanner = scanner if tof else scanner.non_tof()
    sino = SinogramDefinition(scanner, span=span, max_ring_diff=max_ring_diff, view_mashing=view_mashing,
                              n_radial=n_radial)
    system = {"modality": "PET", "preset": preset, "tof": bool(tof), "single_ring": bool(single_ring),
              "scanner": dataclasses.asdict(scanner), "psf_fwhm_mm": psf_fwhm_mm,
              "sinogram": {"span": sino.span, "max_ring_diff": sino.max_ring_diff, "view_mashing": sino.view_mashing,
                           "n_radial": sino.n_radial},
              "sensitivity_cps_per_kbq": PET_SENSITIVITY_CPS_PER_KBQ[preset]}
    # k: 1 Bq in the central voxel, in air and without efficiencies, gives the NEMA total sensitivity
    k = pet_calibration_factor(_pet_rate_model(system, grid, None).projector, system["sensitivity_cps_per_kbq"])
    system["sensitivity_factor"] = k
    return system


def _spect_system(preset: str, grid: dict[str, Any], *, n_views: int | None, radius_mm: float | None,
                  psf: bool) -> dict[str, Any]:
    from petspect.geometry.spect import get_spect_system

    s = get_spect_system(preset)
    angles, radii = s.circular_orbit(n_views=n_views, radius_mm=radius_mm)
    nz, ny, nx = grid["shape"]
    dz, dy, dx = grid["spacing_mm"]
    h = min(dy, dx)
    cols = int(np.ceil(max(ny * dy, nx * dx) / h - 1e-9))
    return {"modality": "SPECT", "preset": preset, "nuclide": s.nuclide, "collimator": dataclasses.asdict(s.collimator),
            "angles_deg": angles.tolist(), "radius_mm": radii.tolist(), "psf": bool(psf),
            "detector_shape": [nz, cols], "pixel_mm": [dz, h], "sensitivity_cps_per_mbq": s.sensitivity_cps_per_mbq,
            "photopeak_window": dataclasses.asdict(s.photopeak)}


def _pet_additive(model, x, mu, trues, efficiencies, scatter_fraction, randoms_fraction) -> torch.Tensor | None:
    """Expected scatter and randoms in counts, as fractions of the expected prompts
    (:func:`petspect.physics.additive_pet.pet_additive_counts`)."""
    if scatter_fraction <= 0 and randoms_fraction <= 0:
        return None
    if scatter_fraction < 0 or randoms_fraction < 0 or scatter_fraction + randoms_fraction >= 1:
        raise InputError("scatter_fraction and randoms_fraction must be >= 0 with a sum < 1 (fractions of the prompts)")
    if scatter_fraction > 0 and mu is None:
        raise InputError("simulating scatter needs the attenuation map (--mu)")
    from petspect.physics.additive_pet import pet_additive_counts

    n_prompts = float(trues.sum()) / (1 - scatter_fraction - randoms_fraction)
    return pet_additive_counts(model.projector, activity=x, mu=mu, efficiencies=efficiencies,
                               scatter_counts=scatter_fraction * n_prompts, randoms_counts=randoms_fraction * n_prompts)


def _mu_tensor(mu: Volume | None, activity: Volume) -> torch.Tensor | None:
    if mu is None:
        return None
    if not mu.same_grid(activity):
        raise InputError("the attenuation map must be on the activity image's grid (resample it first)")
    from petspect.physics.attenuation import mu_per_mm_tensor

    return mu_per_mm_tensor(mu).to(torch.float32)


def _time_scale(mode_counts: float | None, scan_s: float | None, rate_total: float, half_life_s: float | None,
                n_views: int) -> tuple[str, float]:
    from petspect.physics.counts import effective_scan_s

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
        Expected number of true counts (scales the data, see the module docstring). Or:
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
    from petspect import __version__
    from petspect.nuclides import half_life_s as nuclide_half_life
    from petspect.physics.counts import poisson_sample

    if (n_counts is None) == (scan_s is None):
        raise InputError("give either the number of true counts or the scan time (with the activity), not both")
    if activity.unit != "Bq/mL":
        raise InputError(f"activity image must be in Bq/mL, got unit {activity.unit!r}")
    if not np.allclose(np.asarray(activity.direction), np.asarray(AXIAL_DIRECTION), atol=1e-6):
        raise InputError("the activity image must be in the standard axial orientation; resample it first")
    x = activity.data.to(torch.float32)
    if bool((x < 0).any()) or not bool(torch.isfinite(x).all()):
        raise InputError("activity image must be finite and non-negative")
    activity_scale = 1.0
    if activity_mbq is not None:
        if scan_s is None:
            raise InputError("activity_mbq rescales the image for an acquisition of scan_s seconds; give scan_s")
        total_bq = float(x.sum()) * activity.voxel_volume_ml
        if total_bq <= 0:
            raise InputError("activity image is empty; cannot rescale it to activity_mbq")
        activity_scale = activity_mbq * 1e6 / total_bq
        x = x * activity_scale
    grid = _grid_of(activity)
    mu_t = _mu_tensor(mu, activity)
    key = system.lower()
    multiplicative: dict[str, torch.Tensor] = {}
    if key in PET_PRESETS:
        sysd = _pet_system(key, grid, tof=tof, single_ring=single_ring, span=span, max_ring_diff=max_ring_diff,
                           view_mashing=view_mashing, n_radial=n_radial, psf_fwhm_mm=psf_fwhm_mm)
        nuclide = nuclide or "F-18"
        model0 = _pet_rate_model(sysd, grid, None)
        if normalisation is True:
            from petspect.physics.normalization import simulate_efficiencies

            multiplicative["normalisation"] = simulate_efficiencies(model0.projector.sino_def, seed=int(seed))
        elif isinstance(normalisation, torch.Tensor):
            multiplicative["normalisation"] = normalisation.to(torch.float32)
        if mu_t is not None:
            from petspect.physics.attenuation import attenuation_factors

            multiplicative["attenuation"] = attenuation_factors(mu_t, model0.projector).to(torch.float32)
        views = 1
    elif key in SPECT_PRESETS:
        if tof:
            raise InputError("TOF is a PET option")
        sysd = _spect_system(key, grid, n_views=n_views, radius_mm=radius_mm, psf=spect_psf)
        nuclide = nuclide or sysd["nuclide"]
        views = len(sysd["angles_deg"])
    else:
        raise ConfigError(f"unknown system {system!r}; choose one of {PET_PRESETS + SPECT_PRESETS}")
    t_half = nuclide_half_life(nuclide)
    sysd["half_life_s"] = t_half
    base, k = _base_model(sysd, grid, multiplicative, mu_t, attenuation=True)
    trues_rate = base(x) * k
    mode, c = _time_scale(n_counts, scan_s, float(trues_rate.sum()), t_half, views)
    trues = trues_rate * c
    additive = None
    if sysd["modality"] == "PET":
        additive = _pet_additive(model0, x, mu_t, trues, multiplicative.get("normalisation"), scatter_fraction,
                                 randoms_fraction)
    elif scatter_fraction > 0 or randoms_fraction > 0:
        raise InputError("SPECT scatter is not simulated here (use the dataset engine's TEW model)")
    expected = trues if additive is None else trues + additive
    prompts = poisson_sample(expected, torch.Generator().manual_seed(int(seed)))
    calibration = {"unit": "Bq/mL", "mode": mode, "time_scale_s": c, "scan_s": scan_s, "nuclide": nuclide,
                   "half_life_s": t_half, "activity_mbq": activity_mbq, "activity_scale": activity_scale,
                   "voxel_volume_ml": activity.voxel_volume_ml, "expected_true_counts": float(trues.sum()),
                   "expected_additive_counts": 0.0 if additive is None else float(additive.sum())}
    prov = {"petspect_version": __version__, "seed": int(seed), "n_counts": n_counts,
            "scatter_fraction": scatter_fraction, "randoms_fraction": randoms_fraction, **(provenance or {})}
    return AcquisitionData(prompts, sysd, grid, calibration, additive, multiplicative,
                           mu_t, prov)


# --------------------------------------------------------------------------- reconstruction
ALGORITHMS = ("fbp", "mlem", "osem", "map")


def _fbp(data: AcquisitionData, *, attenuation: bool, window: str, cutoff: float, device=None):
    """FBP of data corrected with the calibrated model's additive and multiplicative terms."""
    from petspect.recon.fbp_systems import fbp_pet_model, fbp_spect_model

    # SPECT: the projector without attenuation gives the line-integral scale; AC is Chang's, after FBP
    model, k = _base_model(data.system, data.grid, data.multiplicative, data.mu_per_mm,
                           attenuation=attenuation and data.modality == "PET", device=device)
    net = data.prompts.to(device=device, dtype=torch.float64)
    if data.additive is not None:
        net = net - data.additive.to(net)
    scale = k * data.time_scale_s
    if data.modality == "PET":
        return fbp_pet_model(net, model, scale, window=window, cutoff=cutoff)
    mu = data.mu_per_mm if attenuation else None
    return fbp_spect_model(net, model, scale, mu_per_mm=mu, window=window, cutoff=cutoff)


def reconstruct_acquisition(data: AcquisitionData, algorithm: str = "osem", *, n_iter: int = 4, n_subsets: int = 8,
                            beta: float = 0.0, prior: str = "rdp", gamma: float = 2.0, attenuation: bool = True,
                            post_filter_fwhm_mm: float | None = None, fbp_window: str = "hann",
                            fbp_cutoff: float = 1.0, callback=None, compute_objective: bool = False,
                            device=None, progress: bool | None = None) -> Volume:
    """Reconstruct an acquisition in Bq/mL on its image grid.

    Parameters
    ----------
    data : AcquisitionData
    algorithm : {"fbp", "mlem", "osem", "map"}
        ``map`` is BSREM with the ``prior`` (``rdp`` with ``gamma``, or ``quadratic``) of strength ``beta``.
    n_iter, n_subsets : int
        Iterations and subsets (MLEM ignores ``n_subsets``).
    attenuation : bool
        Attenuation correction (False: the model without attenuation; PET FBP then skips it too; SPECT
        FBP corrects with Chang's first-order method).
    post_filter_fwhm_mm : float, optional
        Isotropic Gaussian post-filter FWHM in mm (normalised at the grid borders).
    fbp_window, fbp_cutoff
        FBP filter window and cut-off (fraction of Nyquist).
    callback, compute_objective : optional
        ``callback(iteration, image, objective)`` for iterative algorithms; the objective (Poisson
        log-likelihood, penalised for MAP) is computed only with ``compute_objective``.
    device : optional
        Compute device (data and model are moved there).

    Returns
    -------
    Volume
        Unit of the calibration ("Bq/mL"; "a.u." for measured data without a sensitivity), modality "PT"
        or "NM", ``meta`` records the algorithm and its settings.
    """
    from petspect.recon.em import mlem, osem
    from petspect.recon.postfilter import gaussian_post_filter
    from petspect.recon.map import bsrem
    from petspect.recon.priors import make_prior

    algo = algorithm.lower()
    if algo not in ALGORITHMS:
        raise InputError(f"unknown algorithm {algorithm!r}; choose one of {ALGORITHMS}")
    y = data.prompts.to(device=device, dtype=torch.float32)
    b = None if data.additive is None else data.additive.to(device=device, dtype=torch.float32)
    spacing = tuple(float(s) for s in data.grid["spacing_mm"])
    post = None
    if post_filter_fwhm_mm:
        post = gaussian_post_filter(tuple(data.grid["shape"]), float(post_filter_fwhm_mm), spacing)
    common = {"additive": b, "n_iter": n_iter, "callback": callback, "compute_objective": compute_objective,
              "post_filter": post, "progress": progress}
    if algo == "fbp":
        img = _fbp(data, attenuation=attenuation, window=fbp_window, cutoff=fbp_cutoff, device=device)
        img = img.to(torch.float32)
        img = post(img) if post is not None else img
        return _image(data, img, algo, n_iter=0, n_subsets=0, beta=0.0, prior="none", gamma=0.0,
                      attenuation_corrected=(attenuation and (data.modality == "PET" or data.mu_per_mm is not None))
                      and ("chang" if data.modality == "SPECT" else True), post_filter_fwhm_mm=post_filter_fwhm_mm,
                      fbp_window=fbp_window, fbp_cutoff=fbp_cutoff)
    model = system_model(data, attenuation=attenuation, device=device)
    if algo == "mlem":
        img = mlem(model, y, **common)
    elif algo == "osem":
        img = osem(model, y, n_subsets=n_subsets, **common)
    else:
        img = bsrem(model, y, make_prior(prior, gamma=gamma, spacing_mm=spacing), beta, n_subsets=n_subsets, **common)
    return _image(data, img, algo, n_iter=n_iter, n_subsets=1 if algo == "mlem" else n_subsets,
                  beta=beta if algo == "map" else 0.0, prior=prior if algo == "map" else "none", gamma=gamma,
                  attenuation_corrected=attenuation and (data.modality == "PET" or data.mu_per_mm is not None),
                  post_filter_fwhm_mm=post_filter_fwhm_mm)


def _image(data: AcquisitionData, img: torch.Tensor, algo: str, **settings: Any) -> Volume:
    meta = {"algorithm": algo, **settings, "system": data.system.get("preset"), "tof": data.system.get("tof", False),
            "calibration_mode": data.calibration.get("mode")}
    return data.image_volume(img.detach().cpu(), unit=data.calibration.get("unit", "Bq/mL"),
                             modality="PT" if data.modality == "PET" else "NM", meta=meta)
