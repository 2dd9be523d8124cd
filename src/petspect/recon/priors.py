"""Neighbourhood priors (penalties) for MAP reconstruction: quadratic and relative difference.

Both are pairwise Gibbs penalties over the 3x3x3 neighbourhood (3x3 for a 2D image), each pair of
voxels counted once:

.. math:: R(x) = \\sum_{j} \\sum_{k \\in N_j,\\ k > j} w_{jk}\\, \\phi(x_j, x_k),

with inverse-distance weights ``w_jk = d_min / d_jk`` (``d_jk`` the centre distance in mm from the
voxel spacing, ``d_min`` the smallest spacing, so face neighbours across the finest axis weigh 1 and
the 26-neighbourhood's corners ``1/sqrt(3)`` for cubic voxels). Pairs reaching outside the image are
left out (no padding).

* Quadratic: ``phi(a, b) = (a - b)^2 / 2``; ``d phi / d a = a - b``, ``d2 phi / d a2 = 1``.
* Relative difference (Nuyts et al 2002, IEEE TNS 49:56):
  ``phi(a, b) = (a - b)^2 / (a + b + gamma |a - b| + eps)``; it penalises differences relative to the
  local level, so it smooths noise without flattening edges of hot regions as much;
  ``gamma >= 0`` sets edge preservation (larger: more edge-preserving) and
  ``d phi / d a = (a - b) (gamma |a - b| + a + 3 b + 2 eps) / (a + b + gamma |a - b| + eps)^2`` and
  ``d2 phi / d a2 = 2 (2 b + eps)^2 / (a + b + gamma |a - b| + eps)^3``.
  ``eps > 0`` keeps ``phi`` and its gradient finite at ``a = b = 0`` (then both are 0).

:meth:`Prior.curvature` (the Hessian diagonal) lets MAP algorithms scale their steps by the prior's
curvature. Priors only know the image; the strength ``beta`` belongs to the algorithm (:mod:`petspect.recon.map`).
The image may be 2D ``(ny, nx)`` or 3D ``(nz, ny, nx)``; axes of length 1 have no pairs.
"""

from __future__ import annotations

import abc
import itertools
import math
from collections.abc import Sequence

import torch

from petspect.errors import InputError

__all__ = ["Prior", "QuadraticPrior", "RelativeDifferencePrior", "make_prior", "neighbourhood"]


def neighbourhood(ndim: int, spacing_mm: Sequence[float] | None = None) -> list[tuple[tuple[int, ...], float]]:
    """Half of the ``3^ndim - 1`` neighbour offsets (first non-zero component positive) and their weights.

    Parameters
    ----------
    ndim : int
        2 or 3.
    spacing_mm : sequence of float, optional
        Voxel size per axis (same order as the image axes); default isotropic.

    Returns
    -------
    list of (offset, weight)
        ``weight = min(spacing) / distance`` (inverse distance, 1 for the nearest neighbours).
    """
    if ndim not in (2, 3):
        raise InputError(f"priors act on 2D or 3D images, got ndim={ndim}")
    sp = [1.0] * ndim if spacing_mm is None else [float(s) for s in spacing_mm]
    if len(sp) != ndim or min(sp) <= 0:
        raise InputError(f"spacing_mm must hold {ndim} positive values, got {spacing_mm}")
    out = []
    for off in itertools.product((-1, 0, 1), repeat=ndim):
        nz = [o for o in off if o != 0]
        if not nz or nz[0] < 0:
            continue
        dist = math.sqrt(sum((o * s) ** 2 for o, s in zip(off, sp)))
        out.append((off, min(sp) / dist))
    return out


