"""Detector benchmark: the `realistic` (default) or any other detector preset end to end.

Run:  PETSPECT_NO_PROGRESS=1 .venv/bin/python benchmarks/bench_detector.py --out /tmp/bench_detector
      [--preset hf-readout | bgo-cherenkov | labr3-hf | berg-cherry-2018 | ...]  (simulate, train, evaluate)
      (add --reuse to re-evaluate the data and models already in --out; --reuse --retrain-timing
      retrains only the timing CNN on the data already there, then evaluates; --reuse --retrain-joint the
      joint study's models)

Prints positioning figures (FWHM/FWTM/MAE/edge bias for Anger logic, kNN, gradient tree boosting,
MLP, CNN and the fan-beam variants), the energy resolution, the coincidence time resolution of
leading-edge, constant-fraction and CNN timing on the validation and test coincidences with the
slope of each estimate against the true time difference (1 = unbiased), the ratios the issue asks
for, the joint network against the separate models on the same monolithic-block pairs (presets with a
joint study: quick, realistic), and the wall time of each stage. Published values to set beside them (docs/REFERENCE.md):
Muller et al, IEEE TRPMS 2018 (12 mm LYSO, GTB better than 1.4 mm FWHM); residual CNN on a simulated
ring (MAE 0.54/0.42/0.45 mm x/y/DOI vs 1.22/1.04/2.79 mm for centre of gravity); Berg and Cherry, PMB
2018 (CNN ~20 % better CTR than leading-edge / constant-fraction).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from petspect.detector.pipeline import evaluate, get_preset, simulate, train, train_joint, train_timing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--preset", default="realistic")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core VM)")
    ap.add_argument("--reuse", action="store_true", help="evaluate the data and models already in --out")
    ap.add_argument("--retrain-timing", action="store_true", help="with --reuse: retrain the timing CNN alone first")
    ap.add_argument("--retrain-joint", action="store_true",
                    help="with --reuse: retrain the joint study's models (separate and joint) first")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    preset = get_preset(args.preset)
    times = {}
    if not args.reuse:
        t = time.perf_counter()
        simulate(preset, args.out / "data", device=device, overwrite=True)
        times["simulate_s"] = time.perf_counter() - t
        t = time.perf_counter()
        train(preset, args.out / "data", args.out / "models", device=device, overwrite=True)
        times["train_s"] = time.perf_counter() - t
    if args.reuse and args.retrain_timing:
        t = time.perf_counter()
        train_timing(preset, args.out / "data", args.out / "models", device=device)
        times["train_timing_s"] = time.perf_counter() - t
    if args.reuse and args.retrain_joint:
        t = time.perf_counter()
        train_joint(preset, args.out / "data", args.out / "models", device=device)
        times["train_joint_s"] = time.perf_counter() - t
    t = time.perf_counter()
    m = evaluate(preset, args.out / "eval", data_dir=args.out / "data", models_dir=args.out / "models", device=device,
                 overwrite=True)
    times["evaluate_s"] = time.perf_counter() - t
    print(f"preset {preset.name} on {device}; stage wall times (s): " + json.dumps({k: round(v) for k, v in times.items()}))
    print(f"{'method':8s} {'FWHM':>6s} {'FWTM':>6s} {'MAEx':>6s} {'MAEy':>6s} {'MAEdoi':>7s} {'MAEctr':>7s} "
          f"{'MAEedge':>7s} {'|bias|':>6s}  (mm)")
    for k in ("anger", "knn", "gbt", "mlp", "cnn", "gbt_fan", "cnn_fan"):
        r = m[k]
        print(f"{k:8s} {r['xy_fwhm_mm']:6.2f} {r['xy_fwtm_mm']:6.2f} {r['x_mae_mm']:6.2f} {r['y_mae_mm']:6.2f} "
              f"{r.get('doi_mae_mm', float('nan')):7.2f} {r['xy_mae_centre_mm']:7.2f} {r['xy_mae_edge_mm']:7.2f} "
              f"{r['edge_bias_mm']:6.2f}")
    print("energy resolution (% FWHM): centre {:.1f}, whole face {:.1f}".format(
        m["energy"]["energy_resolution_pct"], m["energy"]["energy_resolution_all_pct"]))
    for k, v in (("led", "led"), ("cfd", "cfd"), ("cnn_timing", "cnn")):
        r = m[k]
        print(f"{k:10s} CTR FWHM val {m['timing_val'][v]['ctr_fwhm_ps']:6.1f} / test {r['ctr_fwhm_ps']:6.1f} ps  "
              f"FWTM {r['ctr_fwtm_ps']:6.1f} ps  (Gaussian fit FWHM {r['ctr_fwhm_gauss_ps']:6.1f})  "
              f"slope {r['slope']:.3f}  setting {r.get('best_setting', '-')}")
    if "joint" in m:  # presets with a joint study: the joint network against the separate models, same test pairs
        for k in ("joint", "joint_separate"):
            r = m[k]
            print(f"{k:14s} xy FWHM {r['xy_fwhm_mm']:5.2f} mm  DOI MAE {r['doi_mae_mm']:5.2f} mm  energy "
                  f"{r['energy_resolution_pct']:5.1f} % (slope {r['energy_slope']:.2f}, scatter in window "
                  f"{r['scatter_in_window']:.3f}, photopeak in window {r['window_efficiency']:.3f})  CTR "
                  f"{r['ctr_fwhm_ps']:6.1f} ps (slope {r['ctr_slope']:.3f})")
        c = m["joint_comparison"]
        print(f"joint pairs: LED {c['led']['ctr_fwhm_ps']:.1f} ps, CFD {c['cfd']['ctr_fwhm_ps']:.1f} ps; loss weights "
              f"{c['loss_weights']}; change joint vs separate (%): " +
              json.dumps({k: round(v, 1) for k, v in c['criteria']['change_pct'].items()}))
    print("summary: " + json.dumps(m["summary"], indent=1))
    (args.out / "bench_summary.json").write_text(json.dumps({"times": times, "summary": m["summary"]}, indent=1))
    print(f"metrics: {args.out / 'eval' / 'metrics.json'}; report: {args.out / 'eval' / 'report.html'}")


if __name__ == "__main__":
    main()
