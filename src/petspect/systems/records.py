"""Typed descriptions of an image grid and of a PET or SPECT system, with their JSON form.

These records carry every parameter a system model is rebuilt from (see
:func:`petspect.systems.acquisition.system_model`); ``to_dict`` / ``from_dict`` are the only places
where they become or come from string-keyed dicts (the ``acquisition.json`` file boundary, documented in
``docs/acquisition-format.md``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch

from petspect.errors import FormatError, InputError
from petspect.geometry.pet import ImageGrid, PetScanner
from petspect.geometry.sinogram import SinogramDefinition
from petspect.geometry.spect import ParallelHoleCollimator
from petspect.geometry.spect_data import EnergyWindow
from petspect.volume import AXIAL_DIRECTION, Volume

__all__ = ["ImageGridSpec", "Modality", "PetSystemSpec", "SinogramSpec", "SpectSystemSpec", "SystemSpec",
           "system_spec_from_dict"]


class Modality(str, Enum):
    """Imaging modality of an acquisition."""

    PET = "PET"
    SPECT = "SPECT"


def _floats(values: Any, n: int | None = None, what: str = "value") -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    if n is not None and len(out) != n:
        raise InputError(f"{what} needs {n} numbers, got {len(out)}")
    return out


@dataclass(frozen=True)
class ImageGridSpec:
    """The image grid an acquisition is reconstructed on (the activity image's geometry).

    Parameters
    ----------
    shape : (int, int, int)
        Voxels (z, y, x).
    spacing_mm : (float, float, float)
        Voxel size (dz, dy, dx) in mm.
    origin_mm : (float, float, float), optional
        LPS (x, y, z) of voxel [0, 0, 0]'s centre in mm; None: the grid is centred at (0, 0, 0).
    direction : 3 x 3 tuple, optional
        Direction cosines (columns = LPS unit vectors of the array axes z, y, x); None: standard axial.

    The system models put the grid's centre on the scanner axis (the origin is kept for the output image).
    """

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float] | None = None
    direction: tuple[tuple[float, ...], ...] | None = None

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        if len(shape) != 3 or min(shape) < 1:
            raise InputError(f"image grid shape must be 3 positive ints (z, y, x), got {self.shape}")
        spacing = _floats(self.spacing_mm, 3, "spacing_mm")
        if not all(s > 0 and math.isfinite(s) for s in spacing):
            raise InputError(f"voxel spacing must be positive, got {spacing} mm")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing_mm", spacing)
        if self.origin_mm is not None:
            object.__setattr__(self, "origin_mm", _floats(self.origin_mm, 3, "origin_mm"))
        if self.direction is not None:
            object.__setattr__(self, "direction", tuple(_floats(r, 3, "direction row") for r in self.direction))

    @classmethod
    def from_volume(cls, volume: Volume) -> "ImageGridSpec":
        return cls(tuple(volume.shape), tuple(volume.spacing_mm), tuple(volume.origin_mm),
                   tuple(tuple(r) for r in volume.direction))

    @property
    def voxel_volume_ml(self) -> float:
        return math.prod(self.spacing_mm) * 1e-3

    def image_grid(self) -> ImageGrid:
        """The grid as the PET projectors take it (centred on the scanner axis)."""
        return ImageGrid(self.shape, self.spacing_mm)

    def volume(self, data: torch.Tensor, **kwargs: Any) -> Volume:
        """A Volume of ``data`` on this grid (``kwargs`` go to :class:`~petspect.volume.Volume`)."""
        if self.origin_mm is None:
            return Volume.centered(data, self.spacing_mm, **kwargs)
        return Volume(data, self.spacing_mm, self.origin_mm, self.direction or AXIAL_DIRECTION, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"shape": list(self.shape), "spacing_mm": list(self.spacing_mm)}
        if self.origin_mm is not None:
            d["origin_mm"] = list(self.origin_mm)
        if self.direction is not None:
            d["direction"] = [list(r) for r in self.direction]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ImageGridSpec":
        _need(d, ("shape", "spacing_mm"), "grid")
        return cls(tuple(d["shape"]), tuple(d["spacing_mm"]), d.get("origin_mm"), d.get("direction"))


@dataclass(frozen=True)
class SinogramSpec:
    """Sinogram layout of a PET system (see :class:`~petspect.geometry.sinogram.SinogramDefinition`)."""

    span: int = 1
    max_ring_diff: int | None = None
    view_mashing: int = 1
    n_radial: int | None = None

    def definition(self, scanner: PetScanner) -> SinogramDefinition:
        return SinogramDefinition(scanner, span=self.span, max_ring_diff=self.max_ring_diff,
                                  view_mashing=self.view_mashing, n_radial=self.n_radial)

    @classmethod
    def of(cls, sino: SinogramDefinition) -> "SinogramSpec":
        """The resolved parameters of a definition (ring difference and radial bins filled in)."""
        return cls(int(sino.span), int(sino.max_ring_diff), int(sino.view_mashing), int(sino.n_radial))


@dataclass(frozen=True)
class PetSystemSpec:
    """Every parameter of a PET system model ``k diag(n a) P [G]``.

    Parameters
    ----------
    preset : str
        Name of the scanner preset it started from (``wholebody``, ``brain``, ``small-animal``).
    scanner : PetScanner
        The scanner itself (any overrides of the preset included; without TOF when ``tof`` is False).
    sinogram : SinogramSpec
    tof : bool
        TOF sinograms.
    sensitivity_cps_per_kbq : float
        NEMA NU 2 total sensitivity the model is calibrated to.
    sensitivity_factor : float
        ``k``: counts per second per unit line integral (Bq/mL x mm) that gives that sensitivity
        (:func:`petspect.systems.pet.pet_calibration_factor`).
    psf_fwhm_mm : float or (float, float, float), optional
        Image-space Gaussian resolution model; None: none.
    single_ring : bool
        2D single-ring mode of the preset.
    half_life_s : float, optional
        Of the nuclide (decay during the scan).
    """

    preset: str
    scanner: PetScanner
    sinogram: SinogramSpec
    tof: bool
    sensitivity_cps_per_kbq: float
    sensitivity_factor: float
    psf_fwhm_mm: float | tuple[float, float, float] | None = None
    single_ring: bool = False
    half_life_s: float | None = None

    modality = Modality.PET

    def __post_init__(self) -> None:
        if not self.sensitivity_factor > 0 or not self.sensitivity_cps_per_kbq > 0:
            raise InputError("a PET system needs a positive sensitivity and calibration factor")
        if self.tof and not self.scanner.is_tof:
            raise InputError(f"PET system {self.preset!r}: tof=True but the scanner has no time of flight")

    def sinogram_definition(self) -> SinogramDefinition:
        return self.sinogram.definition(self.scanner)

    def to_dict(self) -> dict[str, Any]:
        psf = self.psf_fwhm_mm
        return {"modality": "PET", "preset": self.preset, "tof": bool(self.tof), "single_ring": bool(self.single_ring),
                "scanner": dataclasses.asdict(self.scanner),
                "psf_fwhm_mm": list(psf) if isinstance(psf, (tuple, list)) else psf,
                "sinogram": dataclasses.asdict(self.sinogram),
                "sensitivity_cps_per_kbq": float(self.sensitivity_cps_per_kbq),
                "sensitivity_factor": float(self.sensitivity_factor), "half_life_s": self.half_life_s}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PetSystemSpec":
        _need(d, ("preset", "scanner", "sinogram", "tof", "sensitivity_factor", "sensitivity_cps_per_kbq"), "system")
        p = dict(d["scanner"])
        for key in ("crystal_size_mm", "energy_window_kev", "block_crystals"):
            if key in p:
                p[key] = tuple(p[key])
        s = d["sinogram"]
        psf = d.get("psf_fwhm_mm")
        return cls(preset=str(d["preset"]), scanner=_build(PetScanner, p, "system.scanner"),
                   sinogram=SinogramSpec(int(s.get("span", 1)), s.get("max_ring_diff"), int(s.get("view_mashing", 1)),
                                         s.get("n_radial")),
                   tof=bool(d["tof"]), sensitivity_cps_per_kbq=float(d["sensitivity_cps_per_kbq"]),
                   sensitivity_factor=float(d["sensitivity_factor"]),
                   psf_fwhm_mm=tuple(psf) if isinstance(psf, list) else psf,
                   single_ring=bool(d.get("single_ring", False)), half_life_s=d.get("half_life_s"))


@dataclass(frozen=True)
class SpectSystemSpec:
    """Every parameter of a SPECT system model (rotate-and-sum projector, counts/s per view).

    Parameters
    ----------
    preset : str
        SPECT preset whose collimator models the detector response (``spect-lehr``, ``spect-me``).
    nuclide : str
    collimator : ParallelHoleCollimator
    angles_deg, radius_mm : tuple of float
        Detector angle and collimator-to-axis distance of every view (mm).
    psf : bool
        Distance-dependent collimator response.
    detector_shape : (int, int)
        Rows (axial) and columns of the photopeak projections.
    pixel_mm : (float, float)
        Detector pixel size (row, column) in mm.
    sensitivity_cps_per_mbq : float
        Planar sensitivity in the photopeak window (1.0 for measured data without a known sensitivity:
        the image is then in arbitrary units).
    photopeak_window : EnergyWindow
    measured : bool
        Data from a camera (True) or simulated.
    half_life_s : float, optional
    """

    preset: str
    nuclide: str
    collimator: ParallelHoleCollimator
    angles_deg: tuple[float, ...]
    radius_mm: tuple[float, ...]
    psf: bool
    detector_shape: tuple[int, int]
    pixel_mm: tuple[float, float]
    sensitivity_cps_per_mbq: float
    photopeak_window: EnergyWindow
    measured: bool = False
    half_life_s: float | None = None

    modality = Modality.SPECT

    def __post_init__(self) -> None:
        object.__setattr__(self, "angles_deg", _floats(self.angles_deg))
        object.__setattr__(self, "radius_mm", _floats(self.radius_mm))
        object.__setattr__(self, "detector_shape", tuple(int(v) for v in self.detector_shape))
        object.__setattr__(self, "pixel_mm", _floats(self.pixel_mm, 2, "pixel_mm"))
        if len(self.angles_deg) != len(self.radius_mm) or not self.angles_deg:
            raise InputError("a SPECT system needs one radius per view angle (and at least one view)")
        if not self.sensitivity_cps_per_mbq > 0:
            raise InputError("the SPECT sensitivity must be positive (cps/MBq)")

    @property
    def n_views(self) -> int:
        return len(self.angles_deg)

    def to_dict(self) -> dict[str, Any]:
        return {"modality": "SPECT", "preset": self.preset, "nuclide": self.nuclide, "measured": bool(self.measured),
                "collimator": dataclasses.asdict(self.collimator), "angles_deg": list(self.angles_deg),
                "radius_mm": list(self.radius_mm), "psf": bool(self.psf), "detector_shape": list(self.detector_shape),
                "pixel_mm": list(self.pixel_mm), "sensitivity_cps_per_mbq": float(self.sensitivity_cps_per_mbq),
                "photopeak_window": dataclasses.asdict(self.photopeak_window), "half_life_s": self.half_life_s}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SpectSystemSpec":
        _need(d, ("preset", "collimator", "angles_deg", "radius_mm", "detector_shape", "pixel_mm",
                  "sensitivity_cps_per_mbq", "photopeak_window"), "system")
        return cls(preset=str(d["preset"]), nuclide=str(d.get("nuclide") or ""),
                   collimator=_build(ParallelHoleCollimator, d["collimator"], "system.collimator"),
                   angles_deg=d["angles_deg"], radius_mm=d["radius_mm"], psf=bool(d.get("psf", True)),
                   detector_shape=d["detector_shape"], pixel_mm=d["pixel_mm"],
                   sensitivity_cps_per_mbq=float(d["sensitivity_cps_per_mbq"]),
                   photopeak_window=_build(EnergyWindow, d["photopeak_window"], "system.photopeak_window"),
                   measured=bool(d.get("measured", False)), half_life_s=d.get("half_life_s"))


SystemSpec = PetSystemSpec | SpectSystemSpec


def system_spec_from_dict(d: dict[str, Any]) -> SystemSpec:
    """The system record of an ``acquisition.json`` (``modality`` PET or SPECT)."""
    modality = str(d.get("modality", "")).upper()
    if modality == "PET":
        return PetSystemSpec.from_dict(d)
    if modality == "SPECT":
        return SpectSystemSpec.from_dict(d)
    raise FormatError(f"system.modality must be 'PET' or 'SPECT', got {d.get('modality')!r}")


def _need(d: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    if not isinstance(d, dict):
        raise FormatError(f"{where} must be a JSON object, got {type(d).__name__}")
    missing = [k for k in keys if k not in d]
    if missing:
        raise FormatError(f"{where} lacks {missing}")


def _build(cls: type, d: dict[str, Any], where: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise FormatError(f"{where}: unknown keys {sorted(unknown)}")
    try:
        return cls(**d)
    except TypeError as exc:
        raise FormatError(f"{where}: {exc}") from exc
