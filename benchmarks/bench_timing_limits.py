"""Photon-level timing ceilings of the detector presets' timing pairs, beside their waveform results.

Run:  PETSPECT_NO_PROGRESS=1 .venv/bin/python benchmarks/bench_timing_limits.py [--pairs 5000] [--first K ...]
      [--presets realistic hf-readout bgo-cherenkov labr3-hf]

For each preset: CTR FWHM (ps) of the first photon, the best single order statistic, the best linear
combination of the first K photons and maximum likelihood over the first K photons, from exact photon
registration times (no SiPM pulse, noise or sampling; petspect.detector.timing_limits). Compare with the
constant-fraction and CNN figures of `bench_detector.py` for the same preset (BENCHMARKS.md, "Detector"):
a network on the waveforms cannot beat the maximum-likelihood ceiling, so (CFD - ceiling) / CFD is the
most a network can gain over the constant fraction.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from petspect.detector.pipeline import get_preset
from petspect.detector.timing_limits import photon_level_ctr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=5000)
    ap.add_argument("--first", type=int, nargs="*", default=[],
                    help="photons K (several: one row each); default: informative_photons of each preset")
    ap.add_argument("--presets", nargs="+", default=["realistic", "hf-readout", "bgo-cherenkov", "labr3-hf"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows = []
    for name in args.presets:
        for k in args.first or [None]:
            t = time.perf_counter()
            r = photon_level_ctr(get_preset(name).timing, args.pairs, np.random.default_rng([args.seed, 40]), first=k)
            r.update(preset=name, seconds=round(time.perf_counter() - t, 1))
            rows.append(r)
            print(f"{name:14s} K={r['first']:4d}  first photon {r['first_photon_ps']:6.1f}  best order statistic "
                  f"{r['best_order_statistic_ps']:6.1f} (k={r['best_order_statistic_k']:3d})  best linear "
                  f"{r['best_linear_ps']:6.1f}  max likelihood {r['max_likelihood_ps']:6.1f} ps  ({r['seconds']} s)",
                  flush=True)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
