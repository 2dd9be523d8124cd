"""Dosimetry benchmark: petspect's voxel S-value kernels against Lanconelli et al 2012 (held out), and speed.

    python benchmarks/bench_dosimetry.py                         # shipped point kernels + a 400k recompute
    python benchmarks/bench_dosimetry.py --recompute-electrons 20000 --half-width 2   # quick
    python benchmarks/bench_dosimetry.py --dl-speed              # where the DL dose's CPU time goes

For Lu-177, Y-90 and I-131 at 3, 4.42, 4.8 and 6 mm voxels (soft tissue, 1.03 g/mL) it prints the relative
difference of S(0,0,0), S(1,0,0), S(1,1,0), S(1,1,1) and S(2,0,0) from the published database, for the
beta+photon emission set of the database and for the full ICRP-107 emission (conversion and Auger
electrons included), and the wall time of each kernel; then S(0,0,0) and S(5,5,5) against MIRD Pamphlet 17
(Y-90 and I-131 at 3 and 6 mm, full emission set); with ``--straggling-check N`` also Y-90 beta kernels
recomputed from N electrons with the current transport. The published values are never used to fit anything.
"""

from __future__ import annotations

import argparse
import json
import time
from importlib import resources

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--half-width", type=int, default=5, help="kernel half-width (voxels)")
    ap.add_argument("--recompute-electrons", type=int, default=400_000,
                    help="electrons of the one point kernel recomputed from scratch (Lu-177) for timing")
    ap.add_argument("--straggling-check", type=int, default=0, metavar="N",
                    help="also recompute the Y-90 beta kernels from N electrons with the current transport "
                         "(energy-loss straggling) and compare them with the database")
    ap.add_argument("--dl-speed", action="store_true",
                    help="only time the DL dose's parts (physics-base FFTs, network: default vs oneDNN "
                         "convolutions, 1 vs 2 torch threads, widths) on a quick-preset study subject")
    args = ap.parse_args(argv)
    if args.dl_speed:
        return dl_speed()
    from petspect.dosimetry.kernels import electron_point_kernel, voxel_kernel

    ref = json.loads((resources.files("petspect") / "data" / "dosimetry" / "lanconelli2012_soft_tissue.json").read_text())
    offsets = [(0, 0, 0), (1, 0, 0), (1, 1, 0), (1, 1, 1), (2, 0, 0)]
    worst = {"centre": 0.0, "face": 0.0}
    print("| nuclide | voxel mm | emission | S000 | dS000 % | dS100 % | dS110 % | dS111 % | dS200 % | kernel s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for nuc, table in ref["values"].items():
        for vox, vals in table.items():
            for discrete in (False, True):
                t0 = time.perf_counter()
                k = voxel_kernel(nuc, float(vox), half_width=args.half_width, discrete_electrons=discrete)
                dt = time.perf_counter() - t0
                ours = [k.at(*o) for o in offsets]
                d = [100 * (o / r - 1) for o, r in zip(ours, vals)]
                if not discrete:
                    worst["centre"] = max(worst["centre"], abs(d[0]))
                    worst["face"] = max(worst["face"], abs(d[1]))
                label = "full ICRP-107" if discrete else "beta+photons"
                print(f"| {nuc} | {vox} | {label} | {ours[0]:.4g} | " + " | ".join(f"{x:+.1f}" for x in d)
                      + f" | {dt:.2f} |")
    print(f"\nworst |difference| (beta+photons, the database's emission set): centre {worst['centre']:.1f} %, "
          f"face neighbour {worst['face']:.1f} % (judged: 5 % and 10 %)")
    mird = json.loads((resources.files("petspect") / "data" / "dosimetry" / "mird17_soft_tissue.json").read_text())
    print("\nMIRD Pamphlet 17 (Bolch et al 1999; full emission set; held out)")
    print("| nuclide | voxel mm | S000 ours | S000 MIRD 17 | dS000 % | S555 ours | S555 MIRD 17 | dS555 % |")
    print("|---|---|---|---|---|---|---|---|")
    for nuc, table in mird["values"].items():
        for vox, (s0, s5) in table.items():
            k = voxel_kernel(nuc, float(vox), half_width=5)
            o0, o5 = k.at(0, 0, 0), k.at(5, 5, 5)
            d5 = f"{100 * (o5 / s5 - 1):+.1f}" if o5 > 0 else "not modelled (bremsstrahlung)"
            print(f"| {nuc} | {vox} | {o0:.4g} | {s0:.3g} | {100 * (o0 / s0 - 1):+.1f} | {o5:.3g} | {s5:.3g} | {d5} |")
    if args.straggling_check:
        print(f"\nY-90 beta kernels recomputed from {args.straggling_check} electrons (straggling) vs the database")
        print("| voxel mm | dS000 % | dS100 % | dS110 % | dS111 % | dS200 % |")
        print("|---|---|---|---|---|---|")
        for vox, vals in ref["values"]["Y-90"].items():
            k = voxel_kernel("Y-90", float(vox), half_width=2, discrete_electrons=False,
                             n_electrons=args.straggling_check, n_photons=100_000)
            print(f"| {vox} | " + " | ".join(f"{100 * (k.at(*o) / r - 1):+.1f}" for o, r in zip(offsets, vals)) + " |")
    t0 = time.perf_counter()
    electron_point_kernel("Lu-177", args.recompute_electrons, 7, True)
    print(f"Lu-177 electron point kernel from scratch, {args.recompute_electrons} electrons: "
          f"{time.perf_counter() - t0:.1f} s")
    return 0


def _cpu_wall(fn, repeats: int = 20) -> tuple[float, float]:
    """Mean (CPU s, wall s) of ``fn()`` over ``repeats`` calls after two untimed ones."""
    fn()
    fn()
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.process_time() - c0) / repeats, (time.perf_counter() - t0) / repeats


