"""Radionuclide data for PET, SPECT and radionuclide therapy, with decay-correction helpers.

Half-lives come from ``radioactivedecay`` (ICRP-107 decay data). Photon energies and yields per decay
are the principal lines of ICRP Publication 107 / NNDC NuDat 3 (rounded to 0.01 keV and 4 figures);
annihilation-photon yield is twice the positron fraction. Mean positron ranges in water are from Conti
& Eriksson, EJNMMI Physics 3:8 (2016), Table 1. Mean electron (beta + conversion + Auger) energy per
decay, for local-deposition dosimetry, from ICRP-107 as tabulated by the MIRD/RADAR decay data
(approximate; see docs/REFERENCE.md).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

from petspect.errors import InputError

ANNIHILATION_KEV = 510.999


@dataclass(frozen=True)
class PhotonLine:
    """One emitted photon line: energy (keV) and yield per decay."""

    energy_kev: float
    yield_per_decay: float


@dataclass(frozen=True)
class Nuclide:
    """Decay facts of one radionuclide.

    Attributes
    ----------
    name : str
        Symbol with mass number, e.g. "F-18", "Tc-99m".
    half_life_s : float
        Physical half-life (s), from radioactivedecay.
    photons : tuple of PhotonLine
        Principal photon lines (annihilation photons included for positron emitters).
    positron_fraction : float
        Positrons per decay.
    mean_positron_range_mm : float or None
        Mean positron range in water (mm).
    mean_electron_energy_mev : float or None
        Mean energy of emitted electrons per decay (MeV), for local-deposition dosimetry.
    sources : tuple of str
        Where the values come from.
    """

    name: str
    half_life_s: float
    photons: tuple[PhotonLine, ...] = ()
    positron_fraction: float = 0.0
    mean_positron_range_mm: float | None = None
    mean_electron_energy_mev: float | None = None
    sources: tuple[str, ...] = field(default_factory=tuple)

    @property
    def decay_constant_per_s(self) -> float:
        """lambda = ln 2 / T_half (1/s)."""
        return math.log(2.0) / self.half_life_s

    @property
    def is_positron_emitter(self) -> bool:
        return self.positron_fraction > 0.0

    def main_photon(self) -> PhotonLine:
        """The line with the highest yield."""
        if not self.photons:
            raise InputError(f"{self.name} has no photon lines in petspect's table")
        return max(self.photons, key=lambda p: p.yield_per_decay)


_ICRP107 = "ICRP Publication 107 (2008) / NNDC NuDat 3"
_CONTI = "Conti & Eriksson, EJNMMI Phys 3:8 (2016), mean positron range in water"

# name -> (photons [(keV, yield)], positron fraction, mean positron range mm, mean electron energy MeV)
_TABLE: dict[str, tuple[list[tuple[float, float]], float, float | None, float | None]] = {
    # PET
    "F-18": ([], 0.9686, 0.6, None),
    "C-11": ([], 0.9976, 1.2, None),
    "N-13": ([], 0.9982, 1.8, None),
    "O-15": ([], 0.9990, 3.0, None),
    "Ga-68": ([(1077.34, 0.0322)], 0.8891, 2.9, None),
    "Rb-82": ([(776.52, 0.1508)], 0.9545, 5.9, None),
    "Cu-64": ([(1345.77, 0.00475)], 0.1752, 0.7, None),
    "Zr-89": ([(909.15, 0.9904)], 0.2274, 1.3, None),
    # SPECT
    "Tc-99m": ([(140.51, 0.8906)], 0.0, None, 0.0157),
    "I-123": ([(158.97, 0.8325)], 0.0, None, None),
    "In-111": ([(171.28, 0.9071), (245.35, 0.9409)], 0.0, None, None),
    # therapy
    "Lu-177": ([(112.95, 0.0623), (208.37, 0.1041)], 0.0, None, 0.1479),
    "I-131": ([(364.49, 0.8150), (636.99, 0.0716), (284.31, 0.0612)], 0.0, None, 0.1920),
    # Y-90: internal pair production 31.86e-6 per decay (Selwyn et al, Appl Radiat Isot 65:318, 2007)
    "Y-90": ([], 3.186e-5, None, 0.9327),
}

ALIASES = {
    "F18": "F-18", "18F": "F-18", "FDG": "F-18", "C11": "C-11", "N13": "N-13", "O15": "O-15",
    "Ga68": "Ga-68", "68Ga": "Ga-68", "Rb82": "Rb-82", "Cu64": "Cu-64", "Zr89": "Zr-89",
    "Tc99m": "Tc-99m", "99mTc": "Tc-99m", "TC99M": "Tc-99m", "I123": "I-123", "In111": "In-111",
    "Lu177": "Lu-177", "177Lu": "Lu-177", "I131": "I-131", "Y90": "Y-90",
}


def canonical_name(name: str) -> str:
    """Normalise a nuclide name ("18F", "F18", "f-18") to petspect's form ("F-18")."""
    n = name.strip()
    if n in _TABLE:
        return n
    for key in _TABLE:
        if key.lower() == n.lower():
            return key
    for alias, key in ALIASES.items():
        if alias.lower() == n.replace("-", "").lower() or alias.lower() == n.lower():
            return key
    raise InputError(f"unknown radionuclide {name!r}; known: {sorted(_TABLE)}")


