"""Numba kernel of the condensed-history electron transport on a voxel grid.

The same physics as :func:`petspect.dosimetry.transport.transport_electrons` (CSDA steps of a fraction
of the residual range, at most ``max_step_mm``; gamma-distributed energy-loss straggling; Wentzel-shaped multiple-scattering deflection at a random
hinge; energy deposited in the voxel of the hinge point), written as one loop per electron so that it
runs ~10-20x faster than the vectorised NumPy version. Voxels with density <= 0 and positions outside
the grid absorb nothing and end the electron (it has left the region of interest). Random numbers come
from Numba's own generator, seeded inside the kernel (NumPy's global generator is untouched).
"""

from __future__ import annotations

import math

import numpy as np

from petspect.dosimetry import transport as tr


def _tables():
    t = tr._tables()
    mean_x, a_tab = tr._wentzel_table()
    return (float(t["log_e"][0]), float(t["log_e"][1] - t["log_e"][0]), np.ascontiguousarray(t["log_r"]),
            np.ascontiguousarray(t["log_e"]), np.ascontiguousarray(np.log(t["inv_l1"])),
            np.ascontiguousarray(mean_x), np.ascontiguousarray(a_tab), float(t["range"][0]), float(t["e"][0]))


def _build():
    from numba import njit

    @njit(cache=True)
    def _interp_uniform(x, x0, dx, table):
        f = (x - x0) / dx
        if f <= 0.0:
            return table[0]
        i = int(f)
        if i >= table.shape[0] - 1:
            return table[table.shape[0] - 1]
        w = f - i
        return table[i] * (1.0 - w) + table[i + 1] * w

    @njit(cache=True)
    def _interp_sorted(x, xs, ys):
        n = xs.shape[0]
        if x <= xs[0]:
            return ys[0]
        if x >= xs[n - 1]:
            return ys[n - 1]
        i = np.searchsorted(xs, x) - 1
        w = (x - xs[i]) / (xs[i + 1] - xs[i])
        return ys[i] * (1.0 - w) + ys[i + 1] * w

    @njit(cache=True)
    def run(pos, energy, weight, rho, a, step_fraction, max_step_mm, cutoff, le0, dle, log_r, log_e, log_inv_l1,
            mean_x, a_tab, r0, e0, seed, k_strag, range_rejection, out):
        np.random.seed(seed)
        nz, ny, nx = rho.shape
        for n in range(pos.shape[0]):
            z, y, x = pos[n, 0], pos[n, 1], pos[n, 2]
            e = energy[n]
            w = weight[n]
            ct = 2.0 * np.random.random() - 1.0
            ph = 2.0 * math.pi * np.random.random()
            st = math.sqrt(max(1.0 - ct * ct, 0.0))
            uz, uy, ux = ct, st * math.sin(ph), st * math.cos(ph)
            while True:
                iz, iy, ix = int(math.floor(z / a)), int(math.floor(y / a)), int(math.floor(x / a))
                if iz < 0 or iy < 0 or ix < 0 or iz >= nz or iy >= ny or ix >= nx:
                    break
                r = rho[iz, iy, ix]
                if r <= 0.0:
                    break
                if e < cutoff:
                    out[iz, iy, ix] += e * w
                    break
                rr = math.exp(_interp_uniform(math.log(e), le0, dle, log_r))
                if range_rejection > 0.0:
                    # range rejection: an electron that cannot leave its voxel deposits all its energy there
                    dmin = min(z - iz * a, (iz + 1) * a - z, y - iy * a, (iy + 1) * a - y, x - ix * a,
                               (ix + 1) * a - x)
                    if range_rejection * rr * 10.0 / r < dmin:
                        out[iz, iy, ix] += e * w
                        break
                s_g = max(step_fraction * rr, 2e-5)
                s_mm = min(s_g * 10.0 / r, max_step_mm)
                s_g = s_mm * r / 10.0
                last = s_g >= rr
                if last:
                    s_g = rr
                s_mm = s_g * 10.0 / r
                if last:
                    e_new = 0.0
                else:
                    res = rr - s_g
                    if res <= r0:
                        e_new = res / r0 * e0
                    else:
                        e_new = math.exp(_interp_sorted(math.log(res), log_r, log_e))
                    if k_strag > 0.0:
                        mean_loss = e - e_new
                        em = 0.5 * (e + e_new)
                        g = em / 0.51099895 + 1.0
                        b2 = 1.0 - 1.0 / (g * g)
                        var = k_strag * 0.5 * em * s_g * (1.0 - 0.5 * b2) / b2
                        if mean_loss > 0.0 and var > 0.0:
                            e_new = max(e - np.random.gamma(mean_loss * mean_loss / var, var / mean_loss), 0.0)
                e_mid = 0.5 * (e + e_new)
                inv_l1 = math.exp(_interp_uniform(math.log(max(e_mid, 1e-3)), le0, dle, log_inv_l1))
                m = -math.expm1(-s_g * inv_l1)
                if m > 0.999:
                    m = 0.999
                aa = _interp_sorted(m, mean_x, a_tab)
                hinge = np.random.random()
                z += hinge * s_mm * uz
                y += hinge * s_mm * uy
                x += hinge * s_mm * ux
                jz, jy, jx = int(math.floor(z / a)), int(math.floor(y / a)), int(math.floor(x / a))
                inside = 0 <= jz < nz and 0 <= jy < ny and 0 <= jx < nx and rho[jz, jy, jx] > 0.0
                if inside:
                    out[jz, jy, jx] += (e - e_new) * w
                # deflection
                xi = np.random.random()
                xx = 2.0 * aa * xi / (1.0 + aa - xi)
                cos_t = min(max(1.0 - xx, -1.0), 1.0)
                sin_t = math.sqrt(max(1.0 - cos_t * cos_t, 0.0))
                phi = 2.0 * math.pi * np.random.random()
                if abs(ux) < 0.9:
                    hz, hy, hx = 0.0, 0.0, 1.0
                else:
                    hz, hy, hx = 0.0, 1.0, 0.0
                vz = uy * hx - ux * hy
                vy = ux * hz - uz * hx
                vx = uz * hy - uy * hz
                nv = math.sqrt(vz * vz + vy * vy + vx * vx)
                vz, vy, vx = vz / nv, vy / nv, vx / nv
                wz = uy * vx - ux * vy
                wy = ux * vz - uz * vx
                wx = uz * vy - uy * vz
                cp, sp = math.cos(phi), math.sin(phi)
                uz = cos_t * uz + sin_t * (cp * vz + sp * wz)
                uy = cos_t * uy + sin_t * (cp * vy + sp * wy)
                ux = cos_t * ux + sin_t * (cp * vx + sp * wx)
                nu = math.sqrt(uz * uz + uy * uy + ux * ux)
                uz, uy, ux = uz / nu, uy / nu, ux / nu
                z += (1.0 - hinge) * s_mm * uz
                y += (1.0 - hinge) * s_mm * uy
                x += (1.0 - hinge) * s_mm * ux
                if not inside:
                    break
                if last:
                    break
                e = e_new
        return out

    return run


