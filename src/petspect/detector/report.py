"""The detector study's HTML report: tables of every method, published values beside them, figures.

The page is built with petspect's one HTML writer, :class:`petspect.report.HtmlReport` (self-contained,
figures as inline PNG); this module only chooses its content.
"""

from __future__ import annotations

import os

import numpy as np

from petspect.detector.metrics import resolution_map
from petspect.report import HtmlReport, format_number


def _published_rows(m: dict) -> list[list[str]]:
    """Published results (docs/REFERENCE.md) beside this study's figures for the same quantity."""
    def mae(k):
        return " / ".join(_fmt(m[k].get(f"{a}_mae_mm", float("nan"))) for a in ("x", "y", "doi"))

    s = m["summary"]
    pub = m.get("published_ctr_ps")
    setup = [] if not pub else [  # a preset that reproduces a published set-up (berg-cherry-2018)
        ["Berg and Cherry, PMB 63 (2018) 02LT01, this set-up: CTR FWHM LED / CFD / CNN",
         f"{_fmt(pub['led'])} / {_fmt(pub['cfd'])} / {_fmt(pub['cnn'])} ps",
         " / ".join(_fmt(m[k]["ctr_fwhm_ps"]) for k in ("led", "cfd", "cnn_timing")) + " ps"]]
    return setup + [
        ["Muller et al, IEEE TRPMS 2018: 12 mm monolithic LYSO, gradient tree boosting, FWHM",
         "better than 1.4 mm", f"GBT {_fmt(m['gbt']['xy_fwhm_mm'])} mm"],
        ["Residual CNN on a simulated ring: MAE x / y / DOI", "0.54 / 0.42 / 0.45 mm", f"CNN {mae('cnn')} mm"],
        ["Same study, centre of gravity: MAE x / y / DOI", "1.22 / 1.04 / 2.79 mm", f"Anger {mae('anger')} mm"],
        ["Berg and Cherry, PMB 2018: CNN timing vs leading edge / CFD", "~20 % better CTR",
         f"{_fmt(s['cnn_ctr_improvement_over_cfd_pct'])} % better than the best CFD"],
    ]


POS_COLUMNS = [("xy_fwhm_mm", "FWHM xy"), ("xy_fwtm_mm", "FWTM xy"), ("xy_fwhm_gauss_mm", "FWHM xy (fit)"),
               ("x_mae_mm", "MAE x"), ("y_mae_mm", "MAE y"), ("doi_mae_mm", "MAE DOI"), ("doi_fwhm_mm", "FWHM DOI"),
               ("xy_mae_centre_mm", "MAE centre"), ("xy_mae_edge_mm", "MAE edge"), ("edge_bias_mm", "|edge bias|")]


def _fmt(v) -> str:
    return format_number(v, ".3g")


def _ci(interval) -> str:
    return "-" if not interval else f"{_fmt(interval[0])} to {_fmt(interval[1])} %"


def _limits_paragraph(metrics: dict) -> str:
    """The photon-level ceiling of the timing pair and the room it leaves over the constant fraction."""
    lim, s = metrics.get("timing_photon_limits"), metrics["summary"]
    if not lim:
        return ""
    return (f"Photon-level ceiling (exact photon registration times of {lim['n_pairs']} simulated pairs, no "
            f"SiPM pulse, noise or sampling): first photon {_fmt(lim['first_photon_ps'])} ps, best single photon "
            f"{_fmt(lim['best_order_statistic_ps'])} ps (photon number {lim['best_order_statistic_k']}), best "
            f"linear combination of the first {lim['first']} {_fmt(lim['best_linear_ps'])} ps, maximum likelihood "
            f"{_fmt(lim['max_likelihood_ps'])} ps. A method reading the waveforms cannot be expected to time better "
            f"than the best of these (within the few-% uncertainty of a FWHM); it leaves "
            f"{_fmt(s['cfd_headroom_to_photon_ceiling_pct'])} % over the best CFD.")


