"""Particle-transport physics shared by the kernel generator and the voxelised Monte Carlo.

Electrons (condensed history, continuous slowing down):

* collision stopping power of water from the Bethe formula for electrons (Rohrlich-Carlson form,
  I = 75 eV, Z/A = 0.5551) with Sternheimer's density-effect correction for water (Sternheimer, Berger
  & Seltzer, At Data Nucl Data Tables 30:261, 1984); radiative losses are neglected (radiative stopping
  power under 1 % of the collision one below 2.3 MeV in water; bremsstrahlung yield of Y-90 betas ~0.5 %);
* CSDA ranges by integrating 1/S; the mean energy lost in a step is what the range table gives, the
  energy is deposited at the step's hinge point;
* energy-loss straggling (``straggling=True``, the default): the loss in a step is drawn from a gamma
  distribution with that mean and the variance of Bohr's formula extended to a maximum energy transfer
  T_max = T/2 (Moller, identical particles) with the spin factor (1 - beta^2/2):
  sigma^2 = 2 pi r_e^2 m_e c^2 n_el T_max s (1 - beta^2/2) / beta^2 (the Gaussian-regime variance of the
  Geant4 Physics Reference Manual, "Fluctuations in energy loss"; Bohr 1915 in the non-relativistic limit).
  The gamma shape is positive and right-skewed like the Landau/Vavilov distribution and keeps the mean
  loss exact, so the CSDA mean is unchanged while some electrons go beyond the CSDA range;
* multiple elastic scattering from the screened-Rutherford transport cross-section with Moliere's
  screening parameter (H and O of water); after a step s the angular deflection is drawn from a
  Wentzel-shaped distribution whose mean (1 - cos theta) equals 1 - exp(-s / lambda_1) (the
  Goudsmit-Saunderson first moment), applied at a random hinge along the step;
* electrons below ``ELECTRON_CUTOFF_MEV`` (10 keV, CSDA range 2.5 micrometre) deposit locally;
* other media are treated as water of their own density (mass stopping power and scattering of soft
  tissue, lung and bone differ from water's by under ~10 %; stated as a limitation).

Photons: Compton scattering (Klein-Nishina, free electrons) and photoelectric absorption with the
cross-sections of xraydb (Elam et al.); Rayleigh scattering and fluorescence are neglected; the
Compton electron and the photo-electron deposit their energy at the interaction point (their range is
below 1 mm under 700 keV in soft tissue; they are not transported). Units: lengths in mm unless the
name says g/cm2, energies in MeV.
"""

from __future__ import annotations

import functools

import numpy as np

ME_MEV = 0.51099895
R_E_CM = 2.8179403e-13
N_A = 6.02214076e23
HBARC_MEV_CM = 1.97326980e-11
BOHR_CM = 0.529177e-8
ALPHA = 1.0 / 137.035999
WATER_I_MEV = 75.0e-6
WATER_Z_OVER_A = 0.55508
ELECTRON_CUTOFF_MEV = 0.010
PHOTON_CUTOFF_MEV = 0.005


def collision_stopping_power(e_mev: np.ndarray) -> np.ndarray:
    """Electron mass collision stopping power of water (MeV cm2/g): Bethe formula with the density effect.

    Matches NIST ESTAR within 1 % from 10 keV to 2 MeV (tested at 0.01, 0.1, 1 MeV).
    """
    e = np.maximum(np.asarray(e_mev, dtype=float), 1e-4)
    tau = e / ME_MEV
    gamma = tau + 1.0
    beta2 = 1.0 - 1.0 / (gamma * gamma)
    f = 1.0 - beta2 + (tau * tau / 8.0 - (2.0 * tau + 1.0) * np.log(2.0)) / (tau + 1.0) ** 2
    log_term = np.log(tau * tau * (tau + 2.0) / (2.0 * (WATER_I_MEV / ME_MEV) ** 2))
    x = np.log10(np.sqrt(tau * (tau + 2.0)))
    delta = np.where(x < 0.24, 0.0,
                     np.where(x < 2.8004, 4.6052 * x + 0.09116 * np.clip(2.8004 - x, 0, None) ** 3.4773 - 3.5017,
                              4.6052 * x - 3.5017))
    k = 2.0 * np.pi * R_E_CM ** 2 * ME_MEV * N_A * WATER_Z_OVER_A
    return k / beta2 * (log_term + f - delta)


