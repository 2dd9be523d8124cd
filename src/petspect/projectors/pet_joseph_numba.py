"""Multi-threaded CPU kernels (numba) of the Joseph projector: the same operator as the torch path.

These kernels compute exactly what :mod:`petspect.projectors.pet_joseph` computes with batched
``grid_sample`` (same samples, same weights, same TOF kernel), one LOR at a time, in parallel over
LORs with ``numba`` (``parallel=True``, compiled on first use and cached on disk with ``cache=True``):

* a LOR is sampled on the planes of voxel centres perpendicular to its dominant axis ``a`` (largest
  ``|end - start|`` in voxel units), at the planes where the sample lies on the segment
  (``0 <= t <= 1``) and where bilinear interpolation in the two other axes can be non-zero; each
  sample weighs ``length_mm / |d_a|`` (Joseph, IEEE TMI 1:192, 1982);
* the LORs are grouped by dominant axis, and each group is projected from (and back-projected into)
  a copy of the image in which its dominant axis is the fastest axis and the two others carry a zero
  border (1 voxel before, 2 after): consecutive samples of a ray then share cache lines, one pass
  touches one image-sized array, and the interpolation needs no bounds checks;
* the sum along a ray may be re-associated (numba ``fastmath={"reassoc"}``, so it vectorises); no other
  fast-math flag is used, so plane ranges and weights are computed exactly as written;
* TOF weights are the Gaussian integrated over each bin, ``Phi((e_hi - s) / sigma) - Phi((e_lo - s) /
  sigma)``, on the ``2m + 1`` bins nearest to the sample (``m`` from :class:`TofKernel`). ``Phi``
  comes from a table of the normal CDF and density on a 1/64-sigma grid with cubic Hermite
  interpolation (error < 3e-10 against ``erf``), shared by forward and back;
* the forward projection runs in parallel over LORs (threads take interleaved blocks of LORs);
  the back projection is race-free without atomics or per-thread image copies: every thread visits
  all LORs but adds only the samples on the dominant-axis planes it owns (a plane partition whose
  bounds fall on cache-line multiples), so no two threads write one voxel and the result does not
  depend on the thread count. Forward and back use the same weights, so the pair is an exact
  transpose (adjointness to float64 rounding).

Threads follow ``torch.get_num_threads()`` (capped by numba's own maximum). The first call of each
kernel for a dtype compiles it (a few seconds each; see :func:`warm_up`), later processes load the
cache from ``__pycache__``.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from numba import njit, prange

from petspect.errors import InputError

__all__ = ["forward", "backward", "warm_up", "set_threads", "threading_layer"]

_BLOCK = 512
"""LORs per work block; threads take blocks ``lane, lane + lanes, ...`` (balanced, deterministic)."""

_CDF_U = 8.0
_CDF_H = 1.0 / 64.0
_EPS_K = 1e-9
_FAST = {"reassoc"}
"""Fast-math flags of the kernels: only re-association (the sum along a ray may be vectorised), no
approximate reciprocals or division, so ranges and weights stay exact."""


def _cdf_table() -> np.ndarray:
    """Normal CDF and density on ``u = -8 .. 8`` (step 1/64), shape (n, 2), float64."""
    u = np.arange(-_CDF_U, _CDF_U + _CDF_H / 2, _CDF_H)
    phi = np.exp(-0.5 * u * u) / math.sqrt(2.0 * math.pi)
    cdf = np.array([0.5 * math.erfc(-x / math.sqrt(2.0)) for x in u])
    return np.ascontiguousarray(np.stack([cdf, phi], axis=1))


_TABLE = _cdf_table()


# ----------------------------------------------------------------------------------- helpers
@njit(cache=True, inline="always")
def _norm_cdf(u, table):
    """Standard normal CDF at ``u`` (cubic Hermite on the table; 0 / 1 beyond +-8)."""
    if u <= -_CDF_U:
        return 0.0
    if u >= _CDF_U:
        return 1.0
    x = (u + _CDF_U) * (1.0 / _CDF_H)
    i = int(x)
    f = x - i
    f2 = f * f
    f3 = f2 * f
    p0 = table[i, 0]
    p1 = table[i + 1, 0]
    m0 = table[i, 1] * _CDF_H
    m1 = table[i + 1, 1] * _CDF_H
    return (p0 * (2.0 * f3 - 3.0 * f2 + 1.0) + m0 * (f3 - 2.0 * f2 + f)
            + p1 * (3.0 * f2 - 2.0 * f3) + m1 * (f3 - f2))


@njit(cache=True, inline="always")
def _axis_range(c0, slope, n):
    """Open k-interval where ``c0 + k slope`` lies in (-1, n), shrunk by a tiny margin."""
    if slope == 0.0:
        if -1.0 < c0 < n:
            return -1e300, 1e300
        return 1.0, 0.0
    k1 = (-1.0 - c0) / slope
    k2 = (n - c0) / slope
    if k1 > k2:
        k1, k2 = k2, k1
    return k1 + _EPS_K, k2 - _EPS_K


@njit(cache=True, inline="always")
def _setup(sx, ex, i, n0, n1, n2, sp0, sp1, sp2):
    """Per-LOR traversal: (axis, k_lo, k_hi, cb0, sb, cc0, sc, weight_mm, s0_mm, ds_mm).

    ``k_lo > k_hi`` when no sample is needed. Axis b < c are the two non-dominant axes.
    """
    p0 = float(sx[i, 0])
    p1 = float(sx[i, 1])
    p2 = float(sx[i, 2])
    d0 = float(ex[i, 0]) - p0
    d1 = float(ex[i, 1]) - p1
    d2 = float(ex[i, 2]) - p2
    length = math.sqrt((d0 * sp0) ** 2 + (d1 * sp1) ** 2 + (d2 * sp2) ** 2)
    a = 0
    if abs(d1) > abs(d0):
        a = 1
    if abs(d2) > max(abs(d0), abs(d1)):
        a = 2
    if length == 0.0:
        return a, 1, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    if a == 0:
        pa, da, na, pb, db, nb, pc, dc, nc = p0, d0, n0, p1, d1, n1, p2, d2, n2
    elif a == 1:
        pa, da, na, pb, db, nb, pc, dc, nc = p1, d1, n1, p0, d0, n0, p2, d2, n2
    else:
        pa, da, na, pb, db, nb, pc, dc, nc = p2, d2, n2, p0, d0, n0, p1, d1, n1
    sb = db / da
    sc = dc / da
    cb0 = pb - pa * sb
    cc0 = pc - pa * sc
    lo = min(pa, pa + da)
    hi = max(pa, pa + da)
    lb, hb = _axis_range(cb0, sb, nb)
    lc, hc = _axis_range(cc0, sc, nc)
    lo = max(lo, lb, lc, 0.0)
    hi = min(hi, hb, hc, na - 1.0)
    if hi < lo:
        return a, 1, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    k_lo = int(math.ceil(lo))
    k_hi = int(math.floor(hi))
    ds = length / da
    s0 = (-pa / da - 0.5) * length
    return a, k_lo, k_hi, cb0, sb, cc0, sc, length / abs(da), s0, ds


@njit(cache=True, inline="always")
def _interp(f, s0, s1, k, cb, cc):
    """Bilinear value at plane k, coordinates (cb, cc) of a layout (nb + 3, nc + 3, na) flattened to ``f``.

    ``s0 = (nc + 3) na`` and ``s1 = na`` are its strides (in elements).
    """
    ib = int(cb + 1.0)  # = floor(cb) + 1 for cb > -1: the padded row
    ic = int(cc + 1.0)
    fb = cb + 1.0 - ib
    fc = cc + 1.0 - ic
    o = ib * s0 + ic * s1 + k
    v00 = f[o]
    v01 = f[o + s1]
    v10 = f[o + s0]
    v11 = f[o + s0 + s1]
    r0 = v00 + fc * (v01 - v00)
    r1 = v10 + fc * (v11 - v10)
    return r0 + fb * (r1 - r0)


@njit(cache=True, inline="always")
def _scatter(f, s0, s1, k, cb, cc, val):
    """Transpose of :func:`_interp`: add ``val`` with the bilinear weights into ``f``."""
    ib = int(cb + 1.0)
    ic = int(cc + 1.0)
    fb = cb + 1.0 - ib
    fc = cc + 1.0 - ic
    o = ib * s0 + ic * s1 + k
    vb0 = (1.0 - fb) * val
    vb1 = fb * val
    f[o] += vb0 * (1.0 - fc)
    f[o + s1] += vb0 * fc
    f[o + s0] += vb1 * (1.0 - fc)
    f[o + s0 + s1] += vb1 * fc


@njit(cache=True, inline="always")
def _tof_window(s, width, n_bins, m, inv_sigma, table, w_out):
    """Bin-integrated Gaussian weights of the 2m+1 bins nearest to ``s``; returns the first bin index."""
    half = (n_bins - 1) * 0.5
    j0 = int(math.floor(s / width + 0.5)) + (n_bins - 1) // 2 - m
    prev = _norm_cdf(((j0 - half - 0.5) * width - s) * inv_sigma, table)
    for q in range(2 * m + 1):
        nxt = _norm_cdf(((j0 + q - half + 0.5) * width - s) * inv_sigma, table)
        w_out[q] = nxt - prev
        prev = nxt
    return j0


@njit(cache=True, inline="always")
def _tof_weight(s, width, n_bins, m, inv_sigma, table, j):
    """Weight of bin ``j`` for a sample at ``s`` (0 beyond the 2m+1 window, as the torch path)."""
    near = int(math.floor(s / width + 0.5)) + (n_bins - 1) // 2
    if abs(near - j) > m:
        return 0.0
    lower = (j - (n_bins - 1) * 0.5 - 0.5) * width
    return _norm_cdf((lower + width - s) * inv_sigma, table) - _norm_cdf((lower - s) * inv_sigma, table)


@njit(cache=True, inline="always")
def _tof_plane_range(k_lo, k_hi, s0, ds, width, n_bins, m, j):
    """Planes whose samples can weigh in TOF bin ``j`` (the 2m+1 window), within ``k_lo .. k_hi``."""
    half = (n_bins - 1) * 0.5
    s_lo = (j - m - half - 0.5) * width
    s_hi = (j + m - half + 0.5) * width
    ka = (s_lo - s0) / ds
    kb = (s_hi - s0) / ds
    if ka > kb:
        ka, kb = kb, ka
    return max(k_lo, int(math.floor(ka)) - 1), min(k_hi, int(math.ceil(kb)) + 1)


@njit(cache=True, inline="always")
def _lane_planes(n, lane, lanes):
    """Planes ``[lo, hi)`` of the dominant axis (length n) that ``lane`` owns in a back projection.

    Bounds are multiples of 16 (one 64-byte cache line of float32) so lanes never share a line.
    """
    lo = (n * lane // lanes) // 16 * 16
    hi = n if lane == lanes - 1 else (n * (lane + 1) // lanes) // 16 * 16
    return lo, hi


# ----------------------------------------------------------------------------------- kernels
# Every kernel handles the LORs ``sel`` of one dominant axis with the layout ``vol`` of that axis, so
# one pass touches one image-sized array (a smaller working set than all three layouts at once).
@njit(parallel=True, cache=True, fastmath=_FAST)
def _fwd(vol, sel, sx, ex, shape, spacing, out, lanes):
    """Non-TOF forward: out[i] = sum of the samples of LOR i, for i in sel."""
    f = vol.ravel()
    s1_ = vol.shape[2]
    s0_ = vol.shape[1] * s1_
    n = sel.shape[0]
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    for lane in prange(lanes):
        for blk in range(lane, n_blocks, lanes):
            for jj in range(blk * _BLOCK, min(n, (blk + 1) * _BLOCK)):
                i = sel[jj]
                a, k_lo, k_hi, cb0, sb, cc0, sc, w, s0, ds = _setup(
                    sx, ex, i, shape[0], shape[1], shape[2], spacing[0], spacing[1], spacing[2])
                acc = 0.0
                for k in range(k_lo, k_hi + 1):
                    acc += _interp(f, s0_, s1_, k, cb0 + k * sb, cc0 + k * sc)
                out[i] = acc * w


@njit(parallel=True, cache=True, fastmath=_FAST)
def _back(vol, sel, sx, ex, shape, spacing, y, lanes, n_a):
    """Non-TOF back projection of the LORs ``sel`` into the layout ``vol`` (nb + 3, nc + 3, na).

    Race-free without copies: lane ``t`` visits every LOR but adds only the samples on the planes
    of the dominant axis that it owns (:func:`_lane_planes`), so no two lanes write one voxel.
    """
    f = vol.ravel()
    s1_ = vol.shape[2]
    s0_ = vol.shape[1] * s1_
    n = sel.shape[0]
    for lane in prange(lanes):
        lo, hi = _lane_planes(n_a, lane, lanes)
        for jj in range(n):
            i = sel[jj]
            val = y[i]
            if val == 0.0:
                continue
            a, k_lo, k_hi, cb0, sb, cc0, sc, w, s0, ds = _setup(
                sx, ex, i, shape[0], shape[1], shape[2], spacing[0], spacing[1], spacing[2])
            val = val * w
            for k in range(max(k_lo, lo), min(k_hi + 1, hi)):
                _scatter(f, s0_, s1_, k, cb0 + k * sb, cc0 + k * sc, val)


@njit(parallel=True, cache=True, fastmath=_FAST)
def _fwd_tof_sino(vol, sel, sx, ex, shape, spacing, out, lanes, width, inv_sigma, m, table):
    """TOF sinogram forward: out[i, j] over all TOF bins j, for i in sel."""
    f = vol.ravel()
    s1_ = vol.shape[2]
    s0_ = vol.shape[1] * s1_
    n = sel.shape[0]
    n_bins = out.shape[1]
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    for lane in prange(lanes):
        wts = np.empty(2 * m + 1)
        for blk in range(lane, n_blocks, lanes):
            for jj in range(blk * _BLOCK, min(n, (blk + 1) * _BLOCK)):
                i = sel[jj]
                a, k_lo, k_hi, cb0, sb, cc0, sc, w, s0, ds = _setup(
                    sx, ex, i, shape[0], shape[1], shape[2], spacing[0], spacing[1], spacing[2])
                for j in range(n_bins):
                    out[i, j] = 0.0
                for k in range(k_lo, k_hi + 1):
                    val = _interp(f, s0_, s1_, k, cb0 + k * sb, cc0 + k * sc) * w
                    if val == 0.0:
                        continue
                    j0 = _tof_window(s0 + k * ds, width, n_bins, m, inv_sigma, table, wts)
                    for q in range(max(0, -j0), min(2 * m + 1, n_bins - j0)):
                        out[i, j0 + q] += val * wts[q]


@njit(parallel=True, cache=True, fastmath=_FAST)
def _back_tof_sino(vol, sel, sx, ex, shape, spacing, y, lanes, n_a, width, inv_sigma, m, table):
    """Transpose of :func:`_fwd_tof_sino` (plane-partitioned lanes, as :func:`_back`)."""
    f = vol.ravel()
    s1_ = vol.shape[2]
    s0_ = vol.shape[1] * s1_
    n = sel.shape[0]
    n_bins = y.shape[1]
    for lane in prange(lanes):
        wts = np.empty(2 * m + 1)
        lo, hi = _lane_planes(n_a, lane, lanes)
        for jj in range(n):
            i = sel[jj]
            nz = False
            for j in range(n_bins):
                if y[i, j] != 0.0:
                    nz = True
                    break
            if not nz:
                continue
            a, k_lo, k_hi, cb0, sb, cc0, sc, w, s0, ds = _setup(
                sx, ex, i, shape[0], shape[1], shape[2], spacing[0], spacing[1], spacing[2])
            for k in range(max(k_lo, lo), min(k_hi + 1, hi)):
                j0 = _tof_window(s0 + k * ds, width, n_bins, m, inv_sigma, table, wts)
                val = 0.0
                for q in range(max(0, -j0), min(2 * m + 1, n_bins - j0)):
                    val += y[i, j0 + q] * wts[q]
                if val != 0.0:
                    _scatter(f, s0_, s1_, k, cb0 + k * sb, cc0 + k * sc, val * w)


@njit(parallel=True, cache=True, fastmath=_FAST)
def _fwd_tof_lm(vol, sel, sx, ex, shape, spacing, out, lanes, width, inv_sigma, m, table, bins, n_bins):
    """TOF list-mode forward: out[i] = samples of event i weighted in its own TOF bin, for i in sel."""
    f = vol.ravel()
    s1_ = vol.shape[2]
    s0_ = vol.shape[1] * s1_
    n = sel.shape[0]
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    for lane in prange(lanes):
        for blk in range(lane, n_blocks, lanes):
            for jj in range(blk * _BLOCK, min(n, (blk + 1) * _BLOCK)):
                i = sel[jj]
                a, k_lo, k_hi, cb0, sb, cc0, sc, w, s0, ds = _setup(
                    sx, ex, i, shape[0], shape[1], shape[2], spacing[0], spacing[1], spacing[2])
                j = bins[i]
                acc = 0.0
                if k_hi >= k_lo:
                    k_lo, k_hi = _tof_plane_range(k_lo, k_hi, s0, ds, width, n_bins, m, j)
                for k in range(k_lo, k_hi + 1):
                    tw = _tof_weight(s0 + k * ds, width, n_bins, m, inv_sigma, table, j)
                    if tw != 0.0:
                        acc += _interp(f, s0_, s1_, k, cb0 + k * sb, cc0 + k * sc) * tw
                out[i] = acc * w


@njit(parallel=True, cache=True, fastmath=_FAST)
def _back_tof_lm(vol, sel, sx, ex, shape, spacing, y, lanes, n_a, width, inv_sigma, m, table, bins, n_bins):
    """Transpose of :func:`_fwd_tof_lm` (plane-partitioned lanes, as :func:`_back`)."""
    f = vol.ravel()
    s1_ = vol.shape[2]
    s0_ = vol.shape[1] * s1_
    n = sel.shape[0]
    for lane in prange(lanes):
        lo, hi = _lane_planes(n_a, lane, lanes)
        for jj in range(n):
            i = sel[jj]
            val = y[i]
            if val == 0.0:
                continue
            a, k_lo, k_hi, cb0, sb, cc0, sc, w, s0, ds = _setup(
                sx, ex, i, shape[0], shape[1], shape[2], spacing[0], spacing[1], spacing[2])
            if k_hi < k_lo:
                continue
            val = val * w
            j = bins[i]
            k_lo, k_hi = _tof_plane_range(k_lo, k_hi, s0, ds, width, n_bins, m, j)
            for k in range(max(k_lo, lo), min(k_hi + 1, hi)):
                tw = _tof_weight(s0 + k * ds, width, n_bins, m, inv_sigma, table, j)
                if tw != 0.0:
                    _scatter(f, s0_, s1_, k, cb0 + k * sb, cc0 + k * sc, val * tw)


@njit(cache=True)
def _partition(sx, ex):
    """LOR indices grouped by dominant axis (0, 1, 2; the rule of :func:`_setup`) and the group sizes."""
    n = sx.shape[0]
    axis = np.empty(n, dtype=np.int8)
    counts = np.zeros(3, dtype=np.int64)
    for i in range(n):
        d0 = abs(float(ex[i, 0]) - float(sx[i, 0]))
        d1 = abs(float(ex[i, 1]) - float(sx[i, 1]))
        d2 = abs(float(ex[i, 2]) - float(sx[i, 2]))
        a = 0
        if d1 > d0:
            a = 1
        if d2 > max(d0, d1):
            a = 2
        axis[i] = a
        counts[a] += 1
    order = np.empty(n, dtype=np.int64)
    pos = np.array([0, counts[0], counts[0] + counts[1]], dtype=np.int64)
    for i in range(n):
        a = axis[i]
        order[pos[a]] = i
        pos[a] += 1
    return order, counts


@njit(parallel=True, cache=True)
def _layout(image, a, out):
    """Copy ``image`` (n0, n1, n2) into the padded layout ``out`` (nb + 3, nc + 3, na) of axis ``a``."""
    n0, n1, n2 = image.shape
    if a == 2:
        for z in prange(n0):
            for yy in range(n1):
                for x in range(n2):
                    out[z + 1, yy + 1, x] = image[z, yy, x]
    elif a == 1:
        for z in prange(n0):
            for yy in range(n1):
                for x in range(n2):
                    out[z + 1, x + 1, yy] = image[z, yy, x]
    else:
        for yy in prange(n1):
            for x in range(n2):
                for z in range(n0):
                    out[yy + 1, x + 1, z] = image[z, yy, x]


@njit(parallel=True, cache=True)
def _add_layout(vol, a, image):
    """``image[z, y, x] += vol`` at that voxel (the transpose of :func:`_layout`)."""
    n0, n1, n2 = image.shape
    if a == 2:
        for z in prange(n0):
            for yy in range(n1):
                for x in range(n2):
                    image[z, yy, x] += vol[z + 1, yy + 1, x]
    elif a == 1:
        for z in prange(n0):
            for yy in range(n1):
                for x in range(n2):
                    image[z, yy, x] += vol[z + 1, x + 1, yy]
    else:
        for z in prange(n0):
            for yy in range(n1):
                for x in range(n2):
                    image[z, yy, x] += vol[yy + 1, x + 1, z]


# ----------------------------------------------------------------------------------- python side
class _KeepTorchThreads:
    """Restore torch's intra-op thread count after a numba call.

    numba's OpenMP layer shares the GNU OpenMP runtime with torch: starting its thread pool sets the
    runtime's thread count to numba's maximum, which torch then reports and uses (measured here: 1 -> 2),
    changing the reduction order of later torch sums and oversubscribing a loaded machine.
    """

    def __enter__(self):
        self.n = torch.get_num_threads()
        return self

    def __exit__(self, *exc):
        if torch.get_num_threads() != self.n:
            torch.set_num_threads(self.n)
        return False


def set_threads(n: int | None = None) -> int:
    """Set numba's thread count (default ``torch.get_num_threads()``, capped by numba's maximum)."""
    n = torch.get_num_threads() if n is None else int(n)
    n = max(1, min(n, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    return n


def threading_layer() -> str:
    """numba's threading layer in use (``omp``, ``tbb`` or ``workqueue``; known after the first parallel call)."""
    try:
        return numba.threading_layer()
    except ValueError:
        return "not started"