def _figures(preset, test, preds: dict, energy_kev: np.ndarray, timing: dict) -> list[tuple[str, object]]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    figs = []
    half = np.array(preset.detector.size_mm) / 2
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, p in preds.items():
        err = (p[:, :2] - test.position_mm[:, :2]).ravel()
        ax.hist(err[np.isfinite(err)], bins=np.linspace(-6, 6, 121), histtype="step", label=name)
    ax.set(yscale="log", xlabel="positioning error x and y (mm)", ylabel="events")
    ax.legend(fontsize=8)
    figs.append(("Positioning error over the whole face", fig))

    shown = [m for m in ("anger", "gbt", "cnn") if m in preds]
    fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 4))
    for ax, name in zip(np.atleast_1d(axes), shown):
        ax.hist2d(preds[name][:, 0], preds[name][:, 1], bins=80, range=[[-half[0], half[0]], [-half[1], half[1]]],
                  cmap="magma")
        ax.set(title=name, xlabel="x (mm)", ylabel="y (mm)", aspect="equal")
    figs.append(("Estimated positions of the pencil-beam test grid (edge compression of Anger logic)", fig))

    fig, axes = plt.subplots(1, len(shown), figsize=(4.3 * len(shown), 3.6))
    for ax, name in zip(np.atleast_1d(axes), shown):
        rm = resolution_map(preds[name], test.beam_mm)
        im = ax.imshow(rm["fwhm_mm"], origin="lower", vmin=0, vmax=4, cmap="viridis",
                       extent=[rm["x_mm"][0], rm["x_mm"][-1], rm["y_mm"][0], rm["y_mm"][-1]])
        ax.set(title=f"{name}: FWHM per beam (mm)", xlabel="x (mm)", ylabel="y (mm)")
        fig.colorbar(im, ax=ax, shrink=0.8)
    figs.append(("Resolution maps (robust Gaussian-equivalent FWHM per pencil beam)", fig))

    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for name in ("anger", "cnn"):
        if name in preds:
            axes[0].scatter(test.position_mm[:, 2], preds[name][:, 2], s=1, alpha=0.3, label=name)
    axes[0].set(xlabel="true depth of interaction (mm)", ylabel="estimated (mm)")
    axes[0].legend(markerscale=8)
    axes[1].hist(energy_kev[np.isfinite(energy_kev)], bins=np.linspace(0, 700, 141), histtype="step")
    axes[1].set(xlabel="calibrated energy (keV)", ylabel="events")
    figs.append(("Depth of interaction and energy spectrum", fig))

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, est in timing["estimates"].items():
        err = est - timing["true_dt_ps"]
        axes[0].hist(err[np.isfinite(err)], bins=np.linspace(-600, 600, 121), histtype="step", label=name)
    axes[0].set(xlabel="time-difference error (ps)", ylabel="coincidences")
    axes[0].legend()
    for name in ("led", "cfd"):
        scan = timing[name]["scan_val_fwhm_ps"]
        axes[1].plot(list(scan), list(scan.values()), "o-", label=f"{name} (validation)")
    axes[1].set(xscale="log", xlabel="threshold (spe) / fraction", ylabel="CTR FWHM (ps)")
    axes[1].axhline(timing["cnn"]["ctr_fwhm_ps"] if "cnn" in timing else np.nan, color="k", ls="--", label="cnn (test)")
    axes[1].legend()
    figs.append(("Coincidence timing: error distributions and discriminator scans", fig))
    return figs


JOINT_COLUMNS = [("xy_fwhm_mm", "FWHM xy (mm)"), ("doi_mae_mm", "MAE DOI (mm)"),
                 ("energy_resolution_pct", "energy resolution (% FWHM)"), ("window_efficiency", "photopeak in window"),
                 ("scatter_in_window", "scatter in window"), ("ctr_fwhm_ps", "CTR FWHM (ps)"), ("ctr_slope", "CTR slope")]


def _joint_section(rep: HtmlReport, metrics: dict) -> None:
    """The joint network beside the separate models trained on the same monolithic-block coincidences."""
    c = metrics["joint_comparison"]
    rows = [{"method": name, **{col: metrics[key].get(k, np.nan) for k, col in JOINT_COLUMNS}}
            for name, key in (("joint network", "joint"), ("separate models", "joint_separate"))]
    for k in ("led", "cfd"):
        rows.append({"method": f"{k} (validation-scanned)", **{col: np.nan for _, col in JOINT_COLUMNS},
                     "CTR FWHM (ps)": c[k]["ctr_fwhm_ps"]})
    rep.heading("Joint network: position, energy and time from one network (monolithic-block pairs)")
    rep.table(rows, columns=["method"] + [col for _, col in JOINT_COLUMNS], floatfmt=".3g", na_rep="-")
    ch, crit = c["criteria"]["change_pct"], c["criteria"]
    sel = c["selection"]
    rep.paragraph(
        f"Same test pairs for every method ({sel['pairs']} pairs; {sel['events']} photopeak events and "
        f"{sel['pairs_both_photopeak']} pairs with both blocks in the photopeak by the summed-signal calibration). "
        f"Separate models: {c['separate_methods']}. Loss weights chosen on validation: {c.get('loss_weights')}. "
        f"Joint against separate: position FWHM {ch['xy_fwhm_mm']:+.3g} % "
        f"({'within' if crit['position_within_10pct'] else 'NOT within'} 10 %), DOI MAE {ch['doi_mae_mm']:+.3g} %, "
        f"energy resolution {ch['energy_resolution_pct']:+.3g} % "
        f"({'better' if crit['energy_better_than_summed_signal'] else 'NOT better'} than the summed signal), CTR "
        f"{ch['ctr_fwhm_ps']:+.3g} % ({'not worse' if crit['ctr_not_worse_than_timing_cnn'] else 'worse'} than the "
        f"timing CNN; 95 % paired bootstrap interval of the CTR improvement "
        f"{_fmt(c['ctr_improvement_ci']['ci_low_pct'])} to {_fmt(c['ctr_improvement_ci']['ci_high_pct'])} %). "
        "A regressed energy drawn towards 511 keV narrows the photopeak without measuring better: read the energy "
        "resolution with the scatter the window then accepts.")


