"""SPECT camera geometry: parallel-hole collimators, energy windows, system presets and orbits.

All lengths in mm, energies in keV, sensitivities in counts per second per MBq (cps/MBq).

Collimator resolution
---------------------
A parallel-hole collimator with hole diameter ``d``, hole length ``L`` and septa of linear
attenuation ``mu`` has the effective length ``L_eff = L - 2 / mu`` (septal penetration at the hole
ends, Anger 1964; Cherry, Sorenson & Phelps, *Physics in Nuclear Medicine*, 4th ed., ch. 14). A point
source at distance ``z`` from the collimator face is seen with geometric FWHM

    R_g(z) = d (L_eff + z + b) / L_eff

where ``b`` is the distance from the collimator back face to the mean interaction depth in the
crystal (``gap_mm``; 0 gives the textbook formula with ``z`` measured from the face alone). The
system FWHM adds the intrinsic (crystal and electronics) resolution in quadrature:
``R_sys = sqrt(R_g^2 + R_int^2)``.

Angles and orbits
-----------------
Detector angles follow :mod:`petspect.geometry.spect_data`: 0 deg is the detector above a supine
patient (anterior). In petspect's model the angle grows clockwise as seen from the patient's feet,
so at 90 deg the detector faces the patient's left (+x in LPS). The detector normal pointing from
the rotation axis to the detector is ``n = (sin a, -cos a)`` in LPS ``(x, y)``; detector columns run
along ``t = (cos a, sin a)`` (patient left at 0 deg, as an anterior planar view is displayed).

DICOM NM defines angles differently (PS3.3 C.8.4.12, Start Angle): 0 deg at the patient's back,
increasing counter-clockwise seen from the feet (towards the patient's left), CW = decreasing angle.
:func:`angles_from_dicom` converts: ``a_petspect = 180 - a_DICOM``. This is the mapping that makes
petspect's projections equal PyTomography's (whose DICOM reader is validated on scanner data) on the
same object: ``benchmarks/bench_spect.py`` finds it by matching, to 4.5e-7 without PSF.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from petspect._registry import Registry
from petspect.errors import ConfigError, InputError
from petspect.geometry.spect_data import EnergyWindow

#: Lead density in g/cm^3 (CRC Handbook).
LEAD_DENSITY_G_CM3 = 11.35
#: Thickness of the usual 3/8 inch NaI(Tl) crystal in mm.
CRYSTAL_3_8_INCH_MM = 9.525


def lead_mu_per_mm(energy_kev: float) -> float:
    """Linear attenuation coefficient of lead in 1/mm at ``energy_kev`` (xraydb, total with coherent)."""
    import xraydb

    return float(xraydb.material_mu("Pb", energy_kev * 1e3, density=LEAD_DENSITY_G_CM3)) / 10.0


def nai_interaction_probability(energy_kev: float, thickness_mm: float = CRYSTAL_3_8_INCH_MM) -> float:
    """Probability that a normally incident photon interacts in a NaI(Tl) crystal: ``1 - exp(-mu t)``."""
    import xraydb

    mu = float(xraydb.material_mu("NaI", energy_kev * 1e3, density=3.67)) / 10.0
    return 1.0 - math.exp(-mu * thickness_mm)


@dataclass(frozen=True)
class ParallelHoleCollimator:
    """A parallel-hole collimator and the intrinsic resolution of the camera behind it.

    Parameters
    ----------
    name : str
        Short name ("LEHR", "ME", ...).
    hole_diameter_mm : float
        Hole diameter ``d`` (flat-to-flat for hexagonal holes), mm.
    hole_length_mm : float
        Hole (septal) length ``L``, mm.
    septal_thickness_mm : float
        Septal thickness ``t``, mm.
    septal_mu_per_mm : float
        Linear attenuation of the septal material at the imaged energy, 1/mm (lead: 2.69/mm at
        140.5 keV, 1.03/mm at 208 keV, xraydb).
    intrinsic_fwhm_mm : float
        Intrinsic resolution of the camera (crystal + electronics) at the imaged energy, mm FWHM.
    gap_mm : float
        Collimator back face to the mean interaction depth in the crystal, mm (``b`` above).
    """

    name: str
    hole_diameter_mm: float
    hole_length_mm: float
    septal_thickness_mm: float
    septal_mu_per_mm: float
    intrinsic_fwhm_mm: float
    gap_mm: float = 0.0

    def __post_init__(self) -> None:
        for key in ("hole_diameter_mm", "hole_length_mm", "septal_mu_per_mm"):
            if not getattr(self, key) > 0:
                raise InputError(f"collimator {self.name!r}: {key} must be positive, got {getattr(self, key)}")
        if self.septal_thickness_mm < 0 or self.intrinsic_fwhm_mm < 0 or self.gap_mm < 0:
            raise InputError(f"collimator {self.name!r}: septal thickness, intrinsic FWHM and gap must be >= 0")
        if self.effective_length_mm <= 0:
            raise InputError(f"collimator {self.name!r}: effective length L - 2/mu = {self.effective_length_mm:.3g} "
                             "mm is not positive (septal mu in 1/mm?)")

    @property
    def effective_length_mm(self) -> float:
        """``L_eff = L - 2 / mu_septa`` in mm."""
        return self.hole_length_mm - 2.0 / self.septal_mu_per_mm

    def geometric_fwhm_mm(self, distance_mm):
        """Geometric FWHM ``d (L_eff + z + b) / L_eff`` (mm) at distance(s) ``z`` from the collimator face.

        ``distance_mm`` may be a float or a tensor; negative distances are clamped to 0.
        """
        z = distance_mm.clamp(min=0.0) if isinstance(distance_mm, torch.Tensor) else max(float(distance_mm), 0.0)
        leff = self.effective_length_mm
        return self.hole_diameter_mm * (leff + z + self.gap_mm) / leff

    def system_fwhm_mm(self, distance_mm):
        """System FWHM ``sqrt(R_g(z)^2 + R_int^2)`` in mm (float or tensor, like the input)."""
        rg = self.geometric_fwhm_mm(distance_mm)
        if isinstance(rg, torch.Tensor):
            return torch.sqrt(rg * rg + self.intrinsic_fwhm_mm ** 2)
        return math.hypot(rg, self.intrinsic_fwhm_mm)

    def geometric_efficiency(self, hole_shape_factor: float = 0.26) -> float:
        """Fraction of emitted photons passing the collimator: ``K^2 d^4 / (L_eff^2 (d + t)^2)``.

        ``K`` = 0.26 for hexagonal holes (Cherry, Sorenson & Phelps, eq. 14-8).
        """
        d, t = self.hole_diameter_mm, self.septal_thickness_mm
        return hole_shape_factor ** 2 * d ** 4 / (self.effective_length_mm ** 2 * (d + t) ** 2)


@dataclass(frozen=True)
class SpectSystem:
    """A SPECT acquisition protocol: collimator, nuclide lines, energy windows and matrix defaults.

    Parameters
    ----------
    name : str
        Preset name ("spect-lehr", "spect-me").
    nuclide : str
        "Tc-99m", "Lu-177", ...
    collimator : ParallelHoleCollimator
        The collimator at the photopeak energy.
    photon_lines : tuple of (energy_kev, yield_per_decay)
        Gamma lines that the simulation models (the photopeak line first).
    energy_windows : tuple of EnergyWindow
        All acquired windows; ``photopeak_window`` indexes the main photopeak.
    photopeak_window : int
        Index of the photopeak in ``energy_windows``.
    sensitivity_cps_per_mbq : float
        Counts per second per MBq of a point source in air in the photopeak window, one detector.
    energy_resolution_fwhm_140 : float
        Intrinsic energy resolution as a fraction of the energy (FWHM) at 140 keV; scaled with
        ``E^-1/2`` to other energies.
    matrix : (int, int)
        Detector (rows, cols) default.
    pixel_mm : float
        Detector pixel size (square) in mm.
    n_views : int
        Default number of views over 360 deg.
    radius_mm : float
        Default radius of rotation (collimator face to axis), mm.
    frame_duration_s : float
        Default time per view, s.
    references : tuple of str
        Where the numbers come from.
    """

    name: str
    nuclide: str
    collimator: ParallelHoleCollimator
    photon_lines: tuple[tuple[float, float], ...]
    energy_windows: tuple[EnergyWindow, ...]
    photopeak_window: int
    sensitivity_cps_per_mbq: float
    energy_resolution_fwhm_140: float = 0.099
    matrix: tuple[int, int] = (128, 128)
    pixel_mm: float = 4.7952
    n_views: int = 120
    radius_mm: float = 250.0
    frame_duration_s: float = 20.0
    references: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not 0 <= self.photopeak_window < len(self.energy_windows):
            raise ConfigError(f"system {self.name!r}: photopeak_window out of range")
        if self.sensitivity_cps_per_mbq <= 0 or self.pixel_mm <= 0 or self.radius_mm <= 0:
            raise ConfigError(f"system {self.name!r}: sensitivity, pixel size and radius must be positive")

    @property
    def photopeak(self) -> EnergyWindow:
        return self.energy_windows[self.photopeak_window]

    def window_index(self, name: str) -> int:
        """Index of the energy window called ``name``."""
        for i, w in enumerate(self.energy_windows):
            if w.name == name:
                return i
        raise InputError(f"system {self.name!r} has no window {name!r}; have {[w.name for w in self.energy_windows]}")

    def energy_fwhm_kev(self, energy_kev: float) -> float:
        """Energy resolution FWHM in keV at ``energy_kev`` (``r_140 sqrt(140 / E) E``)."""
        return self.energy_resolution_fwhm_140 * math.sqrt(140.0 / energy_kev) * energy_kev

    def circular_orbit(self, n_views: int | None = None, radius_mm: float | None = None,
                       start_deg: float = 0.0, arc_deg: float = 360.0) -> tuple[torch.Tensor, torch.Tensor]:
        """``(angles_deg, radius_mm)`` of a circular orbit with this system's defaults."""
        return circular_orbit(n_views or self.n_views, radius_mm or self.radius_mm, start_deg=start_deg, arc_deg=arc_deg)


