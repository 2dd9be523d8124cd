"""Small test system models of our own, so the algorithms are tested apart from the real projectors.

:class:`ParallelBeamMatrix` is a 2D parallel-beam projector stored as a sparse matrix (pixel-driven,
linear interpolation between the two nearest radial bins, weights in mm so projections are line
integrals), applied slice by slice to images ``(nz, ny, nx)``; output ``(nz, n_views, n_bins)`` with the
view axis 1. Its adjoint is the exact transpose.
"""

from __future__ import annotations

import math

import torch

from petspect.operators.base import ElementwiseMultiply, LinearOperator


def disc_image(n: int, radius_px: float, value: float = 1.0, *, nz: int = 1, dtype=torch.float64,
               n_sub: int = 4) -> torch.Tensor:
    """A centred disc (partial-volume weighted by n_sub^2 sub-samples) repeated on nz slices."""
    sub = (torch.arange(n_sub, dtype=dtype) + 0.5) / n_sub - 0.5
    c = torch.arange(n, dtype=dtype) - (n - 1) / 2
    yy = (c[:, None, None, None] + sub[None, None, :, None])
    xx = (c[None, :, None, None] + sub[None, None, None, :])
    inside = (yy ** 2 + xx ** 2 <= radius_px ** 2).to(dtype).mean(dim=(2, 3))
    return (value * inside)[None].repeat(nz, 1, 1)


class ParallelBeamMatrix(LinearOperator):
    """Sparse 2D parallel-beam projector applied per slice: (nz, n, n) -> (nz, n_views, n_bins)."""

    def __init__(self, nz: int, n: int, n_views: int, *, pixel_mm: float = 2.0, n_bins: int | None = None,
                 dtype=torch.float64, _triplets=None, _views=None) -> None:
        n_bins = n_bins or int(math.ceil(n * math.sqrt(2))) + 2
        if _triplets is None:
            _triplets, _views = self._build(n, n_views, n_bins, pixel_mm, dtype)
        rows, cols, vals = _triplets
        nv = len(_views)
        super().__init__((nz, n, n), (nz, nv, n_bins))
        self.view_axis = 1
        self.nz, self.n, self.n_bins, self.pixel_mm = nz, n, n_bins, pixel_mm
        self.views = _views
        self._trip = (rows, cols, vals)
        mat = torch.sparse_coo_tensor(torch.stack([rows, cols]), vals, (nv * n_bins, n * n),
                                      check_invariants=True).coalesce()
        self.register_buffer("mat", mat)
        self.register_buffer("mat_t", mat.t().coalesce())

    @staticmethod
    def _build(n, n_views, n_bins, pixel_mm, dtype):
        c = (torch.arange(n, dtype=torch.float64) - (n - 1) / 2) * pixel_mm
        yy, xx = torch.meshgrid(c, c, indexing="ij")
        theta = torch.arange(n_views, dtype=torch.float64) * math.pi / n_views
        s = xx.reshape(1, -1) * torch.cos(theta)[:, None] + yy.reshape(1, -1) * torch.sin(theta)[:, None]
        u = s / pixel_mm + (n_bins - 1) / 2  # fractional bin (bin width = pixel)
        lo = torch.floor(u)
        frac = u - lo
        pix = torch.arange(n * n).expand(n_views, -1)
        view = torch.arange(n_views)[:, None].expand(-1, n * n)
        rows, cols, vals = [], [], []
        for b, w in ((lo, 1 - frac), (lo + 1, frac)):
            ok = (b >= 0) & (b < n_bins) & (w > 0)
            rows.append((view * n_bins + b.long())[ok])
            cols.append(pix[ok])
            vals.append((w * pixel_mm)[ok])  # pixel area / bin width = pixel_mm (line integral in mm)
        return (torch.cat(rows), torch.cat(cols), torch.cat(vals).to(dtype)), torch.arange(n_views)

    def _forward(self, x):
        flat = x.reshape(self.nz, -1).t().to(self.mat.dtype)
        return (self.mat @ flat).t().reshape(self.out_shape).to(x.dtype)

    def _adjoint(self, y):
        flat = y.reshape(self.nz, -1).t().to(self.mat.dtype)
        return (self.mat_t @ flat).t().reshape(self.in_shape).to(y.dtype)

    def _subset(self, view_index):
        rows, cols, vals = self._trip
        view_of_row = rows // self.n_bins
        new_pos = torch.full((len(self.views),), -1, dtype=torch.long)
        new_pos[view_index.cpu()] = torch.arange(len(view_index))
        keep = new_pos[view_of_row] >= 0
        new_rows = new_pos[view_of_row[keep]] * self.n_bins + rows[keep] % self.n_bins
        return ParallelBeamMatrix(self.nz, self.n, 0, pixel_mm=self.pixel_mm, n_bins=self.n_bins,
                                  _triplets=(new_rows, cols[keep], vals[keep]), _views=self.views[view_index.cpu()])


def attenuated_model(geom: ParallelBeamMatrix, mu_per_mm: torch.Tensor, scale: float = 1.0) -> LinearOperator:
    """``scale * diag(exp(-G mu)) G``: geometric projector with attenuation factors (view axis 1)."""
    factors = torch.exp(-geom.forward(mu_per_mm)) * scale
    return ElementwiseMultiply(factors, view_axis=1) @ geom
