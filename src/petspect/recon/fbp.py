"""Filtered backprojection: 2D parallel-beam FBP with apodised ramp filters, and SSRB for 3D PET.

Geometry
--------
A parallel projection at angle ``theta`` holds line integrals ``p(theta, s)`` of the image along the lines
``x cos(theta) + y sin(theta) = s``, with ``(x, y)`` the in-plane LPS coordinates in mm (array columns
run along x, rows along y) and ``s`` the signed radial position in mm of each bin (uniform spacing
``tau``). Views may cover 180 or 360 degrees; the backprojection is ``(pi / n_views) sum_v q_v(s)``, which
is the discretised ``int_0^pi`` for either (a 360-degree set counts every line twice over twice the
views).

Filter (Kak & Slaney 1988, ch. 3, eq. 61)
-----------------------------------------
The ramp ``|nu|`` is built from its band-limited spatial kernel ``h(0) = 1/(4 tau^2)``,
``h(n tau) = -1/(n pi tau)^2`` for odd ``n`` and 0 for even ``n``, zero-padded to a power of two at least
twice the number of bins (no interperiod interference, no DC offset), then multiplied by a window of
the normalised frequency ``u = nu / nu_Nyquist`` with cut-off ``c`` (fraction of Nyquist, 0 above it):

===============  =====================================
``ramp``         1
``shepp-logan``  ``sinc(u / (2 c))`` (``sin(pi u/2c) / (pi u/2c)``)
``cosine``       ``cos(pi u / (2 c))``
``hamming``      ``0.54 + 0.46 cos(pi u / c)``
``hann``         ``0.5 + 0.5 cos(pi u / c)``
===============  =====================================

For projections in line-integral units (value x mm) FBP returns the image in the value's units; a
uniform disc of concentration ``c`` comes back as ``c`` up to the discretisation bias.

3D PET
------
:func:`ssrb` (single-slice rebinning; Daube-Witherspoon & Muehllehner 1987) puts every oblique plane of a
3D sinogram into the direct plane at its mean axial position ``(z_a + z_b) / 2`` and averages; each
rebinned plane is then reconstructed in 2D. SSRB is exact for activity on the axis and blurs axially
with distance from it and with the ring difference (keep the maximum ring difference small).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from petspect.errors import InputError

__all__ = ["FILTER_WINDOWS", "arc_correct", "backproject_2d", "fbp_2d", "filter_projections", "ramp_filter", "ssrb"]

FILTER_WINDOWS = ("ramp", "shepp-logan", "cosine", "hamming", "hann")
#: Largest (planes x views x pixels) intermediate of one backprojection chunk.
_CHUNK_ELEMENTS = 1 << 22


def _window(u: torch.Tensor, window: str, cutoff: float) -> torch.Tensor:
    r = u / cutoff
    if window == "ramp":
        w = torch.ones_like(u)
    elif window == "shepp-logan":
        w = torch.sinc(r / 2)
    elif window == "cosine":
        w = torch.cos(math.pi * r / 2)
    elif window == "hamming":
        w = 0.54 + 0.46 * torch.cos(math.pi * r)
    elif window == "hann":
        w = 0.5 + 0.5 * torch.cos(math.pi * r)
    else:
        raise InputError(f"unknown FBP filter {window!r}; choose one of {FILTER_WINDOWS}")
    return torch.where(r <= 1.0, w, torch.zeros_like(w))


def ramp_filter(n_bins: int, bin_mm: float, *, window: str = "ramp", cutoff: float = 1.0,
                dtype: torch.dtype = torch.float64, device=None) -> tuple[torch.Tensor, int]:
    """Frequency response of the apodised ramp filter for ``rfft`` of zero-padded projections.

    Parameters
    ----------
    n_bins : int
        Radial bins per projection.
    bin_mm : float
        Radial spacing ``tau`` in mm.
    window : str
        One of :data:`FILTER_WINDOWS`.
    cutoff : float
        Cut-off as a fraction of the Nyquist frequency ``1 / (2 tau)``, in ``(0, 1]``.

    Returns
    -------
    response : torch.Tensor, shape (n_pad // 2 + 1,)
        Real response including the ``tau`` of the discrete convolution (units 1/mm).
    n_pad : int
        Padded length (power of two >= 2 n_bins).
    """
    window = window.lower().replace("_", "-")
    if window not in FILTER_WINDOWS:
        raise InputError(f"unknown FBP filter {window!r}; choose one of {FILTER_WINDOWS}")
    if not 0 < cutoff <= 1:
        raise InputError(f"cutoff must be a fraction of Nyquist in (0, 1], got {cutoff}")
    if not bin_mm > 0 or n_bins < 2:
        raise InputError(f"need bin_mm > 0 and n_bins >= 2, got {bin_mm}, {n_bins}")
    n_pad = 1 << max(6, math.ceil(math.log2(2 * n_bins)))
    n = torch.arange(n_pad, dtype=torch.float64)
    n = torch.minimum(n, n_pad - n)  # circular distance
    h = torch.where(n % 2 == 1, -1.0 / (math.pi * n * bin_mm) ** 2, torch.zeros_like(n))
    h[0] = 1.0 / (4.0 * bin_mm ** 2)
    resp = torch.fft.rfft(h).real * bin_mm
    u = torch.arange(resp.numel(), dtype=torch.float64) / (n_pad // 2)
    resp = resp * _window(u, window, float(cutoff))
    return resp.to(dtype=dtype, device=device), n_pad


def filter_projections(projections: torch.Tensor, bin_mm: float, *, window: str = "ramp",
                       cutoff: float = 1.0) -> torch.Tensor:
    """Apply the apodised ramp filter along the last (radial) axis of ``projections`` (..., n_bins)."""
    nb = projections.shape[-1]
    dtype = projections.dtype if projections.is_floating_point() else torch.float32
    resp, n_pad = ramp_filter(nb, bin_mm, window=window, cutoff=cutoff, dtype=dtype, device=projections.device)
    spec = torch.fft.rfft(projections.to(dtype), n=n_pad, dim=-1)
    return torch.fft.irfft(spec * resp, n=n_pad, dim=-1)[..., :nb]


def _pixel_coords(image_shape, pixel_mm, origin_xy_mm, dtype, device):
    ny, nx = (int(s) for s in image_shape)
    dy, dx = (float(p) for p in pixel_mm)
    if origin_xy_mm is None:
        origin_xy_mm = (-(nx - 1) * dx / 2, -(ny - 1) * dy / 2)
    x = origin_xy_mm[0] + dx * torch.arange(nx, dtype=dtype, device=device)
    y = origin_xy_mm[1] + dy * torch.arange(ny, dtype=dtype, device=device)
    return x, y


def backproject_2d(projections: torch.Tensor, angles_rad: torch.Tensor, radial_mm: torch.Tensor, *,
                   image_shape: Sequence[int], pixel_mm: Sequence[float],
                   origin_xy_mm: Sequence[float] | None = None) -> torch.Tensor:
    """Pixel-driven parallel backprojection with linear interpolation, ``(pi / n_views) sum_v p_v(s)``.

    Parameters
    ----------
    projections : torch.Tensor, shape (..., n_views, n_bins)
        (Filtered) projections; leading axes are planes reconstructed independently.
    angles_rad : torch.Tensor, shape (n_views,)
        View angles ``theta`` in radians.
    radial_mm : torch.Tensor, shape (n_bins,)
        Uniformly spaced, increasing radial positions ``s`` of the bins, mm.
    image_shape : (ny, nx)
    pixel_mm : (dy, dx)
    origin_xy_mm : (x, y), optional
        In-plane LPS position of pixel [0, 0]'s centre; default centres the grid on ``s = 0``.

    Returns
    -------
    torch.Tensor, shape (..., ny, nx)
        Zero where a pixel projects outside the bins.
    """
    if projections.ndim < 2:
        raise InputError(f"projections must be (..., n_views, n_bins), got {tuple(projections.shape)}")
    n_views, nb = projections.shape[-2:]
    dtype, dev = projections.dtype, projections.device
    angles = torch.as_tensor(angles_rad, dtype=dtype).to(dev).reshape(-1)
    radial = torch.as_tensor(radial_mm, dtype=dtype).to(dev).reshape(-1)
    if angles.numel() != n_views or radial.numel() != nb:
        raise InputError(f"{n_views} views x {nb} bins but {angles.numel()} angles and {radial.numel()} radii")
    tau = float(radial[1] - radial[0])
    if tau <= 0 or not torch.allclose(radial[1:] - radial[:-1], torch.full_like(radial[1:], tau), rtol=1e-4):
        raise InputError("radial_mm must be uniformly spaced and increasing (arc-correct first)")
    x, y = _pixel_coords(image_shape, pixel_mm, origin_xy_mm, dtype, dev)
    lead = projections.shape[:-2]
    flat = projections.reshape(-1, n_views * nb)
    n_pix = y.numel() * x.numel()
    out = torch.zeros(flat.shape[0], n_pix, dtype=dtype, device=dev)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n_pix * flat.shape[0]))
    for v0 in range(0, n_views, chunk):
        v = torch.arange(v0, min(n_views, v0 + chunk), device=dev)
        s = (x[None, None, :] * torch.cos(angles[v])[:, None, None]
             + y[None, :, None] * torch.sin(angles[v])[:, None, None]).reshape(len(v), -1)
        u = (s - radial[0]) / tau
        lo = torch.floor(u)
        w = u - lo
        lo = lo.long()
        # weights of the two neighbouring bins, zero outside the measured range
        w_lo = torch.where((lo >= 0) & (lo < nb), 1 - w, torch.zeros_like(w))
        w_hi = torch.where((lo + 1 >= 0) & (lo + 1 < nb), w, torch.zeros_like(w))
        base = v[:, None] * nb
        i_lo = (base + lo.clamp(0, nb - 1)).reshape(-1)
        i_hi = (base + (lo + 1).clamp(0, nb - 1)).reshape(-1)
        contrib = flat[:, i_lo] * w_lo.reshape(1, -1) + flat[:, i_hi] * w_hi.reshape(1, -1)
        out += contrib.reshape(flat.shape[0], len(v), n_pix).sum(dim=1)
    return (out * (math.pi / n_views)).reshape(*lead, y.numel(), x.numel())


def fbp_2d(projections: torch.Tensor, angles_rad: torch.Tensor, radial_mm: torch.Tensor, *,
           image_shape: Sequence[int], pixel_mm: Sequence[float], window: str = "ramp", cutoff: float = 1.0,
           origin_xy_mm: Sequence[float] | None = None) -> torch.Tensor:
    """2D filtered backprojection of parallel projections (any number of planes at once).

    Parameters
    ----------
    projections : torch.Tensor, shape (..., n_views, n_bins)
        Line integrals (corrected for attenuation, normalisation and additive terms).
    angles_rad, radial_mm, image_shape, pixel_mm, origin_xy_mm
        See :func:`backproject_2d`.
    window, cutoff
        Filter window and cut-off (fraction of Nyquist), see :func:`ramp_filter`.

    Returns
    -------
    torch.Tensor, shape (..., ny, nx)
        The image in the units of ``projections`` per mm (dtype/device of ``projections``).
    """
    radial = torch.as_tensor(radial_mm, dtype=torch.float64).reshape(-1)
    if radial.numel() < 2:
        raise InputError("need at least 2 radial bins")
    tau = float(radial[1] - radial[0])
    q = filter_projections(projections, tau, window=window, cutoff=cutoff)
    return backproject_2d(q, angles_rad, radial_mm, image_shape=image_shape, pixel_mm=pixel_mm,
                          origin_xy_mm=origin_xy_mm)


def arc_correct(projections: torch.Tensor, radial_mm: torch.Tensor, new_radial_mm: torch.Tensor) -> torch.Tensor:
    """Resample projections (..., n_bins) from increasing positions ``radial_mm`` to ``new_radial_mm``.

    Linear interpolation; 0 outside the measured range. Used for non-arc-corrected PET sinograms,
    whose bins sit at ``R sin(pi t / N)``.
    """
    src = torch.as_tensor(radial_mm, dtype=projections.dtype).to(projections.device).reshape(-1)
    dst = torch.as_tensor(new_radial_mm, dtype=projections.dtype).to(projections.device).reshape(-1)
    if src.numel() != projections.shape[-1]:
        raise InputError(f"{projections.shape[-1]} bins but {src.numel()} radial positions")
    if bool((src[1:] <= src[:-1]).any()):
        raise InputError("radial_mm must be strictly increasing")
    hi = torch.searchsorted(src, dst).clamp(1, src.numel() - 1)
    lo = hi - 1
    w = ((dst - src[lo]) / (src[hi] - src[lo]))
    out = projections[..., lo] * (1 - w) + projections[..., hi] * w
    inside = (dst >= src[0]) & (dst <= src[-1])
    return torch.where(inside, out, torch.zeros_like(out))


def ssrb(sinogram: torch.Tensor, plane_z_mm: torch.Tensor, out_z_mm: torch.Tensor) -> torch.Tensor:
    """Single-slice rebinning: average every plane into the direct plane nearest its mean axial position.

    Parameters
    ----------
    sinogram : torch.Tensor, shape (n_planes, ...)
        3D sinogram (planes of all segments); trailing axes (views, bins[, TOF]) are kept.
    plane_z_mm : torch.Tensor, shape (n_planes,)
        Mean axial position ``(z_a + z_b) / 2`` of each plane, mm.
    out_z_mm : torch.Tensor, shape (n_out,)
        Axial positions of the rebinned planes, mm, increasing and uniformly spaced (for a
        cylindrical scanner: every half ring, ``2 n_rings - 1`` planes).

    Returns
    -------
    torch.Tensor, shape (n_out, ...)
        Mean of the planes assigned to each output plane (0 where none is).
    """
    z = torch.as_tensor(plane_z_mm, dtype=torch.float64).reshape(-1)
    oz = torch.as_tensor(out_z_mm, dtype=torch.float64).reshape(-1)
    if z.numel() != sinogram.shape[0]:
        raise InputError(f"{sinogram.shape[0]} planes but {z.numel()} plane positions")
    if oz.numel() == 1:
        idx = torch.zeros(z.numel(), dtype=torch.long)
    else:
        step = float(oz[1] - oz[0])
        if step <= 0:
            raise InputError("out_z_mm must be increasing")
        idx = torch.round((z - oz[0]) / step).long()
        if bool((idx < 0).any() or (idx >= oz.numel()).any()):
            raise InputError("some planes fall outside the rebinned axial range")
    idx = idx.to(sinogram.device)
    out = torch.zeros((oz.numel(),) + tuple(sinogram.shape[1:]), dtype=sinogram.dtype, device=sinogram.device)
    out.index_add_(0, idx, sinogram)
    count = torch.bincount(idx, minlength=oz.numel()).to(sinogram.dtype)
    shape = (-1,) + (1,) * (sinogram.ndim - 1)
    return torch.where(count.reshape(shape) > 0, out / count.clamp(min=1).reshape(shape), torch.zeros_like(out))
