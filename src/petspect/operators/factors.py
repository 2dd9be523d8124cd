"""Multiplicative projection-space factors (PET attenuation, efficiencies), TOF-aware.

They sit with the operators so that projectors and physics effects (which are peers) can both use them.

A factor tensor has the non-TOF sinogram shape ``(n_planes, n_views, n_radial)`` (or ``(n_events,)``
for list-mode); applied to TOF data ``(..., n_tof_bins)`` it broadcasts over the TOF axis, so TOF
sinograms need no per-bin copy of the factors.
"""

from __future__ import annotations

import torch

from petspect.errors import InputError
from petspect.operators.base import LinearOperator

__all__ = ["ProjectionFactors", "safe_reciprocal"]


def safe_reciprocal(factors: torch.Tensor) -> torch.Tensor:
    """``1 / f`` where ``f > 0``, 0 elsewhere (same shape, device and dtype): correction factors."""
    pos = factors > 0
    return torch.where(pos, 1.0 / torch.where(pos, factors, torch.ones_like(factors)), torch.zeros_like(factors))


class ProjectionFactors(LinearOperator):
    """Diagonal operator ``y -> f * y`` in projection space, broadcasting over trailing TOF bins.

    Parameters
    ----------
    factors : torch.Tensor
        Non-negative factors, shape = the data shape without a TOF axis (held as a buffer).
    data_shape : tuple of int, optional
        Shape of the data the operator acts on; default ``factors.shape``. May add a trailing TOF axis.
    view_axis : int
        The view (subset) axis of the data: 1 for sinograms, 0 for list-mode.
    """

    in_view_space = True

    def __init__(self, factors: torch.Tensor, data_shape: tuple[int, ...] | None = None, *, view_axis: int = 1) -> None:
        data_shape = tuple(factors.shape) if data_shape is None else tuple(data_shape)
        if data_shape[: factors.ndim] != tuple(factors.shape) or len(data_shape) > factors.ndim + 1:
            raise InputError(f"factors of shape {tuple(factors.shape)} do not fit data of shape {data_shape}")
        super().__init__(data_shape, data_shape)
        self.register_buffer("factors", factors)
        self.view_axis = view_axis
        self._extra = len(data_shape) - factors.ndim

    def _scale(self, v: torch.Tensor) -> torch.Tensor:
        f = self.factors.to(device=v.device, dtype=v.dtype)
        return v * (f[..., None] if self._extra else f)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._scale(x)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self._scale(y)

    def _subset(self, view_index: torch.Tensor) -> "ProjectionFactors":
        f = self.factors.index_select(self.view_axis, view_index.to(self.factors.device))
        shape = list(self.in_shape)
        shape[self.view_axis] = len(view_index)
        return ProjectionFactors(f, tuple(shape), view_axis=self.view_axis)

    def inverse(self) -> "ProjectionFactors":
        """The correction operator ``y -> y / f`` (0 where ``f`` is 0)."""
        return ProjectionFactors(safe_reciprocal(self.factors), self.in_shape, view_axis=self.view_axis)
