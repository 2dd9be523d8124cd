"""PET scanner geometry: cylindrical scanners, presets and the image grid the projectors use.

Coordinates
-----------
All lengths are in mm and positions are DICOM patient coordinates LPS ``(x, y, z)`` (see
:mod:`petspect.volume`). The scanner axis is the z axis and the scanner centre is the LPS origin.
Crystal ``c`` of ring ``r`` sits at angle ``phi_c = 2 pi c / crystals_per_ring`` on a circle of
``ring_radius_mm`` (the *effective* detection radius: crystal front face plus the mean depth of
interaction), ``x = R cos(phi_c)``, ``y = R sin(phi_c)``, ``z = (r - (n_rings - 1) / 2) * ring_spacing_mm``.
Block gaps and the polygonal shape of real detector rings are not modelled (a cylinder of evenly
spaced crystals, as in STIR's cylindrical scanners).

Presets (approximate published values; the source is given with each)
----------------------------------------------------------------------
``wholebody``
    Siemens Biograph Vision 600: 760 crystals per ring and 80 rings (blocks of 4 x 2 mini-blocks of
    5 x 5 crystals), 3.2 x 3.2 x 20 mm LSO, detector ring diameter 82 cm, axial FOV 26.1 cm,
    transaxial FOV 78 cm, TOF FWHM 214 ps, energy window 435-585 keV, coincidence window 4.7 ns.
    Source: van Sluis et al., "Performance characteristics of the digital Biograph Vision PET/CT
    system", J Nucl Med 60:1031 (2019). TOF binning (approx, not from that paper): 33 bins of
    143 ps, which together span the 4.7 ns coincidence window.
``brain``
    Siemens ECAT HRRT (an octagon of 8 heads, modelled here as a ring): 8 x 72 = 576 crystals per
    ring, 104 rings of 2.1 x 2.1 mm LSO/LYSO (2 x 7.5 mm layers) at 2.4375 mm pitch, detector
    diameter 46.9 cm, axial FOV 25.2 cm, transaxial FOV 31.2 cm, no TOF, energy window 400-650 keV,
    coincidence window 6 ns. Source: de Jong et al., "Performance evaluation of the ECAT HRRT",
    Phys Med Biol 52:1505 (2007).
``small-animal``
    Siemens Inveon: 16 blocks of 20 x 20 LSO crystals of 1.51 x 1.51 x 10 mm at 1.59 mm pitch, 320
    crystals per ring, 80 rings, ring diameter 161 mm, axial FOV 127 mm, transaxial FOV 100 mm, no
    TOF, energy window 350-650 keV, coincidence window 3.43 ns. Source: Constantinescu & Mukherjee,
    "Performance evaluation of an Inveon PET preclinical scanner", Phys Med Biol 54:2885 (2009);
    Bao et al., J Nucl Med 50:401 (2009).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
import torch

from petspect._registry import Registry
from petspect.errors import InputError
from petspect.units import tof_fwhm_ps_to_mm
from petspect.volume import AXIAL_DIRECTION, Volume

__all__ = ["PetScanner", "ImageGrid", "ListmodeEvents", "get_pet_scanner", "PET_SCANNERS", "SinogramCompression",
           "PRESET_COMPRESSION", "default_compression"]


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"{name} must be a positive finite number, got {value!r}")
    return value


@dataclass(frozen=True)
class PetScanner:
    """A cylindrical PET scanner (validated on construction).

    Parameters
    ----------
    name : str
        Label (preset name or free text).
    ring_radius_mm : float
        Effective detection radius (crystal front face plus mean depth of interaction), mm.
    crystals_per_ring : int
        Number of crystals around one ring (even).
    n_rings : int
        Number of crystal rings along the axis (1 for a 2D single-ring scanner).
    crystal_size_mm : (float, float, float)
        Crystal (transaxial, axial, depth) size in mm.
    ring_spacing_mm : float
        Axial distance between neighbouring ring centres (crystal pitch along z), mm.
    fov_diameter_mm : float
        Transaxial field of view (diameter), mm; sets the default number of radial bins.
    tof_fwhm_ps : float or None
        Coincidence timing resolution (FWHM) in ps; None for a non-TOF scanner.
    tof_bin_width_ps : float or None
        Width of one TOF bin in ps (None when not TOF).
    n_tof_bins : int
        Number of TOF bins (odd, centred on the LOR midpoint); 1 when not TOF.
    energy_window_kev : (float, float)
        Lower and upper energy thresholds, keV.
    coincidence_window_ns : float
        Full width ``2 tau`` of the coincidence timing window, ns.
    block_crystals : (int, int)
        Crystals per detector block (transaxial, axial); used by the normalisation model.
    crystal_mu_per_mm : float
        Linear attenuation coefficient of the scintillator at 511 keV, 1/mm (LSO ~0.087/mm).
    sensitivity_cps_per_kbq : float or None
        NEMA NU 2 total sensitivity (counts per second per kBq of a line source in air) that simulated
        counts are calibrated to (:func:`petspect.simulate.systems.pet_calibration_factor`); None: unknown.
    """

    name: str
    ring_radius_mm: float
    crystals_per_ring: int
    n_rings: int
    crystal_size_mm: tuple[float, float, float]
    ring_spacing_mm: float
    fov_diameter_mm: float
    tof_fwhm_ps: float | None = None
    tof_bin_width_ps: float | None = None
    n_tof_bins: int = 1
    energy_window_kev: tuple[float, float] = (435.0, 585.0)
    coincidence_window_ns: float = 4.7
    block_crystals: tuple[int, int] = (8, 8)
    crystal_mu_per_mm: float = 0.087
    sensitivity_cps_per_kbq: float | None = None

    def __post_init__(self) -> None:
        _positive("ring_radius_mm", self.ring_radius_mm)
        _positive("ring_spacing_mm", self.ring_spacing_mm)
        _positive("fov_diameter_mm", self.fov_diameter_mm)
        _positive("coincidence_window_ns", self.coincidence_window_ns)
        _positive("crystal_mu_per_mm", self.crystal_mu_per_mm)
        if self.sensitivity_cps_per_kbq is not None:
            _positive("sensitivity_cps_per_kbq", self.sensitivity_cps_per_kbq)
        if int(self.crystals_per_ring) < 4 or int(self.crystals_per_ring) % 2:
            raise InputError(f"crystals_per_ring must be an even number >= 4, got {self.crystals_per_ring}")
        if int(self.n_rings) < 1:
            raise InputError(f"n_rings must be >= 1, got {self.n_rings}")
        if len(self.crystal_size_mm) != 3:
            raise InputError("crystal_size_mm must be (transaxial, axial, depth) in mm")
        for v in self.crystal_size_mm:
            _positive("crystal_size_mm", v)
        if self.fov_diameter_mm >= 2 * self.ring_radius_mm:
            raise InputError(f"fov_diameter_mm ({self.fov_diameter_mm}) must be smaller than the ring "
                             f"diameter ({2 * self.ring_radius_mm})")
        lo, hi = self.energy_window_kev
        if not (0 < lo < hi):
            raise InputError(f"energy_window_kev must be (low, high) with 0 < low < high, got {self.energy_window_kev}")
        self._check_tof()
        if len(self.block_crystals) != 2 or min(self.block_crystals) < 1:
            raise InputError(f"block_crystals must be two positive ints, got {self.block_crystals}")

    def _check_tof(self) -> None:
        if self.tof_fwhm_ps is None:
            if self.n_tof_bins != 1:
                raise InputError("n_tof_bins must be 1 for a non-TOF scanner (tof_fwhm_ps=None)")
            return
        fwhm = _positive("tof_fwhm_ps", self.tof_fwhm_ps)
        if fwhm < 10:
            raise InputError(f"tof_fwhm_ps={fwhm} is implausibly small: is it in ns or mm? Give picoseconds")
        _positive("tof_bin_width_ps", self.tof_bin_width_ps if self.tof_bin_width_ps is not None else -1)
        if int(self.n_tof_bins) < 1 or int(self.n_tof_bins) % 2 == 0:
            raise InputError(f"n_tof_bins must be odd and >= 1, got {self.n_tof_bins}")

    # ------------------------------------------------------------------ derived quantities
    @property
    def is_tof(self) -> bool:
        """True when the scanner records time of flight."""
        return self.tof_fwhm_ps is not None

    @property
    def axial_fov_mm(self) -> float:
        """Axial extent covered by the rings (n_rings * ring_spacing_mm), mm."""
        return self.n_rings * self.ring_spacing_mm

    @property
    def tof_fwhm_mm(self) -> float:
        """TOF resolution as a FWHM along the LOR, mm (``c * dt / 2``)."""
        if self.tof_fwhm_ps is None:
            raise InputError(f"scanner {self.name!r} is not a TOF scanner")
        return tof_fwhm_ps_to_mm(self.tof_fwhm_ps)

    @property
    def tof_bin_width_mm(self) -> float:
        """Width of one TOF bin along the LOR, mm."""
        if self.tof_bin_width_ps is None:
            raise InputError(f"scanner {self.name!r} is not a TOF scanner")
        return tof_fwhm_ps_to_mm(self.tof_bin_width_ps)

    @property
    def coincidence_window_s(self) -> float:
        """Coincidence window ``2 tau`` in s."""
        return self.coincidence_window_ns * 1e-9

    def ring_z_mm(self) -> np.ndarray:
        """Axial positions (n_rings,) of the ring centres, mm (centred on z = 0)."""
        return (np.arange(self.n_rings) - (self.n_rings - 1) / 2.0) * self.ring_spacing_mm

    def crystal_angles_rad(self, index: Any = None) -> np.ndarray:
        """Angle of (fractional) transaxial crystal indices; all crystals when ``index`` is None."""
        idx = np.arange(self.crystals_per_ring) if index is None else np.asarray(index, dtype=np.float64)
        return 2.0 * np.pi * idx / self.crystals_per_ring

    def crystal_positions_mm(self) -> np.ndarray:
        """LPS positions (n_rings, crystals_per_ring, 3) of every crystal, mm."""
        phi = self.crystal_angles_rad()
        xy = self.ring_radius_mm * np.stack([np.cos(phi), np.sin(phi)], axis=-1)
        pos = np.zeros((self.n_rings, self.crystals_per_ring, 3))
        pos[..., :2] = xy[None]
        pos[..., 2] = self.ring_z_mm()[:, None]
        return pos

    def single_ring(self, ring_radius_mm: float | None = None, crystals_per_ring: int | None = None) -> "PetScanner":
        """The 2D version of this scanner: one ring (optionally with another radius / crystal count)."""
        return replace(self, name=f"{self.name}-2d", n_rings=1,
                       ring_radius_mm=self.ring_radius_mm if ring_radius_mm is None else ring_radius_mm,
                       crystals_per_ring=self.crystals_per_ring if crystals_per_ring is None else crystals_per_ring)

    def non_tof(self) -> "PetScanner":
        """This scanner without time of flight."""
        return replace(self, tof_fwhm_ps=None, tof_bin_width_ps=None, n_tof_bins=1)


PET_SCANNERS: Registry[PetScanner] = Registry("PET scanner", {
    "wholebody": PetScanner(
        name="wholebody", ring_radius_mm=410.0 + 0.5 * 5.0, crystals_per_ring=760, n_rings=80,
        crystal_size_mm=(3.2, 3.2, 20.0), ring_spacing_mm=261.0 / 80, fov_diameter_mm=780.0,
        tof_fwhm_ps=214.0, tof_bin_width_ps=143.0, n_tof_bins=33, energy_window_kev=(435.0, 585.0),
        coincidence_window_ns=4.7, block_crystals=(5, 5), sensitivity_cps_per_kbq=16.4),
    "brain": PetScanner(
        name="brain", ring_radius_mm=234.5 + 0.5 * 5.0, crystals_per_ring=576, n_rings=104,
        crystal_size_mm=(2.1, 2.1, 15.0), ring_spacing_mm=2.4375, fov_diameter_mm=312.0,
        energy_window_kev=(400.0, 650.0), coincidence_window_ns=6.0, block_crystals=(8, 8),
        sensitivity_cps_per_kbq=4.3),
    "small-animal": PetScanner(
        name="small-animal", ring_radius_mm=80.5 + 0.5 * 3.0, crystals_per_ring=320, n_rings=80,
        crystal_size_mm=(1.51, 1.51, 10.0), ring_spacing_mm=1.59, fov_diameter_mm=100.0,
        energy_window_kev=(350.0, 650.0), coincidence_window_ns=3.432, block_crystals=(20, 20),
        sensitivity_cps_per_kbq=67.2),
})
"""Preset scanners (see the module docstring for sources). Radii add a mean DOI of ~0.25 crystal depth.
NEMA NU 2 total sensitivities: Biograph Vision 600 16.4 cps/kBq (van Sluis et al, J Nucl Med 60:1031, 2019);
HRRT ~4.3 (de Jong et al, PMB 52:1505, 2007, 400-650 keV); Inveon 6.72 % = 67.2 cps/kBq (Constantinescu &
Mukherjee, PMB 54:2885, 2009)."""


@dataclass(frozen=True)
class SinogramCompression:
    """A scanner's default sinogram binning (what its vendor software histograms into).

    Parameters
    ----------
    span : int
        Axial compression (odd).
    max_ring_diff : int
        Largest ring difference kept.
    view_mashing : int
        Neighbouring views summed into one.
    n_radial : int
        Radial bins (even).
    source : str
        Where the numbers come from ("approx" where they are a choice, not a vendor value).
    """

    span: int
    max_ring_diff: int
    view_mashing: int
    n_radial: int
    source: str


PRESET_COMPRESSION: dict[str, SinogramCompression] = {
    "wholebody": SinogramCompression(
        span=19, max_ring_diff=79, view_mashing=4, n_radial=520,
        source="Biograph Vision: span 19, all 79 ring differences, 520 radial bins (OMEGA's Biograph_Vision_main.m "
               "machine settings); view mashing 4 (95 of 380 views) is approx: the vendor mashes its TOF sinograms "
               "much further (50 views of 400 crystal positions with gaps), which this gap-free model cannot match"),
    "brain": SinogramCompression(
        span=9, max_ring_diff=67, view_mashing=1, n_radial=256,
        source="HRRT: span 9, maximum ring difference 67, 256 radial bins x 288 views (de Jong et al, Phys Med Biol "
               "52:1505 (2007); approx: the vendor also offers span 3)"),
    "small-animal": SinogramCompression(
        span=3, max_ring_diff=79, view_mashing=1, n_radial=128,
        source="Inveon: span 3, maximum ring difference 79, 128 radial bins x 160 views (approx, the usual Inveon "
               "histogramming settings)"),
}
"""Vendor-like default sinogram compression of each preset (3D mode; a single-ring scanner keeps span 1)."""


def default_compression(scanner: "PetScanner | str") -> SinogramCompression:
    """The default compression of a preset scanner (by name or instance; ``-2d`` variants: span 1, no MRD).

    Raises :class:`InputError` for a scanner that is not a preset (give span and mashing yourself).
    """
    name = scanner if isinstance(scanner, str) else scanner.name
    key = name.lower().replace("_", "-")
    two_d = key.endswith("-2d") or (not isinstance(scanner, str) and scanner.n_rings == 1)
    key = key.removesuffix("-2d")
    if key not in PRESET_COMPRESSION:
        raise InputError(f"no default compression for PET scanner {name!r}; presets: {sorted(PRESET_COMPRESSION)}")
    c = PRESET_COMPRESSION[key]
    if two_d:
        return replace(c, span=1, max_ring_diff=0, source=c.source + "; single ring: no axial compression")
    return c


def get_pet_scanner(name: str, *, single_ring: bool = False) -> PetScanner:
    """A preset scanner by name (``wholebody``, ``brain``, ``small-animal``); 2D with ``single_ring``."""
    scanner = PET_SCANNERS.lookup(str(name).replace("_", "-"))
    return scanner.single_ring() if single_ring else scanner


@dataclass(frozen=True)
class ImageGrid:
    """A Volume-like image grid in the scanner: shape (z, y, x), spacing (dz, dy, dx) mm, axial orientation.

    Parameters
    ----------
    shape : (int, int, int)
        Voxels along (z, y, x).
    spacing_mm : (float, float, float)
        Voxel size (dz, dy, dx), mm.
    origin_mm : (float, float, float) or None
        LPS (x, y, z) of the centre of voxel [0, 0, 0], mm; None centres the grid on the scanner
        centre (the LPS origin).
    """

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        spacing = tuple(float(s) for s in np.broadcast_to(np.asarray(self.spacing_mm, dtype=float), (3,)))
        if len(shape) != 3 or min(shape) < 1:
            raise InputError(f"image shape must be 3 positive ints (z, y, x), got {self.shape}")
        if min(spacing) <= 0 or not all(math.isfinite(s) for s in spacing):
            raise InputError(f"spacing_mm must be positive, got {self.spacing_mm}")
        if self.origin_mm is None:
            origin = tuple(-(n - 1) * s / 2.0 for n, s in zip(reversed(shape), reversed(spacing)))
        else:
            origin = tuple(float(o) for o in self.origin_mm)
            if len(origin) != 3:
                raise InputError(f"origin_mm must be LPS (x, y, z), got {self.origin_mm}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing_mm", spacing)
        object.__setattr__(self, "origin_mm", origin)

    @classmethod
    def from_volume(cls, volume: Volume) -> "ImageGrid":
        """The grid of a Volume in the standard axial orientation."""
        if not np.allclose(np.asarray(volume.direction), np.asarray(AXIAL_DIRECTION), atol=1e-6):
            raise InputError("PET projectors need a Volume in the standard axial orientation; resample it first")
        return cls(volume.shape, volume.spacing_mm, volume.origin_mm)

    def volume(self, data: Any, *, unit: str = "a.u.", modality: str | None = None) -> Volume:
        """A Volume on this grid holding ``data`` (shape ``self.shape``)."""
        return Volume(data, self.spacing_mm, self.origin_mm, AXIAL_DIRECTION, unit=unit, modality=modality)

    def world_to_index(self, points_mm: torch.Tensor) -> torch.Tensor:
        """Fractional voxel indices (..., 3) in (z, y, x) order of LPS points (..., 3) (x, y, z), mm."""
        origin = torch.tensor(self.origin_mm[::-1], dtype=points_mm.dtype, device=points_mm.device)
        spacing = torch.tensor(self.spacing_mm, dtype=points_mm.dtype, device=points_mm.device)
        return (points_mm.flip(-1) - origin) / spacing

    def index_to_world(self, index_zyx: torch.Tensor) -> torch.Tensor:
        """LPS points (..., 3) (x, y, z) in mm of fractional voxel indices (..., 3) in (z, y, x) order."""
        origin = torch.tensor(self.origin_mm[::-1], dtype=index_zyx.dtype, device=index_zyx.device)
        spacing = torch.tensor(self.spacing_mm, dtype=index_zyx.dtype, device=index_zyx.device)
        return (index_zyx * spacing + origin).flip(-1)

    def voxel_centres_mm(self, *, device: Any = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """LPS coordinates (nz, ny, nx, 3) of every voxel centre, mm."""
        axes = [torch.arange(n, device=device, dtype=dtype) for n in self.shape]
        idx = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
        return self.index_to_world(idx)

    def occupancy(self, inside, *, supersample: int = 4, device: Any = None,
                  dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Fraction (nz, ny, nx) of each voxel inside a shape, by ``supersample``^3 sub-voxel points.

        ``inside(points_mm) -> bool tensor`` takes LPS points (..., 3) in mm. With ``nz == 1`` the
        z direction is not subsampled (2D grids).
        """
        n = int(supersample)
        off = (torch.arange(n, device=device, dtype=dtype) + 0.5) / n - 0.5
        offz = off if self.shape[0] > 1 else torch.zeros(1, device=device, dtype=dtype)
        sub = torch.stack(torch.meshgrid(offz, off, off, indexing="ij"), dim=-1).reshape(-1, 3)
        total = torch.zeros(self.shape, device=device, dtype=dtype)
        centres = torch.stack(torch.meshgrid(*[torch.arange(s, device=device, dtype=dtype) for s in self.shape],
                                             indexing="ij"), dim=-1)
        for o in sub:
            total += inside(self.index_to_world(centres + o)).to(dtype)
        return total / sub.shape[0]