def window_around(name: str, centre_kev: float, width_frac: float) -> EnergyWindow:
    """A window of relative width ``width_frac`` (e.g. 0.20 for 20 %) centred on ``centre_kev``."""
    half = 0.5 * width_frac * centre_kev
    return EnergyWindow(name, centre_kev - half, centre_kev + half)


def adjacent_windows(peak: EnergyWindow, width_frac: float, prefix: str = "") -> tuple[EnergyWindow, EnergyWindow]:
    """Lower and upper scatter windows of width ``width_frac * centre`` touching the photopeak window."""
    width = width_frac * peak.centre_kev
    return (EnergyWindow(f"{prefix}scatter_low", peak.lower_kev - width, peak.lower_kev),
            EnergyWindow(f"{prefix}scatter_up", peak.upper_kev, peak.upper_kev + width))


def _lehr() -> SpectSystem:
    energy = 140.5
    # Siemens Symbia LEHR data sheet: hole 1.11 mm, length 24.05 mm, septa 0.16 mm, geometric
    # resolution 6.4 mm and system resolution 7.5 mm at 10 cm, sensitivity 202 cpm/uCi (= 91 cps/MBq);
    # intrinsic resolution 3.8 mm FWHM (UFOV, 3/8" crystal), energy resolution <= 9.9 % at 140 keV.
    # gap_mm = 9.5 mm (collimator back to mean depth in the crystal) reproduces the quoted 6.4 mm
    # geometric FWHM at 100 mm with L_eff = L - 2/mu (mu of lead at 140.5 keV from xraydb).
    coll = ParallelHoleCollimator("LEHR", 1.11, 24.05, 0.16, lead_mu_per_mm(energy), 3.8, gap_mm=9.5)
    peak = window_around("photopeak", energy, 0.20)
    low, up = adjacent_windows(peak, 0.06)
    return SpectSystem(
        name="spect-lehr", nuclide="Tc-99m", collimator=coll, photon_lines=((energy, 0.885),),
        energy_windows=(peak, low, up), photopeak_window=0,
        sensitivity_cps_per_mbq=202.0 / 60.0 / 0.037, energy_resolution_fwhm_140=0.099,
        matrix=(128, 128), pixel_mm=4.7952, n_views=120, radius_mm=250.0, frame_duration_s=20.0,
        references=("Siemens Healthineers, Symbia Intevo / Symbia T series collimator specifications "
                    "(LEHR: 1.11 mm hole, 24.05 mm length, 0.16 mm septa, 202 cpm/uCi, 7.5 mm at 10 cm)",
                    "Tc-99m 140.5 keV yield 0.885 (NNDC / ICRP-107)",
                    "TEW windows: Ogawa et al, IEEE TMI 10 (1991) 408"))


