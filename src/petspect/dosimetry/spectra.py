"""Emission data of the therapy nuclides: beta spectra from Fermi theory, discrete electrons and photons.

The branch end-points, intensities, conversion/Auger electron lines and photon lines are small data in
``petspect/data/dosimetry/emissions.json`` (rounded from NNDC NuDat 3 / ENSDF and ICRP Publication 107;
the file names its sources). Beta spectra are not tabulated: they are computed here from Fermi theory,

.. math:: N(W)\\,dW \\propto F_0(Z, W)\\, p W (W_0 - W)^2 S(W)\\, dW,

with W the total electron energy in units of m c^2, p = sqrt(W^2 - 1), Z the daughter's atomic number,
the relativistic Fermi function

.. math:: F_0 = 4 (2 p R)^{2(\\gamma - 1)} e^{\\pi \\eta} |\\Gamma(\\gamma + i \\eta)|^2 / \\Gamma(2\\gamma + 1)^2,
   \\quad \\gamma = \\sqrt{1 - (\\alpha Z)^2}, \\quad \\eta = \\alpha Z W / p,

(nuclear radius R = 1.2 A^{1/3} fm in units of hbar/(m c)), and the shape factor S = 1 for allowed and
non-unique forbidden transitions (the xi approximation) or S = p^2 + q^2 (q = W_0 - W) for unique
first-forbidden ones (Y-90). Screening and finite-size corrections beyond F_0 are neglected; the mean
energies agree with ICRP-107 within about 1-2 % (tested).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

import numpy as np

from petspect.errors import InputError
from petspect.nuclides import canonical_name

ME_KEV = 510.99895
ALPHA = 1.0 / 137.035999
HBARC_FM_PER_MC = 386.15927  # hbar / (m_e c) in fm


@dataclass(frozen=True)
class BetaBranch:
    """One beta-minus branch: end-point energy (keV), intensity per decay and spectral shape."""

    endpoint_kev: float
    intensity: float
    shape: str


@dataclass(frozen=True)
class Emissions:
    """What one decay emits.

    Attributes
    ----------
    nuclide : str
        Canonical name ("Lu-177").
    daughter_z, daughter_a : int
        Daughter nucleus (for the Fermi function).
    beta : tuple of BetaBranch
    electrons : tuple of (energy_kev, yield)
        Conversion and Auger electrons.
    photons : tuple of (energy_kev, yield)
        Gamma and X-ray lines.
    icrp107_mean_electron_mev : float
        ICRP-107 mean electron energy per decay (betas + discrete electrons), for comparison.
    """

    nuclide: str
    daughter_z: int
    daughter_a: int
    beta: tuple[BetaBranch, ...]
    electrons: tuple[tuple[float, float], ...]
    photons: tuple[tuple[float, float], ...]
    icrp107_mean_electron_mev: float

    def beta_spectrum(self, n_bins: int = 400) -> tuple[np.ndarray, np.ndarray]:
        """Summed beta spectrum of all branches.

        Returns
        -------
        energy_kev : ndarray, shape (n_bins,)
            Bin centres (keV).
        per_decay : ndarray, shape (n_bins,)
            Betas per decay in each bin (sums to the total beta intensity).
        """
        emax = max(b.endpoint_kev for b in self.beta)
        edges = np.linspace(0.0, emax, n_bins + 1)
        centres = 0.5 * (edges[1:] + edges[:-1])
        total = np.zeros(n_bins)
        for br in self.beta:
            shape = beta_shape(centres, br.endpoint_kev, self.daughter_z, self.daughter_a, br.shape)
            s = shape.sum()
            if s > 0:
                total += br.intensity * shape / s
        return centres, total

    def mean_beta_energy_kev(self) -> float:
        """Mean beta kinetic energy per decay (keV), summed over branches."""
        e, w = self.beta_spectrum(2000)
        return float((e * w).sum())

    def mean_electron_energy_mev(self) -> float:
        """Mean electron energy per decay (betas + conversion + Auger), MeV."""
        disc = sum(e * y for e, y in self.electrons)
        return (self.mean_beta_energy_kev() + disc) / 1000.0

    def mean_photon_energy_mev(self) -> float:
        """Mean photon energy per decay (MeV)."""
        return sum(e * y for e, y in self.photons) / 1000.0

    def electron_lines(self, n_bins: int = 400) -> tuple[np.ndarray, np.ndarray]:
        """All electrons as (energy_kev, per_decay): binned beta spectrum followed by discrete lines."""
        e, w = self.beta_spectrum(n_bins)
        if self.electrons:
            de = np.array([x[0] for x in self.electrons])
            dw = np.array([x[1] for x in self.electrons])
            e, w = np.concatenate([e, de]), np.concatenate([w, dw])
        return e, w


def fermi_function(w: np.ndarray, z: int, a: int) -> np.ndarray:
    """Relativistic Fermi function F_0(Z, W) for beta-minus decay (W: total energy in m c^2 units)."""
    from scipy.special import loggamma

    w = np.asarray(w, dtype=float)
    p = np.sqrt(np.maximum(w * w - 1.0, 1e-12))
    az = ALPHA * z
    gamma = np.sqrt(1.0 - az * az)
    eta = az * w / p
    radius = 1.2 * a ** (1.0 / 3.0) / HBARC_FM_PER_MC
    log_f = (np.log(4.0) + 2.0 * (gamma - 1.0) * np.log(2.0 * p * radius) + np.pi * eta
             + 2.0 * np.real(loggamma(gamma + 1j * eta)) - 2.0 * np.real(loggamma(2.0 * gamma + 1.0)))
    return np.exp(log_f)


def beta_shape(energy_kev: np.ndarray, endpoint_kev: float, z: int, a: int, shape: str = "allowed") -> np.ndarray:
    """Unnormalised beta spectrum dN/dE at kinetic energies ``energy_kev`` (zero beyond the end-point)."""
    t = np.asarray(energy_kev, dtype=float) / ME_KEV
    w = t + 1.0
    w0 = endpoint_kev / ME_KEV + 1.0
    p = np.sqrt(np.maximum(w * w - 1.0, 0.0))
    q = np.clip(w0 - w, 0.0, None)
    if shape == "allowed":
        s = np.ones_like(w)
    elif shape == "unique_first_forbidden":
        s = p * p + q * q
    else:
        raise InputError(f"unknown beta spectral shape {shape!r}; use 'allowed' or 'unique_first_forbidden'")
    out = fermi_function(w, z, a) * p * w * q * q * s
    return np.where((t > 0) & (w < w0), out, 0.0)


@functools.lru_cache(maxsize=1)
def _table() -> dict:
    path = resources.files("petspect") / "data" / "dosimetry" / "emissions.json"
    return json.loads(path.read_text())


def known_therapy_nuclides() -> list[str]:
    """Nuclides with emission data for dosimetry."""
    return sorted(_table()["nuclides"])


def emissions(nuclide: str) -> Emissions:
    """Emission data of ``nuclide`` ("Lu-177", "Y-90", "I-131"); InputError for others."""
    name = canonical_name(nuclide)
    table = _table()["nuclides"]
    if name not in table:
        raise InputError(f"no emission data for {nuclide!r}; dosimetry knows {sorted(table)}")
    d = table[name]
    return Emissions(
        nuclide=name, daughter_z=int(d["daughter_z"]), daughter_a=int(d["daughter_a"]),
        beta=tuple(BetaBranch(float(b["endpoint_kev"]), float(b["intensity"]), str(b["shape"])) for b in d["beta"]),
        electrons=tuple((float(e), float(y)) for e, y in d["electrons"]),
        photons=tuple((float(e), float(y)) for e, y in d["photons"]),
        icrp107_mean_electron_mev=float(d["icrp107_mean_electron_mev"]),
    )


def emission_sources() -> list[str]:
    """The sources of the emission table."""
    return list(_table()["sources"])