@dataclass
class ListmodeEvents:
    """List-mode coincidences: LOR endpoints and (optionally) the TOF bin of each event.

    Parameters
    ----------
    start_mm, end_mm : torch.Tensor, shape (n_events, 3)
        LPS positions (x, y, z) of the two detected photons, mm. TOF bins count from the LOR
        midpoint towards ``end_mm``.
    tof_bin : torch.Tensor or None, shape (n_events,)
        Integer TOF bin index in ``0 .. n_tof_bins - 1`` (centre bin ``n_tof_bins // 2``).
    """

    start_mm: torch.Tensor
    end_mm: torch.Tensor
    tof_bin: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.start_mm = torch.as_tensor(self.start_mm)
        self.end_mm = torch.as_tensor(self.end_mm)
        if self.start_mm.ndim != 2 or self.start_mm.shape[-1] != 3 or self.start_mm.shape != self.end_mm.shape:
            raise InputError(f"start_mm and end_mm must both be (n_events, 3), got "
                             f"{tuple(self.start_mm.shape)} and {tuple(self.end_mm.shape)}")
        if self.tof_bin is not None:
            self.tof_bin = torch.as_tensor(self.tof_bin, dtype=torch.long)
            if self.tof_bin.shape != self.start_mm.shape[:1]:
                raise InputError("tof_bin must have one entry per event")

    def __len__(self) -> int:
        return int(self.start_mm.shape[0])

    @classmethod
    def from_sinogram_bins(cls, start_mm: torch.Tensor, end_mm: torch.Tensor,
                           tof_bin: Sequence[int] | torch.Tensor | None = None) -> "ListmodeEvents":
        """Events from LOR endpoint arrays of any leading shape (flattened)."""
        return cls(start_mm.reshape(-1, 3), end_mm.reshape(-1, 3),
                   None if tof_bin is None else torch.as_tensor(tof_bin).reshape(-1))
