"""A whole-body PET study at the Vision-like preset's default compression: simulate and OSEM, timed.

Run: ``PETSPECT_NO_PROGRESS=1 .venv/bin/python benchmarks/bench_pet_osem_wholebody.py --threads 2``

The torso phantom (chest-abdomen, arms up, FDG, one bed position) on a 4 mm grid of 64 x 150 x 150
(z, y, x) is projected with the ``wholebody`` preset (Biograph Vision-like: 80 rings x 760 crystals)
at its default compression (span 19, MRD 79, view mashing 4, 520 radial bins: 815 x 95 x 520 =
40.3 M LORs; see :data:`petspect.geometry.pet.PRESET_COMPRESSION`), with attenuation, a 120 s scan
at the phantom's activity and Poisson noise (``simulate_acquisition``, the code behind
``petspect project``); then OSEM, 3 iterations x 5 subsets with attenuation correction
(``reconstruct_acquisition``, the code behind ``petspect recon``). Prints the size and the estimate
that ``petspect recon`` prints first, then the measured times, and the mean of the image over the
liver against the phantom's (a sanity check, not a quality study).
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--voxel-mm", type=float, default=4.0)
    parser.add_argument("--shape", type=int, nargs=3, default=(64, 150, 150), help="image (z, y, x)")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--subsets", type=int, default=5)
    parser.add_argument("--tof", action="store_true", help="TOF sinograms (33 bins)")
    parser.add_argument("--view-mashing", type=int, default=None, help="override the preset's view mashing "
                                                                        "(quick runs)")
    args = parser.parse_args()
    import torch

    from petspect.geometry.pet import ImageGrid, get_pet_scanner
    from petspect.geometry.sinogram import SinogramDefinition
    from petspect.phantoms.torso import make_torso
    from petspect.phantoms.torso_anatomy import LABEL_IDS
    from petspect.projectors.pet_estimate import pet_job_summary
    from petspect.simulate.acquisition import reconstruct_acquisition, simulate_acquisition

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    ph = make_torso(voxel_mm=args.voxel_mm, seed=0, fov="chest-abdomen", shape=tuple(args.shape), arms="up")
    act, mu = ph.volumes["activity"], ph.volumes["mu_511"]
    print(f"phantom {tuple(act.shape)} of {args.voxel_mm} mm: {time.perf_counter() - t0:.1f} s", flush=True)
    sd = SinogramDefinition.preset_default(get_pet_scanner("wholebody"), view_mashing=args.view_mashing)
    grid = ImageGrid.from_volume(act)
    t0 = time.perf_counter()
    print(pet_job_summary(sd, grid, tof=args.tof, n_forward=args.iterations, n_back=args.iterations + 1,
                          job=f"OSEM ({args.iterations} iterations)"), flush=True)
    print(f"(estimate took {time.perf_counter() - t0:.1f} s)", flush=True)
    t0 = time.perf_counter()
    data = simulate_acquisition(act, "wholebody", mu=mu, tof=args.tof, scan_s=120.0, seed=0, span=sd.span,
                                max_ring_diff=sd.max_ring_diff, view_mashing=sd.view_mashing, n_radial=sd.n_radial)
    t_sim = time.perf_counter() - t0
    print(f"simulate (project data + attenuation factors + Poisson): {t_sim:.1f} s; prompts "
          f"{tuple(data.prompts.shape)}, {float(data.prompts.sum()):.3g} counts", flush=True)
    t0 = time.perf_counter()
    img = reconstruct_acquisition(data, "osem", n_iter=args.iterations, n_subsets=args.subsets)
    t_rec = time.perf_counter() - t0
    liver = ph.volumes["labels"].data == LABEL_IDS["liver"]
    line = (f"OSEM {args.iterations} it x {args.subsets} subsets{' TOF' if args.tof else ''}, AC: {t_rec:.1f} s "
            f"({t_rec / 60:.1f} min); simulate + OSEM {(t_sim + t_rec) / 60:.1f} min, threads {args.threads}")
    if bool(liver.any()):
        ratio = float(img.data[liver].mean() / act.data[liver].mean())
        line += f"; liver mean recon / true {ratio:.3f}"
    print(line, flush=True)


if __name__ == "__main__":
    main()
