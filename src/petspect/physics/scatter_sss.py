"""PET single-scatter simulation (SSS) in the Watson / Ollinger style, with tail scaling.

Model
-----
For two detectors ``A`` and ``B`` the rate of coincidences in which exactly one photon Compton-scattered
once, at a point ``S``, is (Watson, IEEE TNS 47:1587, 2000, eq. 1; Ollinger, PMB 41:153, 1996)::

    S_AB = sum_S V_S mu_S (1/sigma_C) (dsigma_C/dOmega)(theta)
               * sigma_AS sigma_BS / (4 pi R_AS^2 R_BS^2) * (I_A + I_B)
    I_A  = eps(511) eps(E') [int_S^A lambda ds] exp(-int_S^A mu ds - int_S^B mu' ds)
    I_B  = eps(E') eps(511) [int_S^B lambda ds] exp(-int_S^A mu' ds - int_S^B mu ds)

``V_S`` is the volume a scatter point stands for, ``mu_S`` its attenuation (Compton-dominated at 511 keV),
``theta`` the scattering angle (``cos theta = u(S-A) . u(B-S)``), ``E' = 511 / (2 - cos theta)`` keV the
scattered photon's energy, ``mu'`` the attenuation at ``E'`` (``mu`` times the water ratio
``mu_w(E') / mu_w(511)`` from xraydb, exact for Compton-dominated tissue), ``sigma_AS`` the detector face
area seen from ``S`` (area times the cosine of incidence), ``R_AS`` the distance, ``eps(E)`` the probability
that a photon of energy ``E`` is accepted by the energy window (Gaussian energy resolution,
``FWHM = r_511 * 511 keV * sqrt(E / 511)``), ``lambda`` the activity and ``dsigma_C/dOmega`` Klein-Nishina.

To add it to trues computed by a line-integral projector, ``S_AB`` is divided by the unscattered
geometric sensitivity of the pair, ``G_AB = eps(511)^2 sigma_A sigma_B / (4 pi |A-B|^2)``, so the result
is in the units of the attenuated line integrals ``a P x`` (Bq/mL x mm for an image in Bq/mL), the same
units as :func:`petspect.physics.scatter_pet.scatter_estimate`.

Discretisation (what makes it fast, and what it costs)
------------------------------------------------------
* **Scatter points**: the attenuation map is averaged over blocks of about ``scatter_spacing_mm``; each
  block with mean ``mu`` above ``mu_threshold_per_mm`` is one scatter point at the block centre with its
  block's volume and mean ``mu``.
* **Detectors**: ``n_detector_angles`` positions around the ring times ``n_detector_rings`` axial positions
  (the scanner's first to last ring). Line integrals of ``mu`` and ``lambda`` from every scatter point to
  every coarse detector are sampled (trilinear, ``step_mm``) inside the image box.
* **Interpolation**: ``S_AB / G_AB`` on the coarse detector pairs is interpolated (periodic-linear in the
  two angles, linear in the two axial positions) to the representative crystals of every sinogram bin.

Leaves out: multiple scatter, scatter from activity or attenuation outside the image, the detectors' depth
of interaction and the energy dependence of their efficiency beyond the window; TOF data get the non-TOF
scatter spread evenly over the TOF bins (no TOF-SSS). As every clinical SSS, the result is rescaled to the
measured prompts on the sinogram tails (:func:`sss_tail_fitted`), which also absorbs multiple scatter to
first order.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from petspect.errors import InputError
from petspect.physics.attenuation import mu_per_mm_tensor
from petspect.physics.estimate_pet import tail_fitted_scatter

__all__ = ["SssSettings", "klein_nishina_per_sr", "window_acceptance", "single_scatter_simulation",
           "sss_tail_fitted"]

E511_KEV = 510.99895


@dataclass(frozen=True)
class SssSettings:
    """Sampling of the single-scatter simulation (module docstring, "Discretisation").

    Parameters
    ----------
    scatter_spacing_mm : float
        Transaxial pitch of the scatter points, mm.
    axial_spacing_mm : float
        Axial pitch of the scatter points, mm (scatter varies slowly along z).
    mu_threshold_per_mm : float
        Blocks with a mean attenuation below this are not scatter points (1/mm; water 0.0096).
    n_detector_angles : int
        Coarse detector positions around the ring.
    n_detector_rings : int or None
        Coarse axial detector positions; None: ``min(n_rings, 1 + axial FOV / axial_spacing_mm)``.
    energy_resolution : float
        Energy resolution FWHM as a fraction of 511 keV (LSO/LYSO ~0.10-0.12).
    step_mm : float or None
        Ray sampling step; None: the smallest voxel size.
    """

    scatter_spacing_mm: float = 20.0
    axial_spacing_mm: float = 40.0
    mu_threshold_per_mm: float = 0.002
    n_detector_angles: int = 48
    n_detector_rings: int | None = None
    energy_resolution: float = 0.11
    step_mm: float | None = None

    def __post_init__(self) -> None:
        if not (self.scatter_spacing_mm > 0 and self.axial_spacing_mm > 0 and self.mu_threshold_per_mm >= 0):
            raise InputError("scatter_spacing_mm and axial_spacing_mm must be > 0, mu_threshold_per_mm >= 0")
        if int(self.n_detector_angles) < 8:
            raise InputError(f"n_detector_angles must be >= 8, got {self.n_detector_angles}")
        if self.n_detector_rings is not None and int(self.n_detector_rings) < 1:
            raise InputError(f"n_detector_rings must be >= 1, got {self.n_detector_rings}")
        if not 0 < self.energy_resolution < 1:
            raise InputError(f"energy_resolution is a fraction of 511 keV in (0, 1), got {self.energy_resolution}")
        if self.step_mm is not None and not self.step_mm > 0:
            raise InputError(f"step_mm must be positive, got {self.step_mm}")


def klein_nishina_per_sr(cos_theta: torch.Tensor, energy_kev: float = E511_KEV) -> torch.Tensor:
    """``(1 / sigma_C) dsigma_C / dOmega`` (1/sr): the Klein-Nishina angular distribution, normalised to 1.

    ``dsigma/dOmega ~ P^2 (P + 1/P - sin^2 theta)`` with ``P = E'/E = 1 / (1 + k (1 - cos theta))``,
    ``k = E / m_e c^2`` (Klein & Nishina 1929); the normalisation ``2 pi int f dcos`` is computed numerically.
    """
    k = float(energy_kev) / E511_KEV

    def f(c):
        p = 1.0 / (1.0 + k * (1.0 - c))
        return p * p * (p + 1.0 / p - (1.0 - c * c))

    grid = np.linspace(-1.0, 1.0, 20001)
    norm = 2.0 * math.pi * float(np.trapezoid(f(grid), grid))
    return f(cos_theta.clamp(-1.0, 1.0)) / norm


def window_acceptance(energy_kev: torch.Tensor, window_kev: tuple[float, float], resolution: float) -> torch.Tensor:
    """Probability that a photon of ``energy_kev`` is recorded inside ``window_kev`` (Gaussian resolution).

    ``sigma(E) = resolution * 511 keV * sqrt(E / 511) / 2.3548`` (photo-statistics scaling).
    """
    lo, hi = window_kev
    sigma = resolution * E511_KEV * torch.sqrt(energy_kev / E511_KEV) / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    z_hi = (hi - energy_kev) / (sigma * math.sqrt(2.0))
    z_lo = (lo - energy_kev) / (sigma * math.sqrt(2.0))
    return 0.5 * (torch.erf(z_hi) - torch.erf(z_lo))


@functools.lru_cache(maxsize=8)
def _angular_tables(window_kev: tuple[float, float], resolution: float, n: int = 1025) -> tuple[np.ndarray, ...]:
    """On a uniform ``cos theta`` grid of ``n`` points in [-1, 1]: Klein-Nishina (1/sr) times the window
    acceptance of the scattered photon, and ``mu_water(E') / mu_water(511)`` (xraydb, 24 energies)."""
    from petspect.materials import linear_attenuation_per_mm

    c = np.linspace(-1.0, 1.0, n)
    e_sc = E511_KEV / (2.0 - c)
    kn = klein_nishina_per_sr(torch.as_tensor(c)).numpy()
    eps = window_acceptance(torch.as_tensor(e_sc), window_kev, resolution).numpy()
    e_tab = np.linspace(165.0, 512.0, 24)
    ref = linear_attenuation_per_mm("water", 511.0)
    r_tab = np.array([linear_attenuation_per_mm("water", float(v)) / ref for v in e_tab])
    return kn * eps, np.interp(e_sc, e_tab, r_tab)


def _lookup(table: torch.Tensor, cos_t: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of a uniform table on [-1, 1] at ``cos_t``."""
    f = (cos_t.clamp(-1.0, 1.0) + 1.0) * (0.5 * (table.numel() - 1))
    i0 = f.floor().long().clamp(max=table.numel() - 2)
    w = f - i0
    return table[i0] * (1 - w) + table[i0 + 1] * w


def _scatter_points(mu: torch.Tensor, grid, spacing_mm: float, axial_mm: float, threshold: float):
    """Block-averaged scatter points: LPS positions (n, 3) mm, mean mu (n,) 1/mm, volume (n,) mm^3."""
    sz, sy, sx = grid.spacing_mm
    b = [max(1, int(round(axial_mm / sz))), max(1, int(round(spacing_mm / sy))), max(1, int(round(spacing_mm / sx)))]
    b[0] = min(b[0], mu.shape[0])
    pooled = torch.nn.functional.avg_pool3d(mu[None, None], kernel_size=b, stride=b, ceil_mode=True,
                                            count_include_pad=False)[0, 0]
    keep = pooled > threshold
    if not bool(keep.any()):
        raise InputError(f"no scatter point: the attenuation map never exceeds {threshold} /mm on "
                         f"{spacing_mm} mm blocks (is it in 1/mm?)")
    # each point sits at its block's mu-weighted centroid (a block on the body's edge scatters from its inner part)
    idx = torch.stack(torch.meshgrid(*[torch.arange(n, dtype=mu.dtype, device=mu.device) for n in mu.shape],
                                     indexing="ij"))
    pool = lambda v: torch.nn.functional.avg_pool3d(v[None], kernel_size=b, stride=b, ceil_mode=True,  # noqa: E731
                                                    count_include_pad=False)[0]
    centroid = pool(idx * mu) / pooled.clamp_min(1e-30)  # (3, bz, by, bx) voxel indices
    ones = torch.nn.functional.avg_pool3d(torch.ones_like(mu)[None, None], kernel_size=b, stride=b, ceil_mode=True,
                                          count_include_pad=True)[0, 0]  # fraction of a full block inside the image
    volume = ones * (math.prod(b) * sz * sy * sx)
    return grid.index_to_world(centroid.movedim(0, -1)[keep]), pooled[keep], volume[keep]


def _box_exit(start: torch.Tensor, end: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Fraction ``t`` in (0, 1] of the segment start->end at which it leaves the box [lo, hi] (start inside)."""
    d = end - start
    with torch.no_grad():
        safe = torch.where(d.abs() > 1e-9, d, torch.full_like(d, 1e-9))
        t_hi = (hi - start) / safe
        t_lo = (lo - start) / safe
        t_exit = torch.where(d > 0, t_hi, t_lo)
        t_exit = torch.where(d.abs() > 1e-9, t_exit, torch.full_like(t_exit, math.inf))
    return t_exit.amin(-1).clamp(min=0.0, max=1.0)


def _line_integrals(points: torch.Tensor, detectors: torch.Tensor, volumes: torch.Tensor, grid,
                    step_mm: float) -> torch.Tensor:
    """Integrals of each of ``volumes`` (C, nz, ny, nx) from every point (S, 3) to every detector (D, 3).

    Returns (C, S, D), in the volumes' unit times mm.
    """
    nz, ny, nx = grid.shape
    half = torch.tensor(grid.spacing_mm[::-1], dtype=points.dtype, device=points.device) * 0.5
    origin = torch.tensor(grid.origin_mm, dtype=points.dtype, device=points.device)
    far = origin + torch.tensor([(nx - 1) * grid.spacing_mm[2], (ny - 1) * grid.spacing_mm[1],
                                 (nz - 1) * grid.spacing_mm[0]], dtype=points.dtype, device=points.device)
    lo, hi = origin - half, far + half
    diag = float(torch.linalg.norm(hi - lo))
    n_steps = max(8, int(math.ceil(diag / step_mm)))
    out = []
    for s0 in range(0, points.shape[0], 64):
        p = points[s0:s0 + 64, None, :]  # (s, 1, 3)
        d = detectors[None, :, :]  # (1, D, 3)
        t_exit = _box_exit(p.expand(-1, d.shape[1], -1), d.expand(p.shape[0], -1, -1), lo, hi)  # (s, D)
        length = torch.linalg.norm(d - p, dim=-1) * t_exit  # (s, D) mm inside the box
        frac = (torch.arange(n_steps, dtype=points.dtype, device=points.device) + 0.5) / n_steps
        t = t_exit[..., None] * frac  # (s, D, n)
        xyz = p[..., None, :] + t[..., None] * (d - p)[..., None, :]  # (s, D, n, 3) LPS
        norm = 2.0 * (xyz - lo) / (hi - lo) - 1.0  # grid_sample coordinates, align_corners=False
        del xyz
        samples = torch.nn.functional.grid_sample(
            volumes[None], norm.reshape(1, -1, 1, 1, 3).to(volumes.dtype), mode="bilinear",
            padding_mode="zeros", align_corners=False)[0, :, :, 0, 0]  # (C, s*D*n)
        samples = samples.reshape(volumes.shape[0], *t.shape)
        out.append(samples.sum(-1) * (length / n_steps).to(samples.dtype))
    return torch.cat(out, dim=1)


def _coarse_detectors(scanner, settings: SssSettings, dtype, device):
    m = int(settings.n_detector_angles)
    z_rings = torch.as_tensor(scanner.ring_z_mm(), dtype=dtype, device=device)
    if settings.n_detector_rings is not None:
        k = int(settings.n_detector_rings)
    else:
        k = int(min(scanner.n_rings, 1 + math.ceil(float(z_rings[-1] - z_rings[0]) / settings.axial_spacing_mm)))
    k = max(1, min(k, scanner.n_rings))
    z = torch.linspace(float(z_rings[0]), float(z_rings[-1]), k, dtype=dtype, device=device) if k > 1 else \
        z_rings.mean().reshape(1)
    phi = torch.arange(m, dtype=dtype, device=device) * (2.0 * math.pi / m)
    r = float(scanner.ring_radius_mm)
    pos = torch.stack([r * torch.cos(phi)[:, None].expand(m, k), r * torch.sin(phi)[:, None].expand(m, k),
                       z[None, :].expand(m, k)], dim=-1)  # (M, K, 3)
    return pos.reshape(m * k, 3), phi, z


def _pair_scatter(points, mu_s, vol_s, dets, tau, lam, scanner, settings) -> torch.Tensor:
    """``S_AB / G_AB`` for every pair of coarse detectors, (D, D)."""
    dtype, device = points.dtype, points.device
    window = tuple(float(v) for v in scanner.energy_window_kev)
    res = float(settings.energy_resolution)
    eps0 = float(window_acceptance(torch.tensor(E511_KEV, dtype=torch.float64), window, res))
    kn_eps, ratio_tab = (torch.as_tensor(t, dtype=dtype, device=device) for t in _angular_tables(window, res))
    if eps0 <= 0:
        raise InputError(f"the energy window {window} keV does not accept 511 keV photons")
    area = float(scanner.crystal_size_mm[0] * scanner.crystal_size_mm[1])
    normal = dets.clone()
    normal[:, 2] = 0.0
    normal = normal / torch.linalg.norm(normal, dim=-1, keepdim=True)  # outward radial normal (D, 3)
    n_d = dets.shape[0]
    total = torch.zeros((n_d, n_d), dtype=dtype, device=device)
    for s0 in range(0, points.shape[0], 32):
        sl = slice(s0, s0 + 32)
        v = dets[None] - points[sl, None]  # (s, D, 3) S -> detector
        dist = torch.linalg.norm(v, dim=-1)
        u = v / dist[..., None]
        cos_inc = (u * normal[None]).sum(-1).clamp(min=0.0)  # (s, D)
        solid = area * cos_inc / dist ** 2  # sigma / R^2, sr
        cos_t = -(u[:, :, None, :] * u[:, None, :, :]).sum(-1)  # (s, A, B): u(S-A) . u(B-S)
        kn = _lookup(kn_eps, cos_t)  # Klein-Nishina x acceptance of the scattered photon
        ratio = _lookup(ratio_tab, cos_t)
        t_a, t_b = tau[sl, :, None], tau[sl, None, :]
        i_a = lam[sl, :, None] * torch.exp(-t_a - ratio * t_b)
        i_b = lam[sl, None, :] * torch.exp(-ratio * t_a - t_b)
        w = (vol_s[sl] * mu_s[sl])[:, None, None] * kn * eps0 / (4.0 * math.pi)
        total += (w * solid[:, :, None] * solid[:, None, :] * (i_a + i_b)).sum(0)
    # unscattered sensitivity of each pair: eps^2 sigma_A sigma_B cos_A cos_B / (4 pi |A-B|^2)
    ab = dets[None, :, :] - dets[:, None, :]
    dist_ab = torch.linalg.norm(ab, dim=-1)
    u_ab = ab / dist_ab.clamp_min(1e-9)[..., None]
    cos_b = (u_ab * normal[None, :, :]).sum(-1).clamp(min=0.0)
    cos_a = (-u_ab * normal[:, None, :]).sum(-1).clamp(min=0.0)
    geo = eps0 ** 2 * area ** 2 * cos_a * cos_b / (4.0 * math.pi * dist_ab.clamp_min(1e-9) ** 2)
    return torch.where(geo > 1e-12 * float(geo.max()), total / geo.clamp_min(1e-30), torch.zeros_like(total))


def _interpolate_to_bins(pair: torch.Tensor, phi: torch.Tensor, z: torch.Tensor, start: torch.Tensor,
                         end: torch.Tensor) -> torch.Tensor:
    """Periodic-linear in the angles, linear in z, from the coarse pairs (M K, M K) to LOR endpoints (..., 3)."""
    m, k = phi.numel(), z.numel()
    table = pair.reshape(m, k, m, k)

    def coords(p):
        ang = torch.atan2(p[..., 1], p[..., 0]) % (2.0 * math.pi)
        fa = ang / (2.0 * math.pi / m)
        i0 = torch.floor(fa).long() % m
        wa = fa - torch.floor(fa)
        if k > 1:
            fz = ((p[..., 2] - z[0]) / (z[1] - z[0])).clamp(0, k - 1)
            z0 = torch.floor(fz).long().clamp(max=k - 2)
            wz = fz - z0
        else:
            z0 = torch.zeros_like(i0)
            wz = torch.zeros_like(wa)
        return i0, wa, z0, wz

    ia, wa, za, wza = coords(start)
    ib, wb, zb, wzb = coords(end)
    out = torch.zeros_like(wa)
    for da, fa in ((0, 1 - wa), (1, wa)):
        for dza, fza in ((0, 1 - wza), (1, wza)):
            for db, fb in ((0, 1 - wb), (1, wb)):
                for dzb, fzb in ((0, 1 - wzb), (1, wzb)):
                    val = table[(ia + da) % m, (za + dza).clamp(max=k - 1), (ib + db) % m, (zb + dzb).clamp(max=k - 1)]
                    out = out + fa * fza * fb * fzb * val
    return out


def single_scatter_simulation(activity, mu, projector, settings: SssSettings | None = None) -> torch.Tensor:
    """Single-scatter sinogram (non-TOF shape) in the units of the attenuated trues ``a P x``.

    Parameters
    ----------
    activity : torch.Tensor or Volume, shape (nz, ny, nx)
        Emission image on the projector's grid (Bq/mL, or a reconstruction in any linear unit).
    mu : torch.Tensor or Volume, shape (nz, ny, nx)
        Attenuation map at 511 keV on the same grid, 1/mm.
    projector : PetSinogramProjector
        The data's projector (TOF projectors are used for their LOR geometry only).
    settings : SssSettings, optional

    Returns
    -------
    torch.Tensor, shape (n_planes, n_views, n_radial)
        Expected single scatter per bin, same unit as ``projector(activity) * attenuation factors``
        (times the calibration and the scan time to get counts); float32 on the projector's device.
    """
    settings = settings or SssSettings()
    op = projector.non_tof() if getattr(projector, "tof", False) else projector
    grid = op.grid
    dtype = torch.float64
    device = op.device
    x = activity.data if hasattr(activity, "data") else torch.as_tensor(activity)
    if tuple(x.shape) != grid.shape:
        raise InputError(f"activity shape {tuple(x.shape)} != the projector's image shape {grid.shape}")
    if not bool(torch.isfinite(x).all()) or bool((x < 0).any()):
        raise InputError("activity must be finite and non-negative")
    m = mu_per_mm_tensor(mu, grid).to(device=device, dtype=dtype)
    x = x.to(device=device, dtype=dtype)
    step = settings.step_mm or min(grid.spacing_mm)
    points, mu_s, vol_s = _scatter_points(m, grid, settings.scatter_spacing_mm, settings.axial_spacing_mm,
                                           settings.mu_threshold_per_mm)
    dets, phi, z = _coarse_detectors(op.scanner, settings, dtype, device)
    integrals = _line_integrals(points.to(torch.float32), dets.to(torch.float32),
                                torch.stack([m, x / 1000.0]).to(torch.float32), grid, step).to(dtype)  # lambda in Bq/mm^3
    tau, lam = integrals[0], integrals[1] * 1000.0  # back to Bq/mL x mm
    f32 = torch.float32  # the pair sums are the bulk of the work; single precision is ample for them
    pair = _pair_scatter(points.to(f32), mu_s.to(f32), vol_s.to(f32), dets.to(f32), tau.to(f32), lam.to(f32),
                         op.scanner, settings).to(dtype)
    start, end = op.sino_def.lor_endpoints_mm(device=device, dtype=dtype)
    return _interpolate_to_bins(pair, phi, z, start, end).clamp_min(0).to(torch.float32)


def sss_tail_fitted(prompts: torch.Tensor, activity, mu, projector, *, attenuation_factors: torch.Tensor,
                    efficiencies: torch.Tensor | None = None, randoms: torch.Tensor | None = None,
                    counts_per_unit: float = 1.0, settings: SssSettings | None = None,
                    threshold: float = 0.95, margin_bins: int = 2) -> tuple[torch.Tensor, dict]:
    """SSS scaled to the measured prompts on the sinogram tails (one global scale).

    Parameters
    ----------
    prompts : torch.Tensor, shape (n_planes, n_views, n_radial[, n_tof])
        Measured counts (a TOF axis is summed for the fit).
    activity, mu, projector, settings
        As in :func:`single_scatter_simulation` (``activity``: a first reconstruction).
    attenuation_factors : torch.Tensor
        ``exp(-int mu)`` per LOR (non-TOF shape): defines the tails.
    efficiencies : torch.Tensor, optional
        Detection efficiencies multiplying the scatter (non-TOF shape).
    randoms : torch.Tensor, optional
        Randoms estimate (counts, non-TOF shape) subtracted on the tails.
    counts_per_unit : float
        Counts per unit of the SSS (calibration x scan time): only for ``info["unscaled_to_fitted"]``,
        the ratio between the fitted and the physical magnitude.

    Returns
    -------
    (torch.Tensor, dict)
        Scatter counts (non-TOF shape) and ``{"scale", "tail_bins", "tail_fraction", "unscaled_to_fitted"}``.
    """
    shape = single_scatter_simulation(activity, mu, projector, settings).cpu()
    eff = torch.ones_like(shape) if efficiencies is None else efficiencies.to("cpu", torch.float32)
    shape = shape * eff * float(counts_per_unit)
    y = prompts.to("cpu", torch.float32)
    y = y.sum(-1) if y.ndim == 4 else y
    scaled, info = tail_fitted_scatter(y, shape, attenuation_factors.to("cpu", torch.float32),
                                       randoms=None if randoms is None else randoms.to("cpu", torch.float32),
                                       threshold=threshold, margin_bins=margin_bins)
    info["unscaled_to_fitted"] = info["scale"]
    return scaled, info