_KERNEL = None


def transport_on_grid(pos_mm: np.ndarray, e_mev: np.ndarray, density: np.ndarray, voxel_mm: float, *,
                      seed: int, weight: np.ndarray | None = None, step_fraction: float = 0.04,
                      max_step_fraction: float = 0.5, straggling: bool = True,
                      range_rejection: float = 2.0) -> np.ndarray:
    """Electron energy (MeV) deposited per voxel of ``density`` (z, y, x; g/mL, <= 0: absorbing boundary).

    ``pos_mm`` (n, 3) in (z, y, x) mm from the grid corner; directions are isotropic. ``straggling``: energy-loss
    straggling as in :func:`petspect.dosimetry.transport.transport_electrons`. ``range_rejection``: an electron
    whose CSDA range times this factor is shorter than its distance to the nearest face of its voxel deposits
    its energy in that voxel at once (the tally is per voxel, so this is exact whenever the path stays inside;
    the factor 2 covers straggled paths longer than the CSDA range; 0 switches it off). Without bremsstrahlung
    nothing else leaves an electron's track, so only the rare path beyond twice the CSDA range is affected.
    """
    global _KERNEL
    if _KERNEL is None:
        _KERNEL = _build()
    le0, dle, log_r, log_e, log_inv_l1, mean_x, a_tab, r0, e0 = _tables()
    out = np.zeros(density.shape, dtype=np.float64)
    w = np.ones(len(e_mev)) if weight is None else np.asarray(weight, dtype=np.float64)
    _KERNEL(np.ascontiguousarray(pos_mm, dtype=np.float64), np.ascontiguousarray(e_mev, dtype=np.float64), w,
            np.ascontiguousarray(density, dtype=np.float64), float(voxel_mm), float(step_fraction),
            float(max_step_fraction * voxel_mm), float(tr.ELECTRON_CUTOFF_MEV), le0, dle, log_r, log_e,
            log_inv_l1, mean_x, a_tab, r0, e0, int(seed) % (2 ** 32 - 1),
            float(tr.STRAGGLING_K_MEV_CM2_G) if straggling else 0.0, float(range_rejection), out)
    return out
