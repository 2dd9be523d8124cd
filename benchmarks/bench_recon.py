"""Reconstruction benchmarks: OSEM iteration time (2D slice, 3D clinical size) and quantitative accuracy.

Run ``python benchmarks/bench_recon.py [--threads N]`` (all cases) or name cases: ``pet2d``, ``pet2d-tof``,
``pet3d``, ``spect64``, ``spect128``, ``quant``. Each case prints one line; the latest figures are in BENCHMARKS.md
under "Reconstruction".

* ``pet2d`` / ``pet2d-tof``: whole-body preset (Vision-like) in 2D single-ring mode, 150 x 150 pixels
  of 4 mm, 380 views x 600 radial bins (x 33 TOF bins), attenuation; time of one OSEM iteration with
  20 subsets (every subset run), and of one forward + back projection of all data in a single call.
* ``pet3d``: whole-body preset, clinical image grid 200 x 200 x 80 (4 x 4 x 3.26 mm), span 11, maximum
  ring difference 79, views mashed by 2 (1293 planes x 190 views x 600 bins = 147 M bins). A full
  iteration takes far too long on 2 CPU cores, so the Joseph forward + back projection of a sample of LORs
  (8 planes of segment 0 and 8 of the most oblique segment, every 19th view) is timed and scaled by the
  number of bins; the EM arithmetic is negligible next to it.
* ``spect64`` / ``spect128``: LEHR Tc-99m, attenuation and collimator response, 64^3 / 128^3 voxels of
  4.8 mm, 60 / 120 views; OSEM iteration with 6 / 8 subsets (every subset run). docs/REFERENCE.md quotes
  PyTomography on this machine: 64^3, 60 views, attenuation + PSF, OSEM 2 it x 6 subsets 10.2 s.
* ``quant``: uniform water cylinder (5000 Bq/mL) in the small-animal preset, noiseless: OSEM and FBP
  bias of the central ROI with attenuation correction, centre/rim ratio without.
"""

from __future__ import annotations

import sys
import time

import torch

from petspect.geometry.pet import ImageGrid, get_pet_scanner
from petspect.geometry.sinogram import SinogramDefinition
from petspect.recon.em import em_update
from petspect.recon.objectives import PoissonLogLikelihood


def _cylinder(shape, spacing, radius_mm, value):
    nz, ny, nx = shape
    y = (torch.arange(ny) - (ny - 1) / 2) * spacing[1]
    x = (torch.arange(nx) - (nx - 1) / 2) * spacing[2]
    disc = (y[:, None] ** 2 + x[None, :] ** 2 < radius_mm ** 2).float()
    return (value * disc)[None].expand(nz, -1, -1).contiguous()


def _time_subsets(model, x, n_subsets, subsets_to_run=None):
    """Seconds per OSEM iteration: run ``subsets_to_run`` subset updates (all by default) and scale."""
    t0 = time.perf_counter()
    lik = PoissonLogLikelihood(model, model(x), n_subsets=n_subsets)
    setup = time.perf_counter() - t0
    img = lik.initial_image()
    run = n_subsets if subsets_to_run is None else subsets_to_run
    t0 = time.perf_counter()
    for k in range(run):
        img = em_update(lik, img, k)
    per_subset = (time.perf_counter() - t0) / run
    return per_subset * n_subsets, setup


def bench_pet2d(tof: bool = False) -> str:
    from petspect.systems.pet import pet_system_model

    scanner = get_pet_scanner("wholebody", single_ring=True)
    scanner = scanner if tof else scanner.non_tof()
    grid = ImageGrid((1, 150, 150), (4.0, 4.0, 4.0))
    x = _cylinder(grid.shape, grid.spacing_mm, 150.0, 5000.0)
    model = pet_system_model(scanner, grid, mu=x / 5000.0 * 0.0096, tof=tof)
    t_it, setup = _time_subsets(model, x, 20)
    t0 = time.perf_counter()
    model.adjoint(model(x))
    t_proj = time.perf_counter() - t0
    return (f"pet2d{'-tof' if tof else ''}: data {tuple(model.out_shape)}, image {grid.shape}: "
            f"OSEM iteration (20 subsets) {t_it:.2f} s; projector forward + back of all data in one call "
            f"{t_proj:.2f} s; setup incl. sensitivities {setup:.2f} s")