def _layout_shape(shape: tuple[int, int, int], a: int) -> tuple[int, int, int]:
    b, c = [ax for ax in range(3) if ax != a]
    return shape[b] + 3, shape[c] + 3, shape[a]


def _groups(sx: np.ndarray, ex: np.ndarray):
    """(axis, LOR indices) for each dominant axis that has LORs; non-finite end points are refused."""
    if not (np.isfinite(sx).all() and np.isfinite(ex).all()):
        raise InputError("LOR end points must be finite (NaN or inf found)")
    order, counts = _partition(sx, ex)
    out, start = [], 0
    for a in range(3):
        if counts[a]:
            out.append((a, order[start:start + counts[a]]))
        start += counts[a]
    return out


def _layout_of(image: np.ndarray, a: int) -> np.ndarray:
    buf = np.zeros(_layout_shape(image.shape, a), dtype=image.dtype)
    _layout(image, a, buf)
    return buf


def _tof_args(tof):
    return (float(tof.bin_width_mm), 1.0 / float(tof.sigma_mm), int(tof.half_window), _TABLE)


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy())


def forward(image: torch.Tensor, start_idx: torch.Tensor, end_idx: torch.Tensor,
            spacing_mm: tuple[float, float, float], *, tof=None, tof_bin: torch.Tensor | None = None) -> torch.Tensor:
    """Numba forward projection (same contract as :func:`petspect.projectors.pet_joseph.joseph_forward`)."""
    with _KeepTorchThreads():
        return _forward(image, start_idx, end_idx, spacing_mm, tof, tof_bin)


