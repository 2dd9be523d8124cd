"""Parallel-hole collimator presets of common SPECT cameras, and their choice from a DICOM header.

Each preset holds what a vendor states of the collimator (hole diameter flat-to-flat, hole length and
septal thickness, in mm) and the camera's intrinsic resolution at 140 keV. :meth:`CollimatorPreset.at_energy`
makes the :class:`~petspect.geometry.spect.ParallelHoleCollimator` of the photopeak being imaged: septal
attenuation of lead at that energy (xraydb) and the intrinsic resolution scaled as ``E^-1/2`` (Poisson
statistics of the scintillation light, approx).

Sources of the hole dimensions
------------------------------
* GE (Infinia, Discovery NM/CT 670, Optima 640 heads, "Infinia" records) and Siemens Symbia ("SY"
  records), Philips BrightView ("PB" records): the collimator database ``collim.col`` of the SIMIND Monte
  Carlo program (Ljungberg), distributed with PyTomography (``src/pytomography/data/collim.col``), which
  transcribes the vendors' data sheets. GE LEHR (1.5 / 35 / 0.2 mm) and MEGP (3.0 / 58 / 1.05 mm) also match
  OpenGATE's GE NM670 head model (``opengate/contrib/spect/ge_discovery_nm670.py``).
* Siemens LEHR and ME: the Symbia collimator specifications (as in :mod:`petspect.geometry.spect`).
* Intrinsic resolution at 140 keV (UFOV, 3/8" NaI): GE Discovery 670 ~3.9 mm, Siemens Symbia 3.8 mm,
  Philips BrightView ~3.9 mm (approx, vendor data sheets).
* ``gap_mm`` (collimator back face to the mean interaction depth): 9.5 mm for all (approx; it reproduces
  Siemens' LEHR geometric resolution at 10 cm, see :func:`petspect.geometry.spect._lehr`).

DICOM names
-----------
Cameras write the collimator in CollimatorGridName (0018,1180) of the DetectorInformationSequence, with
CollimatorType (0018,1181) (``PARA`` parallel, ``PINH`` pinhole, ``FANB`` fan beam, ``CONE``, ...) and the
vendor in Manufacturer (0008,0070). The same short name means different holes at different vendors (GE's
LEHR is not Siemens' LEHR), so a name is resolved only together with the vendor; anything else is refused
with the list of presets, never guessed.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from petspect._registry import Registry
from petspect.errors import InputError
from petspect.geometry.spect import ParallelHoleCollimator, lead_mu_per_mm

__all__ = ["COLLIMATORS", "CollimatorPreset", "collimator_names", "collimator_from_header", "get_collimator",
           "vendor_of"]

#: Energy at which the intrinsic resolutions are stated, keV (Tc-99m).
REFERENCE_KEV = 140.5
#: CollimatorType (0018,1181) values that are not parallel-hole, with their meaning (DICOM PS3.3 C.8.4.10).
NON_PARALLEL_TYPES = {"PINH": "pinhole", "FANB": "fan-beam", "CONE": "cone-beam", "SLNT": "slant-hole",
                      "ASTG": "astigmatic", "DIVG": "diverging", "NONE": "no collimator"}


@dataclass(frozen=True)
class CollimatorPreset:
    """A vendor's parallel-hole collimator.

    Parameters
    ----------
    key : str
        Preset name (``"ge-megp"``), as ``--collimator`` takes it.
    vendor : str
        ``"GE"``, ``"Siemens"``, ``"Philips"``.
    name : str
        The vendor's name of the collimator.
    hole_diameter_mm, hole_length_mm, septal_thickness_mm : float
        Hole diameter (flat-to-flat, hexagonal holes), hole length and septal thickness, mm.
    intrinsic_fwhm_140_mm : float
        Intrinsic resolution of the camera at 140 keV, mm FWHM.
    max_energy_kev : float
        Highest photopeak the collimator is meant for (approx: low energy 160, extended low 200, medium 300,
        high 400 keV; septal penetration grows above it and is not modelled).
    dicom_names : tuple of str
        Upper-case CollimatorGridName values this vendor writes for it.
    source : str
        Where the numbers come from.
    gap_mm : float
        Collimator back face to the mean interaction depth, mm (approx).
    """

    key: str
    vendor: str
    name: str
    hole_diameter_mm: float
    hole_length_mm: float
    septal_thickness_mm: float
    intrinsic_fwhm_140_mm: float
    max_energy_kev: float
    dicom_names: tuple[str, ...]
    source: str
    gap_mm: float = 9.5

    def at_energy(self, energy_kev: float) -> ParallelHoleCollimator:
        """The collimator imaging ``energy_kev``: lead attenuation and intrinsic resolution at that energy.

        Warns when ``energy_kev`` lies above the collimator's design energy (``max_energy_kev``).
        """
        energy = float(energy_kev)
        if not energy > 0:
            raise InputError(f"collimator {self.key}: photopeak energy must be positive, got {energy_kev}")
        if energy > self.max_energy_kev:
            warnings.warn(f"collimator {self.key} is designed for photopeaks up to {self.max_energy_kev:g} keV; "
                          f"at {energy:g} keV septal penetration, which the model ignores, blurs the image",
                          stacklevel=2)
        intrinsic = self.intrinsic_fwhm_140_mm * math.sqrt(REFERENCE_KEV / energy)
        return ParallelHoleCollimator(self.key, self.hole_diameter_mm, self.hole_length_mm, self.septal_thickness_mm,
                                      lead_mu_per_mm(energy), intrinsic, gap_mm=self.gap_mm)

    def describe(self) -> str:
        return (f"{self.key}: {self.vendor} {self.name}, hole {self.hole_diameter_mm:g} mm, length "
                f"{self.hole_length_mm:g} mm, septa {self.septal_thickness_mm:g} mm")


_SIMIND = "SIMIND collim.col (as in PyTomography src/pytomography/data/collim.col), record "
_GE_INT, _SIEMENS_INT, _PHILIPS_INT = 3.9, 3.8, 3.9  # mm FWHM at 140 keV, approx (data sheets)
_PRESETS = (
    CollimatorPreset("ge-lehr", "GE", "LEHR", 1.5, 35.0, 0.2, _GE_INT, 160.0, ("LEHR",),
                     _SIMIND + "GI-LEHR / G8-LEHR; OpenGATE GE NM670 LEHR"),
    CollimatorPreset("ge-legp", "GE", "LEGP", 1.9, 35.0, 0.2, _GE_INT, 160.0, ("LEGP",), _SIMIND + "GI-LEGP"),
    CollimatorPreset("ge-elegp", "GE", "ELEGP", 2.5, 40.0, 0.4, _GE_INT, 200.0, ("ELEGP",),
                     _SIMIND + "GI-ELEG"),
    CollimatorPreset("ge-megp", "GE", "MEGP", 3.0, 58.0, 1.05, _GE_INT, 300.0, ("MEGP",),
                     _SIMIND + "GI-MEGP; OpenGATE GE NM670 MEGP"),
    CollimatorPreset("ge-hegp", "GE", "HEGP", 4.0, 66.0, 1.8, _GE_INT, 400.0, ("HEGP",), _SIMIND + "GI-HEGP"),
    CollimatorPreset("siemens-lehr", "Siemens", "LEHR", 1.11, 24.05, 0.16, _SIEMENS_INT, 160.0, ("LEHR",),
                     "Siemens Symbia collimator specifications; " + _SIMIND + "SY-LEHR"),
    CollimatorPreset("siemens-leap", "Siemens", "LEAP", 1.45, 24.05, 0.2, _SIEMENS_INT, 160.0, ("LEAP",),
                     _SIMIND + "SY-LEAP"),
    CollimatorPreset("siemens-me", "Siemens", "ME (MELP)", 2.94, 40.64, 1.14, _SIEMENS_INT, 300.0,
                     ("ME", "MELP"), "Siemens Symbia collimator specifications; " + _SIMIND + "SY-ME"),
    CollimatorPreset("siemens-he", "Siemens", "HE", 4.0, 59.7, 2.0, _SIEMENS_INT, 400.0, ("HE",),
                     _SIMIND + "SY-HE"),
    CollimatorPreset("philips-lehr", "Philips", "LEHR", 1.22, 27.0, 0.152, _PHILIPS_INT, 160.0, ("LEHR",),
                     _SIMIND + "PB-LEHR"),
    CollimatorPreset("philips-legp", "Philips", "LEGP", 1.4, 24.7, 0.18, _PHILIPS_INT, 160.0, ("LEGP",),
                     _SIMIND + "PB-LEGP"),
    CollimatorPreset("philips-megp", "Philips", "MEGP", 3.4, 58.4, 0.86, _PHILIPS_INT, 300.0, ("MEGP",),
                     _SIMIND + "PB-MEGP"),
    CollimatorPreset("philips-hegp", "Philips", "HEGP", 3.81, 58.4, 1.73, _PHILIPS_INT, 400.0, ("HEGP",),
                     _SIMIND + "PB-HEGP"),
)
#: Every preset by key (a :class:`petspect._registry.Registry`: case-insensitive, misses list the names).
COLLIMATORS: Registry[CollimatorPreset] = Registry("collimator", {p.key: p for p in _PRESETS},
                                                   hint=" (--collimator NAME; see docs/real-data.md)")
#: petspect's SPECT system presets (:func:`petspect.geometry.spect.get_spect_system`) as collimator presets.
SYSTEM_ALIASES = {"spect-lehr": "siemens-lehr", "spect-me": "siemens-me"}


def collimator_names() -> list[str]:
    """Keys accepted by :func:`get_collimator` and ``--collimator``."""
    return COLLIMATORS.names()


def _listing() -> str:
    return "; ".join(COLLIMATORS[k].describe() for k in collimator_names())


def get_collimator(name: str) -> CollimatorPreset:
    """A preset by key (case-insensitive; ``_`` or space for ``-``; the system presets spect-lehr/spect-me too)."""
    key = str(name).strip().lower().replace("_", "-").replace(" ", "-")
    return COLLIMATORS.lookup(SYSTEM_ALIASES.get(key, key))


def vendor_of(manufacturer: str | None) -> str | None:
    """``"GE"``, ``"Siemens"`` or ``"Philips"`` from a DICOM Manufacturer string, else None."""
    m = (manufacturer or "").upper()
    if "SIEMENS" in m:
        return "Siemens"
    if "PHILIPS" in m or "ADAC" in m:
        return "Philips"
    if m.startswith("GE") or "GENERAL ELECTRIC" in m or "GE HEALTHCARE" in m or "GE MEDICAL" in m:
        return "GE"
    return None


def collimator_from_header(grid_name: str | None, manufacturer: str | None, collimator_type: str | None = None,
                           *, path=None) -> CollimatorPreset:
    """The preset a DICOM header names (CollimatorGridName with the Manufacturer), or a clear refusal.

    Parameters
    ----------
    grid_name : str or None
        CollimatorGridName (0018,1180).
    manufacturer : str or None
        Manufacturer (0008,0070).
    collimator_type : str or None
        CollimatorType (0018,1181); anything but ``PARA`` (or empty) is refused by name.

    Raises
    ------
    InputError
        Non-parallel collimator; no name; a name not known for this vendor, or a vendor not known.
    """
    ctype = (collimator_type or "").strip().upper()
    if ctype in NON_PARALLEL_TYPES:
        raise InputError(f"the data were acquired with a {NON_PARALLEL_TYPES[ctype]} collimator (CollimatorType "
                         f"{ctype}); petspect models parallel-hole collimators only", path=path)
    name = (grid_name or "").strip().upper()
    hint = f"choose one with --collimator NAME: {collimator_names()} ({_listing()})"
    if not name:
        raise InputError(f"the data do not name their collimator; {hint}", path=path)
    vendor = vendor_of(manufacturer)
    matches = [p for p in _PRESETS if name in p.dicom_names and (vendor is None or p.vendor == vendor)]
    if vendor is not None and len(matches) == 1:
        return matches[0]
    who = f"manufacturer {manufacturer!r}" if manufacturer else "no manufacturer"
    if vendor is None and matches:
        raise InputError(f"collimator {grid_name!r} with {who}: the name means different holes at "
                         f"{sorted({p.vendor for p in matches})}; {hint}", path=path)
    raise InputError(f"collimator {grid_name!r} ({who}) has no preset; {hint}", path=path)
