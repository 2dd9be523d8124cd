"""Lesions of the torso phantom: sampler (sites, sizes, shapes, contrasts) and shapes with exact volumes.

Shapes range from spheres to irregular blobs:

* ``sphere`` / ``ellipsoid``: star-shaped with radius ``r(u) = 1 / sqrt(sum_i (u . e_i)^2 / a_i^2)``;
* ``irregular``: an ellipsoid whose radius is perturbed by real spherical harmonics of degree 2-4,
  ``r(u) = r_ell(u) exp(sum_lm c_lm Y_lm(u))`` (a smooth lobulated blob);
* ``multilobe``: a union of 2-4 overlapping spheres.

True volumes: star shapes by quadrature ``V = 1/3 \\int r^3 dOmega`` (Gauss-Legendre in cos(theta) x
uniform phi); unions of spheres by counting the points of a 0.25 mm lattice inside.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from scipy.special import sph_harm_y

from petspect.errors import InputError
from petspect.phantoms.shapes import Shape, Sphere, Union

DEFAULT_LESIONS: dict[str, Any] = {
    "count": [1, 8],  # inclusive range of the number of lesions
    "diameter_mm": [5.0, 40.0],  # equivalent-sphere diameter range (log-uniform)
    "contrast": [1.5, 6.0],  # lesion / reference-tissue concentration ratio (log-uniform)
    "sites": {"liver": 3.0, "lung": 2.0, "lymph_node": 3.0, "bone": 2.0, "spleen": 0.5, "brain": 0.5},
    "kinds": {"sphere": 1.0, "ellipsoid": 1.0, "irregular": 2.0, "multilobe": 1.0},
}
SITE_LABELS = {"liver": ("liver",), "lung": ("lung",), "spleen": ("spleen",), "brain": ("brain",),
               "bone": ("spine", "pelvis")}
MAX_DIAMETER_MM = {"bone": 30.0, "lymph_node": 30.0, "spleen": 30.0, "brain": 30.0}


def _real_sh(l: int, m: int, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    y = sph_harm_y(l, abs(m), theta, phi)
    if m == 0:
        return y.real
    return math.sqrt(2.0) * (y.real if m > 0 else y.imag)


class StarLesion(Shape):
    """Star-shaped lesion about ``centre_mm``: ellipsoid radius times ``exp(sum c_lm Y_lm)``."""

    def __init__(self, centre_mm, semi_axes_mm, rotation, sh: list[tuple[int, int, float]]) -> None:
        self.centre = np.asarray(centre_mm, dtype=np.float64)
        self.semi = np.asarray(semi_axes_mm, dtype=np.float64)
        self.rot = np.asarray(rotation, dtype=np.float64)
        self.sh = [(int(l), int(m), float(c)) for l, m, c in sh]

    def radius(self, u: np.ndarray) -> np.ndarray:
        """Radius (mm) along unit directions ``u`` (..., 3) in LPS."""
        loc = u @ self.rot  # components along the lesion's axes
        r = 1.0 / np.sqrt(((loc / self.semi) ** 2).sum(-1))
        if self.sh:
            theta = np.arccos(np.clip(loc[..., 2], -1.0, 1.0))
            phi = np.arctan2(loc[..., 1], loc[..., 0])
            r = r * np.exp(sum(c * _real_sh(l, m, theta, phi) for l, m, c in self.sh))
        return r

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        d = points.detach().cpu().double().numpy() - self.centre
        rho = np.linalg.norm(d, axis=-1)
        u = d / np.maximum(rho, 1e-9)[..., None]
        out = rho - self.radius(u)
        return torch.as_tensor(out, dtype=points.dtype, device=points.device)

    def bounds(self):
        r = 1.6 * float(self.semi.max()) * (math.exp(sum(abs(c) for _, _, c in self.sh) * 0.8) if self.sh else 1.0)
        return self.centre - r, self.centre + r

    def volume_ml(self, n_theta: int = 64, n_phi: int = 128) -> float:
        """Exact volume (mL) by quadrature of ``r^3 / 3`` over the sphere."""
        x, w = np.polynomial.legendre.leggauss(n_theta)  # x = cos(theta)
        phi = (np.arange(n_phi) + 0.5) * 2 * math.pi / n_phi
        st = np.sqrt(1 - x ** 2)
        u = np.stack([st[:, None] * np.cos(phi)[None], st[:, None] * np.sin(phi)[None],
                      np.broadcast_to(x[:, None], (n_theta, n_phi))], axis=-1)
        r3 = self.radius(u @ self.rot.T) ** 3  # directions given in local frame -> LPS
        return float((w[:, None] * r3).sum() * (2 * math.pi / n_phi) / 3.0) * 1e-3


def lesion_shape(p: dict[str, Any]) -> Shape:
    """The :class:`~petspect.phantoms.shapes.Shape` of one sampled lesion record."""
    if p["kind"] == "multilobe":
        return Union(*[Sphere(c, r) for c, r in zip(p["lobe_centres_mm"], p["lobe_radii_mm"])])
    return StarLesion(p["centre_mm"], p["semi_axes_mm"], np.asarray(p["rotation"]), p.get("sh", []))


def true_volume_ml(p: dict[str, Any]) -> float:
    """Continuous volume (mL) of a lesion record (quadrature, or voxelisation at 0.5 mm with 4^3 sub-points)."""
    shape = lesion_shape(p)
    if isinstance(shape, StarLesion):
        return shape.volume_ml()
    return union_of_spheres_volume_ml(np.asarray(p["lobe_centres_mm"]), np.asarray(p["lobe_radii_mm"]))


def union_of_spheres_volume_ml(centres_mm: np.ndarray, radii_mm: np.ndarray, step_mm: float = 0.25) -> float:
    """Volume (mL) of a union of spheres by counting points of a ``step_mm`` lattice (midpoint rule)."""
    lo, hi = (centres_mm - radii_mm[:, None]).min(0), (centres_mm + radii_mm[:, None]).max(0)
    axes = [np.arange(a + step_mm / 2, b, step_mm) for a, b in zip(lo, hi)]
    x, y = np.meshgrid(axes[0], axes[1], indexing="ij")
    count = 0
    for z in axes[2]:
        inside = np.zeros(x.shape, dtype=bool)
        for c, r in zip(centres_mm, radii_mm):
            inside |= (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= r * r
        count += int(inside.sum())
    return count * step_mm ** 3 * 1e-3


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def sample_lesion_shape(rng: np.random.Generator, kind: str, centre: np.ndarray, diameter_mm: float) -> dict[str, Any]:
    """Shape parameters of a lesion of equivalent-sphere diameter ~``diameter_mm`` about ``centre``."""
    r = 0.5 * diameter_mm
    rot = _random_rotation(rng)
    out: dict[str, Any] = {"kind": kind, "centre_mm": [round(float(v), 3) for v in centre]}
    if kind == "multilobe":
        n = int(rng.integers(2, 5))
        radii = r * rng.uniform(0.45, 0.8, n)
        offs = rng.normal(size=(n, 3))
        offs = offs / np.linalg.norm(offs, axis=1, keepdims=True) * (radii * rng.uniform(0.3, 0.8, n))[:, None]
        offs[0] = 0.0
        out.update(lobe_centres_mm=np.round(centre + offs, 3).tolist(), lobe_radii_mm=np.round(radii, 3).tolist())
        return out
    axes = np.ones(3) if kind == "sphere" else np.exp(rng.normal(0, 0.2, 3))
    axes = r * axes / np.prod(axes) ** (1 / 3)
    sh = []
    if kind == "irregular":
        amp = rng.uniform(0.08, 0.22)
        sh = [(l, m, round(float(rng.normal(0, amp / l)), 5)) for l in (2, 3, 4) for m in range(-l, l + 1)]
    out.update(semi_axes_mm=np.round(axes, 3).tolist(), rotation=np.round(rot, 6).tolist(), sh=sh)
    return out


def lymph_node_stations(a: dict[str, Any]) -> dict[str, tuple[float, float, float]]:
    """Centres (LPS mm, body frame) of lymph-node regions of the sampled anatomy."""
    z, w, t = a["z"], a["width"], a["trunk"]
    d, chest = z["diaphragm"], t["ax"][5]
    st = {"mediastinal": (0.0, -5.0, d + 95), "hilar_right": (-42 * w, 12.0, d + 105),
          "hilar_left": (42 * w, 12.0, d + 105), "cervical_right": (-35 * w, 5.0, z["shoulder"] + 45),
          "cervical_left": (35 * w, 5.0, z["shoulder"] + 45), "paraaortic": (25 * w, 5.0, z["waist"]),
          "iliac_right": (-55 * w, 10.0, z["hip"] + 45), "iliac_left": (55 * w, 10.0, z["hip"] + 45),
          "inguinal_right": (-75 * w, -45 * w, z["crotch"] + 20), "inguinal_left": (75 * w, -45 * w, z["crotch"] + 20),
          "axillary_right": (-(chest - 15), 15.0, z["axilla"] - 20), "axillary_left": (chest - 15, 15.0, z["axilla"] - 20)}
    return {k: tuple(float(v) for v in c) for k, c in st.items()}


def _site_centre(rng, site, a, label_at, label_ids, organ_boxes, z_range, r) -> tuple[np.ndarray, str] | None:
    """A lesion centre for ``site`` inside the FOV (rejection sampling against the label function)."""
    if site == "lymph_node":
        st = lymph_node_stations(a)
        names = [k for k, c in st.items() if z_range[0] + r <= c[2] <= z_range[1] - r]
        if not names:
            return None
        name = names[int(rng.integers(len(names)))]
        return np.asarray(st[name]) + rng.normal(0, 6.0, 3), f"lymph_node_{name}"
    labels = SITE_LABELS[site]
    organ = labels[int(rng.integers(len(labels)))]
    lo, hi = (np.array(v, dtype=np.float64) for v in organ_boxes[organ])
    lo[2], hi[2] = max(lo[2], z_range[0] + r), min(hi[2], z_range[1] - r)
    if lo[2] >= hi[2]:
        return None
    n_try = 128
    cands = rng.uniform(lo, hi, size=(n_try, 3))
    offsets = np.array([[0, 0, 0], [0.5, 0, 0], [-0.5, 0, 0], [0, 0.5, 0], [0, -0.5, 0], [0, 0, 0.5], [0, 0, -0.5]])
    probes = cands[:, None, :] + offsets[None] * r  # (n_try, 7, 3)
    got = label_at(torch.as_tensor(probes.reshape(-1, 3), dtype=torch.float32)).numpy().reshape(n_try, 7)
    ok = (got[:, 0] == label_ids[organ]) & ((got == label_ids[organ]).mean(axis=1) >= 0.7)
    if not ok.any():
        return None
    return cands[int(np.argmax(ok))], organ


def lesion_config(config: dict[str, Any]) -> dict[str, Any]:
    """Lesion options merged over :data:`DEFAULT_LESIONS`, validated (raises InputError)."""
    cfg = {**DEFAULT_LESIONS, **config}
    unknown = set(cfg) - set(DEFAULT_LESIONS)
    if unknown:
        raise InputError(f"unknown lesion options {sorted(unknown)}; known: {sorted(DEFAULT_LESIONS)}")
    try:
        lo_n, hi_n = (int(v) for v in cfg["count"])
        d_lo, d_hi = (float(v) for v in cfg["diameter_mm"])
        c_lo, c_hi = (float(v) for v in cfg["contrast"])
        sites = {k: float(v) for k, v in cfg["sites"].items()}
        kinds = {k: float(v) for k, v in cfg["kinds"].items()}
    except (TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"lesion options must be [low, high] pairs and weight dicts: {exc}") from None
    if not (0 <= lo_n <= hi_n and 0 < d_lo <= d_hi and 0 < c_lo <= c_hi):
        raise InputError(f"bad lesion ranges: count {cfg['count']}, diameter_mm {cfg['diameter_mm']}, "
                         f"contrast {cfg['contrast']}")
    if set(sites) - set(SITE_LABELS) - {"lymph_node"} or set(kinds) - set(DEFAULT_LESIONS["kinds"]):
        raise InputError(f"unknown lesion sites/kinds: {sorted(sites)} {sorted(kinds)}")
    if any(v < 0 for v in (*sites.values(), *kinds.values())):
        raise InputError("lesion site and kind weights must be >= 0")
    return cfg


def sample_lesions(rng: np.random.Generator, anatomy: dict[str, Any], config: dict[str, Any],
                   label_at: Callable[[torch.Tensor], torch.Tensor], label_ids: dict[str, int],
                   organ_boxes: dict[str, tuple[np.ndarray, np.ndarray]], z_range: tuple[float, float]) -> list[dict]:
    """Draw lesion records (site, centre, shape, contrast) that do not overlap, inside the FOV."""
    cfg = lesion_config(config)
    lo_n, hi_n = (int(v) for v in cfg["count"])
    d_lo, d_hi = (float(v) for v in cfg["diameter_mm"])
    c_lo, c_hi = (float(v) for v in cfg["contrast"])
    sites = {k: float(v) for k, v in cfg["sites"].items() if float(v) > 0}
    kinds = {k: float(v) for k, v in cfg["kinds"].items() if float(v) > 0}
    n = int(rng.integers(lo_n, hi_n + 1))
    out: list[dict] = []
    for _ in range(n * 10):
        if len(out) == n or not sites:
            break
        site = list(sites)[rng.choice(len(sites), p=np.array(list(sites.values())) / sum(sites.values()))]
        diam = float(math.exp(rng.uniform(math.log(d_lo), math.log(min(d_hi, MAX_DIAMETER_MM.get(site, d_hi))))))
        found = _site_centre(rng, site, anatomy, label_at, label_ids, organ_boxes, z_range, 0.5 * diam)
        if found is None:
            continue
        centre, organ = found
        if any(np.linalg.norm(centre - np.asarray(p["centre_mm"])) < 0.75 * (diam + p["diameter_mm"]) for p in out):
            continue
        kind = list(kinds)[rng.choice(len(kinds), p=np.array(list(kinds.values())) / sum(kinds.values()))]
        p = sample_lesion_shape(rng, kind, centre, diam)
        p.update(diameter_mm=round(diam, 3), organ=organ, site=site,
                 contrast=round(float(math.exp(rng.uniform(math.log(c_lo), math.log(c_hi)))), 4))
        out.append(p)
    return out