def write_report(path: str | os.PathLike, preset, metrics: dict, test, preds: dict, energy_kev: np.ndarray,
                 timing: dict) -> None:
    """Write the HTML report (tables of every method, published values, figures) to ``path``."""
    pos_rows = [{"method": m, **{c: metrics[m].get(k, np.nan) for k, c in POS_COLUMNS}} for m in preds]
    t_cols = ["method", "CTR FWHM", "CTR FWTM", "FWHM (fit)", "slope (1 = unbiased)", "best setting"]
    t_rows = [dict(zip(t_cols, [m, metrics[m]["ctr_fwhm_ps"], metrics[m]["ctr_fwtm_ps"], metrics[m]["ctr_fwhm_gauss_ps"],
                                metrics[m].get("slope", np.nan), metrics[m].get("best_setting", np.nan)]))
              for m in ("led", "cfd", "cnn_timing", "cnn_timing_single_window") if m in metrics]
    s = metrics["summary"]
    rep = HtmlReport(f"Detector-level AI: {preset.name}", subtitle=preset.description)
    rep.heading("Positioning (mm; errors of the first-interaction point; plain widths by interpolation, "
                f"'fit' by Gaussian fit; edge band {preset.edge_mm} mm, edge bias = median outward error)")
    rep.table(pos_rows, columns=["method"] + [c for _, c in POS_COLUMNS], floatfmt=".3g", na_rep="-")
    rep.paragraph(f"Best deep-learning method {s['best_dl_method']}: FWHM ratio to Anger logic "
                  f"{_fmt(s['dl_over_anger_fwhm_ratio'])} (target \u2264 0.6), edge bias {_fmt(s['dl_edge_bias_mm'])} mm "
                  f"(target < 0.5): {'met' if s['positioning_target_met'] else 'NOT met'}.")
    rep.paragraph(f"Energy resolution at 511 keV: {_fmt(metrics['energy']['energy_resolution_pct'])} % FWHM (centre), "
                  f"{_fmt(metrics['energy']['energy_resolution_all_pct'])} % (whole face, regional gain).")
    rep.heading("Coincidence timing (ps)")
    rep.table(t_rows, columns=t_cols, floatfmt=".3g", na_rep="-")
    rep.paragraph(f"CNN improvement over the best CFD: {_fmt(s['cnn_ctr_improvement_over_cfd_pct'])} % "
                  f"(95 % paired bootstrap interval {_ci(s.get('cnn_ctr_improvement_over_cfd_ci95_pct'))}; "
                  f"target \u2265 15 %): {'met' if s['timing_target_met'] else 'NOT met'}.")
    limits = _limits_paragraph(metrics)
    if limits:
        rep.paragraph(limits)
    if "joint" in metrics:
        _joint_section(rep, metrics)
    rep.heading("Published results beside this study (same direction, not the same data)")
    pub_cols = ["published study and quantity", "published", "this study"]
    rep.table([dict(zip(pub_cols, r)) for r in _published_rows(metrics)], columns=pub_cols)
    if metrics.get("published_setup"):  # a preset reproducing a published set-up: each parameter and its source
        rep.heading("Reproduced set-up: parameters and where they come from (read / assumed / chosen)", level=3)
        rep.table(metrics["published_setup"], columns=["parameter", "value", "source", "reference"])
    for title, fig in _figures(preset, test, preds, energy_kev, timing):
        rep.heading(title, level=3)
        rep.figure(fig, dpi=90)
    rep.write(path)
