"""Material attenuation data and CT (HU) to linear attenuation conversion.

Linear attenuation coefficients come from the Elam photon cross-section tables shipped with
``xraydb`` (total attenuation with coherent scattering), combined by mass fraction for the tissue
compositions below. Coefficients are returned in **1/mm** (``*_per_mm``) unless the name says 1/cm.

Tissue compositions (mass fractions) and densities
--------------------------------------------------
ICRU Report 44 (1989), "Tissue Substitutes in Radiation Dosimetry and Measurement", Table 4.4, as
reproduced in White, Woodard & Hammond 1987 (Br J Radiol) and the NIST ESTAR/XCOM material list:
soft tissue, adipose, cortical bone, skeletal muscle, lung. The lung density 0.30 g/mL is that of
inflated lung parenchyma as seen on CT (about -700 HU); compact lung tissue is 1.05 g/mL.

References for the checks in the tests: water 0.096/cm at 511 keV and 0.154/cm at 140 keV
(docs/REFERENCE.md, xraydb); NIST XCOM water mu/rho at 500 keV 0.0969 cm^2/g.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from petspect.errors import InputError
from petspect.units import MM_PER_CM


@dataclass(frozen=True)
class Material:
    """A material: mass fractions by element symbol and density in g/mL."""

    name: str
    mass_fractions: tuple[tuple[str, float], ...]
    density_g_per_ml: float
    source: str


def _m(name: str, density: float, source: str, **fractions_pct: float) -> Material:
    total = sum(fractions_pct.values())
    return Material(name, tuple((el, pct / total) for el, pct in fractions_pct.items()), density, source)


_ICRU44 = "ICRU Report 44 (1989) Table 4.4"

MATERIALS: dict[str, Material] = {
    "water": _m("water", 1.0, "H2O", H=11.19, O=88.81),
    "soft_tissue": _m("soft_tissue", 1.06, _ICRU44 + " soft tissue",
                      H=10.5, C=25.6, N=2.7, O=60.2, Na=0.1, P=0.2, S=0.3, Cl=0.2, K=0.2),
    "muscle": _m("muscle", 1.05, _ICRU44 + " skeletal muscle",
                 H=10.2, C=14.3, N=3.4, O=71.0, Na=0.1, P=0.2, S=0.3, Cl=0.1, K=0.4),
    "adipose": _m("adipose", 0.95, _ICRU44 + " adipose tissue", H=11.4, C=59.8, N=0.7, O=27.8, Na=0.1, S=0.1, Cl=0.1),
    "cortical_bone": _m("cortical_bone", 1.92, _ICRU44 + " cortical bone",
                        H=3.4, C=15.5, N=4.2, O=43.5, Na=0.1, Mg=0.2, P=10.3, S=0.3, Ca=22.5),
    "lung": _m("lung", 0.30, _ICRU44 + " lung composition; inflated-lung density 0.30 g/mL",
               H=10.3, C=10.5, N=3.1, O=74.9, Na=0.2, P=0.2, S=0.3, Cl=0.3, K=0.2),
    "air": _m("air", 0.001205, "dry air near sea level (NIST)", C=0.0124, N=75.5268, O=23.1781, Ar=1.2827),
    "pmma": _m("pmma", 1.19, "polymethyl methacrylate C5H8O2 (NEMA phantom walls)", H=8.05, C=59.98, O=31.96),
    "titanium": _m("titanium", 4.506, "pure titanium (implants)", Ti=100.0),
}

#: CT effective photon energy as a fraction of the tube voltage (a common rule of thumb: about a third
#: to a half of kVp for filtered clinical spectra; 0.5 is used by Kinahan et al 1998-style conversions).
CT_EFFECTIVE_ENERGY_FRACTION = 0.5

#: Carney et al, Med Phys 33(4):976-983 (2006), Table 1: bilinear CT -> mu at 511 keV in 1/cm,
#: mu = 9.6e-5 (HU + 1000) below the break point BP, a (HU + 1000) + b above it. kVp -> (a, b, BP).
CARNEY_511 = {
    80: (3.64e-5, 6.26e-2, 50.0),
    100: (4.43e-5, 5.44e-2, 52.0),
    110: (4.92e-5, 4.88e-2, 43.0),
    120: (5.10e-5, 4.71e-2, 47.0),
    130: (5.51e-5, 4.24e-2, 37.0),
    140: (5.64e-5, 4.08e-2, 30.0),
}


def _check_energy(energy_kev: float) -> float:
    e = float(energy_kev)
    if not (1.0 <= e <= 1.0e5) or not math.isfinite(e):
        raise InputError(f"photon energy must be within 1 keV..100 MeV, got {energy_kev} keV")
    return e


@functools.lru_cache(maxsize=512)
def mass_attenuation_cm2_per_g(material: str, energy_kev: float) -> float:
    """Total mass attenuation coefficient mu/rho (cm^2/g) of a material at an energy (keV).

    ``material`` is a key of :data:`MATERIALS` or a material name known to xraydb.
    """
    import xraydb

    e_ev = _check_energy(energy_kev) * 1.0e3
    if material in MATERIALS:
        mat = MATERIALS[material]
        return float(sum(w * xraydb.mu_elam(el, e_ev, kind="total") for el, w in mat.mass_fractions))
    known = xraydb.get_materials()
    if material in known:
        return float(xraydb.material_mu(material, e_ev)) / known[material].density
    raise InputError(f"unknown material {material!r}; petspect materials: {sorted(MATERIALS)}, "
                     f"or an xraydb material name")


def density_g_per_ml(material: str) -> float:
    """Density of a material in g/mL."""
    if material in MATERIALS:
        return MATERIALS[material].density_g_per_ml
    import xraydb

    known = xraydb.get_materials()
    if material in known:
        return float(known[material].density)
    raise InputError(f"unknown material {material!r}")


def linear_attenuation_per_cm(material: str, energy_kev: float) -> float:
    """Linear attenuation coefficient mu (1/cm) of a material at an energy (keV)."""
    return mass_attenuation_cm2_per_g(material, float(energy_kev)) * density_g_per_ml(material)


def linear_attenuation_per_mm(material: str, energy_kev: float) -> float:
    """Linear attenuation coefficient mu (1/mm) of a material at an energy (keV).

    Examples
    --------
    >>> round(linear_attenuation_per_mm("water", 511.0) * 10, 4)  # 1/cm
    0.096
    """
    return linear_attenuation_per_cm(material, energy_kev) / MM_PER_CM


def ct_effective_energy_kev(kvp: float) -> float:
    """Effective photon energy (keV) of a CT spectrum at tube voltage ``kvp`` (see module constant)."""
    if not 40.0 <= float(kvp) <= 150.0:
        raise InputError(f"kVp must be within 40..150, got {kvp}")
    return CT_EFFECTIVE_ENERGY_FRACTION * float(kvp)


def material_hu(material: str, *, kvp: float = 120.0) -> float:
    """Nominal CT number (HU) of a material at the effective energy of a ``kvp`` spectrum.

    HU = 1000 (mu - mu_water) / mu_water at :func:`ct_effective_energy_kev`.
    """
    e = ct_effective_energy_kev(kvp)
    mu_w = linear_attenuation_per_cm("water", e)
    return 1000.0 * (linear_attenuation_per_cm(material, e) - mu_w) / mu_w


def _carney_coefficients(kvp: float) -> tuple[float, float, float]:
    kvps = np.array(sorted(CARNEY_511))
    if not kvps[0] <= kvp <= kvps[-1]:
        raise InputError(f"Carney 511 keV conversion is tabulated for {kvps[0]}-{kvps[-1]} kVp, got {kvp}")
    rows = np.array([CARNEY_511[k] for k in kvps])
    return tuple(float(np.interp(kvp, kvps, rows[:, i])) for i in range(3))  # type: ignore[return-value]


def hu_to_mu_per_mm(hu: torch.Tensor, energy_kev: float = 511.0, kvp: float = 120.0,
                    *, method: str = "auto") -> torch.Tensor:
    """Convert CT numbers (HU) to linear attenuation (1/mm) at a photon energy: bilinear scaling.

    Parameters
    ----------
    hu : torch.Tensor
        CT image in HU (any shape, any device). Values below -1000 are clipped to air.
    energy_kev : float
        Emission photon energy: 511 for PET, 140.5 for Tc-99m, 208 for Lu-177, ...
    kvp : float
        CT tube voltage; sets the slope of the bone segment.
    method : {"auto", "carney", "kinahan"}
        ``"carney"``: the kVp-dependent 511 keV coefficients of Carney et al 2006 (interpolated between
        tabulated kVp). ``"kinahan"``: air-water mixture below 0 HU and water-cortical bone mixture above
        (Kinahan et al, Med Phys 25:2046, 1998), with mu of water and ICRU-44 cortical bone at
        ``energy_kev`` and the bone's CT number at the spectrum's effective energy. ``"auto"`` uses
        Carney at 511 keV and Kinahan otherwise.

    Returns
    -------
    torch.Tensor
        mu in 1/mm, same shape, device and floating dtype as ``hu``; a continuous, non-decreasing
        function of HU.
    """
    e = _check_energy(energy_kev)
    if method == "auto":
        method = "carney" if abs(e - 511.0) < 1.0 else "kinahan"
    h = hu.to(torch.get_default_dtype() if not hu.is_floating_point() else hu.dtype).clamp_min(-1000.0)
    if method == "carney":
        if abs(e - 511.0) >= 1.0:
            raise InputError("the Carney coefficients are for 511 keV only; use method='kinahan'")
        a, b, bp = _carney_coefficients(float(kvp))
        low = 9.6e-5 * (h + 1000.0)
        high = a * (h + 1000.0) + b
        # continuous at the break: take the low segment up to the crossing, then the higher of the two
        mu_cm = torch.where(h <= bp, low, torch.maximum(high, torch.full_like(h, 9.6e-5 * (bp + 1000.0))))
    elif method == "kinahan":
        mu_w = linear_attenuation_per_cm("water", e)
        mu_b = linear_attenuation_per_cm("cortical_bone", e)
        hu_bone = material_hu("cortical_bone", kvp=kvp)
        low = mu_w * (h + 1000.0) / 1000.0
        high = mu_w + h * (mu_b - mu_w) / hu_bone
        mu_cm = torch.where(h <= 0.0, low, high)
    else:
        raise InputError(f"method must be 'auto', 'carney' or 'kinahan', got {method!r}")
    return mu_cm / MM_PER_CM
