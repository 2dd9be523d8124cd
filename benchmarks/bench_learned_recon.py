"""Learned reconstruction (issue 17): the recon study at a preset, its figures printed as a table.

Runs ``petspect study recon`` (:func:`petspect.learned_recon.study.run_recon_study`) into ``--out`` and prints, per
method: NRMSE, PSNR, organ SUVmean and lesion SUVmax bias against the true activity, the data consistency (Poisson
deviance per bin) and the wall time per subject (CPU), each with its 95 % bootstrap interval over test subjects;
then the acceptance checks and the direct / OSEM speed ratio.

    python benchmarks/bench_learned_recon.py --preset quick --out /tmp/recon_study
"""

from __future__ import annotations

import argparse
import time

import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="quick", choices=["tiny", "quick", "full"])
    ap.add_argument("--out", required=True, help="study folder (new, or one this benchmark wrote)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from petspect.learned_recon.study import PET_METHODS, SPECT_METHODS, TOF_METHODS, run_recon_study

    t0 = time.perf_counter()
    res = run_recon_study(args.out, preset=args.preset, overwrite=True,
                          log=lambda s: print(f"[{time.perf_counter() - t0:7.1f} s] {s}", flush=True))
    m = res["metrics"]
    keys = ("nrmse_pct", "psnr_db", "suvmean_bias_pct", "suvmax_bias_pct", "cho_dprime", "poisson_deviance", "wall_s")
    print("| method | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name in PET_METHODS + TOF_METHODS + SPECT_METHODS:
        cells = []
        for k in keys:
            v, ci = m[name].get(k), m[name].get(f"{k}_ci95")
            cells.append("-" if v is None else f"{v:.3g}" + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else ""))
        print(f"| {name} | " + " | ".join(cells) + " |")
    for c in res["checks"]:
        print({True: "PASSED", False: "FAILED", None: "REPORTED"}[c["passed"]], "-", c["check"], "-", c["detail"])
    for k, v in res["summary"]["wall_s"].items():
        print(f"{k}: {v:.0f} s")
    print("test_scored:", {k: (v["test_scored"], v["all_configurations"])
                            for k, v in res["summary"]["test_scoring"].items()}, "(times, configurations in the ledger)")
    print(f"total {time.perf_counter() - t0:.0f} s; report {res['paths']['report']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