def _pair_slices(shape: Sequence[int], offset: Sequence[int]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices ``a`` and ``b`` with ``b = a + offset`` inside an array of ``shape``."""
    sa, sb = [], []
    for n, o in zip(shape, offset):
        sa.append(slice(max(0, -o), n - max(0, o)))
        sb.append(slice(max(0, o), n - max(0, -o)))
    return tuple(sa), tuple(sb)


class Prior(abc.ABC):
    """A pairwise neighbourhood penalty ``R(x)`` with :meth:`value` and :meth:`gradient`.

    Parameters
    ----------
    spacing_mm : sequence of float, optional
        Voxel size per image axis, for the inverse-distance weights (default isotropic).
    """

    def __init__(self, spacing_mm: Sequence[float] | None = None) -> None:
        self.spacing_mm = None if spacing_mm is None else tuple(float(s) for s in spacing_mm)

    @abc.abstractmethod
    def _phi(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Pair potential, element-wise."""

    @abc.abstractmethod
    def _dphi(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Partial derivatives ``(d phi / d a, d phi / d b)``, element-wise."""

    @abc.abstractmethod
    def _d2phi(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Second partial derivatives ``(d2 phi / d a2, d2 phi / d b2)``, element-wise."""

    def _pairs(self, x: torch.Tensor):
        if x.ndim not in (2, 3):
            raise InputError(f"{type(self).__name__}: image must be 2D or 3D, got shape {tuple(x.shape)}")
        if self.spacing_mm is not None and len(self.spacing_mm) != x.ndim:
            raise InputError(f"spacing_mm has {len(self.spacing_mm)} values for a {x.ndim}D image")
        for off, w in neighbourhood(x.ndim, self.spacing_mm):
            sa, sb = _pair_slices(x.shape, off)
            if all(s.stop > s.start for s in sa):
                yield sa, sb, w

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """``R(x)`` (0-dim tensor, dtype and device of ``x``)."""
        total = torch.zeros((), dtype=x.dtype, device=x.device)
        for sa, sb, w in self._pairs(x):
            total = total + w * self._phi(x[sa], x[sb]).sum()
        return total

    def _accumulate(self, x: torch.Tensor, pair_fn) -> torch.Tensor:
        out = torch.zeros_like(x)
        for sa, sb, w in self._pairs(x):
            da, db = pair_fn(x[sa], x[sb])
            out[sa] += w * da
            out[sb] += w * db
        return out

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        """``grad R(x)``, same shape as ``x``."""
        return self._accumulate(x, self._dphi)

    def curvature(self, x: torch.Tensor) -> torch.Tensor:
        """Diagonal of the Hessian ``d2 R / d x_j^2`` (non-negative), same shape as ``x``."""
        return self._accumulate(x, self._d2phi)


class QuadraticPrior(Prior):
    """Quadratic smoothness penalty ``sum w_jk (x_j - x_k)^2 / 2`` (Gaussian Markov random field)."""

    def _phi(self, a, b):
        return 0.5 * (a - b) ** 2

    def _dphi(self, a, b):
        d = a - b
        return d, -d

    def _d2phi(self, a, b):
        one = torch.ones_like(a)
        return one, one


class RelativeDifferencePrior(Prior):
    """Relative difference prior (Nuyts et al 2002), as used in clinical BSREM (GE Q.Clear).

    Parameters
    ----------
    gamma : float
        Edge-preservation parameter (>= 0; 2 is a common choice).
    epsilon : float
        Small positive constant in the denominator (units of the image), keeps ``0/0`` finite.
    spacing_mm : sequence of float, optional
        Voxel size for the inverse-distance weights.
    """

    def __init__(self, gamma: float = 2.0, *, epsilon: float = 1e-9, spacing_mm: Sequence[float] | None = None) -> None:
        super().__init__(spacing_mm)
        if gamma < 0:
            raise InputError(f"gamma must be >= 0, got {gamma}")
        if not epsilon > 0:
            raise InputError(f"epsilon must be > 0, got {epsilon}")
        self.gamma, self.epsilon = float(gamma), float(epsilon)

    def _den(self, a, b):
        return a + b + self.gamma * (a - b).abs() + self.epsilon

    def _phi(self, a, b):
        return (a - b) ** 2 / self._den(a, b)

    def _dphi(self, a, b):
        d = a - b
        den2 = self._den(a, b) ** 2
        g_abs = self.gamma * d.abs()
        return (d * (g_abs + a + 3 * b + 2 * self.epsilon) / den2,
                -d * (g_abs + b + 3 * a + 2 * self.epsilon) / den2)

    def _d2phi(self, a, b):
        den3 = self._den(a, b) ** 3
        return 2 * (2 * b + self.epsilon) ** 2 / den3, 2 * (2 * a + self.epsilon) ** 2 / den3


def make_prior(name: str, *, gamma: float = 2.0, spacing_mm: Sequence[float] | None = None) -> Prior:
    """A prior by name: ``"quadratic"`` or ``"rdp"`` (relative difference with ``gamma``)."""
    key = name.lower().replace("_", "-")
    if key == "quadratic":
        return QuadraticPrior(spacing_mm)
    if key in ("rdp", "relative-difference"):
        return RelativeDifferencePrior(gamma, spacing_mm=spacing_mm)
    raise InputError(f"unknown prior {name!r}; use 'quadratic' or 'rdp'")