def bench_pet3d() -> str:
    from petspect.projectors.pet_joseph import joseph_backward, joseph_forward

    scanner = get_pet_scanner("wholebody").non_tof()
    sino = SinogramDefinition(scanner, span=11, max_ring_diff=79, view_mashing=2)
    grid = ImageGrid((80, 200, 200), (scanner.ring_spacing_mm, 4.0, 4.0))
    x = _cylinder(grid.shape, grid.spacing_mm, 150.0, 5000.0)
    n_bins = torch.Size(sino.shape()).numel()
    views = torch.arange(0, sino.n_views, 19)
    times = []
    n_sample = 0
    # a sample of LORs: 8 planes of segment 0 and 8 of the most oblique segment, every 19th view
    for planes in (slice(75, 83), slice(sino.n_planes - 8, sino.n_planes)):
        start, end = sino.lor_endpoints_mm(planes=planes, views=views)
        s_idx, e_idx = grid.world_to_index(start).reshape(-1, 3), grid.world_to_index(end).reshape(-1, 3)
        n_sample += s_idx.shape[0]
        t0 = time.perf_counter()
        y = joseph_forward(x, s_idx.float(), e_idx.float(), grid.spacing_mm)
        t1 = time.perf_counter()
        joseph_backward(y, s_idx.float(), e_idx.float(), grid.shape, grid.spacing_mm)
        times.append((t1 - t0, time.perf_counter() - t1))
    fwd, back = (sum(t[i] for t in times) for i in (0, 1))
    scale = n_bins / n_sample
    return (f"pet3d: data {tuple(sino.shape())} ({n_bins / 1e6:.0f} M bins), image {grid.shape}: "
            f"{n_sample} sampled LORs forward {fwd:.1f} s + back {back:.1f} s -> one OSEM iteration "
            f"(all bins forward + back) ~{scale * (fwd + back) / 60:.0f} min (extrapolated by LOR count)")


def bench_spect(n: int, n_views: int, n_subsets: int) -> str:
    from petspect.geometry.spect import circular_orbit
    from petspect.projectors.spect import SpectProjector

    x = _cylinder((n, n, n), (4.8, 4.8, 4.8), 0.4 * n * 4.8, 5000.0)
    angles, radius = circular_orbit(n_views, 0.5 * n * 4.8 * 1.5)
    t0 = time.perf_counter()
    proj = SpectProjector((n, n, n), (4.8, 4.8, 4.8), angles, radius, "spect-lehr", mu=x / 5000.0 * 0.0154,
                          psf=True, sensitivity_cps_per_mbq=91.0, frame_duration_s=20.0)
    build = time.perf_counter() - t0
    t_it, setup = _time_subsets(proj, x, n_subsets)
    return (f"spect{n}: {n}^3 voxels, {n_views} views, attenuation + PSF: OSEM iteration ({n_subsets} subsets) "
            f"{t_it:.2f} s (projector build {build:.2f} s, setup {setup:.2f} s)")


def bench_quant() -> str:
    from petspect.simulate.acquisition import reconstruct_acquisition, simulate_acquisition, system_model
    from petspect.volume import Volume

    n, vox = 40, 2.0
    x = _cylinder((1, n, n), (vox, vox, vox), 30.0, 5000.0)
    act = Volume.centered(x, (vox, vox, vox), unit="Bq/mL")
    mu = act.with_data(x / 5000.0 * 0.0096, unit="1/mm")
    data = simulate_acquisition(act, "small-animal", mu=mu, single_ring=True, n_counts=1e7, seed=0)
    data.prompts = system_model(data)(x)
    c = (torch.arange(n) - (n - 1) / 2) * vox
    r = torch.sqrt(c[:, None] ** 2 + c[None, :] ** 2)
    out = []
    for algo, kw in (("osem", {"n_iter": 10, "n_subsets": 8}), ("fbp", {})):
        img = reconstruct_acquisition(data, algo, progress=False, **kw).data[0]
        nac = reconstruct_acquisition(data, algo, attenuation=False, progress=False, **kw).data[0]
        bias = float(img[r < 22].mean()) / 5000.0 - 1
        cup = float(nac[r < 8].mean() / nac[(r > 16) & (r < 24)].mean())
        out.append(f"{algo} AC bias {100 * bias:+.2f} % (CV {100 * float(img[r < 22].std() / img[r < 22].mean()):.2f} %),"
                   f" NAC centre/rim {cup:.3f}")
    return "quant (small-animal 2D, water cylinder r 30 mm, noiseless): " + "; ".join(out)


CASES = {
    "quant": bench_quant,
    "pet2d": bench_pet2d,
    "pet2d-tof": lambda: bench_pet2d(tof=True),
    "spect64": lambda: bench_spect(64, 60, 6),
    "spect128": lambda: bench_spect(128, 120, 8),
    "pet3d": bench_pet3d,
}


def main(argv: list[str]) -> None:
    if "--threads" in argv:
        i = argv.index("--threads")
        torch.set_num_threads(int(argv[i + 1]))
        argv = argv[:i] + argv[i + 2:]
    names = argv or list(CASES)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU")
    for name in names:
        print(CASES[name](), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