def transport_inverse_mfp(e_mev: np.ndarray) -> np.ndarray:
    """1 / lambda_1 of electrons in water (cm2/g): screened-Rutherford transport cross-section (Moliere screening)."""
    e = np.maximum(np.asarray(e_mev, dtype=float), 1e-4)
    pc = np.sqrt(e * (e + 2.0 * ME_MEV))
    beta = pc / (e + ME_MEV)
    pv = pc * beta
    total = np.zeros_like(e)
    for z, atoms_per_molecule in ((1, 2.0), (8, 1.0)):
        n_per_g = atoms_per_molecule * N_A / 18.0153
        a_tf = 0.885 * BOHR_CM * z ** (-1.0 / 3.0)
        screen = (HBARC_MEV_CM / (2.0 * pc * a_tf)) ** 2 * (1.13 + 3.76 * (ALPHA * z / beta) ** 2)
        k = z * (z + 1.0) * (R_E_CM * ME_MEV / pv) ** 2
        sigma1 = 2.0 * np.pi * k * (np.log1p(1.0 / screen) - 1.0 / (1.0 + screen))
        total += n_per_g * sigma1
    return total


#: 2 pi r_e^2 m_e c^2 N_A (Z/A)_water, MeV cm2/g: the straggling constant of water
STRAGGLING_K_MEV_CM2_G = 2.0 * np.pi * R_E_CM ** 2 * ME_MEV * N_A * WATER_Z_OVER_A


def energy_loss_variance(e_mev, step_g_cm2):
    """Variance (MeV^2) of an electron's collision energy loss over ``step_g_cm2`` of water at energy ``e_mev``.

    sigma^2 = K T_max s (1 - beta^2/2) / beta^2 with K = 2 pi r_e^2 m_e c^2 N_A Z/A (0.085 MeV cm2/g) and
    T_max = T/2 (see the module docstring for the sources).
    """
    e = np.maximum(np.asarray(e_mev, dtype=float), 1e-4)
    gamma = e / ME_MEV + 1.0
    beta2 = 1.0 - 1.0 / (gamma * gamma)
    return STRAGGLING_K_MEV_CM2_G * 0.5 * e * np.asarray(step_g_cm2, dtype=float) * (1.0 - 0.5 * beta2) / beta2