def _forward(image, start_idx, end_idx, spacing_mm, tof, tof_bin):
    lanes = set_threads()
    img = _np(image)
    sx, ex = _np(start_idx), _np(end_idx)
    shape = np.asarray(img.shape, dtype=np.int64)
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    n = sx.shape[0]
    sino = tof is not None and tof_bin is None
    out = np.zeros((n, tof.n_bins) if sino else n, dtype=img.dtype)
    bins = None if tof_bin is None else _np(tof_bin).astype(np.int64)
    for a, sel in _groups(sx, ex):
        vol = _layout_of(img, a)
        if tof is None:
            _fwd(vol, sel, sx, ex, shape, spacing, out, lanes)
        elif bins is not None:
            _fwd_tof_lm(vol, sel, sx, ex, shape, spacing, out, lanes, *_tof_args(tof), bins, int(tof.n_bins))
        else:
            _fwd_tof_sino(vol, sel, sx, ex, shape, spacing, out, lanes, *_tof_args(tof))
    return torch.from_numpy(out)


def backward(proj: torch.Tensor, start_idx: torch.Tensor, end_idx: torch.Tensor, shape: tuple[int, int, int],
             spacing_mm: tuple[float, float, float], *, tof=None, tof_bin: torch.Tensor | None = None) -> torch.Tensor:
    """Numba back projection, the exact transpose of :func:`forward` (returns a new (nz, ny, nx) tensor)."""
    with _KeepTorchThreads():
        return _backward(proj, start_idx, end_idx, shape, spacing_mm, tof, tof_bin)


