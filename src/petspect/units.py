"""Units and physical constants of petspect.

Base units: length mm, time s, energy keV, activity Bq, activity concentration Bq/mL, absorbed
dose Gy, mass g, volume mL. A quantity in another unit carries the unit in its name
(``tof_fwhm_ps``, ``mu_per_cm``, ``energy_mev``).
"""

from __future__ import annotations

import math

# length / volume
MM_PER_CM = 10.0
ML_PER_MM3 = 1.0e-3  # 1 mL = 1 cm^3 = 1000 mm^3
MM3_PER_ML = 1.0e3

# time
S_PER_MIN = 60.0
S_PER_H = 3600.0
S_PER_DAY = 86400.0
PS_PER_NS = 1.0e3

# speed of light
C_MM_PER_PS = 0.299792458  # mm per picosecond
C_MM_PER_NS = 299.792458

# activity
BQ_PER_MBQ = 1.0e6
BQ_PER_MCI = 3.7e7

# energy
KEV_PER_MEV = 1.0e3
J_PER_KEV = 1.602176634e-16
J_PER_MEV = 1.602176634e-13

# Gaussian widths
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548...


def fwhm_to_sigma(fwhm: float) -> float:
    """Standard deviation of a Gaussian with the given FWHM (same unit)."""
    return fwhm / FWHM_PER_SIGMA


def sigma_to_fwhm(sigma: float) -> float:
    """FWHM of a Gaussian with the given standard deviation (same unit)."""
    return sigma * FWHM_PER_SIGMA


def tof_fwhm_ps_to_mm(tof_fwhm_ps: float) -> float:
    """Spatial FWHM along the LOR of a coincidence timing FWHM: dx = c * dt / 2 (mm)."""
    return 0.5 * C_MM_PER_PS * tof_fwhm_ps


def mu_per_cm_to_per_mm(mu_per_cm: float) -> float:
    """Convert a linear attenuation coefficient from 1/cm to 1/mm."""
    return mu_per_cm / MM_PER_CM


# Units a Volume may carry (free text is allowed, these are the recognised ones)
KNOWN_UNITS = {
    "Bq/mL": "activity concentration",
    "kBq/mL": "activity concentration",
    "SUVbw": "standardised uptake value, body weight",
    "SUVbsa": "standardised uptake value, body surface area",
    "SUVlbm": "standardised uptake value, lean body mass (James)",
    "SUVlbm_janmahasatian": "standardised uptake value, lean body mass (Janmahasatian)",
    "SUVibw": "standardised uptake value, ideal body weight",
    "HU": "Hounsfield units",
    "1/cm": "linear attenuation coefficient",
    "1/mm": "linear attenuation coefficient",
    "counts": "detected counts",
    "cps": "counts per second",
    "g/mL": "density",
    "Gy": "absorbed dose",
    "Gy/s": "absorbed dose rate",
    "label": "integer label map",
    "a.u.": "arbitrary units",
}
