"""PET projection operators: sinogram and list-mode, non-TOF and TOF (Joseph ray driven).

Both operators map an image of shape ``(nz, ny, nx)`` (values per voxel, e.g. Bq/mL or 1/mm) to line
integrals (value x mm) along LORs. The adjoint is the exact transpose (same weights, ``index_add_``).

* :class:`PetSinogramProjector`: output ``(n_planes, n_views, n_radial)`` or, with ``tof=True``,
  ``(n_planes, n_views, n_radial, n_tof_bins)``; ``view_axis = 1`` so OSEM subsets split the views.
* :class:`PetListmodeProjector`: output ``(n_events,)``; ``view_axis = 0`` so subsets take every
  n-th event. With TOF each event is projected into its own TOF bin only.

See :mod:`petspect.geometry.sinogram` for the sinogram layout and :mod:`petspect.projectors.pet_joseph`
for the kernel.
"""

from __future__ import annotations

from typing import Sequence

import torch

from petspect.errors import InputError
from petspect.geometry.pet import ImageGrid, ListmodeEvents, PetScanner
from petspect.geometry.sinogram import SinogramDefinition, join_endpoints
from petspect.operators.base import LinearOperator
from petspect.projectors.pet_joseph import DEFAULT_MAX_ELEMENTS, TofKernel, joseph_backward, joseph_forward

__all__ = ["PetSinogramProjector", "PetListmodeProjector", "tof_kernel_of"]

PLANE_BLOCK_LORS = 1 << 21
"""LORs whose endpoints a sinogram projector builds at once (2 M: ~100 MB in float64)."""


def tof_kernel_of(scanner: PetScanner) -> TofKernel:
    """The Gaussian TOF kernel of a TOF scanner (FWHM and bin width converted from ps to mm)."""
    if not scanner.is_tof:
        raise InputError(f"scanner {scanner.name!r} has no TOF (tof_fwhm_ps is None)")
    return TofKernel(scanner.tof_fwhm_mm, scanner.tof_bin_width_mm, scanner.n_tof_bins)


def _grid_of(image_shape: Sequence[int] | ImageGrid, voxel_mm, origin_mm) -> ImageGrid:
    if isinstance(image_shape, ImageGrid):
        return image_shape
    if voxel_mm is None:
        raise InputError("voxel_mm is needed when the image grid is given as a shape")
    return ImageGrid(tuple(image_shape), voxel_mm, origin_mm)


