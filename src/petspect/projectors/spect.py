"""SPECT rotate-and-sum projector with depth-dependent collimator response and attenuation.

Model
-----
For view ``v`` at detector angle ``a_v`` and radius ``r_v`` (collimator face to rotation axis) the
expected counts in detector pixel ``(row, col)`` are

    y_v = c * sum_k  Bc_vk  [ att_vk * (R_v x)_k ]  Bz_vk^T

* ``R_v`` resamples the image ``x`` (z, y, x) by bilinear interpolation in each transverse slice onto
  a grid rotated with the detector: depth planes ``k`` at ``s_k`` mm along the detector normal
  ``n = (sin a, -cos a)`` (LPS x, y; see :mod:`petspect.geometry.spect`) and columns ``t_m`` along
  ``t = (cos a, sin a)``. ``R_v`` is a fixed sparse matrix (4 weights per sample) and the adjoint
  applies its exact transpose, so the pair is adjoint to rounding. Interpolation keeps values (a
  uniform region projects without moire) and counts on average; a single voxel's counts vary with
  the view angle (up to ~20 % at 45 deg), as in other rotation-based projectors.
* ``att_vk = exp(-(sum_{k' > k} mu_k' + mu_k / 2) h)``: attenuation from the centre of plane ``k`` to
  the detector along the rotated grid (``h`` mm per plane, ``mu`` in 1/mm, resampled by ``R_v``).
* ``Bc_vk`` (cols x rotated columns) and ``Bz_vk`` (rows x slices) are the collimator-detector
  response at distance ``z_k = r_v - s_k``: a Gaussian of FWHM
  :meth:`ParallelHoleCollimator.system_fwhm_mm` integrated over each detector pixel, so the kernel
  sums to 1 (counts are kept away from the detector edges); with ``psf=False`` they are the overlap of voxel and
  pixel (the identity when the grids match). Rows run superior first (``spect_data`` convention).
* ``c`` converts the image unit to counts: ``c = frame_duration_s * sensitivity_cps_per_mbq * 1e-6
  * voxel_volume_ml`` for an image in Bq/mL (Bq/mL x mL = Bq; Bq x 1e-6 MBq/Bq x cps/MBq x s =
  counts). Without a sensitivity ``c = 1`` and the operator sums voxel values.

The blur matrices are dense and applied with batched GEMMs (one per depth plane for the rows, one
for all planes and views for the columns); on CPUs this is several times faster than per-plane
convolutions at SPECT sizes (benchmarks/bench_spect.py). Views are processed in chunks that share a radius (one chunk set for a
circular orbit) and keep the intermediate under ``chunk_elements``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from petspect.errors import GeometryError, InputError, UnitError
from petspect.geometry.spect import ParallelHoleCollimator, detector_normal, get_spect_system
from petspect.operators.base import LinearOperator
from petspect.operators.pixel_response import pixel_response_matrices
from petspect.units import BQ_PER_MBQ, FWHM_PER_SIGMA, ML_PER_MM3
from petspect.volume import AXIAL_DIRECTION, Volume

#: Largest intermediate (planes x columns x views x slices) of one chunk of views.
DEFAULT_CHUNK_ELEMENTS = 1 << 25
#: Attenuation factors are cached when they take at most this many elements.
ATT_CACHE_ELEMENTS = 1 << 27


@dataclass(frozen=True)
class _Grid:
    """Image, rotated and detector sampling (all lengths mm)."""

    nz: int
    ny: int
    nx: int
    dz: float
    dy: float
    dx: float
    n_rot: int  # depth planes = rotated columns
    h: float  # rotated grid spacing
    rows: int
    cols: int
    row_mm: float
    col_mm: float

    @property
    def depth_mm(self) -> torch.Tensor:
        """Signed position ``s_k`` of each depth plane along the detector normal (float64)."""
        return (torch.arange(self.n_rot, dtype=torch.float64) - (self.n_rot - 1) / 2) * self.h


def _sparse_csr(crow, col, val, size):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, val, size)


def _bilinear_coo(fa: torch.Tensor, fb: torch.Tensor, na: int, nb: int):
    """Bilinear weights of points at fractional indices ``(fa, fb)`` on an ``(na, nb)`` grid.

    Returns ``(point, node, weight)`` for the in-grid neighbours, ``node = ia * nb + ib``, ordered by
    point and, within a point, by node (so they form a CSR matrix as they are).
    """
    a0, b0 = torch.floor(fa), torch.floor(fb)
    wa1, wb1 = fa - a0, fb - b0
    a0, b0 = a0.long(), b0.long()
    nodes, ws, oks = [], [], []
    for oa, wa in ((0, 1 - wa1), (1, wa1)):
        for ob, wb in ((0, 1 - wb1), (1, wb1)):
            ia, ib, w = a0 + oa, b0 + ob, wa * wb
            oks.append((ia >= 0) & (ia < na) & (ib >= 0) & (ib < nb) & (w > 1e-12))
            nodes.append(ia * nb + ib)
            ws.append(w)
    ok = torch.stack(oks, 1)
    point = torch.arange(fa.numel(), device=fa.device)[:, None].expand(-1, 4)
    return point[ok], torch.stack(nodes, 1)[ok], torch.stack(ws, 1)[ok]


def _csr_take_rows(crow, col, val, rows: torch.Tensor):
    """CSR parts of the rows ``rows`` (in that order) of a CSR matrix."""
    start = crow[rows]
    length = crow[rows + 1] - start
    new_crow = torch.zeros(rows.numel() + 1, dtype=crow.dtype, device=crow.device)
    new_crow[1:] = torch.cumsum(length, 0)
    pos = torch.repeat_interleave(start - new_crow[:-1], length) + torch.arange(int(new_crow[-1]), device=crow.device)
    return new_crow, col[pos], val[pos]


def _rotation_coo(angles_deg: torch.Tensor, g: _Grid, device):
    """Entries ``(sample, pixel, weight)`` of bilinear interpolation of the image at the rotated samples.

    Samples are ordered (depth k, column m, view v); pixels are ``iy * nx + ix``. Interpolation keeps
    values (a uniform region stays uniform at every angle); spreading each pixel instead (the
    transpose) would keep each pixel's content exactly but leaves a +-10 % moire in the projections
    of uniform objects at oblique views.
    """
    n, t = detector_normal(angles_deg.to(torch.float64).cpu())
    n, t = n.to(device), t.to(device)
    s = g.depth_mm.to(device)
    px = s[:, None, None] * n[None, None, :, 0] + s[None, :, None] * t[None, None, :, 0]
    py = s[:, None, None] * n[None, None, :, 1] + s[None, :, None] * t[None, None, :, 1]
    fx = (px / g.dx + (g.nx - 1) / 2).reshape(-1)
    fy = (py / g.dy + (g.ny - 1) / 2).reshape(-1)
    return _bilinear_coo(fy, fx, g.ny, g.nx)


def _rotation_parts(angles_deg: torch.Tensor, g: _Grid, device) -> tuple[torch.Tensor, ...]:
    """CSR parts ``(crow, col, val, crow_t, col_t, val_t)`` of the rotation and of its transpose."""
    sample, pixel, w = _rotation_coo(angles_deg, g, device)
    n_samples = g.n_rot * g.n_rot * angles_deg.numel()
    crow = torch.zeros(n_samples + 1, dtype=torch.int64, device=device)
    crow[1:] = torch.cumsum(torch.bincount(sample, minlength=n_samples), 0)
    return (crow, pixel, w, *_transpose_csr(crow, pixel, w, g.ny * g.nx))


def _transpose_csr(crow, col, val, n_cols: int):
    """CSR parts of the transpose of a CSR matrix with ``n_cols`` columns.

    A stable sort by column keeps the row order within each column, so the transposed rows come out
    sorted (a radix sort on small integer keys: cheap).
    """
    n_rows = crow.numel() - 1
    row = torch.repeat_interleave(torch.arange(n_rows, device=crow.device), crow[1:] - crow[:-1])
    order = torch.sort(col, stable=True).indices
    crow_t = torch.zeros(n_cols + 1, dtype=torch.int64, device=crow.device)
    crow_t[1:] = torch.cumsum(torch.bincount(col, minlength=n_cols), 0)
    return crow_t, row[order], val[order]


class SpectProjector(LinearOperator):
    """Parallel-hole SPECT forward model: image (z, y, x) -> projections (views, rows, cols).

    Parameters
    ----------
    image_shape : (nz, ny, nx)
        Image grid; the rotation axis passes through the centre of the transverse slices, along z.
    voxel_mm : (dz, dy, dx)
        Voxel size in mm.
    angles_deg : array_like, shape (V,)
        Detector angles (0 = anterior, clockwise seen from the feet; :mod:`petspect.geometry.spect`).
    radius_mm : float or array_like, shape (V,)
        Collimator face to rotation axis per view (mm): circular or body-contour orbit.
    collimator : ParallelHoleCollimator or str or None
        The collimator, or a system preset name (``"spect-lehr"``, ``"spect-me"``); None with ``psf=False``.
    mu : torch.Tensor, shape (nz, ny, nx), optional
        Linear attenuation coefficients at the photopeak energy in 1/mm; None: no attenuation.
    psf : bool
        Model the distance-dependent collimator-detector response (else voxel/pixel overlap only).
    detector_shape : (rows, cols), optional
        Detector matrix; default ``(nz, max(ny, nx))``.
    pixel_mm : (row_mm, col_mm), optional
        Detector pixel size; default ``(dz, dx)``.
    sensitivity_cps_per_mbq, frame_duration_s : float, optional
        With a sensitivity the image is in Bq/mL and the output in counts (module docstring).
    dtype : torch.dtype
        Storage dtype of the cached matrices (inputs of any float dtype are accepted).
    chunk_elements : int
        Size limit of one chunk's intermediate (planes x columns x views x slices).

    Notes
    -----
    ``view_axis`` is 0; :meth:`subset` gives the operator for a subset of views (cached).
    """

    view_axis = 0

    def __init__(self, image_shape: Sequence[int], voxel_mm: Sequence[float], angles_deg, radius_mm,
                 collimator: ParallelHoleCollimator | str | None, mu: torch.Tensor | None = None, psf: bool = True, *,
                 detector_shape: Sequence[int] | None = None, pixel_mm: Sequence[float] | None = None,
                 sensitivity_cps_per_mbq: float | None = None, frame_duration_s: float = 1.0,
                 dtype: torch.dtype = torch.float32, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
                 device=None) -> None:
        nz, ny, nx = (int(s) for s in image_shape)
        dz, dy, dx = (float(v) for v in voxel_mm)
        if min(nz, ny, nx) < 1 or min(dz, dy, dx) <= 0:
            raise InputError(f"SpectProjector: bad image shape {image_shape} or voxel size {voxel_mm}")
        if isinstance(collimator, str):
            collimator = get_spect_system(collimator).collimator
        if collimator is None and psf:
            raise InputError("SpectProjector: psf=True needs a collimator")
        angles = torch.as_tensor(angles_deg, dtype=torch.float64).reshape(-1).cpu()
        radius = torch.as_tensor(radius_mm, dtype=torch.float64).reshape(-1).cpu()
        if radius.numel() == 1:
            radius = radius.expand(angles.numel()).clone()
        if angles.numel() < 1 or radius.numel() != angles.numel():
            raise InputError(f"SpectProjector: {angles.numel()} angles but {radius.numel()} radii")
        h = min(dy, dx)
        n_rot = int(math.ceil(max(ny * dy, nx * dx) / h - 1e-9))
        rows, cols = (nz, n_rot) if detector_shape is None else (int(detector_shape[0]), int(detector_shape[1]))
        row_mm, col_mm = (dz, h) if pixel_mm is None else (float(pixel_mm[0]), float(pixel_mm[1]))
        if float(radius.min()) <= 0:
            raise InputError("SpectProjector: radius_mm must be positive")
        grid = _Grid(nz, ny, nx, dz, dy, dx, n_rot, h, rows, cols, row_mm, col_mm)
        dev = torch.device(device) if device is not None else (mu.device if mu is not None else torch.device("cpu"))
        scale = 1.0
        if sensitivity_cps_per_mbq is not None:
            scale = float(frame_duration_s) * float(sensitivity_cps_per_mbq) / BQ_PER_MBQ * dz * dy * dx * ML_PER_MM3
        if mu is not None:
            mu = torch.as_tensor(mu)
            if tuple(mu.shape) != (nz, ny, nx):
                raise InputError(f"SpectProjector: mu shape {tuple(mu.shape)} != image shape {(nz, ny, nx)}")
            if float(mu.max()) > 1.0:
                raise InputError("SpectProjector: mu above 1/mm; attenuation maps must be in 1/mm (not 1/cm or HU)")
            mu = mu.to(device=dev, dtype=dtype)
        self._setup(grid, collimator, bool(psf), dtype, int(chunk_elements), angles.to(dev), radius.to(dev), mu,
                    sensitivity_cps_per_mbq, float(frame_duration_s), scale)
        self._build_chunks(dev)

    def _setup(self, grid, collimator, psf, dtype, chunk_elements, angles, radius, mu, sensitivity, duration,
               scale) -> None:
        """Settings shared by a projector and its subsets."""
        LinearOperator.__init__(self, (grid.nz, grid.ny, grid.nx), (angles.numel(), grid.rows, grid.cols))
        self.grid, self.collimator, self.psf, self.storage_dtype = grid, collimator, psf, dtype
        self.chunk_elements, self.scale = chunk_elements, scale
        self.sensitivity_cps_per_mbq, self.frame_duration_s = sensitivity, duration
        self.register_buffer("angles_deg", angles)
        self.register_buffer("radius_mm", radius)
        if mu is None:
            self.mu = None
        else:
            self.register_buffer("mu", mu)
        self._subsets: dict = {}
        self._chunks: list[tuple[torch.Tensor, float]] = []

    # ------------------------------------------------------------------ construction
    def _build_chunks(self, device) -> None:
        g = self.grid
        max_views = max(1, self.chunk_elements // (g.n_rot * g.n_rot * g.nz))
        radii, inverse = torch.unique(self.radius_mm.cpu(), return_inverse=True)
        for gi, r in enumerate(radii.tolist()):
            views = torch.nonzero(inverse == gi).reshape(-1)
            for start in range(0, views.numel(), max_views):
                self._chunks.append((views[start:start + max_views], r))
        for ci, (views, r) in enumerate(self._chunks):
            parts = _rotation_parts(self.angles_deg[views.to(device)], g, device)
            for name, p in zip(("crow", "col", "val", "crow_t", "col_t", "val_t"), parts):
                self._register(f"_rot_{name}_{ci}", p)
            self._register(f"_views_{ci}", views.to(device))
        self._psf_cached = len(radii) <= 8
        self._radius_group = {r: gi for gi, r in enumerate(radii.tolist())}
        self._build_attenuation()
        self._build_psf(device)

    def _build_attenuation(self) -> None:
        """Cache the attenuation factors of every chunk when they are small enough."""
        g = self.grid
        if self.mu is not None and g.n_rot * g.n_rot * g.nz * self.n_views <= ATT_CACHE_ELEMENTS:
            for ci in range(len(self._chunks)):
                self._register(f"_att_{ci}", self._attenuation(ci, self.storage_dtype))

    def _build_psf(self, device) -> None:
        if self._psf_cached:
            for r, gi in self._radius_group.items():
                bz, bc = self._psf_matrices(r, device, self.storage_dtype)
                self._register(f"_bz_{gi}", bz)
                self._register(f"_bc_{gi}", bc)

    def _share(self, other: "SpectProjector", prefixes: tuple[str, ...]) -> None:
        """Register ``other``'s buffers whose names start with one of ``prefixes`` (no copies)."""
        for name, buf in other.named_buffers(recurse=False):
            if name.startswith(prefixes):
                self._register(name, buf)

    def with_changes(self, *, mu: torch.Tensor | None | str = "keep",
                     collimator: ParallelHoleCollimator | None = None) -> "SpectProjector":
        """The same geometry with another attenuation map and/or collimator, sharing the rotation matrices.

        Parameters
        ----------
        mu : torch.Tensor or None, optional
            New attenuation map (1/mm, image shape) or None for none; default: keep.
        collimator : ParallelHoleCollimator, optional
            New collimator response (e.g. at another photon energy); default: keep.
        """
        keep_mu = isinstance(mu, str)
        new_mu = self.mu if keep_mu else (None if mu is None else torch.as_tensor(mu).to(
            self.angles_deg.device, self.storage_dtype))
        if new_mu is not None and tuple(new_mu.shape) != self.in_shape:
            raise InputError(f"with_changes: mu shape {tuple(new_mu.shape)} != image shape {self.in_shape}")
        new = SpectProjector.__new__(SpectProjector)
        new._setup(self.grid, collimator or self.collimator, self.psf, self.storage_dtype, self.chunk_elements,
                   self.angles_deg, self.radius_mm, new_mu, self.sensitivity_cps_per_mbq, self.frame_duration_s,
                   self.scale)
        new._chunks = list(self._chunks)
        new._psf_cached, new._radius_group = self._psf_cached, self._radius_group
        new._share(self, ("_rot_", "_views_"))
        if keep_mu:
            new._share(self, ("_att_",))
        else:
            new._build_attenuation()
        if collimator is None:
            new._share(self, ("_bz_", "_bc_"))
        else:
            new._build_psf(self.angles_deg.device)
        return new

    def _slice_chunks(self, parent: "SpectProjector", view_index: torch.Tensor) -> None:
        """Take the matrices of ``parent``'s views ``view_index`` (no rebuilding)."""
        g = self.grid
        dev = parent.angles_deg.device
        new_pos = torch.full((parent.n_views,), -1, dtype=torch.int64)
        new_pos[view_index] = torch.arange(view_index.numel())
        self._psf_cached, self._radius_group = parent._psf_cached, parent._radius_group
        self._share(parent, ("_bz_", "_bc_"))
        planes = torch.arange(g.n_rot * g.n_rot, device=dev)
        for pci, (views, r) in enumerate(parent._chunks):
            local = torch.nonzero(new_pos[views] >= 0).reshape(-1)
            if local.numel() == 0:
                continue
            ci = len(self._chunks)
            self._chunks.append((new_pos[views[local]], r))
            self._register(f"_views_{ci}", self._chunks[-1][0].to(dev))
            rows = (planes[:, None] * views.numel() + local.to(dev)[None, :]).reshape(-1)
            fwd = _csr_take_rows(*(getattr(parent, f"_rot_{k}_{pci}") for k in ("crow", "col", "val")), rows)
            adj = _transpose_csr(*fwd, g.ny * g.nx)
            for name, p in zip(("crow", "col", "val", "crow_t", "col_t", "val_t"), (*fwd, *adj)):
                self._register(f"_rot_{name}_{ci}", p)
            att = getattr(parent, f"_att_{pci}", None)
            if att is not None:
                att = att.view(g.n_rot, g.n_rot, views.numel(), g.nz).index_select(2, local.to(dev))
                self._register(f"_att_{ci}", att.reshape(g.n_rot, -1, g.nz))

    def _register(self, name: str, tensor: torch.Tensor) -> None:
        """A non-persistent buffer; floating tensors in the storage dtype."""
        self.register_buffer(name, tensor.to(self.storage_dtype) if tensor.is_floating_point() else tensor,
                             persistent=False)

    def _csr(self, prefix: str, ci: int, dtype, transpose: bool = False) -> torch.Tensor:
        g = self.grid
        n_samples = g.n_rot * g.n_rot * self._chunks[ci][0].numel()
        sfx = "_t" if transpose else ""
        crow, col, val = (getattr(self, f"{prefix}_{k}{sfx}_{ci}") for k in ("crow", "col", "val"))
        size = (g.ny * g.nx, n_samples) if transpose else (n_samples, g.ny * g.nx)
        return _sparse_csr(crow, col, val.to(dtype), size)

    def _attenuation(self, ci: int, dtype) -> torch.Tensor:
        """``exp(-path)`` per rotated sample of chunk ``ci``, shape (planes, cols * views, nz)."""
        g = self.grid
        cached = getattr(self, f"_att_{ci}", None)
        if cached is not None:
            return cached.to(dtype)
        mu = self.mu.to(torch.float64 if dtype == torch.float64 else self.mu.dtype)
        mu_rot = self._csr("_rot", ci, mu.dtype) @ mu.permute(1, 2, 0).reshape(g.ny * g.nx, g.nz)
        mu_rot = mu_rot.view(g.n_rot, -1, g.nz)
        to_detector = torch.flip(torch.cumsum(torch.flip(mu_rot, (0,)), 0), (0,))
        return torch.exp(-(to_detector - 0.5 * mu_rot) * g.h).to(dtype)

    def _psf_matrices(self, radius: float, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Row blur ``Bz`` (planes, rows, nz) and column blur ``Bc`` (cols, planes * rotated cols)."""
        g = self.grid
        sigma = None
        if self.psf:
            dist = radius - g.depth_mm
            sigma = self.collimator.system_fwhm_mm(dist) / FWHM_PER_SIGMA
        z_img = (torch.arange(g.nz, dtype=torch.float64) - (g.nz - 1) / 2) * g.dz
        z_det = ((g.rows - 1) / 2 - torch.arange(g.rows, dtype=torch.float64)) * g.row_mm
        u_det = (torch.arange(g.cols, dtype=torch.float64) - (g.cols - 1) / 2) * g.col_mm
        bz = pixel_response_matrices(z_det, g.row_mm, z_img, g.dz, sigma)
        if sigma is None:
            bz = bz.expand(g.n_rot, -1, -1)
        bc = pixel_response_matrices(u_det, g.col_mm, g.depth_mm, g.h, sigma)
        bc = bc.expand(g.n_rot, -1, -1).permute(1, 0, 2).reshape(g.cols, g.n_rot * g.n_rot)
        return bz.contiguous().to(device=device, dtype=dtype), bc.contiguous().to(device=device, dtype=dtype)

    def _psf(self, radius: float, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._psf_cached:
            gi = self._radius_group[radius]
            return getattr(self, f"_bz_{gi}").to(like.dtype), getattr(self, f"_bc_{gi}").to(like.dtype)
        return self._psf_matrices(radius, like.device, like.dtype)

    # ------------------------------------------------------------------ maths
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.grid
        xp = x.permute(1, 2, 0).reshape(g.ny * g.nx, g.nz)
        out = x.new_empty(self.out_shape)
        for ci, (views, radius) in enumerate(self._chunks):
            a = (self._csr("_rot", ci, x.dtype) @ xp).view(g.n_rot, -1, g.nz)
            if self.mu is not None:
                a.mul_(self._attenuation(ci, x.dtype))
            bz, bc = self._psf(radius, x)
            w = torch.bmm(a, bz.transpose(1, 2))  # (planes, cols_rot * views, rows)
            p = bc @ w.view(g.n_rot * g.n_rot, -1)  # (cols, views * rows)
            out.index_copy_(0, getattr(self, f"_views_{ci}"), p.view(g.cols, -1, g.rows).permute(1, 2, 0))
        return out * self.scale if self.scale != 1.0 else out

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        g = self.grid
        xp = y.new_zeros(g.ny * g.nx, g.nz)
        for ci, (views, radius) in enumerate(self._chunks):
            yc = y.index_select(0, getattr(self, f"_views_{ci}")).permute(2, 0, 1).reshape(g.cols, -1)
            bz, bc = self._psf(radius, y)
            w = (bc.t() @ yc).view(g.n_rot, -1, g.rows)
            a = torch.bmm(w, bz)  # (planes, cols_rot * views, nz)
            if self.mu is not None:
                a.mul_(self._attenuation(ci, y.dtype))
            xp += self._csr("_rot", ci, y.dtype, transpose=True) @ a.view(-1, g.nz)
        x = xp.view(g.ny, g.nx, g.nz).permute(2, 0, 1).contiguous()
        return x * self.scale if self.scale != 1.0 else x

    def _subset(self, view_index: torch.Tensor) -> "SpectProjector":
        key = (tuple(view_index.tolist()), str(self.angles_deg.device))
        if key not in self._subsets:
            idx = view_index.to(self.angles_deg.device)
            sub = SpectProjector.__new__(SpectProjector)
            sub._setup(self.grid, self.collimator, self.psf, self.storage_dtype, self.chunk_elements,
                       self.angles_deg[idx], self.radius_mm[idx], self.mu, self.sensitivity_cps_per_mbq,
                       self.frame_duration_s, self.scale)
            sub._slice_chunks(self, view_index.cpu())
            self._subsets[key] = sub
        return self._subsets[key]

    def extra_repr(self) -> str:
        name = None if self.collimator is None else self.collimator.name
        return (f"{super().extra_repr()}, collimator={name}, psf={self.psf}, "
                f"attenuation={self.mu is not None}, chunks={len(self._chunks)}")


# ---------------------------------------------------------------------- builders
def check_axial(volume: Volume, what: str) -> None:
    """Raise GeometryError unless ``volume`` has the standard axial orientation (rows L, cols P, slices S)."""
    d = torch.as_tensor(volume.direction, dtype=torch.float64)
    if not torch.allclose(d, torch.tensor(AXIAL_DIRECTION, dtype=torch.float64), atol=1e-6):
        raise GeometryError(f"{what}: SPECT models need the standard axial orientation, got direction "
                            f"{volume.direction}")


def mu_per_mm_on(mu: Volume, grid: Volume) -> torch.Tensor:
    """Attenuation map (Volume in "1/mm" or "1/cm") in 1/mm, resampled linearly onto ``grid`` if needed."""
    factors = {"1/mm": 1.0, "1/cm": 0.1}
    if mu.unit not in factors:
        raise UnitError(f"attenuation map must be in 1/mm or 1/cm, got {mu.unit!r}")
    if not mu.same_grid(grid):
        mu = mu.resample_to(grid, mode="linear")
    return mu.data * factors[mu.unit]
