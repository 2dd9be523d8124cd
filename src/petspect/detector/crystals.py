"""Scintillator presets and their 511 keV gamma attenuation.

Coordinates of a monolithic block used throughout :mod:`petspect.detector`: ``x`` and ``y`` in mm
from the centre of the face (``-size/2 .. size/2``), ``doi`` in mm = depth of interaction measured
from the *entrance* face that looks at the source (``0 .. thickness``). The photodetector is coupled
to the opposite (exit) face at ``doi = thickness``; the height of a point above the photodetector is
``thickness - doi``.

Attenuation coefficients come from xraydb (Elam, Ravel and Sieber tables) for the stated chemical
composition and density. Pair production is zero below 1022 keV; coherent (Rayleigh) scattering is
tabulated but neglected in the transport (at 511 keV it is ~5 % of the total, deflects by a few
degrees and deposits no energy), so the transport uses ``mu = mu_photo + mu_compton``.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from petspect._registry import Registry
from petspect.errors import ConfigError, InputError


@dataclasses.dataclass(frozen=True)
class Crystal:
    """Bulk properties of a scintillator.

    Parameters
    ----------
    name : str
        Preset name.
    formula : str
        Chemical composition given to xraydb (activator dopants neglected).
    density_g_cm3 : float
        Density (g/cm^3).
    light_yield_ph_per_kev : float
        Scintillation photons per keV deposited.
    decay_ns, rise_ns : float
        Scintillation decay and rise time constants (ns).
    refractive_index : float
        Refractive index at the emission peak.
    intrinsic_resolution : float
        Relative FWHM of the photon number at 511 keV from non-proportionality and inhomogeneity
        (the part of the energy resolution not due to photon counting statistics).
    source : str
        Where the values come from.
    """

    name: str
    formula: str
    density_g_cm3: float
    light_yield_ph_per_kev: float
    decay_ns: float
    rise_ns: float
    refractive_index: float
    intrinsic_resolution: float
    source: str

    def __post_init__(self) -> None:
        for field in ("density_g_cm3", "light_yield_ph_per_kev", "decay_ns", "rise_ns", "refractive_index"):
            if not getattr(self, field) > 0:
                raise ConfigError(f"crystal {self.name!r}: {field} must be positive")
        if self.refractive_index < 1.0:
            raise ConfigError(f"crystal {self.name!r}: refractive_index must be >= 1")

    def attenuation(self) -> Attenuation:
        """Energy-dependent attenuation of this crystal (cached per composition)."""
        return _attenuation(self.formula, self.density_g_cm3)

    def to_dict(self) -> dict:
        """JSON-serialisable record."""
        return dataclasses.asdict(self)


CRYSTALS: Registry[Crystal] = Registry("crystal", {
    "LYSO": Crystal(
        "LYSO", "Lu1.8Y0.2SiO5", 7.10, 30.0, 40.0, 0.07, 1.81, 0.07,
        "Saint-Gobain PreLude 420 data sheet (7.1 g/cm3, 32 ph/keV, 41 ns, n=1.81); rise ~70 ps "
        "(Gundacker et al, PMB 2016); intrinsic resolution ~7 % (Lecoq, NIM A 2016)"),
    "BGO": Crystal(
        "BGO", "Bi4Ge3O12", 7.13, 8.2, 300.0, 0.09, 2.15, 0.08,
        "Saint-Gobain BGO data sheet (7.13 g/cm3, 8-9 ph/keV, 300 ns, n=2.15); rise ~90 ps"),
    "LaBr3": Crystal(
        "LaBr3", "LaBr3", 5.08, 63.0, 16.0, 0.5, 1.90, 0.02,
        "Saint-Gobain BrilLanCe 380 data sheet (5.08 g/cm3, 63 ph/keV, 16 ns, n=1.9); "
        "rise ~0.5 ns for 5 % Ce (Glodo et al, IEEE TNS 2005)"),
})


def get_crystal(name: str) -> Crystal:
    """Return the preset ``name`` (one of :data:`CRYSTALS`)."""
    try:
        return CRYSTALS[name]
    except KeyError:
        raise ConfigError(f"unknown crystal {name!r}; choose one of {sorted(CRYSTALS)}") from None


@dataclasses.dataclass(frozen=True)
class Attenuation:
    """Linear attenuation coefficients of one material on a log-spaced energy grid.

    Attributes
    ----------
    energy_kev : numpy.ndarray, shape (m,)
        Energy grid (keV), 10 .. 800 keV.
    photo_per_mm, compton_per_mm, rayleigh_per_mm : numpy.ndarray, shape (m,)
        Partial linear attenuation coefficients (1/mm).
    """

    energy_kev: np.ndarray
    photo_per_mm: np.ndarray
    compton_per_mm: np.ndarray
    rayleigh_per_mm: np.ndarray

    def _interp(self, table: np.ndarray, energy_kev) -> np.ndarray:
        e = np.asarray(energy_kev, dtype=np.float64)
        if np.any(e <= 0):
            raise InputError("energies must be positive (keV)")
        return np.exp(np.interp(np.log(e), np.log(self.energy_kev), np.log(table)))

    def photo(self, energy_kev) -> np.ndarray:
        """Photoelectric attenuation (1/mm), log-log interpolated."""
        return self._interp(self.photo_per_mm, energy_kev)

    def compton(self, energy_kev) -> np.ndarray:
        """Incoherent (Compton) attenuation (1/mm), log-log interpolated."""
        return self._interp(self.compton_per_mm, energy_kev)

    def transport(self, energy_kev) -> np.ndarray:
        """Attenuation used by the transport, photoelectric + Compton (1/mm)."""
        return self.photo(energy_kev) + self.compton(energy_kev)

    def photo_fraction(self, energy_kev) -> np.ndarray:
        """Probability that an interaction is photoelectric, ``mu_photo / (mu_photo + mu_compton)``."""
        return self.photo(energy_kev) / self.transport(energy_kev)


@functools.lru_cache(maxsize=16)
def _attenuation(formula: str, density_g_cm3: float) -> Attenuation:
    import xraydb

    energy_kev = np.geomspace(10.0, 800.0, 400)  # Elam tables are unreliable above 800 keV
    ev = energy_kev * 1.0e3
    tables = [np.asarray(xraydb.material_mu(formula, ev, density=density_g_cm3, kind=kind)) / 10.0
              for kind in ("photo", "incoh", "coh")]
    return Attenuation(energy_kev, *tables)