def _me_lu177() -> SpectSystem:
    energy = 208.4
    # Siemens Symbia ME data sheet: hole 2.94 mm, length 40.64 mm, septa 1.14 mm, 275 cpm/uCi
    # (124 cps/MBq) for Tc-99m. Scaled to Lu-177 at 208 keV by the photon yield ratio (0.104 / 0.885)
    # and the NaI interaction probability ratio P(208) / P(140) of a 3/8" crystal (xraydb), which gives
    # ~11 cps/MBq, in line with measured ME Lu-177 sensitivities (~9-12 cps/MBq, e.g. Uribe et al,
    # EJNMMI Phys 4 (2017) 2). Intrinsic resolution at 208 keV ~3.8 * sqrt(140/208) ~ 3.2 mm (approx).
    coll = ParallelHoleCollimator("ME", 2.94, 40.64, 1.14, lead_mu_per_mm(energy), 3.2, gap_mm=9.5)
    peak = window_around("photopeak", energy, 0.20)
    low, up = adjacent_windows(peak, 0.10)
    peak113 = window_around("photopeak_113", 112.9, 0.20)
    low113, up113 = adjacent_windows(peak113, 0.10, prefix="p113_")
    tc_sens = 275.0 / 60.0 / 0.037
    sens = tc_sens * (0.1038 / 0.885) * nai_interaction_probability(energy) / nai_interaction_probability(140.5)
    return SpectSystem(
        name="spect-me", nuclide="Lu-177", collimator=coll, photon_lines=((energy, 0.1038), (112.9, 0.0620)),
        energy_windows=(peak, low, up, peak113, low113, up113), photopeak_window=0,
        sensitivity_cps_per_mbq=sens, energy_resolution_fwhm_140=0.099,
        matrix=(128, 128), pixel_mm=4.7952, n_views=120, radius_mm=250.0, frame_duration_s=30.0,
        references=("Siemens Healthineers, Symbia collimator specifications (ME: 2.94 mm hole, 40.64 mm "
                    "length, 1.14 mm septa, 275 cpm/uCi)",
                    "Lu-177 lines 208.4 keV (10.38 %) and 112.9 keV (6.20 %), NNDC / ICRP-107",
                    "Ljungberg et al, MIRD Pamphlet 26, J Nucl Med 57 (2016) 151 (Lu-177 windows)"))


