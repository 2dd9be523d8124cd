"""CAD study benchmark: the diagnostic tasks at a preset, with wall times and the AUC table.

Usage::

    OMP_NUM_THREADS=1 PETSPECT_NO_PROGRESS=1 python benchmarks/bench_cad.py --preset quick --out /tmp/cad_quick

Prints, per ``<task>/<method>``, AUC with its 95 % stratified bootstrap interval, the paired AUC difference
against the task's best classical method, sensitivity, specificity and Brier score, then the stage times
(simulation, each method's cross-validation, the final models). Figures go into BENCHMARKS.md ("CAD").
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="quick", choices=["tiny", "quick", "full"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tasks", default="ad,pd,mpi")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    import dataclasses

    from petspect.cad.study import run_cad_study, study_settings
    from petspect.cad.study_report import verdict_lines

    s = dataclasses.replace(study_settings(args.preset), seed=args.seed, tasks=tuple(args.tasks.split(",")))
    t0 = time.perf_counter()
    res = run_cad_study(args.out, s, device=args.device, log=lambda m: None)
    total = time.perf_counter() - t0
    print(f"| method | AUC [95% CI] | delta AUC vs best classical [95% CI] | sens | spec | Brier |")
    print("|---|---|---|---|---|---|")
    for k, r in res["metrics"].items():
        d = "" if "delta_auc" not in r else \
            f"{r['delta_auc']:+.3f} [{r['delta_auc_ci95'][0]:+.3f}, {r['delta_auc_ci95'][1]:+.3f}] vs {r['delta_vs']}"
        print(f"| {k} | {r['auc']:.3f} [{r['auc_ci95'][0]:.3f}, {r['auc_ci95'][1]:.3f}] | {d} | "
              f"{r['sensitivity']:.2f} | {r['specificity']:.2f} | {r['brier']:.3f} |")
    for line in verdict_lines(res["metrics"], list(s.tasks)):
        print(line)
    for c in res["summary"].checks:
        print(f"check: {c.check}: {c.passed} {c.detail}")
    print("wall s:", {k: round(v, 1) for k, v in res["summary"].wall_s.items()}, f"total {total:.1f}")


if __name__ == "__main__":
    main()
