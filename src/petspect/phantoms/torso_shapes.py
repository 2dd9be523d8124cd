"""Anatomical primitives for the procedural torso, as :class:`petspect.phantoms.shapes.Shape` subclasses.

Each class gives a signed distance (mm, negative inside) good to first order near the surface, so
insets (skin, fat) can be thresholds of one evaluation; they are used for inside tests, not for
supersampled partial volumes. Points are LPS ``(..., 3)`` tensors in mm (x left, y posterior, z up).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from petspect.errors import InputError
from petspect.phantoms.shapes import Shape


def _interp(z: torch.Tensor, zk: np.ndarray, vk: np.ndarray) -> torch.Tensor:
    """Piecewise-linear ``v(z)`` through knots ``(zk, vk)`` (zk increasing), clamped outside (1D ``z``)."""
    zz = z.detach().cpu().numpy()
    return torch.as_tensor(np.interp(zz, zk, vk).astype(zz.dtype), device=z.device)


def _profile(z: torch.Tensor, zk: np.ndarray, *values: np.ndarray) -> list[torch.Tensor]:
    """Knot profiles at heights ``z``; computed once per slice when ``z`` is a grid slab ``(nz, ny, nx)``
    constant over each slice (axial grids), and broadcast back."""
    if z.dim() == 3 and z.shape[1] * z.shape[2] > 1 and torch.equal(z[:, 0, 0], z[:, -1, -1]) \
            and torch.equal(z[:, 0, -1], z[:, -1, 0]):
        zz = z[:, 0, 0]
        return [_interp(zz, zk, v)[:, None, None] for v in values]
    zf = z.reshape(-1)
    return [_interp(zf, zk, v).reshape(z.shape) for v in values]


class ZTube(Shape):
    """A tube along z with an elliptic cross-section whose centre and semi-axes vary along z.

    Parameters
    ----------
    z_knots_mm : sequence of float, increasing
        Heights of the knots; the tube spans ``[z_knots[0], z_knots[-1]]``.
    centre_x_mm, centre_y_mm, semi_x_mm, semi_y_mm : sequence of float
        Values at the knots (linear in between).
    """

    def __init__(self, z_knots_mm: Sequence[float], centre_x_mm: Sequence[float], centre_y_mm: Sequence[float],
                 semi_x_mm: Sequence[float], semi_y_mm: Sequence[float]) -> None:
        self.zk = np.asarray(z_knots_mm, dtype=np.float64)
        self.cx, self.cy = np.asarray(centre_x_mm, float), np.asarray(centre_y_mm, float)
        self.ax, self.ay = np.asarray(semi_x_mm, float), np.asarray(semi_y_mm, float)
        n = self.zk.size
        if n < 2 or np.any(np.diff(self.zk) <= 0) or any(a.size != n for a in (self.cx, self.cy, self.ax, self.ay)):
            raise InputError("ZTube needs >= 2 increasing z knots and one value per knot for each profile")
        if np.any(self.ax <= 0) or np.any(self.ay <= 0):
            raise InputError("ZTube semi-axes must be positive")

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        x, y, z = points[..., 0], points[..., 1], points[..., 2]
        cx, cy, ax, ay = _profile(z, self.zk, self.cx, self.cy, self.ax, self.ay)
        u, v = (x - cx) / ax, (y - cy) / ay
        r = torch.sqrt(u * u + v * v).clamp_min(1e-6)
        grad = torch.sqrt((u / ax) ** 2 + (v / ay) ** 2) / r  # |grad r|: first-order distance scaling
        radial = (r - 1.0) / grad.clamp_min(1e-9)
        along = torch.maximum(self.zk[0] - z, z - self.zk[-1])
        return torch.maximum(radial, along)

    def bounds(self):
        lo = np.array([(self.cx - self.ax).min(), (self.cy - self.ay).min(), self.zk[0]])
        hi = np.array([(self.cx + self.ax).max(), (self.cy + self.ay).max(), self.zk[-1]])
        return lo, hi


class Capsule(Shape):
    """Tapered capsule: points within ``r(t)`` of the segment ``a -> b`` (r linear from ``r_a`` to ``r_b``)."""

    def __init__(self, a_mm: Sequence[float], b_mm: Sequence[float], r_a_mm: float, r_b_mm: float | None = None) -> None:
        self.a, self.b = np.asarray(a_mm, dtype=np.float64), np.asarray(b_mm, dtype=np.float64)
        self.ra = float(r_a_mm)
        self.rb = float(r_a_mm if r_b_mm is None else r_b_mm)
        if self.ra <= 0 or self.rb <= 0:
            raise InputError("capsule radii must be positive")

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        a = torch.as_tensor(self.a, dtype=points.dtype, device=points.device)
        d = torch.as_tensor(self.b - self.a, dtype=points.dtype, device=points.device)
        p = points - a
        t = ((p @ d) / max(float(np.dot(self.b - self.a, self.b - self.a)), 1e-9)).clamp(0.0, 1.0)
        dist = torch.linalg.vector_norm(p - t[..., None] * d, dim=-1)
        return dist - (self.ra + t * (self.rb - self.ra))

    def bounds(self):
        r = max(self.ra, self.rb)
        return np.minimum(self.a, self.b) - r, np.maximum(self.a, self.b) + r


class Ribs(Shape):
    """Twelve pairs of ribs around an elliptic thorax, sloping down from back to front.

    Rib ``k`` (0 = first) leaves the spine at ``z_top - k * spacing`` and descends ``drop_mm * (|phi|/pi)``
    towards the front, where ``phi`` is the angle from the posterior midline; it stops at
    ``phi_max[k]`` (short floating ribs at the bottom). Cross-section ``height_mm`` x ``depth_mm``.
    The sternum is a plate on the anterior midline.
    """

    def __init__(self, thorax: ZTube, z_top_mm: float, spacing_mm: float, drop_mm: float,
                 phi_max_rad: Sequence[float], height_mm: float = 10.0, depth_mm: float = 8.0,
                 sternum_z_mm: tuple[float, float] | None = None, sternum_half_width_mm: float = 18.0) -> None:
        self.thorax, self.z_top, self.spacing, self.drop = thorax, float(z_top_mm), float(spacing_mm), float(drop_mm)
        self.phi_max = np.asarray(phi_max_rad, dtype=np.float64)
        self.h, self.d = float(height_mm), float(depth_mm)
        self.sternum_z, self.sternum_w = sternum_z_mm, float(sternum_half_width_mm)

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        x, y, z = points[..., 0], points[..., 1], points[..., 2]
        t = self.thorax
        cx, cy, ax, ay = _profile(z, t.zk, t.cx, t.cy, t.ax, t.ay)
        phi = torch.atan2(x - cx, y - cy).abs()  # 0 posterior, pi anterior
        s = (self.z_top - z - self.drop * phi / math.pi) / self.spacing
        k = torch.round(s)
        z_dev = (s - k).abs() * self.spacing - 0.5 * self.h
        radial = self.thorax.sdf(points).abs() - 0.5 * self.d  # a shell on the thoracic wall
        pm = torch.as_tensor(self.phi_max, dtype=points.dtype, device=points.device)
        kk = k.clamp(0, len(self.phi_max) - 1).long()
        ang = torch.where((k >= 0) & (k < len(self.phi_max)), (phi - pm[kk]) * ax, 1e3)
        ribs = torch.maximum(torch.maximum(z_dev, radial), ang)
        if self.sternum_z is None:
            return ribs
        z0, z1 = self.sternum_z
        st = torch.maximum(torch.maximum((x - cx).abs() - self.sternum_w, radial),
                           torch.maximum(z0 - z, z - z1))
        st = torch.where(phi > 2.8, st, 1e3)
        return torch.minimum(ribs, st)

    def bounds(self):
        lo, hi = self.thorax.bounds()
        z_lo = self.z_top - (len(self.phi_max) - 0.5) * self.spacing - self.drop - self.h
        if self.sternum_z is not None:
            z_lo = min(z_lo, self.sternum_z[0])
        lo, hi = lo.copy(), hi.copy()
        lo[2], hi[2] = max(lo[2], z_lo), min(hi[2], self.z_top + self.h)
        return lo, hi


class Segmented(Shape):
    """A shape cut into segments along z with gaps (vertebrae and discs).

    ``boundaries_mm`` are the increasing heights of the segment ends; the lowest ``gap_fraction`` of
    each segment is removed (the intervertebral disc).
    """

    def __init__(self, shape: Shape, boundaries_mm: Sequence[float], gap_fraction: float) -> None:
        self.shape, self.zb, self.gap = shape, np.asarray(boundaries_mm, dtype=np.float64), float(gap_fraction)

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        z = points[..., 2]
        idx = _profile(z, self.zb, np.arange(self.zb.size, dtype=np.float64))[0]
        frac = idx - torch.floor(idx)
        seg_len = float(np.mean(np.diff(self.zb)))
        gap = (self.gap - frac) * seg_len  # > 0 inside a gap
        inside_range = (z >= self.zb[0]) & (z <= self.zb[-1])
        gap = torch.where(inside_range, gap, -1e3)
        return torch.maximum(self.shape.sdf(points), gap)

    def bounds(self):
        return self.shape.bounds()


class WavyRegion(Shape):
    """Tube-like loops inside an envelope: ``envelope & |sum_i cos(k_i . p + phase_i)| / n < width`` (bowel)."""

    def __init__(self, envelope: Shape, wavevectors_per_mm: np.ndarray, phases_rad: np.ndarray, width: float) -> None:
        self.env, self.k, self.phase, self.width = envelope, np.asarray(wavevectors_per_mm), np.asarray(phases_rad), width

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        k = torch.as_tensor(self.k.T, dtype=points.dtype, device=points.device)
        ph = torch.as_tensor(self.phase, dtype=points.dtype, device=points.device)
        f = torch.cos(points @ k + ph).mean(dim=-1).abs() - self.width
        lam = 2 * math.pi / float(np.linalg.norm(self.k, axis=1).mean())
        return torch.maximum(self.env.sdf(points), f * lam / (2 * math.pi))

    def bounds(self):
        return self.env.bounds()


def frame_from_axis(axis: Sequence[float], roll_deg: float = 0.0) -> np.ndarray:
    """Orthonormal 3x3 matrix whose third column is ``axis`` (normalised); columns = local axes in LPS."""
    w = np.asarray(axis, dtype=np.float64)
    w = w / np.linalg.norm(w)
    helper = np.array([1.0, 0.0, 0.0]) if abs(w[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(helper, w)
    u /= np.linalg.norm(u)
    v = np.cross(w, u)
    c, s = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
    return np.stack([c * u + s * v, -s * u + c * v, w], axis=1)
