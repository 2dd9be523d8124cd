"""Ray-driven Joseph projector kernels (non-TOF and TOF) in torch, chunked over LORs.

Joseph's method (Joseph, IEEE TMI 1:192, 1982): a line is sampled where it crosses each plane of
voxel centres perpendicular to its *dominant* axis (the axis with the largest direction component in
voxel units); at each crossing the image is interpolated bilinearly in the two other axes, and the
samples are weighted by the length of line between two planes (``|p1 - p0|_mm / |d_a|`` with ``d_a``
the direction component along the dominant axis in voxels). Outside the grid the image is zero.
The result is the line integral of the image (value unit times mm).

TOF: the sample at signed distance ``s`` (mm) from the LOR midpoint (positive towards the end point)
contributes to TOF bin ``j`` (centre ``c_j = (j - (n_bins - 1) / 2) * w``) with the Gaussian kernel
integrated over the bin, ``0.5 [erf((c_j + w/2 - s) / (sqrt 2 sigma)) - erf((c_j - w/2 - s) / (sqrt 2 sigma))]``,
evaluated on the ``2m + 1`` bins nearest to the sample (``m`` covers 5 sigma), so the TOF weights of a
sample sum to one (to 1e-6) when the bins cover it: summing TOF bins gives the non-TOF projection.

Sampling uses a batched 2D ``torch.nn.functional.grid_sample``: the image is viewed as a stack of
slabs along the dominant axis, and plane ``k`` is the batch item that samples slab ``k`` (bilinear,
zero padding), so each sample reads exactly Joseph's four neighbours. The backprojection is the
input gradient of the same call (``grid_sampler_2d_backward``): the same weights, so it is the
exact transpose. Memory is bounded: LORs are processed in chunks of at most ``max_elements``
samples x values per sample.

Kernels
-------
:func:`joseph_forward` and :func:`joseph_backward` dispatch on the device of their inputs: CPU
tensors (float32 / float64) go to the multi-threaded numba kernels of
:mod:`petspect.projectors.pet_joseph_numba` (same samples, same weights; faster, see BENCHMARKS.md), other
devices (CUDA) to the torch code below, which is also the reference. ``backend="torch"`` or
``"numba"`` (or the environment variable ``PETSPECT_PET_KERNEL=torch``) forces one. Gradients flow
through either: with the numba kernels the gradient of the forward is the back projection and vice
versa (a ``torch.autograd.Function``); gradients with respect to the LOR end points need the torch
path (it is used automatically when they require grad).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

from petspect.errors import InputError

__all__ = ["TofKernel", "joseph_forward", "joseph_backward", "DEFAULT_MAX_ELEMENTS", "BACKENDS", "kernel_backend"]

BACKENDS = ("auto", "torch", "numba")
"""Kernel choices: ``auto`` (numba for CPU float32/float64 tensors, torch otherwise), ``torch``, ``numba``."""

DEFAULT_MAX_ELEMENTS = 1 << 25
"""Default cap on (LORs x planes x (6 + TOF bins)) per chunk: ~32M values, 128 MB in float32."""


@dataclass(frozen=True)
class TofKernel:
    """Gaussian TOF kernel parameters.

    Parameters
    ----------
    fwhm_mm : float
        TOF resolution along the LOR (FWHM), mm.
    bin_width_mm : float
        Width of one TOF bin along the LOR, mm.
    n_bins : int
        Number of TOF bins (odd), centred on the LOR midpoint.
    n_sigmas : float
        The kernel is evaluated on the bins within ``m = ceil((n_sigmas sigma + w/2) / w)`` bins of the
        bin holding the sample (the Gaussian mass beyond 5 sigma is 6e-7).
    """

    fwhm_mm: float
    bin_width_mm: float
    n_bins: int
    n_sigmas: float = 5.0

    def __post_init__(self) -> None:
        if not (self.fwhm_mm > 0 and self.bin_width_mm > 0 and self.n_bins >= 1 and self.n_bins % 2 == 1
                and self.n_sigmas > 0):
            raise InputError(f"invalid TOF kernel {self}")

    @property
    def sigma_mm(self) -> float:
        return self.fwhm_mm / (2.0 * math.sqrt(2.0 * math.log(2.0)))

    @property
    def half_window(self) -> int:
        """``m``: bins on each side of the sample's bin that get a weight."""
        return int(math.ceil((self.n_sigmas * self.sigma_mm + 0.5 * self.bin_width_mm) / self.bin_width_mm))

    def _nearest_bin(self, s_mm: torch.Tensor) -> torch.Tensor:
        return torch.round(s_mm / self.bin_width_mm).long() + (self.n_bins - 1) // 2

    def _erf_at(self, edge_mm: torch.Tensor, s_mm: torch.Tensor) -> torch.Tensor:
        return torch.erf((edge_mm - s_mm) / (math.sqrt(2.0) * self.sigma_mm))

    def window(self, s_mm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """TOF bins (..., 2m+1) near each sample and their bin-integrated weights (..., 2m+1).

        Bins outside ``0..n_bins-1`` get weight 0 (and a clamped index).
        """
        m = self.half_window
        offs = torch.arange(-m, m + 2, device=s_mm.device)
        j = self._nearest_bin(s_mm)[..., None] + offs  # bin of each lower edge, (..., 2m+2)
        edges = (j.to(s_mm.dtype) - (self.n_bins - 1) / 2.0 - 0.5) * self.bin_width_mm
        cdf = self._erf_at(edges, s_mm[..., None])
        w = 0.5 * (cdf[..., 1:] - cdf[..., :-1])
        bins = j[..., :-1]
        inside = (bins >= 0) & (bins < self.n_bins)
        return bins.clamp(0, self.n_bins - 1), w * inside.to(w.dtype)

    def weights(self, s_mm: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
        """Weight (L, K) of samples at ``s_mm`` (L, K) in one TOF bin per LOR ``bins`` (L,) (same window)."""
        lower = (bins.to(s_mm.dtype) - (self.n_bins - 1) / 2.0 - 0.5)[:, None] * self.bin_width_mm
        w = 0.5 * (self._erf_at(lower + self.bin_width_mm, s_mm) - self._erf_at(lower, s_mm))
        near = (self._nearest_bin(s_mm) - bins[:, None]).abs() <= self.half_window
        return w * near.to(w.dtype)


def _dominant_groups(d: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
    """Split LOR indices by the axis (0=z, 1=y, 2=x) with the largest |direction| in voxel units."""
    axis = d.abs().argmax(dim=1)
    return [(a, torch.nonzero(axis == a).squeeze(1)) for a in range(3)]


def _plane_range(p0: torch.Tensor, d: torch.Tensor, shape: tuple[int, int, int], a: int) -> tuple[int, int]:
    """Range of dominant-axis planes where any LOR of the chunk may be inside the (padded) grid."""
    t_lo = torch.zeros(p0.shape[0], dtype=p0.dtype, device=p0.device)
    t_hi = torch.ones_like(t_lo)
    for ax in range(3):
        da = d[:, ax]
        safe = torch.where(da.abs() > 1e-12, da, torch.full_like(da, 1e-12))
        ta = (-1.0 - p0[:, ax]) / safe
        tb = (shape[ax] - p0[:, ax]) / safe
        t_lo = torch.maximum(t_lo, torch.minimum(ta, tb))
        t_hi = torch.minimum(t_hi, torch.maximum(ta, tb))
    hit = t_hi > t_lo
    if not bool(hit.any()):
        return 0, -1
    ka = p0[hit, a] + t_lo[hit] * d[hit, a]
    kb = p0[hit, a] + t_hi[hit] * d[hit, a]
    lo = int(torch.floor(torch.minimum(ka, kb).min()).clamp(min=0))
    hi = int(torch.ceil(torch.maximum(ka, kb).max()).clamp(max=shape[a] - 1))
    return lo, hi


def _samples(p0, d, length_mm, shape, a, lo, hi):
    """Plane-crossing coordinates for grid_sample (K, L, 1, 2), step weights (K, L) or (1, L), t (K, L).

    Plane ``k`` of the dominant axis is one batch item of a 2D ``grid_sample`` on the slab
    ``image.movedim(a, 0)[k]``: the crossing lies on voxel centres along ``a``, so this is exactly
    Joseph's bilinear interpolation in the two other axes (zero outside the grid). Samples beyond
    the LOR's endpoints get weight 0.
    """
    k = torch.arange(lo, hi + 1, device=p0.device, dtype=p0.dtype)
    da = d[:, a]
    t = (k[:, None] - p0[None, :, a]) / da
    step = (length_mm / da.abs())[None, :]
    # sinogram LORs start and end outside the grid: then no sample leaves the segment and the
    # weights are the per-LOR step (1, L); otherwise mask the samples beyond the endpoints (K, L)
    w = step if bool((t[[0, -1]].amin() >= 0) & (t[[0, -1]].amax() <= 1)) else \
        step * ((t >= 0) & (t <= 1)).to(t.dtype)
    axes = _slab_axes(a)[::-1]  # grid_sample wants (W, H) = (last, first) slab axis
    size = torch.tensor([shape[ax] for ax in axes], dtype=p0.dtype, device=p0.device)
    # align_corners=False normalisation g = (2 c + 1) / n - 1 of c = p0 + t d, in one fused op
    offset = (2.0 * p0[:, axes] + 1.0) / size - 1.0
    slope = 2.0 * d[:, axes] / size
    grid = torch.addcmul(offset[None], t[..., None], slope[None])
    return grid[:, :, None, :], w, t


def _slab_axes(a: int) -> list[int]:
    """The two image axes other than ``a``, in increasing order (the slab's (H, W))."""
    return [ax for ax in range(3) if ax != a]


def _prepare(start_idx, end_idx, spacing_mm):
    d = end_idx - start_idx
    spacing = torch.tensor(spacing_mm, dtype=d.dtype, device=d.device)
    length_mm = torch.linalg.vector_norm(d * spacing, dim=1)
    return d, length_mm


def _chunks(idx: torch.Tensor, n_planes: int, per_sample: int, max_elements: int):
    size = max(1, max_elements // max(1, n_planes * per_sample))
    for i in range(0, idx.numel(), size):
        yield idx[i : i + size]


def _iterate(start_idx, end_idx, shape, spacing_mm, tof, max_elements):
    """Yield (lor_index, axis, lo, grid, weights, s_mm) for every chunk of LORs (the shared traversal)."""
    d, length_mm = _prepare(start_idx, end_idx, spacing_mm)
    per_sample = 6 + (4 * (2 * tof.half_window + 2) if tof is not None else 0)
    for a, group in _dominant_groups(d):
        group = group[length_mm[group] > 0]  # a degenerate LOR (start == end) has no line integral
        for sel in _chunks(group, shape[a], per_sample, max_elements):
            p0, dd, ln = start_idx[sel], d[sel], length_mm[sel]
            lo, hi = _plane_range(p0, dd, shape, a)
            if hi < lo:
                continue
            grid, w, t = _samples(p0, dd, ln, shape, a, lo, hi)
            yield sel, a, lo, grid, w, (t - 0.5) * ln[None, :]


def _slab(image: torch.Tensor, a: int) -> torch.Tensor:
    """The image as a batch of 2D slabs along axis ``a``: (n_a, 1, H, W), contiguous."""
    return image.movedim(a, 0).contiguous()[:, None]


def _sample(slabs: torch.Tensor, lo: int, grid: torch.Tensor) -> torch.Tensor:
    """Interpolated values (K, L) at the crossings of planes ``lo .. lo + K - 1``."""
    return torch.nn.functional.grid_sample(slabs[lo : lo + grid.shape[0]], grid, align_corners=False)[:, 0, :, 0]


def _spread(samples: torch.Tensor, grad_slabs: torch.Tensor, lo: int, grid: torch.Tensor) -> None:
    """Transpose of :func:`_sample`: add sample values (K, L) into ``grad_slabs`` (n_a, 1, H, W) in place."""
    part = grad_slabs[lo : lo + grid.shape[0]]
    part += torch.ops.aten.grid_sampler_2d_backward(samples[:, None, :, None], part, grid, 0, 0, False,
                                                    [True, False])[0]


def _check(start_idx, end_idx, tof, tof_bin):
    if start_idx.shape != end_idx.shape or start_idx.ndim != 2 or start_idx.shape[1] != 3:
        raise InputError("LOR start/end must both be (n_lors, 3) voxel coordinates")
    if tof_bin is not None and tof is None:
        raise InputError("per-event TOF bins need a TofKernel")


def kernel_backend(backend: str, values: torch.Tensor, start_idx: torch.Tensor, end_idx: torch.Tensor) -> str:
    """The kernel that runs for these tensors: ``"numba"`` or ``"torch"`` (see the module docstring)."""
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        backend = os.environ.get("PETSPECT_PET_KERNEL", "auto").strip().lower() or "auto"
        if backend not in BACKENDS:
            raise InputError(f"PETSPECT_PET_KERNEL must be one of {BACKENDS}, got {backend!r}")
    cpu = values.device.type == "cpu" and start_idx.device.type == "cpu" and end_idx.device.type == "cpu"
    fits = cpu and values.dtype in (torch.float32, torch.float64)
    if backend == "numba":
        if not fits:
            raise InputError(f"the numba PET kernels take CPU float32/float64 tensors, got {values.dtype} on "
                             f"{values.device}")
        return "numba"
    if backend == "torch" or not fits:
        return "torch"
    geometry_grad = torch.is_grad_enabled() and (start_idx.requires_grad or end_idx.requires_grad)
    return "torch" if geometry_grad else "numba"


class _NumbaProject(torch.autograd.Function):
    """Numba forward projection with the numba back projection as its gradient (and vice versa)."""

    @staticmethod
    def forward(ctx, values, start_idx, end_idx, spacing_mm, shape, tof, tof_bin, back):  # type: ignore[override]
        from petspect.projectors import pet_joseph_numba as nb

        ctx.args = (start_idx, end_idx, spacing_mm, shape, tof, tof_bin, back)
        if back:
            return nb.backward(values, start_idx, end_idx, shape, spacing_mm, tof=tof, tof_bin=tof_bin)
        return nb.forward(values, start_idx, end_idx, spacing_mm, tof=tof, tof_bin=tof_bin)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        from petspect.projectors import pet_joseph_numba as nb

        start_idx, end_idx, spacing_mm, shape, tof, tof_bin, back = ctx.args
        grad = grad.contiguous()
        if back:
            g = nb.forward(grad, start_idx, end_idx, spacing_mm, tof=tof, tof_bin=tof_bin)
        else:
            g = nb.backward(grad, start_idx, end_idx, shape, spacing_mm, tof=tof, tof_bin=tof_bin)
        return g, None, None, None, None, None, None, None


def joseph_forward(image: torch.Tensor, start_idx: torch.Tensor, end_idx: torch.Tensor,
                   spacing_mm: tuple[float, float, float], *, tof: TofKernel | None = None,
                   tof_bin: torch.Tensor | None = None, max_elements: int = DEFAULT_MAX_ELEMENTS,
                   backend: str = "auto") -> torch.Tensor:
    """Line integrals of ``image`` along LORs.

    Parameters
    ----------
    image : torch.Tensor, shape (nz, ny, nx)
        Values per voxel (e.g. Bq/mL or 1/mm).
    start_idx, end_idx : torch.Tensor, shape (L, 3)
        LOR endpoints as fractional voxel indices (z, y, x), same dtype/device as ``image``.
    spacing_mm : (float, float, float)
        Voxel size (dz, dy, dx), mm.
    tof : TofKernel, optional
        TOF kernel; without ``tof_bin`` the output gets a trailing TOF axis.
    tof_bin : torch.Tensor, optional, shape (L,)
        One TOF bin per LOR (list-mode): the output is (L,) TOF-weighted integrals.
    max_elements : int
        Memory cap per chunk (LORs x planes x values per sample) of the torch kernel.
    backend : {"auto", "torch", "numba"}
        Kernel choice (see the module docstring); both give the same values to float rounding.

    Returns
    -------
    torch.Tensor
        Shape (L,) or (L, n_tof_bins): integrals in image unit x mm.
    """
    _check(start_idx, end_idx, tof, tof_bin)
    if image.ndim != 3:
        raise InputError(f"image must be (nz, ny, nx), got shape {tuple(image.shape)}")
    if kernel_backend(backend, image, start_idx, end_idx) == "numba":
        return _NumbaProject.apply(image, start_idx.detach(), end_idx.detach(), tuple(spacing_mm),
                                   tuple(image.shape), tof, None if tof_bin is None else tof_bin.detach(), False)
    n = start_idx.shape[0]
    per_event = tof is None or tof_bin is not None
    out = image.new_zeros((n,) if per_event else (n, tof.n_bins))
    slabs: dict[int, torch.Tensor] = {}
    for sel, a, lo, grid, w, s_mm in _iterate(start_idx, end_idx, tuple(image.shape), spacing_mm,
                                              None if tof_bin is not None else tof, max_elements):
        if a not in slabs:
            slabs[a] = _slab(image, a)
        vals = _sample(slabs[a], lo, grid) * w  # (K, L)
        if tof is None:
            out[sel] = vals.sum(0)
        elif tof_bin is not None:
            out[sel] = (vals.T * tof.weights(s_mm.T, tof_bin[sel])).sum(1)
        else:
            bins, wts = tof.window(s_mm.T)  # (L, K, M)
            part = out.new_zeros((len(sel), tof.n_bins))
            out[sel] = part.scatter_add_(1, bins.reshape(len(sel), -1), (vals.T[..., None] * wts).reshape(len(sel), -1))
    return out


def joseph_backward(proj: torch.Tensor, start_idx: torch.Tensor, end_idx: torch.Tensor,
                    shape: tuple[int, int, int], spacing_mm: tuple[float, float, float], *,
                    tof: TofKernel | None = None, tof_bin: torch.Tensor | None = None,
                    max_elements: int = DEFAULT_MAX_ELEMENTS, backend: str = "auto") -> torch.Tensor:
    """Exact transpose of :func:`joseph_forward`: backproject ``proj`` ((L,) or (L, n_tof)) into (nz, ny, nx)."""
    _check(start_idx, end_idx, tof, tof_bin)
    shape = tuple(int(s) for s in shape)
    expected = (start_idx.shape[0],) if (tof is None or tof_bin is not None) else (start_idx.shape[0], tof.n_bins)
    if tuple(proj.shape) != expected:
        raise InputError(f"projection data of shape {tuple(proj.shape)} do not fit {expected}")
    if kernel_backend(backend, proj, start_idx, end_idx) == "numba":
        return _NumbaProject.apply(proj, start_idx.detach(), end_idx.detach(), tuple(spacing_mm), shape, tof,
                                   None if tof_bin is None else tof_bin.detach(), True)
    grads: dict[int, torch.Tensor] = {}
    for sel, a, lo, grid, w, s_mm in _iterate(start_idx, end_idx, shape, spacing_mm,
                                              None if tof_bin is not None else tof, max_elements):
        if a not in grads:
            grads[a] = proj.new_zeros((shape[a], 1) + tuple(shape[ax] for ax in _slab_axes(a)))
        y = proj[sel]
        if tof is None:
            samp = (y[None, :] * w).expand(grid.shape[0], -1)
        elif tof_bin is not None:
            samp = (y[:, None] * tof.weights(s_mm.T, tof_bin[sel])).T * w
        else:
            bins, wts = tof.window(s_mm.T)  # (L, K, M)
            samp = (y.gather(1, bins.reshape(len(sel), -1)).view_as(wts) * wts).sum(-1).T * w
        _spread(samp.contiguous(), grads[a], lo, grid)
    image = proj.new_zeros(shape)
    for a, g in grads.items():
        image += g[:, 0].movedim(0, a)
    return image