def sample_energy_loss(mean_mev: np.ndarray, var_mev2: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Energy losses (MeV) from a gamma distribution of the given means and variances (0 where the mean is 0)."""
    m = np.asarray(mean_mev, dtype=float)
    v = np.maximum(np.asarray(var_mev2, dtype=float), 1e-30)
    ok = m > 0
    out = np.zeros_like(m)
    out[ok] = rng.gamma(m[ok] ** 2 / v[ok], v[ok] / m[ok])
    return out


@functools.lru_cache(maxsize=1)
def _tables() -> dict[str, np.ndarray]:
    e = np.geomspace(1e-3, 5.0, 600)
    s = collision_stopping_power(e)
    # range from 1 keV (below: R ~ E / S(1 keV))
    r = np.concatenate([[e[0] / s[0]], e[0] / s[0] + np.cumsum(0.5 * (1 / s[1:] + 1 / s[:-1]) * np.diff(e))])
    return {"e": e, "range": r, "log_e": np.log(e), "log_r": np.log(r), "inv_l1": transport_inverse_mfp(e)}


def csda_range_g_cm2(e_mev: np.ndarray) -> np.ndarray:
    """CSDA range of electrons in water (g/cm2)."""
    t = _tables()
    return np.exp(np.interp(np.log(np.maximum(e_mev, 1e-3)), t["log_e"], t["log_r"]))


def energy_from_range(r_g_cm2: np.ndarray) -> np.ndarray:
    """Inverse of :func:`csda_range_g_cm2` (MeV); 0 for non-positive residual range."""
    t = _tables()
    r = np.asarray(r_g_cm2, dtype=float)
    out = np.exp(np.interp(np.log(np.maximum(r, 1e-30)), t["log_r"], t["log_e"]))
    return np.where(r <= t["range"][0], r / t["range"][0] * t["e"][0], out)


@functools.lru_cache(maxsize=1)
def _wentzel_table() -> tuple[np.ndarray, np.ndarray]:
    a = np.geomspace(1e-9, 1e4, 4000)
    mean_x = 2.0 * a * ((1.0 + a) * np.log1p(1.0 / a) - 1.0)
    return mean_x, a


def sample_deflection(mean_one_minus_cos: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """cos(theta) from a Wentzel distribution p(mu) ~ 1/(1 - mu + 2A)^2 with the given mean of 1 - mu."""
    mean_x, a_tab = _wentzel_table()
    m = np.clip(mean_one_minus_cos, mean_x[0], 0.999)
    a = np.interp(m, mean_x, a_tab)
    xi = rng.random(m.shape)
    x = 2.0 * a * xi / (1.0 + a - xi)
    return np.clip(1.0 - x, -1.0, 1.0)


def rotate(direction: np.ndarray, cos_t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotate unit vectors ``direction`` (n, 3) by polar angles acos(cos_t) and uniform azimuths."""
    phi = 2.0 * np.pi * rng.random(cos_t.shape)
    sin_t = np.sqrt(np.maximum(1.0 - cos_t * cos_t, 0.0))
    u = direction
    # a unit vector perpendicular to u
    helper = np.where(np.abs(u[:, :1]) < 0.9, np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 1.0, 0.0]]))
    v = np.cross(u, helper)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    w = np.cross(u, v)
    new = (cos_t[:, None] * u + (sin_t * np.cos(phi))[:, None] * v + (sin_t * np.sin(phi))[:, None] * w)
    return new / np.linalg.norm(new, axis=1, keepdims=True)


def isotropic(n: int, rng: np.random.Generator) -> np.ndarray:
    """n isotropic unit vectors, shape (n, 3)."""
    cos_t = 2.0 * rng.random(n) - 1.0
    phi = 2.0 * np.pi * rng.random(n)
    s = np.sqrt(1.0 - cos_t * cos_t)
    return np.stack([s * np.cos(phi), s * np.sin(phi), cos_t], axis=1)