def _backward(proj, start_idx, end_idx, shape, spacing_mm, tof, tof_bin):
    lanes = set_threads()
    y = _np(proj)
    sx, ex = _np(start_idx), _np(end_idx)
    shape = tuple(int(s) for s in shape)
    shp = np.asarray(shape, dtype=np.int64)
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    bins = None if tof_bin is None else _np(tof_bin).astype(np.int64)
    image = np.zeros(shape, dtype=y.dtype)
    for a, sel in _groups(sx, ex):
        vol = np.zeros(_layout_shape(shape, a), dtype=y.dtype)
        if tof is None:
            _back(vol, sel, sx, ex, shp, spacing, y, lanes, shape[a])
        elif bins is not None:
            _back_tof_lm(vol, sel, sx, ex, shp, spacing, y, lanes, shape[a], *_tof_args(tof), bins,
                         int(tof.n_bins))
        else:
            _back_tof_sino(vol, sel, sx, ex, shp, spacing, y, lanes, shape[a], *_tof_args(tof))
        _add_layout(vol, a, image)
    return torch.from_numpy(image)


def warm_up(dtypes=(torch.float32,)) -> float:
    """Compile (or load from the cache) every kernel for ``dtypes``; returns the seconds it took."""
    import time
    from types import SimpleNamespace

    t0 = time.perf_counter()
    # the attributes of a petspect.projectors.pet_joseph.TofKernel that the kernels read
    tof = SimpleNamespace(n_bins=5, bin_width_mm=20.0, sigma_mm=30.0 / 2.3548, half_window=3)
    for dt in dtypes:
        img = torch.ones((3, 4, 5), dtype=dt)
        s = torch.tensor([[1.0, -3.0, 2.0], [-3.0, 1.5, 2.0], [1.0, 2.0, -3.0]], dtype=dt)
        e = torch.tensor([[1.5, 8.0, 2.5], [8.0, 2.0, 2.5], [1.5, 2.5, 9.0]], dtype=dt)
        bins = torch.tensor([2, 1, 3])
        for kw in ({}, {"tof": tof}, {"tof": tof, "tof_bin": bins}):
            y = forward(img, s, e, (1.0, 1.0, 1.0), **kw)
            backward(y, s, e, img.shape, (1.0, 1.0, 1.0), **kw)
    return time.perf_counter() - t0