class PetSinogramProjector(LinearOperator):
    """Joseph projector from an image grid to a (TOF) sinogram.

    Parameters
    ----------
    scanner : PetScanner
        The scanner.
    sino_def : SinogramDefinition or None
        Sinogram binning; None uses span 1, all ring differences, no mashing.
    image_shape : (int, int, int) or ImageGrid
        Image shape (nz, ny, nx), or a full grid.
    voxel_mm : float or (float, float, float)
        Voxel size (dz, dy, dx), mm (ignored when ``image_shape`` is an ImageGrid).
    tof : bool
        Project into TOF bins (the scanner must be TOF).
    origin_mm : (float, float, float), optional
        LPS (x, y, z) of voxel [0, 0, 0]; default centres the image on the scanner.
    max_elements : int
        Memory cap of the kernel per chunk (see :mod:`petspect.projectors.pet_joseph`).
    views : torch.Tensor, optional
        Keep only these views (used by :meth:`subset`).
    """

    view_axis = 1

    def __init__(self, scanner: PetScanner, sino_def: SinogramDefinition | None,
                 image_shape: Sequence[int] | ImageGrid, voxel_mm=None, tof: bool = False, *,
                 origin_mm=None, max_elements: int = DEFAULT_MAX_ELEMENTS,
                 views: torch.Tensor | None = None) -> None:
        sino_def = SinogramDefinition(scanner) if sino_def is None else sino_def
        if sino_def.scanner is not scanner and sino_def.scanner != scanner:
            raise InputError("sino_def was made for another scanner")
        grid = _grid_of(image_shape, voxel_mm, origin_mm)
        views = torch.arange(sino_def.n_views) if views is None else torch.as_tensor(views, dtype=torch.long)
        full = sino_def.shape(tof)
        super().__init__(grid.shape, (full[0], len(views)) + full[2:])
        self.scanner, self.sino_def, self.grid, self.tof = scanner, sino_def, grid, bool(tof)
        self.tof_kernel = tof_kernel_of(scanner) if tof else None
        self.max_elements = int(max_elements)
        self.register_buffer("views", views, persistent=False)
        # LOR endpoints are built per block of planes from the transaxial (V, R, 2) and axial (P,)
        # coordinates, so the operator holds O(V R + P) numbers, not O(P V R)
        xy_a, xy_b = (torch.as_tensor(e)[views] for e in sino_def.transaxial_endpoints_mm())
        z_a, z_b = (torch.as_tensor(z) for z in sino_def.plane_z_mm())
        for name, value in (("xy_a", xy_a), ("xy_b", xy_b), ("z_a", z_a), ("z_b", z_b)):
            self.register_buffer(name, value.to(torch.float64), persistent=False)

    @property
    def device(self) -> torch.device:
        """Device of the operator's geometry buffers."""
        return self.xy_a.device

    @property
    def lors_per_plane(self) -> int:
        return self.out_shape[1] * self.out_shape[2]

    def _plane_blocks(self):
        step = max(1, PLANE_BLOCK_LORS // self.lors_per_plane)
        for p0 in range(0, self.out_shape[0], step):
            yield p0, min(p0 + step, self.out_shape[0])

    def _block_lors(self, p0: int, p1: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Voxel-index endpoints (L, 3) of planes p0..p1-1, in the dtype/device of ``like``."""
        start = join_endpoints(self.xy_a, self.z_a[p0:p1])
        end = join_endpoints(self.xy_b, self.z_b[p0:p1])
        return (self.grid.world_to_index(start).reshape(-1, 3).to(like),
                self.grid.world_to_index(end).reshape(-1, 3).to(like))

    def lor_endpoints_mm(self) -> tuple[torch.Tensor, torch.Tensor]:
        """LPS LOR endpoints (start, end), each ``(*out_shape[:3], 3)``, mm (float64)."""
        return join_endpoints(self.xy_a, self.z_a), join_endpoints(self.xy_b, self.z_b)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros(self.out_shape)
        for p0, p1 in self._plane_blocks():
            s, e = self._block_lors(p0, p1, x)
            y = joseph_forward(x, s, e, self.grid.spacing_mm, tof=self.tof_kernel, max_elements=self.max_elements)
            out[p0:p1] = y.reshape((p1 - p0,) + self.out_shape[1:])
        return out

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        image = y.new_zeros(self.in_shape)
        for p0, p1 in self._plane_blocks():
            s, e = self._block_lors(p0, p1, y)
            block = y[p0:p1].reshape(s.shape[0], -1) if self.tof else y[p0:p1].reshape(-1)
            image += joseph_backward(block, s, e, self.grid.shape, self.grid.spacing_mm, tof=self.tof_kernel,
                                     max_elements=self.max_elements)
        return image

    def _subset(self, view_index: torch.Tensor) -> "PetSinogramProjector":
        return PetSinogramProjector(self.scanner, self.sino_def, self.grid, tof=self.tof,
                                    max_elements=self.max_elements,
                                    views=self.views.cpu()[view_index.cpu()]).to(self.device)

    def non_tof(self) -> "PetSinogramProjector":
        """The same projector without TOF (same views)."""
        return PetSinogramProjector(self.scanner, self.sino_def, self.grid, tof=False,
                                    max_elements=self.max_elements, views=self.views.cpu()).to(self.device)

    def extra_repr(self) -> str:
        return f"scanner={self.scanner.name!r}, tof={self.tof}, " + super().extra_repr()


class PetListmodeProjector(LinearOperator):
    """Joseph projector from an image grid to list-mode events (one value per event).

    Parameters
    ----------
    lor_start_mm, lor_end_mm : torch.Tensor, shape (n_events, 3)
        LPS endpoints (x, y, z) of each event's LOR, mm (or pass a :class:`ListmodeEvents` as
        ``lor_start_mm`` and leave ``lor_end_mm`` None).
    image_grid : ImageGrid
        The image grid.
    tof_bins : torch.Tensor, optional, shape (n_events,)
        TOF bin of each event (counted from the LOR midpoint towards ``lor_end_mm``).
    tof_kernel : TofKernel, optional
        Needed with ``tof_bins`` (see :func:`tof_kernel_of`).
    max_elements : int
        Memory cap of the kernel per chunk.
    """

    view_axis = 0

    def __init__(self, lor_start_mm, lor_end_mm, image_grid: ImageGrid, tof_bins: torch.Tensor | None = None,
                 tof_kernel: TofKernel | None = None, *, max_elements: int = DEFAULT_MAX_ELEMENTS) -> None:
        if isinstance(lor_start_mm, ListmodeEvents):
            events = lor_start_mm
            tof_bins = events.tof_bin if tof_bins is None else tof_bins
        else:
            events = ListmodeEvents(lor_start_mm, lor_end_mm, tof_bins)
        if events.tof_bin is not None and tof_kernel is None:
            raise InputError("TOF list-mode needs tof_kernel (e.g. tof_kernel_of(scanner))")
        if events.tof_bin is not None and (int(events.tof_bin.min()) < 0 or
                                           int(events.tof_bin.max()) >= tof_kernel.n_bins):
            raise InputError(f"tof_bins must be in 0..{tof_kernel.n_bins - 1}")
        super().__init__(image_grid.shape, (len(events),))
        self.grid, self.tof_kernel, self.max_elements = image_grid, tof_kernel, int(max_elements)
        self.register_buffer("start_idx", image_grid.world_to_index(events.start_mm.double()), persistent=False)
        self.register_buffer("end_idx", image_grid.world_to_index(events.end_mm.double()), persistent=False)
        self.register_buffer("tof_bins", events.tof_bin, persistent=False)

    @property
    def device(self) -> torch.device:
        """Device of the operator's LOR buffers."""
        return self.start_idx.device

    def _kwargs(self, like: torch.Tensor) -> dict:
        bins = None if self.tof_bins is None else self.tof_bins.to(like.device)
        return {"tof": self.tof_kernel if bins is not None else None, "tof_bin": bins,
                "max_elements": self.max_elements}

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return joseph_forward(x, self.start_idx.to(x), self.end_idx.to(x), self.grid.spacing_mm, **self._kwargs(x))

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return joseph_backward(y, self.start_idx.to(y), self.end_idx.to(y), self.grid.shape, self.grid.spacing_mm,
                               **self._kwargs(y))

    def _subset(self, view_index: torch.Tensor) -> "PetListmodeProjector":
        sel = view_index.to(self.device)
        start = self.grid.index_to_world(self.start_idx[sel])
        end = self.grid.index_to_world(self.end_idx[sel])
        bins = None if self.tof_bins is None else self.tof_bins[sel]
        return PetListmodeProjector(start, end, self.grid, bins, self.tof_kernel, max_elements=self.max_elements)
