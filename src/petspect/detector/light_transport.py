"""Scintillation light transport in a monolithic block by the method of mirror sources.

An isotropic point source of optical photons at height ``h`` above the photodetector illuminates
each pixel with the solid angle that pixel's active area subtends. Specular reflections on the
lateral faces (reflectivity ``lateral_reflectivity``) and on the entrance/top face
(``top_reflectivity``) are folded in as mirror images of the source; light arriving at the exit
face beyond the critical angle ``arcsin(n_coupling / n_crystal)`` is totally internally reflected
and is lost (it travels at the same angle forever in a box with specular faces, and black faces
absorb it); below the critical angle the Fresnel transmission (unpolarised light) applies, and the
Fresnel-reflected part returns as a higher-order image. The solid angle of a rectangle seen from a
point at height ``h`` is exact,

    Omega = sum_corners +- arctan(a b / (h sqrt(a^2 + b^2 + h^2))),

and clipping it to the cone of transmitted light is also closed-form (:func:`quadrant_solid_angle`)
(cf. the analytical light-distribution models of monolithic
detectors, e.g. Li et al, PMB 2010; Ling et al, PMB 2007).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from petspect.detector.photodetector import SiPMArray
from petspect.errors import ConfigError, InputError


@dataclasses.dataclass(frozen=True)
class Optics:
    """Surface treatment and the order of the mirror-source expansion.

    Parameters
    ----------
    coupling_index : float
        Refractive index of the optical coupling (grease, glue) between crystal and SiPM.
    lateral_reflectivity : float
        Specular reflectivity of the four lateral faces (0 = black absorbing paint).
    top_reflectivity : float
        Specular reflectivity of the entrance face (0.97 for an ESR-like reflector).
    lateral_order : int
        Highest number of reflections per lateral axis in the expansion.
    z_images : int
        Number of images along the depth axis: 1 direct only, 2 adds the top-face image, 3 adds the
        Fresnel-reflected exit-face + top-face image, and so on.
    fresnel_levels : int
        Nested cones approximating the angle dependence of the Fresnel transmission.
    """

    coupling_index: float = 1.5
    lateral_reflectivity: float = 0.05
    top_reflectivity: float = 0.95
    lateral_order: int = 1
    z_images: int = 2
    fresnel_levels: int = 6

    def __post_init__(self) -> None:
        if not (0 <= self.lateral_reflectivity <= 1 and 0 <= self.top_reflectivity <= 1):
            raise ConfigError("reflectivities must lie in [0, 1]")
        if self.lateral_order < 0 or self.z_images < 1 or self.fresnel_levels < 1 or self.coupling_index < 1:
            raise ConfigError("lateral_order >= 0, z_images >= 1, fresnel_levels >= 1, coupling_index >= 1")

    def to_dict(self) -> dict:
        """JSON-serialisable record."""
        return dataclasses.asdict(self)


def fresnel_transmission(cos_i: torch.Tensor, n1: float, n2: float) -> torch.Tensor:
    """Transmittance of unpolarised light from index ``n1`` into ``n2`` (0 beyond the critical angle).

    Parameters
    ----------
    cos_i : torch.Tensor
        Cosine of the angle of incidence (any shape).
    n1, n2 : float
        Refractive indices of the incident and transmitting media.
    """
    sin_t = (n1 / n2) * torch.sqrt(torch.clamp(1.0 - cos_i**2, min=0.0))
    total = sin_t >= 1.0
    cos_t = torch.sqrt(torch.clamp(1.0 - sin_t**2, min=0.0))
    rs = (n1 * cos_i - n2 * cos_t) / (n1 * cos_i + n2 * cos_t)
    rp = (n1 * cos_t - n2 * cos_i) / (n1 * cos_t + n2 * cos_i)
    trans = 1.0 - 0.5 * (rs**2 + rp**2)
    return torch.where(total, torch.zeros_like(trans), trans)


def critical_angle_deg(n_crystal: float, n_coupling: float) -> float:
    """Critical angle of total internal reflection at the exit face (degrees); 90 if none."""
    return 90.0 if n_coupling >= n_crystal else math.degrees(math.asin(n_coupling / n_crystal))


def _images(size_mm: tuple[float, float], thickness_mm: float, optics: Optics):
    """Yield ``(mx, my, j, weight_without_fresnel, n_exit)`` for each mirror image."""
    order = optics.lateral_order
    for mx in range(-order, order + 1):
        for my in range(-order, order + 1):
            for j in range(optics.z_images):
                n_top, n_exit = (j + 1) // 2, j // 2
                w = optics.lateral_reflectivity ** (abs(mx) + abs(my)) * optics.top_reflectivity**n_top
                if w > 0:
                    yield mx, my, j, w, n_exit


def _mirror(coord: torch.Tensor, m: int, size: float) -> torch.Tensor:
    return m * size + (-1.0) ** m * coord


def quadrant_solid_angle(a: torch.Tensor, b: torch.Tensor, h: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Solid angle of ``[0, a] x [0, b]`` intersected with the disc ``rho < radius``, seen from height ``h``.

    The region lies in the plane below the point; its foot point is the origin. With polar angle
    ``phi`` about the foot point, the ray ``phi`` leaves the rectangle at ``rho_max(phi)`` and

        Omega = int dphi [1 - h / sqrt(min(rho_max, radius)^2 + h^2)],

    which integrates in closed form: ``int_0^p [1 - h cos(phi) / sqrt(a^2 + h^2 cos^2 phi)] dphi =
    p - arcsin(h sin(p) / sqrt(a^2 + h^2))`` on the side ``x = a``, and likewise on ``y = b``.
    Signs follow ``a`` and ``b`` (inclusion-exclusion of a rectangle from four quadrants). With
    ``radius = inf`` this equals ``arctan(a b / (h sqrt(a^2 + b^2 + h^2)))``.

    Parameters
    ----------
    a, b, h, radius : torch.Tensor
        Broadcastable; lengths in mm (``h > 0``, ``radius > 0``).

    Returns
    -------
    torch.Tensor
        Solid angle (sr).
    """
    sign = torch.sign(a) * torch.sign(b)
    a, b = a.abs(), b.abs()
    # the expensive functions are evaluated on the factor shapes, the combination is broadcast
    phi_s = torch.atan2(b, a)
    psi_s = 0.5 * math.pi - phi_s
    phi_a = torch.acos(torch.clamp(a / radius, max=1.0))
    psi_b = torch.acos(torch.clamp(b / radius, max=1.0))
    ra, rb = h / torch.sqrt(a**2 + h**2), h / torch.sqrt(b**2 + h**2)

    def side(angle, r):
        return angle - torch.asin(torch.clamp(r * torch.sin(angle), max=1.0))

    ia = torch.where(phi_s <= phi_a, side(phi_s, ra), side(phi_a, ra))
    ib = torch.where(psi_s <= psi_b, side(psi_s, rb), side(psi_b, rb))
    cap = 1.0 - h / torch.sqrt(radius**2 + h**2)
    rest = torch.clamp(phi_s - phi_a, min=0.0) + torch.clamp(psi_s - psi_b, min=0.0)
    return sign * (ia + ib + cap * rest)


