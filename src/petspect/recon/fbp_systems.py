"""FBP for the PET sinogram and SPECT projection geometries of petspect's projectors.

* :func:`fbp_pet` takes corrected PET line integrals (non-arc-corrected, interleaved sinogram of
  :class:`~petspect.geometry.sinogram.SinogramDefinition`, TOF bins summed), rebins oblique planes with
  :func:`~petspect.recon.fbp.ssrb`, arc-corrects each view onto a uniform radial grid and reconstructs
  each direct plane with :func:`~petspect.recon.fbp.fbp_2d`; rebinned planes are then interpolated
  linearly along z onto the image slices. View angles and radial positions are taken from the LOR
  endpoints themselves (normal direction and signed distance of each bin's line), so they follow the
  projector exactly.
* :func:`fbp_spect` takes SPECT projections ``(views, rows, cols)`` as line integrals (detector columns
  along ``t = (cos a, sin a)``, rows superior first, see :mod:`petspect.projectors.spect`) and
  reconstructs each transverse slice over the full orbit.

Both return images in the units of the line integrals per mm (Bq/mL when the data were corrected with
the calibrated model's factors). No attenuation correction is applied to SPECT FBP.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from petspect.errors import InputError
from petspect.recon.fbp import arc_correct, fbp_2d, ssrb
from petspect.recon.objectives import safe_divide
from petspect.systems.spect_chang import chang_correct

__all__ = ["fbp_pet", "fbp_pet_model", "fbp_spect", "fbp_spect_model", "pet_bin_geometry"]


def pet_bin_geometry(sino_def) -> tuple[np.ndarray, np.ndarray]:
    """Angle (n_views,) in rad and signed radial positions (n_views, n_radial) in mm of every bin's LOR.

    For the line through crystals ``a`` and ``b`` the unit normal ``n`` (oriented like the view's
    central bin) gives ``theta = atan2(n_y, n_x)`` and ``s = n . a``; the interleaved bins of a view lie
    within half a crystal angle of the view angle and are assigned to it.
    """
    a, b = sino_def.transaxial_endpoints_mm()  # (V, R, 2) each
    d = b - a
    n = np.stack([-d[..., 1], d[..., 0]], axis=-1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    centre = n[:, n.shape[1] // 2, :]  # (V, 2)
    flip = np.sign(np.sum(n * centre[:, None, :], axis=-1))
    n = n * flip[..., None]
    s = np.sum(n * a, axis=-1)
    theta = np.arctan2(centre[:, 1], centre[:, 0])
    # orient each view so that radial positions increase with the bin index
    order = np.sign(s[:, -1] - s[:, 0])
    return np.where(order < 0, theta + math.pi, theta), s * order[:, None]


def _uniform_radial(s: np.ndarray) -> np.ndarray:
    """A uniform grid spanning the measured range with the finest spacing (at the centre)."""
    ds = float(np.min(np.abs(np.diff(s, axis=-1))))
    half = float(min(np.max(np.abs(s[:, 0])), np.max(np.abs(s[:, -1]))))
    n = int(math.floor(half / ds))
    return np.arange(-n, n + 1) * ds


def fbp_pet(sinogram: torch.Tensor, sino_def, image_grid, *, window: str = "ramp", cutoff: float = 1.0) -> torch.Tensor:
    """FBP of a corrected 3D (or 2D single-ring) PET sinogram via SSRB.

    Parameters
    ----------
    sinogram : torch.Tensor, shape (n_planes, n_views, n_radial[, n_tof])
        Line integrals (prompts minus additive, divided by the multiplicative factors and calibration).
    sino_def : SinogramDefinition
        The sinogram's binning (scanner, michelogram, mashing).
    image_grid : ImageGrid
        Output grid (centred on the scanner axis or not; its origin is used).
    window, cutoff
        Ramp filter window and cut-off (fraction of Nyquist).

    Returns
    -------
    torch.Tensor, shape image_grid.shape
    """
    expected = tuple(sino_def.shape(False))
    if tuple(sinogram.shape[:3]) != expected or sinogram.ndim not in (3, 4):
        raise InputError(f"sinogram shape {tuple(sinogram.shape)} does not match the definition {expected}")
    sino = sinogram.sum(dim=-1) if sinogram.ndim == 4 else sinogram
    sino = sino.to(torch.float64)
    za, zb = sino_def.plane_z_mm()
    zmid = (za + zb) / 2
    half = sino_def.scanner.ring_spacing_mm / 2
    k = np.round(zmid / half).astype(int)
    out_z = np.arange(k.min(), k.max() + 1) * half
    direct = ssrb(sino, torch.as_tensor(zmid), torch.as_tensor(out_z))
    theta, s = pet_bin_geometry(sino_def)
    radial = _uniform_radial(s)
    corrected = torch.stack([arc_correct(direct[:, v], torch.as_tensor(s[v]), torch.as_tensor(radial))
                             for v in range(direct.shape[1])], dim=1)
    nz, ny, nx = image_grid.shape
    dz, dy, dx = image_grid.spacing_mm
    ox, oy, oz = image_grid.origin_mm
    planes = fbp_2d(corrected, torch.as_tensor(theta), torch.as_tensor(radial), image_shape=(ny, nx),
                    pixel_mm=(dy, dx), window=window, cutoff=cutoff, origin_xy_mm=(ox, oy))
    return _interpolate_z(planes, out_z, oz + dz * np.arange(nz)).to(sinogram.dtype)


def _interpolate_z(planes: torch.Tensor, plane_z: np.ndarray, slice_z: np.ndarray) -> torch.Tensor:
    """Linear interpolation of (n_planes, ny, nx) at ``plane_z`` onto slices at ``slice_z``.

    A single plane (a 2D, single-ring acquisition) measures one transverse plane only: it fills the slice
    whose extent (uniform slices, half a spacing either side of the centre) holds the plane, the nearest
    one on a tie, and leaves the others 0 rather than copying it through the whole volume.
    """
    if len(plane_z) == 1:
        out = torch.zeros((len(slice_z),) + tuple(planes.shape[1:]), dtype=planes.dtype, device=planes.device)
        dist = np.abs(np.asarray(slice_z, dtype=float) - float(plane_z[0]))
        i = int(np.argmin(dist))
        half_mm = 0.5 * abs(float(slice_z[1] - slice_z[0])) if len(slice_z) > 1 else math.inf
        if dist[i] <= half_mm + 1e-6:
            out[i] = planes[0]
        return out
    pos = np.interp(slice_z, plane_z, np.arange(len(plane_z)), left=-1.0, right=-1.0)
    out = torch.zeros((len(slice_z),) + tuple(planes.shape[1:]), dtype=planes.dtype, device=planes.device)
    for i, p in enumerate(pos):
        if p < 0:
            continue
        lo = int(math.floor(p))
        hi = min(lo + 1, len(plane_z) - 1)
        w = p - lo
        out[i] = (1 - w) * planes[lo] + w * planes[hi]
    return out


def fbp_spect(projections: torch.Tensor, angles_deg: Sequence[float], *, image_shape: Sequence[int],
              voxel_mm: Sequence[float], col_mm: float, window: str = "hann", cutoff: float = 1.0) -> torch.Tensor:
    """FBP of SPECT line integrals, slice by slice, over the acquired orbit.

    Parameters
    ----------
    projections : torch.Tensor, shape (n_views, n_rows, n_cols)
        Line integrals per view; rows match the image slices (superior first), columns are centred on
        the rotation axis with spacing ``col_mm``.
    angles_deg : sequence of float
        Detector angle of each view (column axis ``t = (cos a, sin a)``).
    image_shape : (nz, ny, nx)
    voxel_mm : (dz, dy, dx)
    col_mm : float
        Detector column spacing, mm.
    window, cutoff
        Filter window and cut-off.

    Returns
    -------
    torch.Tensor, shape image_shape
    """
    nz, ny, nx = (int(v) for v in image_shape)
    if projections.ndim != 3 or projections.shape[1] != nz:
        raise InputError(f"projections must be (views, {nz} rows, cols), got {tuple(projections.shape)}")
    n_cols = projections.shape[2]
    radial = (torch.arange(n_cols, dtype=torch.float64) - (n_cols - 1) / 2) * float(col_mm)
    theta = torch.deg2rad(torch.as_tensor(angles_deg, dtype=torch.float64).reshape(-1))
    sino = projections.to(torch.float64).flip(1).permute(1, 0, 2)  # (slices from inferior, views, cols)
    img = fbp_2d(sino, theta, radial, image_shape=(ny, nx), pixel_mm=(float(voxel_mm[1]), float(voxel_mm[2])),
                 window=window, cutoff=cutoff)
    return img.to(projections.dtype)


def fbp_pet_model(net_counts: torch.Tensor, model, scale: float, *, window: str = "ramp",
                  cutoff: float = 1.0) -> torch.Tensor:
    """FBP of net PET counts (prompts minus additive) with the corrections of a PET system model.

    ``net_counts / (scale * f)`` (``f`` = ``model.multiplicative_factors``: efficiencies x attenuation,
    0 where ``f`` is 0) are the line integrals of the image that :func:`fbp_pet` inverts; ``scale``
    turns line integrals into counts (calibration x time). ``model`` is a
    :class:`~petspect.systems.pet.PetSystemModel` (its PSF, if any, is not inverted).
    """
    f = model.multiplicative_factors.to(device=net_counts.device, dtype=net_counts.dtype)
    f = f.reshape(f.shape + (1,) * (net_counts.ndim - f.ndim))
    line = safe_divide(net_counts, f * scale)
    return fbp_pet(line, model.projector.sino_def, model.projector.grid, window=window, cutoff=cutoff)


def fbp_spect_model(net_counts: torch.Tensor, projector, scale: float, *, mu_per_mm: torch.Tensor | None = None,
                    window: str = "hann", cutoff: float = 1.0) -> torch.Tensor:
    """FBP of net SPECT counts with the scale of a :class:`~petspect.projectors.spect.SpectProjector`.

    The projector sums voxel values along depth planes ``h`` mm apart times its own scale, so the line
    integrals are ``net * h / (projector.scale * scale)``. With ``mu_per_mm`` the image is corrected by
    Chang's first-order method (Chang 1978, :mod:`petspect.systems.spect_chang`).
    """
    g = projector.grid
    line = net_counts * (float(g.h) / (projector.scale * scale))
    angles = projector.angles_deg.cpu().tolist()
    voxel = (g.dz, g.dy, g.dx)
    img = fbp_spect(line, angles, image_shape=(g.nz, g.ny, g.nx), voxel_mm=voxel, col_mm=g.col_mm,
                    window=window, cutoff=cutoff)
    if mu_per_mm is None:
        return img
    return chang_correct(img, mu_per_mm.to(img), voxel_mm=voxel, angles_deg=angles)