#: SPECT system presets (factories; :func:`get_spect_system` builds each once).
SPECT_SYSTEMS: Registry[Callable[[], SpectSystem]] = Registry("SPECT system",
                                                              {"spect-lehr": _lehr, "spect-me": _me_lu177})
_CACHE: dict[str, SpectSystem] = {}


def spect_system_names() -> list[str]:
    """Names accepted by :func:`get_spect_system`."""
    return SPECT_SYSTEMS.names()


def get_spect_system(name: str, **overrides) -> SpectSystem:
    """A SPECT preset by name (``"spect-lehr"``: Tc-99m LEHR; ``"spect-me"``: Lu-177 medium energy).

    Keyword ``overrides`` replace fields of the preset (e.g. ``radius_mm=200``).
    """
    key = str(name).lower()
    factory = SPECT_SYSTEMS.lookup(key)
    if key not in _CACHE:
        _CACHE[key] = factory()
    return replace(_CACHE[key], **overrides) if overrides else _CACHE[key]


def circular_orbit(n_views: int, radius_mm: float, *, start_deg: float = 0.0,
                   arc_deg: float = 360.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Angles (deg) and radii (mm) of ``n_views`` equally spaced views over ``arc_deg``, float64 tensors."""
    if n_views < 1 or radius_mm <= 0:
        raise InputError(f"need n_views >= 1 and radius_mm > 0, got {n_views}, {radius_mm}")
    angles = start_deg + arc_deg * torch.arange(n_views, dtype=torch.float64) / n_views
    return angles, torch.full((n_views,), float(radius_mm), dtype=torch.float64)


def angles_from_dicom(start_angle_deg: float, angular_step_deg: float, rotation_direction: str,
                      n_views: int) -> torch.Tensor:
    """petspect detector angles (deg, float64, shape (n_views,)) of a DICOM NM TOMO rotation.

    DICOM angle of view ``k``: ``start + k step`` for ``CC`` (counter-clockwise, increasing) and
    ``start - k step`` for ``CW``; petspect's angle is ``(180 - DICOM angle) mod 360`` (module notes).
    """
    direction = rotation_direction.strip().upper()
    if direction not in ("CW", "CC", "CCW"):
        raise InputError(f"rotation direction must be CW or CC, got {rotation_direction!r}")
    sign = -1.0 if direction == "CW" else 1.0
    dicom = start_angle_deg + sign * angular_step_deg * torch.arange(n_views, dtype=torch.float64)
    return torch.remainder(180.0 - dicom, 360.0)


def detector_normal(angles_deg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit vectors ``n`` (axis to detector) and ``t`` (detector columns) in LPS ``(x, y)``, each (V, 2)."""
    a = torch.deg2rad(torch.as_tensor(angles_deg, dtype=torch.float64))
    n = torch.stack([torch.sin(a), -torch.cos(a)], dim=-1)
    t = torch.stack([torch.cos(a), torch.sin(a)], dim=-1)
    return n, t


def body_contour_orbit(body_mask: torch.Tensor, voxel_mm: tuple[float, float, float], angles_deg,
                       *, margin_mm: float = 20.0, min_radius_mm: float = 0.0) -> torch.Tensor:
    """Radius per view of a body-contour orbit that clears ``body_mask`` by ``margin_mm``.

    The grid centre is on the rotation axis. For each view the collimator face sits at the largest
    projection ``p . n`` of a body voxel (corner included) onto the detector normal, plus the margin.

    Parameters
    ----------
    body_mask : torch.Tensor, shape (nz, ny, nx)
        True inside the body (or any non-zero value).
    voxel_mm : (dz, dy, dx)
        Voxel size in mm.
    angles_deg : array_like, shape (V,)
        Detector angles.

    Returns
    -------
    torch.Tensor, shape (V,), float64
        Radius of rotation per view in mm.
    """
    mask2d = torch.as_tensor(body_mask).reshape(body_mask.shape[0], *body_mask.shape[-2:]).ne(0).any(dim=0)
    ny, nx = mask2d.shape
    iy, ix = torch.nonzero(mask2d, as_tuple=True)
    if iy.numel() == 0:
        raise InputError("body_contour_orbit: the body mask is empty")
    dy, dx = float(voxel_mm[1]), float(voxel_mm[2])
    x = (ix.double() - (nx - 1) / 2) * dx
    y = (iy.double() - (ny - 1) / 2) * dy
    n, _ = detector_normal(torch.as_tensor(angles_deg).reshape(-1))
    reach = (x[None] * n[:, :1] + y[None] * n[:, 1:]).amax(dim=1)
    half_diag = 0.5 * math.hypot(dx, dy)
    return (reach + half_diag + margin_mm).clamp(min=min_radius_mm)
