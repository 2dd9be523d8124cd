"""Voxel S-value kernels computed by petspect from first principles.

A kernel is built in two stages:

1. **Point kernels** (radial energy deposition around an isotropic point source in water, per decay):
   the electrons of the nuclide (Fermi-theory beta spectra plus conversion and Auger lines,
   :mod:`petspect.dosimetry.spectra`) are transported by the condensed-history Monte Carlo of
   :mod:`petspect.dosimetry.transport` (CSDA mean loss per step with energy-loss straggling), its photons
   by a Compton/photoelectric Monte Carlo with xraydb cross-sections; energy deposits are tallied in
   spherical shells of mass thickness (g/cm2), so one point kernel serves every density.
2. **Voxel integration**: the energy that a source voxel (uniform activity, side ``a``) deposits in a
   target voxel at offset ``c`` is (1/V) * integral of K(|d|) g_c(d) over displacements d, with
   K the point kernel per unit volume and g_c(d) = prod_i max(a - |d_i - c_i a|, 0) the overlap volume
   of the two cubes. For the 27 nearest voxels this is evaluated in spherical shells (the mean of g_c
   over directions, 6000 Fibonacci directions, exact near the 1/r^2 singularity); for the others by
   Gauss-Legendre quadrature over the 2a-wide box of displacements.

S(c) = energy / (rho a^3), in mGy per MBq s of time-integrated activity in the source voxel; the array
has the source voxel in the middle and is ordered (z, y, x). The default medium is ICRP soft tissue at
1.03 g/mL (GEANT4's G4_TISSUE_SOFT_ICRP, as used by Lanconelli et al 2012), transported as water of that
density. Results carry their provenance (:class:`KernelInfo`); point kernels are cached in memory.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from petspect.dosimetry import transport as tr
from petspect.dosimetry.spectra import emissions
from petspect.errors import InputError

MEV_TO_J = 1.602176634e-13
SOFT_TISSUE_G_PER_ML = 1.03


@dataclass(frozen=True)
class PointKernel:
    """Radial energy deposition around a point source, per decay.

    ``edges_g_cm2`` (n + 1,) are shell edges in mass thickness (g/cm2); ``energy_mev`` (n,) the mean energy
    deposited per decay in each shell. ``escaped_mev`` is the energy per decay beyond the last edge.
    """

    edges_g_cm2: np.ndarray
    energy_mev: np.ndarray
    emitted_mev: float
    escaped_mev: float
    particles: int
    #: energy-loss straggling in the electron transport (False: pure CSDA steps; None: not recorded)
    straggling: bool | None = None
    #: where the tallies come from: "computed" or the shipped file they were read from
    source: str = "computed"


@dataclass
class KernelInfo:
    """Provenance of a voxel S-value kernel (JSON-serialisable)."""

    nuclide: str
    voxel_mm: float
    density_g_per_ml: float
    unit: str = "mGy/(MBq s)"
    method: str = ("condensed-history electron Monte Carlo (Bethe stopping power, CSDA mean loss per step, "
                   "gamma-distributed energy-loss straggling, screened-Rutherford multiple scattering) + "
                   "Compton/photoelectric photon Monte Carlo in water, point kernels integrated over cubic "
                   "source and target voxels")
    electrons: int = 0
    photons: int = 0
    discrete_electrons: bool = True
    seed: int = 0
    emission_sources: list[str] = field(default_factory=list)
    mean_electron_mev: float = 0.0
    mean_photon_mev: float = 0.0
    #: energy-loss straggling in the electron point kernel (False: pure CSDA; None: not recorded)
    straggling: bool | None = True
    #: "computed" (this call's Monte Carlo) or the shipped point-kernel file used
    point_kernels: str = "computed"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class VoxelKernel:
    """A voxel S-value kernel: ``values`` (2n+1, 2n+1, 2n+1) in mGy/(MBq s), source voxel in the middle."""

    values: np.ndarray
    info: KernelInfo

    @property
    def centre(self) -> float:
        n = self.values.shape[0] // 2
        return float(self.values[n, n, n])

    def at(self, i: int, j: int, k: int) -> float:
        """S value at voxel offset (i, j, k) (any order: the kernel is symmetric)."""
        n = self.values.shape[0] // 2
        return float(self.values[n + i, n + j, n + k])


# --------------------------------------------------------------------------------------- point kernels
def _radial_tally(edges: np.ndarray):
    acc = np.zeros(len(edges) - 1)

    def deposit(pos_mm: np.ndarray, energy: np.ndarray) -> None:
        r_g = np.linalg.norm(pos_mm, axis=1) * 0.1  # water, 1 g/mL: mm -> g/cm2
        idx = np.searchsorted(edges, r_g, side="right") - 1
        ok = (idx >= 0) & (idx < len(acc))
        np.add.at(acc, idx[ok], energy[ok])

    return acc, deposit


@functools.lru_cache(maxsize=16)
def electron_point_kernel(nuclide: str, n_electrons: int = 200_000, seed: int = 0,
                          discrete_electrons: bool = True, straggling: bool = True) -> PointKernel:
    """Electron point kernel of ``nuclide`` in water by the condensed-history Monte Carlo.

    ``discrete_electrons=False`` leaves out conversion and Auger electrons (beta spectra only), the
    emission set of the Lanconelli et al 2012 database (see :func:`voxel_kernel`). ``straggling``: energy-loss
    straggling (:func:`petspect.dosimetry.transport.energy_loss_variance`); False gives pure CSDA steps.
    """
    em = emissions(nuclide)
    e_kev, per_decay = em.electron_lines(400) if discrete_electrons else em.beta_spectrum(400)
    total = per_decay.sum()
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(e_kev), size=n_electrons, p=per_decay / total)
    # spread within a beta bin (the discrete lines sit at the end of the array)
    n_beta = 400
    width = e_kev[1] - e_kev[0]
    jitter = np.where(idx < n_beta, (rng.random(n_electrons) - 0.5) * width, 0.0)
    e_mev = np.maximum(e_kev[idx] + jitter, 0.0) / 1000.0
    r_max = float(tr.csda_range_g_cm2(np.array([e_mev.max()]))[0]) * 1.25  # straggling reaches beyond CSDA
    edges = np.linspace(0.0, r_max, 801)
    acc, deposit = _radial_tally(edges)
    batch = 50_000
    for start in range(0, n_electrons, batch):
        sl = slice(start, start + batch)
        tr.transport_electrons(np.zeros((len(e_mev[sl]), 3)), e_mev[sl], rng, deposit, straggling=straggling)
    scale = total / n_electrons  # electrons per decay / simulated electrons
    emitted = float(e_mev.sum() * scale)
    dep = acc * scale
    return PointKernel(edges, dep, emitted, max(emitted - float(dep.sum()), 0.0), n_electrons, bool(straggling))


@functools.lru_cache(maxsize=16)
def photon_point_kernel(nuclide: str, n_photons: int = 200_000, seed: int = 1,
                        r_max_g_cm2: float = 60.0) -> PointKernel:
    """Photon point kernel of ``nuclide`` in water (Compton + photoelectric, local electron deposition)."""
    em = emissions(nuclide)
    edges = np.concatenate([[0.0], np.geomspace(0.002, r_max_g_cm2, 400)])
    if not em.photons:
        return PointKernel(edges, np.zeros(len(edges) - 1), 0.0, 0.0, 0)
    lines = np.array(em.photons)
    per_decay = lines[:, 1].sum()
    rng = np.random.default_rng(seed)
    e = lines[rng.choice(len(lines), size=n_photons, p=lines[:, 1] / per_decay), 0] / 1000.0
    acc, deposit = _radial_tally(edges)
    emitted = float(e.sum())
    transport_photons(np.zeros((n_photons, 3)), e, rng, deposit, r_max_mm=r_max_g_cm2 * 10.0)
    scale = per_decay / n_photons
    dep = acc * scale
    return PointKernel(edges, dep, emitted * scale, max(emitted * scale - float(dep.sum()), 0.0), n_photons)


def transport_photons(pos_mm: np.ndarray, e_mev: np.ndarray, rng: np.random.Generator, deposit,
                      *, r_max_mm: float = 600.0) -> None:
    """Photon Monte Carlo in homogeneous water of 1 g/mL from ``pos_mm``; photons beyond ``r_max_mm`` escape."""
    grid, comp, photo = tr.photon_mass_coefficients("water")
    pos = np.array(pos_mm, dtype=float)
    e = np.array(e_mev, dtype=float)
    d = tr.isotropic(len(e), rng)
    while len(e):
        mu_c = np.interp(e, grid, comp) * 0.1  # 1/mm at 1 g/mL
        mu_p = np.interp(e, grid, photo) * 0.1
        mu = mu_c + mu_p
        pos = pos + (-np.log(rng.random(len(e))) / mu)[:, None] * d
        inside = np.linalg.norm(pos, axis=1) < r_max_mm
        pos, e, d, mu_c, mu = pos[inside], e[inside], d[inside], mu_c[inside], mu[inside]
        is_photo = rng.random(len(e)) * mu >= mu_c
        if is_photo.any():
            deposit(pos[is_photo], e[is_photo])
        keep = ~is_photo
        pos, e, d = pos[keep], e[keep], d[keep]
        if not len(e):
            break
        e_new, cos_t = tr.sample_klein_nishina(e, rng)
        deposit(pos, e - e_new)
        d = tr.rotate(d, cos_t, rng)
        low = e_new < tr.PHOTON_CUTOFF_MEV
        if low.any():
            deposit(pos[low], e_new[low])
        pos, e, d = pos[~low], e_new[~low], d[~low]


# ------------------------------------------------------------------------------------ voxel integration
@functools.lru_cache(maxsize=4)
def _fibonacci_directions(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    phi = np.pi * (1.0 + 5 ** 0.5) * i
    s = np.sqrt(1.0 - z * z)
    return np.stack([s * np.cos(phi), s * np.sin(phi), z], axis=1)


def _overlap(d: np.ndarray, c: np.ndarray, a: float) -> np.ndarray:
    return np.prod(np.clip(a - np.abs(d - c * a), 0.0, None), axis=-1)


def _shell_energy(r_mm: np.ndarray, energy: np.ndarray, offset: np.ndarray, a: float) -> float:
    """Energy into the target voxel from per-shell energies ``energy`` at radii ``r_mm`` (shell method)."""
    u = _fibonacci_directions(6000)
    reach = (np.abs(offset) + 1).max() * a * math.sqrt(3)
    sel = (r_mm < reach) & (energy > 0)
    total = 0.0
    r_sel, e_sel = r_mm[sel], energy[sel]
    for start in range(0, len(r_sel), 64):
        rr = r_sel[start:start + 64]
        g = _overlap(rr[:, None, None] * u[None], offset[None, None].astype(float), a).mean(axis=1)
        total += float((e_sel[start:start + 64] * g).sum())
    return total / a ** 3


def _box_energy(kernel_r_mm: np.ndarray, kernel_density: np.ndarray, offset: np.ndarray, a: float,
                n_nodes: int) -> float:
    """Energy into the target voxel by Gauss-Legendre quadrature of K(|d|) g_c(d) over the displacement box."""
    x, w = np.polynomial.legendre.leggauss(n_nodes)
    nodes, weights = [], []
    for ci in offset:
        lo = np.concatenate([(ci - 1) * a + (x + 1) * a / 2, ci * a + (x + 1) * a / 2])
        wt = np.concatenate([w * a / 2, w * a / 2])
        nodes.append(lo)
        weights.append(wt * np.clip(a - np.abs(lo - ci * a), 0, None))
    dz, dy, dx = np.meshgrid(*nodes, indexing="ij")
    wz, wy, wx = np.meshgrid(*weights, indexing="ij")
    r = np.sqrt(dz * dz + dy * dy + dx * dx)
    k = np.interp(r, kernel_r_mm, kernel_density, right=0.0)
    return float((k * wz * wy * wx).sum()) / a ** 3


CACHE_ELECTRONS = 400_000
CACHE_PHOTONS = 400_000


def _cache_path(nuclide: str, discrete_electrons: bool):
    from importlib import resources

    from petspect.nuclides import canonical_name

    tag = "full" if discrete_electrons else "beta"
    return resources.files("petspect") / "data" / "dosimetry" / "point_kernels" / f"{canonical_name(nuclide)}_{tag}.npz"


def point_kernels(nuclide: str, *, n_electrons: int | None = None, n_photons: int | None = None,
                  seed: int = 0, discrete_electrons: bool = True) -> tuple[PointKernel, PointKernel]:
    """The (electron, photon) point kernels of ``nuclide``.

    With ``n_electrons`` and ``n_photons`` None, the point kernels shipped in ``petspect/data/dosimetry/
    point_kernels`` (made by :func:`build_point_kernel_cache` with 400 000 electrons and photons, seed 0)
    are used when present, else they are computed with that size. Given sizes always recompute
    (memoised in memory). Both the shipped files and recomputed kernels use energy-loss straggling; a file's
    ``straggling`` provenance entry is carried into :attr:`PointKernel.straggling` (a file without the entry
    was built with pure CSDA steps and reads as False).
    """
    import json

    if n_electrons is None and n_photons is None and seed == 0:
        path = _cache_path(nuclide, discrete_electrons)
        if path.is_file():
            with path.open("rb") as fh:
                z = np.load(fh)
                prov = json.loads(str(z["provenance"])) if "provenance" in z.files else {}
                strag = bool(prov.get("straggling", False))
                ek = PointKernel(z["e_edges"], z["e_energy"], float(z["e_emitted"]), float(z["e_escaped"]),
                                 int(z["e_particles"]), strag, f"shipped {path.name}")
                pk = PointKernel(z["p_edges"], z["p_energy"], float(z["p_emitted"]), float(z["p_escaped"]),
                                 int(z["p_particles"]), None, f"shipped {path.name}")
            return ek, pk
    n_e = CACHE_ELECTRONS if n_electrons is None else int(n_electrons)
    n_p = CACHE_PHOTONS if n_photons is None else int(n_photons)
    if n_e < 1000 or n_p < 1000:
        raise InputError("point kernels need at least 1000 electrons and 1000 photons")
    return (electron_point_kernel(nuclide, n_e, seed, discrete_electrons),
            photon_point_kernel(nuclide, n_p, seed + 1))


def build_point_kernel_cache(out_dir, nuclides=("Lu-177", "Y-90", "I-131")) -> list:
    """Compute the shipped point kernels (400 000 electrons and photons, seed 0) into ``out_dir``.

    Each ``<nuclide>_<full|beta>.npz`` holds the tallies and a ``provenance`` JSON string.
    """
    import json
    import time
    from pathlib import Path

    import petspect
    from petspect.dosimetry.spectra import emission_sources

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for nuc in nuclides:
        for discrete in (True, False):
            t0, c0 = time.perf_counter(), time.process_time()
            ek = electron_point_kernel(nuc, CACHE_ELECTRONS, 0, discrete)
            pk = photon_point_kernel(nuc, CACHE_PHOTONS, 1)
            prov = {"nuclide": nuc, "discrete_electrons": discrete, "electrons": CACHE_ELECTRONS,
                    "photons": CACHE_PHOTONS, "seed": 0, "petspect_version": petspect.__version__,
                    "straggling": ek.straggling, "transport": "condensed history, CSDA mean loss per step, "
                                                             "gamma-distributed energy-loss straggling "
                                                             "(transport.energy_loss_variance)",
                    "method": KernelInfo(nuc, 0.0, 1.0).method, "physics": tr.__doc__.strip().splitlines()[0],
                    "emission_sources": emission_sources(), "wall_s": round(time.perf_counter() - t0, 1),
                    "cpu_s": round(time.process_time() - c0, 1),
                    "built_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            path = out / f"{nuc}_{'full' if discrete else 'beta'}.npz"
            np.savez_compressed(path, e_edges=ek.edges_g_cm2, e_energy=ek.energy_mev, e_emitted=ek.emitted_mev,
                                e_escaped=ek.escaped_mev, e_particles=ek.particles, p_edges=pk.edges_g_cm2,
                                p_energy=pk.energy_mev, p_emitted=pk.emitted_mev, p_escaped=pk.escaped_mev,
                                p_particles=pk.particles, provenance=json.dumps(prov))
            written.append(path)
    return written


def voxel_kernel(nuclide: str, voxel_mm: float, *, half_width: int | None = None,
                 density_g_per_ml: float = SOFT_TISSUE_G_PER_ML, n_electrons: int | None = None,
                 n_photons: int | None = None, seed: int = 0, discrete_electrons: bool = True,
                 components: tuple[str, ...] = ("electrons", "photons")) -> VoxelKernel:
    """Voxel S-value kernel of ``nuclide`` for cubic voxels of ``voxel_mm`` in a homogeneous medium.

    Parameters
    ----------
    nuclide : str
        "Lu-177", "Y-90" or "I-131".
    voxel_mm : float
        Voxel side (mm), 0.5 to 20.
    half_width : int, optional
        The kernel spans (2 * half_width + 1) voxels per axis; default covers 50 mm (at least 5 voxels).
    density_g_per_ml : float
        Medium density (water-equivalent composition); default ICRP soft tissue 1.03 g/mL.
    n_electrons, n_photons, seed
        Monte Carlo sizes and seed of the point kernels (None: the shipped 400 000-particle point kernels,
        see :func:`point_kernels`).
    discrete_electrons : bool
        Include conversion and Auger electrons (default, the full ICRP-107 emission). False gives the
        beta-spectrum-plus-photons source of the Lanconelli et al 2012 database: their first-neighbour
        Lu-177 values are within 3 % of petspect's either way, while their centre voxels are lower by the
        conversion-electron share of the emitted energy (about 10 % for Lu-177), so the published
        database evidently leaves the conversion and Auger electrons out.
    components : tuple of str
        Which emissions to include: ``"electrons"`` and/or ``"photons"`` (e.g. the photon-only kernel).

    Returns
    -------
    VoxelKernel
        ``values`` (2n+1,)*3 in mGy/(MBq s), centre voxel = source.
    """
    a = float(voxel_mm)
    if not (0.5 <= a <= 20.0) or not math.isfinite(a):
        raise InputError(f"voxel size {voxel_mm} mm is outside 0.5-20 mm")
    rho = float(density_g_per_ml)
    if not (0.0005 <= rho <= 5.0):
        raise InputError(f"density {density_g_per_ml} g/mL is outside 0.0005-5")
    n = max(5, int(math.ceil(50.0 / a))) if half_width is None else int(half_width)
    if n < 1 or n > 40:
        raise InputError(f"kernel half-width {half_width} must be 1-40 voxels")
    ek, pk = point_kernels(nuclide, n_electrons=n_electrons, n_photons=n_photons, seed=seed,
                           discrete_electrons=discrete_electrons)
    # shells in mm at this density; sub-sample each shell at 4 radii for the shell method
    if not components or any(c not in ("electrons", "photons") for c in components):
        raise InputError(f"components must be a subset of ('electrons', 'photons'); got {components}")
    parts = []
    for name, pkern in (("electrons", ek), ("photons", pk)):
        if name not in components:
            continue
        edges_mm = pkern.edges_g_cm2 * 10.0 / rho
        sub = (np.arange(2) + 0.5) / 2
        r_sub = (edges_mm[:-1, None] + np.diff(edges_mm)[:, None] * sub[None]).ravel()
        e_sub = np.repeat(pkern.energy_mev / 2, 2)
        centres = 0.5 * (edges_mm[1:] + edges_mm[:-1])
        dens = pkern.energy_mev / np.maximum(np.diff(edges_mm), 1e-30) / (4 * np.pi * np.maximum(centres, 1e-9) ** 2)
        parts.append((r_sub, e_sub, centres, dens))
    values = np.zeros((n + 1, n + 1, n + 1))
    for i in range(n + 1):
        for j in range(i, n + 1):
            for k in range(j, n + 1):
                off = np.array([i, j, k])
                energy = 0.0
                for r_sub, e_sub, centres, dens in parts:
                    if k <= 1:
                        energy += _shell_energy(r_sub, e_sub, off, a)
                    else:
                        energy += _box_energy(centres, dens, off, a, 12 if k <= 3 else 6)
                val = energy * MEV_TO_J / (rho * 1e-3 * a ** 3 * 1e-3) * 1e6 * 1e3  # mGy per MBq s
                for p in {(i, j, k), (i, k, j), (j, i, k), (j, k, i), (k, i, j), (k, j, i)}:
                    values[p] = val
    idx = np.abs(np.arange(-n, n + 1))
    full = values[np.ix_(idx, idx, idx)]
    em = emissions(nuclide)
    from petspect.dosimetry.spectra import emission_sources

    info = KernelInfo(nuclide=em.nuclide, voxel_mm=a, density_g_per_ml=rho, electrons=ek.particles,
                      discrete_electrons=discrete_electrons,
                      photons=pk.particles, seed=seed, emission_sources=emission_sources(),
                      mean_electron_mev=ek.emitted_mev, mean_photon_mev=pk.emitted_mev,
                      straggling=ek.straggling, point_kernels=ek.source)
    return VoxelKernel(full, info)
