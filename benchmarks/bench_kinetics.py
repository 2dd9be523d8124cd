"""Kinetics benchmark: Patlak Ki of simulated FDG tissues (noiseless and with clinical frame noise), 2TCM
region fits, the image-derived input function of a simulated dynamic chest, and the learned input function.

Run: ``.venv/bin/python benchmarks/bench_kinetics.py [--n-noise 500] [--n-train 1500] [--n-test 300]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from petspect.kinetics.compartments import Model, fit_region
from petspect.kinetics.dl_input import predict_input, simulate_input_set, train_input_net
from petspect.kinetics.graphical import patlak
from petspect.kinetics.idif import frames_to_input, image_derived_input, simulate_dynamic_chest
from petspect.kinetics.input_function import FRAMINGS, feng_fdg_for_patient
from petspect.kinetics.simulate import FDG_TISSUES, add_frame_noise, simulate_tacs

FR = FRAMINGS["fdg-60min"]


def graphical(n_noise: int) -> None:
    inp = feng_fdg_for_patient().sampled(FR.end_s[-1])
    tacs = simulate_tacs(FDG_TISSUES, inp, FR)
    print("Patlak, noiseless, t* = 20 min of 60 min (truth (1 - vB) K1 k3/(k2 + k3)):")
    for name, p in FDG_TISSUES.items():
        ki = float(patlak(tacs[name], inp, FR).slope)
        print(f"  {name:12s} true {p.ki_voxel_per_min:.5f} /min, Patlak {ki:.5f} ({100 * (ki / p.ki_voxel_per_min - 1):+.2f} %)")
    rng = np.random.default_rng(0)
    truth = FDG_TISSUES["tumour"].ki_voxel_per_min
    print(f"Patlak tumour Ki with frame noise ({n_noise} realisations each; cov_last = COV of the last 5 min frame):")
    for cov in (0.02, 0.05, 0.10, 0.20):
        kis = np.array([float(patlak(add_frame_noise(tacs["tumour"], FR, cov_last=cov, rng=rng), inp, FR).slope)
                        for _ in range(n_noise)])
        print(f"  cov_last {cov:.2f}: bias {100 * (kis.mean() / truth - 1):+.2f} %, COV {100 * kis.std() / kis.mean():.1f} %")
    n_fit = max(10, n_noise // 10)
    t0 = time.perf_counter()
    kis = np.array([fit_region(add_frame_noise(tacs["tumour"], FR, cov_last=0.05, rng=rng), inp, FR,
                               Model.TWO_TCM_IRREVERSIBLE, n_starts=2).params.ki_voxel_per_min for _ in range(n_fit)])
    print(f"2TCM (k4 = 0) region fit, cov_last 0.05, {n_fit} fits: Ki bias {100 * (kis.mean() / truth - 1):+.2f} %, "
          f"COV {100 * kis.std() / kis.mean():.1f} %, {(time.perf_counter() - t0) / n_fit:.2f} s per fit")


def idif(net=None) -> None:
    """IDIF (raw and partial-volume corrected) and, given a trained net, the learned input on the same images."""
    inp = feng_fdg_for_patient().sampled(FR.end_s[-1])
    truth = FDG_TISSUES["tumour"].ki_voxel_per_min
    for radius, psf in ((11.0, 7.0), (6.0, 8.0)):
        ph = simulate_dynamic_chest(inp, FR, aorta_radius_mm=radius, psf_fwhm_mm=psf, seed=0)
        true = ph.true_tacs["blood"]
        ests = {}
        for corr in (False, True):
            ests["PV-corrected" if corr else "raw"] = image_derived_input(
                ph.frames_bq_per_ml, FR, ph.labels == 2, correct_pv=corr, vessel_radius_mm=radius, psf_fwhm_mm=psf,
                voxel_mm=ph.voxel_mm)
        if net is not None:
            organs = [ph.frames_bq_per_ml[:, ph.labels == v].mean(1) for v in (4, 5, 1)]  # myocardium, liver, muscle
            ests["learned"] = predict_input(net, np.stack([ests["raw"]] + organs)[None])[0]
        for how, est in ests.items():
            auc = float((est * FR.duration_s).sum() / (true * FR.duration_s).sum())
            late = float(est[-4:].mean() / true[-4:].mean())
            ki = float(patlak(ph.true_tacs["tumour"], frames_to_input(est, FR), FR).slope)
            print(f"chest phantom, aorta r {radius:.0f} mm, PSF {psf:.0f} mm, {how:12s}: peak "
                  f"x{est.max() / true.max():.2f}, AUC x{auc:.3f}, last 20 min x{late:.3f}, tumour Ki "
                  f"{100 * (ki / truth - 1):+.1f} %")


def learned(n_train: int, n_test: int, epochs: int):
    t0 = time.perf_counter()
    tr = simulate_input_set(n_train, FR, seed=1)
    te = simulate_input_set(n_test, FR, seed=2)
    t1 = time.perf_counter()
    net = train_input_net(tr, FR, epochs=epochs)
    t2 = time.perf_counter()
    pred = predict_input(net, te.x)
    return net, (n_train, n_test, t1 - t0, t2 - t1, te, pred)


def report_learned(n_train, n_test, sim_s, train_s, te, pred) -> None:
    print(f"learned input: {n_train} training / {n_test} held-out simulated subjects (simulation {sim_s:.0f} s, "
          f"training {train_s:.0f} s on 1 CPU thread)")

    def auc(v):
        return (v * FR.duration_s).sum(-1)

    for name, est in (("true plasma (frame means)", te.plasma), ("raw IDIF", te.x[:, 0]), ("learned", pred)):
        a = auc(est) / auc(te.plasma) - 1
        late = est[:, -4:].mean(-1) / te.plasma[:, -4:].mean(-1) - 1
        ki = np.array([float(patlak(te.tumour[i], frames_to_input(est[i], FR), FR).slope) for i in range(len(est))])
        k = ki / te.tumour_ki - 1
        print(f"  {name:26s} AUC {100 * a.mean():+.1f} +/- {100 * a.std():.1f} %, last 20 min {100 * late.mean():+.1f} "
              f"+/- {100 * late.std():.1f} %, tumour Ki {100 * k.mean():+.1f} +/- {100 * k.std():.1f} %")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-noise", type=int, default=500)
    ap.add_argument("--n-train", type=int, default=1500)
    ap.add_argument("--n-test", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=500)
    a = ap.parse_args()
    graphical(a.n_noise)
    net, rec = learned(a.n_train, a.n_test, a.epochs)
    report_learned(*rec)
    idif(net)


if __name__ == "__main__":
    main()