def transport_electrons(pos_mm: np.ndarray, e_mev: np.ndarray, rng: np.random.Generator, deposit,
                        density=None, *, step_fraction: float = 0.04, max_step_mm: float = np.inf,
                        weight: np.ndarray | None = None, inside=None, straggling: bool = True) -> None:
    """Condensed-history CSDA transport of electrons until they fall below the cut-off.

    Parameters
    ----------
    pos_mm : ndarray, shape (n, 3)
        Start positions (mm); directions are isotropic.
    e_mev : ndarray, shape (n,)
        Kinetic energies (MeV).
    rng : numpy.random.Generator
    deposit : callable
        ``deposit(pos_mm (m, 3), energy_mev (m,))`` receives each energy deposit (weighted).
    density : callable, optional
        ``density(pos_mm) -> g/mL`` of the medium at the positions; None: water of 1 g/mL.
    step_fraction : float
        Step length as a fraction of the residual CSDA range.
    max_step_mm : float
        Geometric step limit (use about half a voxel in heterogeneous media).
    weight : ndarray, shape (n,), optional
        Statistical weights multiplying the deposits.
    inside : callable, optional
        ``inside(pos_mm) -> bool array``; electrons that leave are dropped (their energy escapes).
    straggling : bool
        Sample each step's energy loss around its CSDA mean (:func:`energy_loss_variance`); False: CSDA.
    """
    pos = np.array(pos_mm, dtype=float)
    e = np.array(e_mev, dtype=float)
    w = np.ones_like(e) if weight is None else np.asarray(weight, dtype=float).copy()
    d = isotropic(len(e), rng)
    low = e < ELECTRON_CUTOFF_MEV
    if low.any():
        deposit(pos[low], e[low] * w[low])
    keep = ~low
    pos, e, d, w = pos[keep], e[keep], d[keep], w[keep]
    t = _tables()
    while len(e):
        rho = np.ones_like(e) if density is None else np.maximum(density(pos), 1e-4)
        r_res = csda_range_g_cm2(e)
        s_g = np.maximum(step_fraction * r_res, 2e-5)
        s_mm = np.minimum(s_g * 10.0 / rho, max_step_mm)
        s_g = s_mm * rho / 10.0
        last = s_g >= r_res
        s_g = np.minimum(s_g, r_res)
        s_mm = s_g * 10.0 / rho
        e_new = np.where(last, 0.0, energy_from_range(r_res - s_g))
        if straggling:
            loss = sample_energy_loss(e - e_new, energy_loss_variance(0.5 * (e + e_new), s_g), rng)
            e_new = np.where(last, 0.0, np.maximum(e - loss, 0.0))
        e_mid = 0.5 * (e + e_new)
        inv_l1 = np.exp(np.interp(np.log(np.maximum(e_mid, 1e-3)), t["log_e"], np.log(t["inv_l1"])))
        mean_x = -np.expm1(-s_g * inv_l1)
        hinge = rng.random(len(e))
        pos = pos + (hinge * s_mm)[:, None] * d
        deposit(pos, (e - e_new) * w)
        d = rotate(d, sample_deflection(mean_x, rng), rng)
        pos = pos + ((1.0 - hinge) * s_mm)[:, None] * d
        alive = (e_new >= ELECTRON_CUTOFF_MEV) & ~last
        if inside is not None:
            alive &= inside(pos)
        rest = ~alive & (e_new > 0) & (e_new < ELECTRON_CUTOFF_MEV)
        if rest.any():
            deposit(pos[rest], e_new[rest] * w[rest])
        pos, e, d, w = pos[alive], e_new[alive], d[alive], w[alive]


# ----------------------------------------------------------------------------------------------- photons
@functools.lru_cache(maxsize=16)
def photon_mass_coefficients(material: str = "water") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(energy_mev grid, Compton, photoelectric) mass attenuation coefficients (cm2/g) from xraydb."""
    import warnings

    import xraydb

    from petspect.materials import MATERIALS

    mat = MATERIALS[material]
    e_mev = np.geomspace(PHOTON_CUTOFF_MEV, 0.8, 300)  # Elam tables end at 800 keV; highest line used: 723 keV
    comp = np.zeros_like(e_mev)
    photo = np.zeros_like(e_mev)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for el, frac in mat.mass_fractions:
            comp += frac * np.asarray(xraydb.mu_elam(el, e_mev * 1e6, kind="incoh"))
            photo += frac * np.asarray(xraydb.mu_elam(el, e_mev * 1e6, kind="photo"))
    return e_mev, comp, photo


def sample_klein_nishina(e_mev: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Scattered photon energy and cos(theta) for Compton scattering on free electrons (Kahn's rejection)."""
    k = e_mev / ME_MEV
    n = len(k)
    eps_out = np.empty(n)
    todo = np.arange(n)
    while len(todo):
        kk = k[todo]
        r1, r2, r3 = rng.random((3, len(todo)))
        branch = r1 <= (2.0 * kk + 1.0) / (2.0 * kk + 9.0)
        eta_b = 1.0 + 2.0 * kk * r2  # 1/eps in branch 1
        accept_b = r3 <= 4.0 * (1.0 / eta_b - 1.0 / eta_b ** 2)
        eta_n = (2.0 * kk + 1.0) / (1.0 + 2.0 * kk * r2)
        cos_n = 1.0 - (eta_n - 1.0) / kk
        accept_n = r3 <= 0.5 * (cos_n * cos_n + 1.0 / eta_n)
        eta = np.where(branch, eta_b, eta_n)
        ok = np.where(branch, accept_b, accept_n)
        eps_out[todo[ok]] = 1.0 / eta[ok]
        todo = todo[~ok]
    cos_t = 1.0 - (1.0 / eps_out - 1.0) / k
    return e_mev * eps_out, np.clip(cos_t, -1.0, 1.0)