def dl_speed() -> int:
    """Where the DL dose's CPU time goes, on one quick-preset subject (20 x 48 x 48 voxels of 4.8 mm)."""
    import os

    import torch

    from petspect.dosimetry import dl, study
    from petspect.dosimetry.kernels import voxel_kernel

    subj = study.make_subject(0, 0, study.PRESETS["quick"])
    ke = voxel_kernel(study.NUCLIDE, study.VOXEL_MM, half_width=8, components=("electrons",)).values
    kp = voxel_kernel(study.NUCLIDE, study.VOXEL_MM, half_width=16, components=("photons",)).values
    tia, rho = subj["tia"], subj["density"]
    e, ph = dl.physics_base_dose(tia, rho, ke, kp)
    x = dl.dose_inputs(tia, rho, e, ph)
    print(f"load average at start: {os.getloadavg()}; grid {tia.shape}")
    print("| part | torch threads | CPU ms | wall ms |")
    print("|---|---|---|---|")

    def row(name, threads, fn):
        torch.set_num_threads(threads)
        c, w = _cpu_wall(fn)
        print(f"| {name} | {threads} | {1e3 * c:.1f} | {1e3 * w:.1f} |")

    row("physics base (2 FFT convolutions, scipy)", 1, lambda: dl.physics_base_dose(tia, rho, ke, kp))
    row("network inputs", 1, lambda: dl.dose_inputs(tia, rho, e, ph))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        nets = {w: dl.DoseNet(w).eval() for w in (4, 6, 8, 12)}
    for threads in (1, 2):
        for w, net in nets.items():
            with torch.no_grad():
                # the layers called as modules: PyTorch's own convolution dispatch (the earlier inference)
                row(f"DoseNet width {w}, PyTorch's default dispatch", threads,
                    lambda: net.out(torch.cat([net.features(x), x], 1)))
                row(f"DoseNet width {w}, oneDNN convolutions (DoseNet.forward)", threads, lambda: net(x))
    model = dl.DoseModel(nets[8], 0.0, 0.0, 0.0, 0)
    row("dl_dose end to end (width 8, oneDNN)", 1,
        lambda: dl.dl_dose(model, tia, rho, *dl.physics_base_dose(tia, rho, ke, kp)))
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
