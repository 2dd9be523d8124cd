"""Berg and Cherry 2018 reproduced: LED, CFD and CNN timing on their PMT-read LYSO pair, two protocols.

Run:  PETSPECT_NO_PROGRESS=1 .venv/bin/python benchmarks/bench_berg_cherry.py --out /tmp/bench_bc
      [--pairs 20000]  (coincidences per split)

For the presets ``berg-cherry-2018`` (this study's unbiased protocol: training sources over +-150 mm, test
within +-30 mm, 2 ns trigger jitter, CNN on windows aligned on each pulse) and ``berg-cherry-2018-stepped``
(the published protocol: source stepped 5 mm over 15 cm for training and test, fixed trigger, CNN on the
whole pair of records) it simulates the timing pair only (the positioning block of the presets is that of
``realistic``; ``petspect detector evaluate --preset berg-cherry-2018`` runs everything), scans LED and CFD
on validation, trains the timing CNN on the training pairs, reads the test pairs once, and prints the CTRs
beside the published ones (``BERG_CHERRY_2018_PUBLISHED_CTR_PS``), the slope of each estimate against the
true time difference (1 = unbiased), the CNN's median error at the extreme source positions, the CNN rescaled
to slope 1 (factor fitted on validation) and the photon-level ceilings of the set-up
(:mod:`petspect.detector.timing_limits`).

``--sensitivity`` instead varies the ASSUMED parameters of the set-up (``berg_cherry.BERG_CHERRY_2018_SETUP``:
crystal length, quantum efficiency, transit-time spread, single-photoelectron pulse) one at a time and together,
and for each variant gives the LED and CFD (scanned on validation pairs, read on test pairs, sources within
+-30 mm) and the photon-level maximum-likelihood ceiling: ``1 - ceiling / best discriminator`` bounds the gain any
estimator (a CNN included) can have over the discriminators on that variant. ``--ceiling-repeats N`` adds the
ceilings of the set-up as assumed on N independent samples of 5000 pairs (their spread is the sampling
uncertainty of one ceiling figure).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from petspect.detector.metrics import timing_metrics
from petspect.detector.pipeline import BERG_CHERRY_2018_PUBLISHED_CTR_PS, get_preset
from petspect.detector.timing import CNNTimer, evaluate_timing
from petspect.detector.waveforms import TimingConfig
from petspect.detector.timing_limits import photon_level_ctr
from petspect.detector.waveforms import crop_windows, simulate_coincidences
from petspect.metrics.distribution import fwhm_improvement_ci


def run(name: str, pairs: int, seed: int) -> dict:
    preset = get_preset(name)
    cfg = preset.timing
    wide = preset.timing_train_source_range_mm
    train_cfg = cfg if wide is None else dataclasses.replace(cfg, source_range_mm=wide)
    t = time.perf_counter()
    tr = simulate_coincidences(train_cfg, pairs, np.random.default_rng([seed, 20]))
    va = simulate_coincidences(cfg, pairs, np.random.default_rng([seed, 21]))
    te = simulate_coincidences(cfg, pairs, np.random.default_rng([seed, 22]))
    sim_s = time.perf_counter() - t
    t = time.perf_counter()
    timer = CNNTimer(cfg, settings=preset.timing_training, arch=preset.timing_arch, window=preset.timing_window,
                     fractions=preset.cfd_fractions).fit(tr)
    train_s = time.perf_counter() - t
    res = evaluate_timing(va, te, cfg, timer, thresholds_spe=preset.led_thresholds_spe, fractions=preset.cfd_fractions)
    true = res["true_dt_ps"]
    out = {"preset": name, "pairs": pairs, "simulate_s": sim_s, "train_s": train_s,
           "val": {k: v["ctr_fwhm_ps"] for k, v in res["val"].items()}}
    for k in ("led", "cfd", "cnn"):
        out[k] = {"ctr_fwhm_ps": res[k]["ctr_fwhm_ps"], "ctr_fwtm_ps": res[k]["ctr_fwtm_ps"], "slope": res[k]["slope"],
                  "setting": res[k].get("best_setting")}
    best = min(("led", "cfd"), key=lambda k: out["val"][k])  # the classical method chosen on validation
    out["best_classical_on_validation"] = best
    for k in ("led", "cfd"):
        ci = fwhm_improvement_ci(res["estimates"][k] - true, res["estimates"]["cnn"] - true, seed=seed)
        out[f"cnn_gain_over_{k}_pct"] = ci["improvement_pct"]
        out[f"cnn_gain_over_{k}_ci95_pct"] = [ci["ci_low_pct"], ci["ci_high_pct"]]
    # the CNN rescaled to slope 1 (factor fitted on validation): what is left once its shrinkage is undone
    wv, dtv = crop_windows(va.waveforms, va.dt_ps, np.zeros((len(va), 2), dtype=int), cfg)
    est_v = timer.estimate(va)
    slope_v = float(np.cov(est_v, dtv)[0, 1] / np.var(dtv))
    out["cnn_rescaled_to_slope_1"] = timing_metrics(res["estimates"]["cnn"] / slope_v, true)["ctr_fwhm_ps"]
    out["cnn_val_slope"] = slope_v
    src = te.source_mm
    err = res["estimates"]["cnn"] - true
    lo, hi = src <= src.min() + 2.5, src >= src.max() - 2.5
    out["cnn_median_error_extreme_sources_ps"] = [float(np.median(err[lo])), float(np.median(err[hi]))]
    t = time.perf_counter()
    out["photon_limits"] = photon_level_ctr(cfg, min(5000, max(200, pairs)), np.random.default_rng([seed, 40]))
    out["limits_s"] = time.perf_counter() - t
    return out


# Variants of the assumed parameters (name, changes to BERG_CHERRY_2018_TIMING). The ADC full scale follows the
# pulse maxima (taller pulses with more photoelectrons or a narrower single-photoelectron pulse).
SENSITIVITY = (
    ("as assumed (3x3x10 mm, QE 0.25, TTS 270 ps, rise/decay 1.2/2.5 ns)", {}),
    ("crystal 5 mm", {"length_mm": 5.0}),
    ("crystal 20 mm", {"length_mm": 20.0}),
    ("QE 0.32 (super bialkali)", {"pde": 0.32, "adc_full_scale_spe": 360.0}),
    ("TTS 150 ps", {"sptr_fwhm_ps": 150.0}),
    ("narrow pulse: rise/decay 0.5/1.0 ns", {"spr_rise_ns": 0.5, "spr_decay_ns": 1.0, "adc_full_scale_spe": 700.0}),
    ("optimistic: 5 mm, QE 0.32, TTS 150 ps, 0.5/1.0 ns", {"length_mm": 5.0, "pde": 0.32, "sptr_fwhm_ps": 150.0,
                                                           "spr_rise_ns": 0.5, "spr_decay_ns": 1.0,
                                                           "adc_full_scale_spe": 900.0}),
)


def sensitivity(pairs: int, limit_pairs: int, seed: int) -> list[dict]:
    """LED, CFD and the photon-level ceiling for each variant of the assumed parameters (see SENSITIVITY)."""
    base = get_preset("berg-cherry-2018")
    rows = []
    for i, (name, change) in enumerate(SENSITIVITY):
        cfg: TimingConfig = dataclasses.replace(base.timing, **change)
        step = cfg.adc_full_scale_spe / 2 ** cfg.adc_bits
        thresholds = tuple(t for t in base.led_thresholds_spe + (40.0, 50.0, 60.0) if t >= 2 * step)
        fractions = tuple(f for f in base.cfd_fractions if f * 150.0 >= 2 * step)
        t = time.perf_counter()
        va = simulate_coincidences(cfg, pairs, np.random.default_rng([seed, 60, i]))
        te = simulate_coincidences(cfg, pairs, np.random.default_rng([seed, 61, i]))
        res = evaluate_timing(va, te, cfg, None, thresholds_spe=thresholds, fractions=fractions)
        lim = photon_level_ctr(cfg, limit_pairs, np.random.default_rng([seed, 62, i]))
        best = min(("led", "cfd"), key=lambda k: res["val"][k]["ctr_fwhm_ps"])
        row = {"variant": name, "change": change, "pairs": pairs,
               "led_ps": res["led"]["ctr_fwhm_ps"], "led_threshold_spe": res["led"]["best_setting"],
               "cfd_ps": res["cfd"]["ctr_fwhm_ps"], "cfd_fraction": res["cfd"]["best_setting"],
               "best_discriminator": best, "photon_limits": lim,
               "max_gain_over_led_pct": 100 * (1 - lim["max_likelihood_ps"] / res["led"]["ctr_fwhm_ps"]),
               "max_gain_over_best_pct": 100 * (1 - lim["max_likelihood_ps"] / res[best]["ctr_fwhm_ps"]),
               "seconds": time.perf_counter() - t}
        print(f"{name}: LED {row['led_ps']:.1f} ps ({row['led_threshold_spe']} spe), CFD {row['cfd_ps']:.1f} ps "
              f"({row['cfd_fraction']}), ML ceiling {lim['max_likelihood_ps']:.1f} ps (first photon "
              f"{lim['first_photon_ps']:.1f}); most any estimator can gain: {row['max_gain_over_led_pct']:.1f} % over "
              f"the LED, {row['max_gain_over_best_pct']:.1f} % over the best discriminator  [{row['seconds']:.0f} s]",
              flush=True)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--pairs", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--presets", nargs="+", default=["berg-cherry-2018", "berg-cherry-2018-stepped"])
    ap.add_argument("--sensitivity", action="store_true", help="vary the assumed parameters instead (no CNN)")
    ap.add_argument("--limit-pairs", type=int, default=3000, help="pairs of the photon-level ceiling (--sensitivity)")
    ap.add_argument("--ceiling-repeats", type=int, default=0, help="ceilings of the assumed set-up on N samples")
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    pub = BERG_CHERRY_2018_PUBLISHED_CTR_PS
    if args.ceiling_repeats:
        cfg = get_preset("berg-cherry-2018").timing
        reps = [photon_level_ctr(cfg, 5000, np.random.default_rng([args.seed, 70, r])) for r in range(args.ceiling_repeats)]
        ml = np.array([r["max_likelihood_ps"] for r in reps])
        print(f"ML ceiling on {len(reps)} samples of 5000 pairs: {np.round(ml, 1)} ps, mean {ml.mean():.1f}, "
              f"sd {ml.std(ddof=1) if len(ml) > 1 else float('nan'):.1f}")
        (args.out / "bench_berg_cherry_ceilings.json").write_text(json.dumps(reps, indent=1, default=float))
    if args.sensitivity:
        rows = sensitivity(args.pairs, args.limit_pairs, args.seed)
        (args.out / "bench_berg_cherry_sensitivity.json").write_text(
            json.dumps({"published_ps": pub, "variants": rows}, indent=1, default=float))
        print(f"\nwritten: {args.out / 'bench_berg_cherry_sensitivity.json'}")
    if args.sensitivity or args.ceiling_repeats:
        return
    print(f"published (Berg and Cherry 2018): LED {pub['led']:.0f} ps, CFD {pub['cfd']:.0f} ps, CNN {pub['cnn']:.0f} ps "
          f"({100 * (1 - pub['cnn'] / pub['led']):.0f} % / {100 * (1 - pub['cnn'] / pub['cfd']):.0f} %)")
    results = []
    for name in args.presets:
        r = run(name, args.pairs, args.seed)
        results.append(r)
        lim = r["photon_limits"]
        print(f"\n{name}: simulate {r['simulate_s']:.0f} s, train {r['train_s']:.0f} s")
        for k in ("led", "cfd", "cnn"):
            print(f"  {k:4s} val {r['val'][k]:6.1f}  test {r[k]['ctr_fwhm_ps']:6.1f} ps  FWTM {r[k]['ctr_fwtm_ps']:6.1f}  "
                  f"slope {r[k]['slope']:.3f}  setting {r[k]['setting']}")
        print(f"  CNN gain over LED {r['cnn_gain_over_led_pct']:.1f} % {r['cnn_gain_over_led_ci95_pct']}, over CFD "
              f"{r['cnn_gain_over_cfd_pct']:.1f} % {r['cnn_gain_over_cfd_ci95_pct']}")
        print(f"  CNN rescaled to slope 1 (validation slope {r['cnn_val_slope']:.3f}): {r['cnn_rescaled_to_slope_1']:.1f} ps;"
              f" median error at the extreme sources {r['cnn_median_error_extreme_sources_ps']} ps")
        print(f"  photon level ({lim['n_pairs']} pairs, K = {lim['first']}): first photon {lim['first_photon_ps']:.1f}, "
              f"best single {lim['best_order_statistic_ps']:.1f} (k = {lim['best_order_statistic_k']}), linear "
              f"{lim['best_linear_ps']:.1f}, ML {lim['max_likelihood_ps']:.1f} ps")
    (args.out / "bench_berg_cherry.json").write_text(json.dumps({"published_ps": pub, "results": results}, indent=1,
                                                                 default=float))
    print(f"\nwritten: {args.out / 'bench_berg_cherry.json'}")


if __name__ == "__main__":
    main()
