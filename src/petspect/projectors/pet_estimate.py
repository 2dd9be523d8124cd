"""Data size and projection time of a PET sinogram job, from a quick calibration on this machine.

Before a long job (``petspect project`` / ``petspect recon``) a person should know how many LORs and
bins the sinogram holds and roughly how long one projection takes. :func:`estimate_sinogram_projection`
projects a random sample of the sinogram's own LORs through the job's image grid, forward and back, at two
sample sizes (so the per-call cost of preparing the image is separated from the per-LOR cost), and scales
to the whole sinogram. It takes well under a second plus, on a fresh install, the one-time compilation of
the CPU kernels (reported separately).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from petspect.geometry.pet import ImageGrid
from petspect.geometry.sinogram import SinogramDefinition

__all__ = ["ProjectionEstimate", "estimate_sinogram_projection", "describe_size", "format_seconds", "pet_job_summary"]


@dataclass(frozen=True)
class ProjectionEstimate:
    """Size of a sinogram and the estimated time of one full projection on this machine.

    Attributes
    ----------
    shape : tuple of int
        Sinogram shape (planes, views, radial[, TOF bins]).
    n_lors : int
        Projected LORs (planes x views x radial).
    n_bins : int
        Data values (LORs x TOF bins).
    forward_s, back_s : float
        Estimated seconds of one forward / back projection of the whole sinogram.
    threads : int
        CPU threads the estimate was measured with (torch's count).
    device : str
        Where the calibration ran.
    compile_s : float
        Seconds spent compiling (or loading) the CPU kernels before the calibration (0 when warm).
    """

    shape: tuple[int, ...]
    n_lors: int
    n_bins: int
    forward_s: float
    back_s: float
    threads: int
    device: str
    compile_s: float = 0.0

    def job_seconds(self, n_forward: float, n_back: float) -> float:
        """Seconds of a job of ``n_forward`` forward and ``n_back`` back projections of the whole sinogram."""
        return n_forward * self.forward_s + n_back * self.back_s


def describe_size(shape: tuple[int, ...]) -> str:
    """``815 x 95 x 520 = 40.3 M LORs (x 33 TOF bins = 1.33 G bins, 5.3 GB float32)``."""
    n_lors = math.prod(shape[:3])
    text = f"{' x '.join(str(s) for s in shape[:3])} = {_si(n_lors)} LORs"
    n_bins = math.prod(shape)
    if len(shape) > 3:
        text += f" x {shape[3]} TOF bins = {_si(n_bins)} bins"
    return text + f" ({_si(4 * n_bins)}B as float32)"


def _si(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g} "


def format_seconds(seconds: float) -> str:
    """``0.4 s``, ``42 s``, ``3.5 min``, ``1.2 h``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _sample_lors(sino_def: SinogramDefinition, grid: ImageGrid, n: int, seed: int, device, dtype):
    """Voxel-index end points (n, 3) of ``n`` random bins of the sinogram."""
    gen = torch.Generator().manual_seed(seed)
    p = torch.randint(0, sino_def.n_planes, (n,), generator=gen)
    v = torch.randint(0, sino_def.n_views, (n,), generator=gen)
    r = torch.randint(0, sino_def.n_radial, (n,), generator=gen)
    xy_a, xy_b = (torch.as_tensor(e)[v, r] for e in sino_def.transaxial_endpoints_mm())
    z_a, z_b = (torch.as_tensor(z)[p] for z in sino_def.plane_z_mm())
    start = torch.cat([xy_a, z_a[:, None]], dim=1)
    end = torch.cat([xy_b, z_b[:, None]], dim=1)
    return (grid.world_to_index(start).to(device=device, dtype=dtype),
            grid.world_to_index(end).to(device=device, dtype=dtype))


def estimate_sinogram_projection(sino_def: SinogramDefinition, grid: ImageGrid, *, tof: bool = False,
                                 device=None, n_calibration: int = 20_000, seed: int = 0) -> ProjectionEstimate:
    """Estimate the time of one forward and one back projection of the whole sinogram.

    Parameters
    ----------
    sino_def : SinogramDefinition
        The sinogram (its scanner gives the TOF kernel when ``tof``).
    grid : ImageGrid
        The image grid.
    tof : bool
        TOF sinogram.
    device : optional
        Where the job will run (default CPU).
    n_calibration : int
        LORs of the smaller calibration sample (the larger has three times as many; small sinograms use
        a quarter of their LORs).
    seed : int
        Seed of the LOR sample.
    """
    from petspect.projectors.pet import PLANE_BLOCK_LORS, tof_kernel_of
    from petspect.projectors.pet_joseph import joseph_backward, joseph_forward, kernel_backend

    device = torch.device(device or "cpu")
    kernel = tof_kernel_of(sino_def.scanner) if tof else None
    compile_s = 0.0
    probe = torch.zeros(1, device=device)
    if kernel_backend("auto", probe, probe, probe) == "numba":
        from petspect.projectors import pet_joseph_numba

        compile_s = pet_joseph_numba.warm_up((torch.float32,))
    image = torch.rand(grid.shape, generator=torch.Generator().manual_seed(seed)).to(device)
    n_small = max(200, min(int(n_calibration), sino_def.n_lors // 4))
    sizes = (n_small, 3 * n_small)
    times = []
    for n in sizes:
        s, e = _sample_lors(sino_def, grid, n, seed, device, torch.float32)
        y = joseph_forward(image, s, e, grid.spacing_mm, tof=kernel)  # warm
        _sync(device)
        t0 = time.perf_counter()
        y = joseph_forward(image, s, e, grid.spacing_mm, tof=kernel)
        _sync(device)
        t1 = time.perf_counter()
        joseph_backward(y, s, e, grid.shape, grid.spacing_mm, tof=kernel)
        _sync(device)
        times.append((t1 - t0, time.perf_counter() - t1))
    n_lors = sino_def.n_lors
    n_calls = math.ceil(n_lors / PLANE_BLOCK_LORS)
    est = []
    for k in range(2):
        per_lor = max((times[1][k] - times[0][k]) / (sizes[1] - sizes[0]), times[1][k] / sizes[1] * 0.5)
        fixed = max(times[0][k] - per_lor * sizes[0], 0.0)
        est.append(per_lor * n_lors + fixed * n_calls)
    shape = sino_def.shape(tof)
    return ProjectionEstimate(shape, n_lors, math.prod(shape), est[0], est[1], torch.get_num_threads(),
                              str(device), compile_s)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pet_job_summary(sino_def: SinogramDefinition, grid: ImageGrid, *, tof: bool, n_forward: float, n_back: float,
                    job: str, device=None) -> str:
    """Two lines for a person about to start a PET job: the data size and the estimated time.

    ``n_forward`` / ``n_back`` count full-sinogram projections of the job (e.g. OSEM: one forward and one
    back per iteration plus the sensitivity image).
    """
    est = estimate_sinogram_projection(sino_def, grid, tof=tof, device=device)
    total = est.job_seconds(n_forward, n_back)
    lines = [f"PET {sino_def.scanner.name}: sinogram span {sino_def.span}, max ring difference "
             f"{sino_def.max_ring_diff}, view mashing {sino_def.view_mashing}: {describe_size(est.shape)}; "
             f"image {' x '.join(str(s) for s in grid.shape)} (z, y, x)",
             f"estimated {job}: ~{format_seconds(total)} (one forward ~{format_seconds(est.forward_s)}, one back "
             f"~{format_seconds(est.back_s)} on {est.device}, {est.threads} threads; calibrated just now"
             + (f", kernels compiled in {est.compile_s:.0f} s" if est.compile_s > 5 else "") + ")"]
    return "\n".join(lines)
