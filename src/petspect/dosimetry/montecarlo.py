"""A voxelised Monte Carlo dose reference on a patient CT.

Physics (stated, not hidden):

* decays are sampled in proportion to the time-integrated activity, uniformly inside their voxel;
* electrons (Fermi-theory beta spectra plus conversion and Auger lines) are transported by the
  condensed-history CSDA model of :mod:`petspect.dosimetry.transport` (its Numba kernel,
  :mod:`petspect.dosimetry._electron_numba`) through the voxel densities
  (each medium is water of its own density; steps at most half a voxel; energy-loss straggling), energy
  deposited at the step hinge points, electrons leaving the grid are lost; an electron whose doubled CSDA
  range cannot reach the faces of its voxel deposits its energy there at once (range rejection: exact for
  a per-voxel tally but for the rare straggled path beyond twice the CSDA range);
* photons are tracked by Woodcock (delta) tracking through three materials from the CT (lung, ICRU soft
  tissue, ICRU cortical bone; :func:`petspect.dosimetry.voxel_dose.hu_to_material`) with densities from
  :func:`~petspect.dosimetry.voxel_dose.hu_to_density`; Compton (Klein-Nishina) and photoelectric
  interactions, secondary electrons deposited locally, no Rayleigh scattering or fluorescence;
* the statistical uncertainty is the standard error over ``n_batches`` independent batches.

Returns the dose in Gy for the given TIA (MBq s per voxel).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from petspect.dosimetry import transport as tr
from petspect.dosimetry._electron_numba import transport_on_grid
from petspect.dosimetry.spectra import emissions
from petspect.dosimetry.voxel_dose import MEV_TO_J, _check_density, _check_tia, _cubic
from petspect.errors import InputError

_MATERIALS = ("lung", "soft_tissue", "cortical_bone")


@dataclass
class MonteCarloDose:
    """Monte Carlo dose: ``dose_gy`` (z, y, x), ``sigma_gy`` its standard error, histories, wall and CPU time.

    ``batches_gy`` (n_batches, z, y, x) holds the independent batch doses, for standard errors of region means.
    """

    dose_gy: np.ndarray
    sigma_gy: np.ndarray
    electrons: int
    photons: int
    wall_s: float
    cpu_s: float = float("nan")
    batches_gy: np.ndarray | None = None

    def relative_uncertainty(self, threshold: float = 0.1) -> float:
        """Median relative standard error over voxels above ``threshold`` x the maximum dose."""
        m = self.dose_gy > threshold * self.dose_gy.max()
        return float(np.median(self.sigma_gy[m] / self.dose_gy[m])) if m.any() else float("nan")

    def region_relative_se(self, mask) -> float:
        """Relative standard error of the mean dose over ``mask`` (boolean, (z, y, x)), from the batches."""
        m = np.asarray(mask, dtype=bool)
        if self.batches_gy is None or not m.any():
            return float("nan")
        means = self.batches_gy[:, m].mean(axis=1)
        mean = means.mean()
        return float(means.std(ddof=1) / np.sqrt(len(means)) / mean) if mean > 0 else float("nan")


class _Grid:
    def __init__(self, shape, a, rho, material):
        self.shape = np.array(shape)
        self.a = a
        self.rho = rho.ravel()
        self.mat = material.ravel().astype(np.int64)
        self.size_mm = self.shape * a

    def index(self, pos):
        ijk = np.floor(pos / self.a).astype(np.int64)
        ok = np.all((ijk >= 0) & (ijk < self.shape), axis=1)
        ijk = np.clip(ijk, 0, self.shape - 1)
        flat = (ijk[:, 0] * self.shape[1] + ijk[:, 1]) * self.shape[2] + ijk[:, 2]
        return flat, ok



def _sample_sources(tia, n, a, rng):
    p = tia.ravel() / tia.sum()
    flat = rng.choice(p.size, size=n, p=p)
    ijk = np.stack(np.unravel_index(flat, tia.shape), axis=1).astype(float)
    return (ijk + rng.random((n, 3))) * a


def _photon_woodcock(pos, e, grid: _Grid, rng, deposit):
    coeffs = [tr.photon_mass_coefficients(m) for m in _MATERIALS]
    egrid = coeffs[0][0]
    comp = np.stack([c[1] for c in coeffs])  # (3, n_e) cm2/g
    photo = np.stack([c[2] for c in coeffs])
    rho_max = float(grid.rho.max())
    mu_max_tab = (comp + photo).max(axis=0) * rho_max * 0.1  # 1/mm
    d = tr.isotropic(len(e), rng)
    while len(e):
        mu_max = np.interp(e, egrid, mu_max_tab)
        pos = pos + (-np.log(rng.random(len(e))) / mu_max)[:, None] * d
        flat, ok = grid.index(pos)
        pos, e, d, flat, mu_max = pos[ok], e[ok], d[ok], flat[ok], mu_max[ok]
        if not len(e):
            break
        mat = grid.mat[flat]
        rho = grid.rho[flat]
        mc = np.empty(len(e))
        mp = np.empty(len(e))
        for m in range(len(_MATERIALS)):
            sel = mat == m
            if sel.any():
                mc[sel] = np.interp(e[sel], egrid, comp[m])
                mp[sel] = np.interp(e[sel], egrid, photo[m])
        mu_c, mu_p = mc * rho * 0.1, mp * rho * 0.1
        xi = rng.random(len(e)) * mu_max
        is_photo = xi < mu_p
        is_comp = (xi >= mu_p) & (xi < mu_p + mu_c)
        if is_photo.any():
            deposit(pos[is_photo], e[is_photo])
        if is_comp.any():
            e_new, cos_t = tr.sample_klein_nishina(e[is_comp], rng)
            deposit(pos[is_comp], e[is_comp] - e_new)
            e[is_comp] = e_new
            d[is_comp] = tr.rotate(d[is_comp], cos_t, rng)
        alive = ~is_photo & (e >= tr.PHOTON_CUTOFF_MEV)
        low = ~is_photo & ~alive
        if low.any():
            deposit(pos[low], e[low])
        pos, e, d = pos[alive], e[alive], d[alive]


def monte_carlo_dose(tia_mbq_s, hu, spacing_mm, nuclide: str, *, n_electrons: int = 200_000,
                     n_photons: int = 100_000, n_batches: int = 5, seed: int = 0,
                     density_g_per_ml=None) -> MonteCarloDose:
    """Monte Carlo absorbed dose (Gy) of a TIA map on a CT.

    Parameters
    ----------
    tia_mbq_s : ndarray, shape (z, y, x)
        Time-integrated activity per voxel (MBq s).
    hu : ndarray, shape (z, y, x)
        CT numbers on the same grid (HU), for densities and materials.
    spacing_mm : float or sequence of 3 floats
        Cubic voxel size (mm).
    nuclide : str
        "Lu-177", "Y-90" or "I-131".
    n_electrons, n_photons : int
        Histories of each kind (split over ``n_batches`` batches).
    density_g_per_ml : ndarray, optional
        Override the density derived from ``hu``.
    """
    from petspect.dosimetry.voxel_dose import hu_to_density, hu_to_material

    t0, c0 = time.perf_counter(), time.process_time()
    tia = _check_tia(tia_mbq_s)
    hu = np.asarray(hu, dtype=float)
    if hu.shape != tia.shape:
        raise InputError(f"CT shape {hu.shape} differs from the activity's {tia.shape}")
    if tia.sum() <= 0:
        raise InputError("time-integrated activity is zero everywhere")
    if n_batches < 2 or n_electrons < n_batches or n_photons < 0:
        raise InputError("need n_batches >= 2 and at least one electron per batch")
    a = _cubic(spacing_mm)
    rho = hu_to_density(hu) if density_g_per_ml is None else _check_density(density_g_per_ml, tia.shape)
    grid = _Grid(tia.shape, a, rho, hu_to_material(hu))
    em = emissions(nuclide)
    e_kev, e_w = em.electron_lines(400)
    e_per_decay = e_w.sum()
    lines = np.array(em.photons) if em.photons else np.zeros((0, 2))
    p_per_decay = lines[:, 1].sum() if len(lines) else 0.0
    decays = tia.sum() * 1e6
    rng = np.random.default_rng(seed)
    batches = np.zeros((n_batches, tia.size))
    mass_kg = rho.ravel() * a ** 3 * 1e-6
    width = e_kev[1] - e_kev[0]
    for b in range(n_batches):
        acc = batches[b]

        def deposit(pos, energy, acc=acc):
            flat, ok = grid.index(pos)
            np.add.at(acc, flat[ok], energy[ok])

        ne = n_electrons // n_batches
        idx = rng.choice(len(e_kev), size=ne, p=e_w / e_per_decay)
        jitter = np.where(idx < 400, (rng.random(ne) - 0.5) * width, 0.0)
        e = np.maximum(e_kev[idx] + jitter, 0.0) / 1000.0
        pos = _sample_sources(tia, ne, a, rng)
        scale_e = decays * e_per_decay / ne
        acc += transport_on_grid(pos, e, rho, a, seed=int(rng.integers(2 ** 31))).ravel() * scale_e
        npn = n_photons // n_batches
        if npn and p_per_decay > 0:
            pe = lines[rng.choice(len(lines), size=npn, p=lines[:, 1] / p_per_decay), 0] / 1000.0
            pos = _sample_sources(tia, npn, a, rng)
            before = acc.copy()
            _photon_woodcock(pos, pe, grid, rng, deposit)
            acc[:] = before + (acc - before) * decays * p_per_decay / npn
    dose_b = batches * MEV_TO_J / mass_kg[None]
    dose = dose_b.mean(axis=0).reshape(tia.shape)
    sigma = (dose_b.std(axis=0, ddof=1) / np.sqrt(n_batches)).reshape(tia.shape)
    return MonteCarloDose(dose, sigma, (n_electrons // n_batches) * n_batches,
                          (n_photons // n_batches) * n_batches, time.perf_counter() - t0, time.process_time() - c0,
                          dose_b.reshape((n_batches,) + tia.shape))
