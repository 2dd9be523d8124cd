"""Speed of the anatomical phantoms: whole-body torso at 2 mm, chest-abdomen at 4 mm, brain at 2 mm.

Run: ``.venv/bin/python benchmarks/bench_torso.py``. Prints wall-clock seconds (median of ``--repeat``
runs after one warm-up, so imports and template loading are excluded) and the grid sizes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def _time(fn, repeat: int) -> tuple[float, object]:
    out = fn()  # warm-up (imports, nilearn templates, xraydb tables)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from petspect.phantoms.brain import make_brain
    from petspect.phantoms.torso import make_grid, make_torso, voxelise_labels
    from petspect.phantoms.torso_anatomy import sample_anatomy

    print(f"torch threads: {torch.get_num_threads()}")
    cases = [("torso whole-body 2 mm (all volumes, lesions)", lambda: make_torso(voxel_mm=2.0, seed=0, fov="whole-body")),
             ("torso chest-abdomen 4 mm", lambda: make_torso(voxel_mm=4.0, seed=0)),
             ("brain 2 mm (fdg, alzheimer 0.5)", lambda: make_brain(voxel_mm=2.0, seed=0, disease="alzheimer",
                                                                    severity=0.5))]
    for name, fn in cases:
        t, ph = _time(fn, args.repeat)
        shape = ph["labels"].shape
        print(f"{name}: {t:.2f} s, grid {shape} = {np.prod(shape) / 1e6:.1f} Mvoxel, "
              f"{len(ph.tables.get('lesions', []))} lesions")
    a = sample_anatomy(np.random.default_rng(0))
    grid = make_grid(a, "whole-body", 2.0)
    t, _ = _time(lambda: voxelise_labels(grid, a), args.repeat)
    print(f"torso whole-body 2 mm labels only: {t:.2f} s")


if __name__ == "__main__":
    main()