def _staircase(n_crystal: float, optics: Optics, n_exit: int, levels: int):
    """Approximate ``g(theta) = T (1 - T)^n_exit`` by ``sum_k c_k 1[theta < theta_k]`` (K cones)."""
    theta_c = math.radians(min(critical_angle_deg(n_crystal, optics.coupling_index), 89.5))
    edges = torch.linspace(0.0, theta_c, levels + 1, dtype=torch.float64)[1:]
    mids = edges - 0.5 * theta_c / levels
    t = fresnel_transmission(torch.cos(mids), n_crystal, optics.coupling_index)
    g = t * (1.0 - t) ** n_exit
    coef = g - torch.cat([g[1:], g.new_zeros(1)])
    return torch.tan(edges), coef


def light_collection(points_mm: torch.Tensor, *, size_mm: tuple[float, float], thickness_mm: float,
                     n_crystal: float, sipm: SiPMArray, optics: Optics, chunk: int = 1024) -> torch.Tensor:
    """Fraction of isotropically emitted optical photons reaching each SiPM pixel's active area.

    Parameters
    ----------
    points_mm : torch.Tensor, shape (m, 3)
        Emission points ``(x, y, doi)`` (mm); ``doi = 0`` is the entrance face, the SiPM is at
        ``doi = thickness_mm``. Device and dtype of the result follow this tensor.
    size_mm : (float, float)
        Crystal face ``(size_x, size_y)`` (mm); the SiPM array is centred on it.
    thickness_mm : float
        Crystal thickness (mm).
    n_crystal : float
        Refractive index of the crystal.
    sipm : SiPMArray
    optics : Optics
    chunk : int
        Points processed at once (memory bound).

    Returns
    -------
    torch.Tensor, shape (m, n_y, n_x)
        Collected fraction per pixel (dimensionless; the sum over pixels is < 1).

    Notes
    -----
    The angle-dependent Fresnel factor is approximated by ``optics.fresnel_levels`` nested cones
    (a staircase in the angle of incidence; a third of them for the mirror images); the geometry of each cone-clipped pixel is exact
    (:func:`quadrant_solid_angle`), so sources close to the exit face are handled correctly.
    """
    if points_mm.ndim != 2 or points_mm.shape[1] != 3:
        raise InputError(f"points_mm must be (m, 3), got {tuple(points_mm.shape)}")
    doi = points_mm[:, 2]
    if torch.any(doi < 0) or torch.any(doi > thickness_mm):
        raise InputError("emission points must lie inside the crystal (0 <= doi <= thickness)")
    dev, dt = points_mm.device, points_mm.dtype
    cx, cy = sipm.centres_mm()
    half = 0.5 * sipm.active_mm * torch.tensor([-1.0, 1.0], dtype=dt, device=dev)
    ex = (torch.as_tensor(cx, dtype=dt, device=dev)[:, None] + half).reshape(-1)  # (2 n_x,) pixel edges
    ey = (torch.as_tensor(cy, dtype=dt, device=dev)[:, None] + half).reshape(-1)
    stairs = {}
    out = []
    for start in range(0, points_mm.shape[0], chunk):
        p = points_mm[start:start + chunk]
        height = thickness_mm - p[:, 2]
        acc = torch.zeros(p.shape[0], sipm.n_y, sipm.n_x, dtype=dt, device=dev)
        for mx, my, j, w, n_exit in _images(size_mm, thickness_mm, optics):
            # the direct image needs the fine staircase; distant, weak images a coarse one
            levels = optics.fresnel_levels if (mx, my, j) == (0, 0, 0) else max(1, optics.fresnel_levels // 3)
            if (n_exit, levels) not in stairs:
                tan_k, coef = _staircase(n_crystal, optics, n_exit, levels)
                stairs[n_exit, levels] = (tan_k.to(dev, dt), coef.to(dev, dt))
            tan_k, coef = stairs[n_exit, levels]
            xs = _mirror(p[:, 0], mx, size_mm[0])
            ys = _mirror(p[:, 1], my, size_mm[1])
            h = (j + 1) // 2 * 2 * thickness_mm + (height if j % 2 == 0 else -height)
            h = torch.clamp(h, min=1e-4)[:, None, None, None]  # (m, 1, 1, 1)
            a = (ex[None, :] - xs[:, None])[:, None, None, :]  # (m, 1, 1, 2 n_x)
            b = (ey[None, :] - ys[:, None])[:, None, :, None]  # (m, 1, 2 n_y, 1)
            radius = (h * tan_k[None, :, None, None])  # (m, K, 1, 1)
            q = quadrant_solid_angle(a, b, h, radius)  # (m, K, 2 n_y, 2 n_x)
            q = q.view(q.shape[0], q.shape[1], sipm.n_y, 2, sipm.n_x, 2)
            omega = q[:, :, :, 1, :, 1] - q[:, :, :, 0, :, 1] - q[:, :, :, 1, :, 0] + q[:, :, :, 0, :, 0]
            acc += w * torch.einsum("mkyx,k->myx", omega, coef)
        out.append(torch.clamp(acc, min=0.0) / (4.0 * math.pi))  # rounding of the differences
    return torch.cat(out, dim=0)