@functools.lru_cache(maxsize=64)
def half_life_s(name: str) -> float:
    """Physical half-life in s (radioactivedecay's ICRP-107 data)."""
    import radioactivedecay as rd

    return float(rd.Nuclide(canonical_name(name)).half_life("s"))


@functools.lru_cache(maxsize=64)
def get_nuclide(name: str) -> Nuclide:
    """The :class:`Nuclide` record of a radionuclide (see the module docstring for sources)."""
    key = canonical_name(name)
    photons, beta_plus, range_mm, e_mean = _TABLE[key]
    lines = [PhotonLine(e, y) for e, y in photons]
    sources = ["half-life: radioactivedecay (ICRP-107)", f"photon lines: {_ICRP107}"]
    if beta_plus > 0:
        lines.insert(0, PhotonLine(ANNIHILATION_KEV, 2.0 * beta_plus))
        if range_mm is not None:
            sources.append(_CONTI)
    if e_mean is not None:
        sources.append("mean electron energy: ICRP-107 (approx.)")
    return Nuclide(key, half_life_s(key), tuple(lines), beta_plus, range_mm, e_mean, tuple(sources))


def known_nuclides() -> list[str]:
    """Names of the radionuclides in petspect's table."""
    return sorted(_TABLE)


def decay_factor(name: str, elapsed_s: float) -> float:
    """Fraction of activity left after ``elapsed_s`` seconds: exp(-ln2 t / T_half).

    Negative ``elapsed_s`` gives the factor > 1 that projects activity back in time.
    """
    return math.exp(-math.log(2.0) * float(elapsed_s) / half_life_s(name))


def activity_at(activity_bq: float, name: str, elapsed_s: float) -> float:
    """Activity (Bq) ``elapsed_s`` seconds after a reference time at which it was ``activity_bq``."""
    return float(activity_bq) * decay_factor(name, elapsed_s)


def decay_correct(value: float, name: str, *, from_time_s: float, to_time_s: float) -> float:
    """Express an activity (or concentration) measured at ``from_time_s`` as it was/will be at ``to_time_s``."""
    return float(value) * decay_factor(name, float(to_time_s) - float(from_time_s))


def frame_decay_correction(name: str, frame_start_s: float, frame_duration_s: float) -> float:
    """Factor turning the mean activity over a frame into the activity at the reference time 0.

    Counts in a frame [t0, t0 + dt] are proportional to A0 exp(-lambda t0) (1 - exp(-lambda dt)) / lambda;
    the factor is dt lambda exp(lambda t0) / (1 - exp(-lambda dt)), as in DICOM DecayFactor.
    """
    if frame_duration_s <= 0:
        raise InputError(f"frame duration must be positive, got {frame_duration_s} s")
    lam = math.log(2.0) / half_life_s(name)
    x = lam * frame_duration_s
    return math.exp(lam * frame_start_s) * x / -math.expm1(-x)
