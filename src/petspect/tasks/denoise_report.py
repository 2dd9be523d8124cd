"""The denoising report: images side by side, difference maps, noise-bias curves, tables, published results.

:func:`write_report` renders one self-contained ``index.html`` (:class:`petspect.report.HtmlReport`) from a
:class:`~petspect.tasks.compare.Comparison`; :func:`judge` states the acceptance checks of the task in numbers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from petspect.tasks.compare import LOW, MAP, REFERENCE, Comparison
from petspect.tasks.evaluate import BETTER

MAIN_COLUMNS = ("psnr_db", "ssim", "nrmse", "suvmean_bias_pct", "suvmean_abs_bias_pct", "suvmax_bias_pct",
                "suvpeak_bias_pct", "lesion_cr_pct", "liver_cov_pct")
CHALLENGE_COLUMNS = ("psnr_challenge_db", "ssim_challenge", "nrmse_challenge")
TRUTH_COLUMNS = ("suvmean_bias_vs_truth_pct", "suvmax_bias_vs_truth_pct", "suvpeak_bias_vs_truth_pct",
                 "lesion_suvmean_bias_vs_truth_pct")
#: Sanaat et al, J Nucl Med 2020 (docs/REFERENCE.md): 5 % dose brain PET, 3D U-Net
PUBLISHED = [
    {"study": "Sanaat et al, JNM 2020", "data": "brain FDG PET, 5 % dose", "method": "U-Net, image domain",
     "psnr_db": 31.7, "suv_bias_pct": "1.05 +- 1.44"},
    {"study": "Sanaat et al, JNM 2020", "data": "brain FDG PET, 5 % dose", "method": "U-Net, sinogram domain",
     "psnr_db": 37.3, "suv_bias_pct": "0.24 +- 0.96"},
]


def curve_below(curve: Sequence[Mapping[str, float]], other: Sequence[Mapping[str, float]]) -> float:
    """Fraction of ``curve``'s points whose liver noise is below ``other``'s at the same lesion contrast.

    ``other`` is linearly interpolated in contrast recovery; points outside its contrast range count as
    not below. NaN when no point can be compared.
    """
    pts = sorted((p["lesion_cr_pct"], p["liver_cov_pct"]) for p in other
                 if math.isfinite(p["lesion_cr_pct"]) and math.isfinite(p["liver_cov_pct"]))
    mine = [(p["lesion_cr_pct"], p["liver_cov_pct"]) for p in curve
            if math.isfinite(p["lesion_cr_pct"]) and math.isfinite(p["liver_cov_pct"])]
    if len(pts) < 2 or not mine:
        return math.nan
    xs, ys = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    below = [lo <= cr <= hi and cov < float(np.interp(cr, xs, ys)) for cr, cov in mine
             for lo, hi in [(xs.min(), xs.max())]]
    return float(np.mean(below))


#: the task's acceptance checks, fixed before the test split is read (written into summary.json first)
ACCEPTANCE_CHECKS: tuple[dict[str, str], ...] = (
    {"name": "beats_gaussian_psnr",
     "criterion": "model PSNR above the tuned, border-normalised Gaussian: paired 95 % interval of the "
                  "difference over test subjects above 0"},
    {"name": "psnr_gain_over_gaussian_at_least_1p5_db",
     "criterion": "mean paired PSNR gain over the Gaussian >= 1.5 dB (the aim)"},
    {"name": "beats_best_classical_psnr",
     "criterion": "model PSNR above the best classical method on validation: paired interval above 0"},
    {"name": "organ_suvmean_bias_within_3pct", "criterion": "|model mean organ SUVmean bias| <= 3 %"},
    {"name": "lesion_suvmax_abs_bias_below_gaussian",
     "criterion": "model mean |lesion SUVmax bias| below the Gaussian's"},
    {"name": "detectability_not_below_gaussian",
     "criterion": "model CHO d' >= the Gaussian's (point estimates; intervals in the table)"},
)


def acceptance_checks() -> list[dict[str, str]]:
    """The checks :func:`judge` evaluates, as written before the test split is read."""
    return [dict(c) for c in ACCEPTANCE_CHECKS]


def _col(comparison: Comparison, method: str, metric: str) -> np.ndarray:
    return np.array([float(s.get(method, {}).get(metric, math.nan)) for s in comparison.per_subject])


def judge(comparison: Comparison, model: str, *, n_boot: int = 2000, seed: int = 0) -> list[dict[str, Any]]:
    """Evaluate :data:`ACCEPTANCE_CHECKS` for ``model``: one row per check with its value and pass/fail.

    A check whose inputs are missing (no Gaussian, no lesions) is reported with ``passed = None``.
    """
    from petspect.evaluation import paired_delta_ci

    m = comparison.metrics
    mod, gau = m.get(model, {}), m.get("gaussian", {})
    rows = []

    def add(name: str, value: Any, passed: Any, detail: str = "") -> None:
        crit = next(c["criterion"] for c in ACCEPTANCE_CHECKS if c["name"] == name)
        rows.append({"check": name, "criterion": crit, "value": value, "passed": passed, "detail": detail})

    if "gaussian" in m and "psnr_db" in mod:
        d = paired_delta_ci(_col(comparison, model, "psnr_db"), _col(comparison, "gaussian", "psnr_db"),
                            n_boot=n_boot, seed=seed)
        add("beats_gaussian_psnr", d.value, bool(d.low > 0), f"95 % CI [{d.low:.2f}, {d.high:.2f}] dB")
        add("psnr_gain_over_gaussian_at_least_1p5_db", d.value, bool(d.value >= 1.5))
    else:
        add("beats_gaussian_psnr", None, None, "no Gaussian")
        add("psnr_gain_over_gaussian_at_least_1p5_db", None, None, "no Gaussian")
    best = comparison.comparator
    if best and "psnr_db" in mod:
        d = paired_delta_ci(_col(comparison, model, "psnr_db"), _col(comparison, best, "psnr_db"), n_boot=n_boot,
                            seed=seed)
        add("beats_best_classical_psnr", d.value, bool(d.low > 0), f"against {best}: 95 % CI [{d.low:.2f}, {d.high:.2f}] dB")
    else:
        add("beats_best_classical_psnr", None, None, "no classical method")
    if "suvmean_bias_pct" in mod:
        add("organ_suvmean_bias_within_3pct", mod["suvmean_bias_pct"], bool(abs(mod["suvmean_bias_pct"]) <= 3.0))
    else:
        add("organ_suvmean_bias_within_3pct", None, None, "no organs")
    if "suvmax_abs_bias_pct" in mod and "suvmax_abs_bias_pct" in gau:
        add("lesion_suvmax_abs_bias_below_gaussian", mod["suvmax_abs_bias_pct"] - gau["suvmax_abs_bias_pct"],
            bool(mod["suvmax_abs_bias_pct"] < gau["suvmax_abs_bias_pct"]),
            f"model {mod['suvmax_abs_bias_pct']:.2f} %, Gaussian {gau['suvmax_abs_bias_pct']:.2f} %")
    else:
        add("lesion_suvmax_abs_bias_below_gaussian", None, None, "no lesions or no Gaussian")
    if "cho_dprime" in mod and "cho_dprime" in gau:
        add("detectability_not_below_gaussian", mod["cho_dprime"] - gau["cho_dprime"],
            bool(mod["cho_dprime"] >= gau["cho_dprime"]),
            f"model {mod['cho_dprime']:.2f}, Gaussian {gau['cho_dprime']:.2f}")
    else:
        add("detectability_not_below_gaussian", None, None, "CHO not computed")
    return rows


def _slice_index(example: Mapping[str, Any]) -> int:
    les = example.get("lesions")
    ref = example[REFERENCE].numpy()
    if les is not None and les.numpy().any():
        return int(np.argmax((les.numpy() > 0).sum(axis=(1, 2))))
    return int(np.argmax(ref.sum(axis=(1, 2))))


def _image_figure(example: Mapping[str, Any], methods: Sequence[str]) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = _slice_index(example)
    ref = example[REFERENCE].numpy()[z]
    vmax = float(np.percentile(ref, 99.8)) or 1.0
    names = [n for n in (*methods, REFERENCE) if n in example]
    fig, axes = plt.subplots(2, len(names), figsize=(2.3 * len(names), 4.9), squeeze=False)
    for j, n in enumerate(names):
        img = example[n].numpy()[z]
        axes[0, j].imshow(img, cmap="gray_r", vmin=0, vmax=vmax)
        axes[0, j].set_title(n, fontsize=9)
        if n != REFERENCE:
            axes[1, j].imshow(img - ref, cmap="RdBu_r", vmin=-0.5 * vmax, vmax=0.5 * vmax)
            axes[1, j].set_title(f"{n} - reference", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    return fig, z


def _curve_figure(curves: Mapping[str, Sequence[Mapping[str, float]]]) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.2, 4.4))
    for name, pts in curves.items():
        x = [p["lesion_cr_pct"] for p in pts]
        y = [p["liver_cov_pct"] for p in pts]
        style = "*" if len(pts) == 1 else "o-"
        ax.plot(x, y, style, label=name, ms=9 if len(pts) == 1 else 4)
        if len(pts) > 1:
            ax.annotate(str(pts[0]["setting"]), (x[0], y[0]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("lesion contrast recovery (%)")
    ax.set_ylabel("liver coefficient of variation (%)")
    ax.set_title("noise vs contrast (lower right is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _tuning_figure(tuning: Mapping[str, Mapping[str, Any]]) -> Any:
    import matplotlib.pyplot as plt

    one_d = {n: r for n, r in tuning.items() if r.get("tuning") and len(r["params"]) == 1}
    fig, axes = plt.subplots(1, max(1, len(one_d)), figsize=(3.6 * max(1, len(one_d)), 3.0), squeeze=False)
    for ax, (name, rec) in zip(axes[0], one_d.items()):
        (param, value), = rec["params"].items()
        trials = sorted(rec["tuning"]["trials"], key=lambda t: t["params"][param])
        ax.plot([t["params"][param] for t in trials], [t["score"] for t in trials], "o-")
        ax.axvline(value, color="k", ls=":")
        ax.set_xlabel(param)
        ax.set_ylabel("validation PSNR (dB)")
        ax.set_title(name)
    fig.tight_layout()
    return fig


def _with_ci(metrics: Mapping[str, Mapping[str, Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    """Rows ``method, metric: "value [low, high]"`` for a table with intervals."""
    rows = []
    for m, v in metrics.items():
        row: dict[str, Any] = {"method": m}
        for c in columns:
            if c in v:
                ci = v.get(f"{c}_ci95")
                ok = isinstance(ci, (list, tuple)) and all(isinstance(x, float) and math.isfinite(x) for x in ci)
                row[c] = f"{v[c]:.3g} [{ci[0]:.3g}, {ci[1]:.3g}]" if ok else f"{v[c]:.3g}"
        rows.append(row)
    return rows


def _history_figure(history: Sequence[Mapping[str, float]]) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.0, 3.0))
    ep = [h["epoch"] for h in history]
    ax.plot(ep, [h.get("train_loss", math.nan) for h in history], label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if any("val_psnr" in h for h in history):
        ax2 = ax.twinx()
        ax2.plot(ep, [h.get("val_psnr", math.nan) for h in history], "C1", label="validation PSNR")
        ax2.set_ylabel("validation patch PSNR (dB)")
    ax.set_title("training")
    fig.tight_layout()
    return fig


def write_report(out: str | os.PathLike, comparison: Comparison, *, model: str, title: str, description: str,
                 tuning: Mapping[str, Mapping[str, Any]], history: Sequence[Mapping[str, float]] = (),
                 checks: Sequence[Mapping[str, Any]] | None = None, facts: Mapping[str, Any] | None = None,
                 network_choices: Mapping[str, Any] | None = None) -> Path:
    """Write the report ``index.html`` to ``out`` (a file path); returns it.

    Parameters
    ----------
    out : path
    comparison : Comparison
    model : str
        The trained model's method name in the comparison.
    title, description : str
    tuning : mapping
        :func:`petspect.tasks.baselines.describe_baselines` output.
    history : sequence of dict
        The trainer's per-epoch records.
    checks : sequence of dict, optional
        :func:`judge` output.
    facts : mapping, optional
        Extra key-value facts (timings, sizes, test_scored, inverse crime) shown in a table.
    network_choices : mapping, optional
        Each network's options chosen on validation.
    """
    from petspect.report import HtmlReport

    rep = HtmlReport(title, subtitle="petspect denoising study")
    rep.paragraph(description)
    if facts:
        rep.table([{"fact": k, "value": v} for k, v in facts.items()], floatfmt=".4g")
    if checks:
        rep.heading("Acceptance checks (written before the test split was read)")
        rep.table([{k: r.get(k) for k in ("check", "passed", "value", "detail", "criterion")} for r in checks],
                  floatfmt=".3f")
        failed = [r["check"] for r in checks if r.get("passed") is False]
        rep.paragraph("Failed: " + (", ".join(failed) if failed else "none") + ". A failed check is reported, "
                      "not tuned away: the test split is read once per configuration (test_scored).")
    rep.heading("Metrics on the held-out test subjects")
    rep.paragraph("Against the full-dose OSEM reference; mean over test subjects with the 95 % bootstrap interval "
                  "over subjects in brackets. psnr_db uses the reference range as data range; biases are (method - "
                  "reference) / reference in %, organs (SUVmean) and lesions (SUVmax); total_activity_ratio is "
                  "output total / input total; cho_dprime the channelised Hotelling observer detectability of the "
                  "lesions. " + (f"Paired differences are against {comparison.comparator}, the best classical "
                                 "method on validation; a method is said to beat it only when the interval of "
                                 "the difference excludes 0." if comparison.comparator else ""))
    cols = ("psnr_db", "suvmean_bias_pct", "suvmax_bias_pct", "total_activity_ratio", "cho_dprime", "lesion_cr_pct",
            "liver_cov_pct")
    rep.table(_with_ci(comparison.metrics, cols))
    if comparison.comparator:
        rep.heading(f"Paired differences against {comparison.comparator}", level=3)
        rep.table([{"method": mth, **{f"delta_{c}": f"{v[f'delta_{c}']:.3g} [{v[f'delta_{c}_ci95'][0]:.3g}, "
                                                    f"{v[f'delta_{c}_ci95'][1]:.3g}]"
                                      for c in ("psnr_db", "ssim", "suvmax_abs_bias_pct", "cho_dprime")
                                      if f"delta_{c}_ci95" in v and None not in v[f"delta_{c}_ci95"]
                                      and all(math.isfinite(x) for x in v[f"delta_{c}_ci95"])}}
                   for mth, v in comparison.metrics.items() if any(k.startswith("delta_") for k in v)])
    sel = {k: {c: v[c] for c in MAIN_COLUMNS if c in v} for k, v in comparison.metrics.items()}
    rep.heading("All means", level=3)
    rep.metrics_table(sel, better=BETTER)
    rep.heading("Ultra-low-dose PET challenge conventions", level=3)
    rep.metrics_table({k: {c: v[c] for c in CHALLENGE_COLUMNS if c in v} for k, v in comparison.metrics.items()
                       if k != REFERENCE}, better=BETTER, floatfmt=".4f")
    rep.heading("Bias against the true activity", level=3)
    rep.metrics_table({k: {c: v[c] for c in TRUTH_COLUMNS if c in v} for k, v in comparison.metrics.items()},
                      better={c: "abs-lower" for c in TRUTH_COLUMNS})
    rep.heading("Detectability", level=3)
    rep.paragraph(str(comparison.cho.get("method", "")))
    if comparison.calibration:
        rep.heading("Uncertainty of the network")
        rep.paragraph("Uncertainty map: the standard deviation over the 8 test-time augmentations (in-plane flips "
                      "and quarter turns), not MC dropout or an ensemble. Calibration: fraction of body voxels whose "
                      "error against the full-dose reference lies within 1 and 2 predicted SD (a calibrated Gaussian "
                      "map gives 0.683 and 0.954); sigma_scale_for_68 is the factor the map would need. The reference "
                      "is itself noisy, so part of every error is the reference's noise.")
        rep.table([{"model": k, **{c: v[c] for c in ("within_1sigma", "within_2sigma", "expected_1sigma",
                                                       "expected_2sigma", "sigma_scale_for_68", "n_voxels")}}
                   for k, v in comparison.calibration.items()], floatfmt=".3f")
    rep.heading("Published results beside ours")
    ours = comparison.metrics.get(model, {})
    low = comparison.metrics.get(LOW, {})
    rows = [dict(r) for r in PUBLISHED]
    rows.append({"study": "this study", "data": description.split(".")[0][:60], "method": f"{model} (image domain)",
                 "psnr_db": ours.get("psnr_db", math.nan),
                 "suv_bias_pct": f"{ours.get('suvmean_abs_bias_pct', math.nan):.2f} (mean |organ SUVmean bias|)"})
    rows.append({"study": "this study", "data": "same", "method": "low-count input", "psnr_db": low.get("psnr_db", math.nan),
                 "suv_bias_pct": f"{low.get('suvmean_abs_bias_pct', math.nan):.2f}"})
    rep.table(rows, floatfmt=".2f")
    rep.paragraph("Same direction, not the same data: the published figures are for brain PET at 5 % dose with "
                  "their own PSNR convention; ours are simulated torsos at the study's dose and voxel size.")
    rep.heading("Images")
    methods = [n for n in (LOW, "gaussian", "nlm", "ct_guided", "bm4d", MAP, model) if n in comparison.example]
    fig, z = _image_figure(comparison.example, methods)
    rep.figure(fig, caption=f"subject {comparison.subjects[0]}, slice {z}: top, images on one grey scale; bottom, "
                            "difference to the full-dose reference")
    if comparison.curves:
        rep.heading("Noise-bias curves")
        rep.figure(_curve_figure(comparison.curves), caption="each method with increasing smoothing (Gaussian FWHM in "
                   "mm, NLM strength, Gaussian post-filter of the model output); tuned methods as single points")
    rep.heading("Tuning on the validation split (same search and budget for every method)")
    rep.table([{"method": n, "params": ", ".join(f"{k} = {v:g}" for k, v in r["params"].items()),
                "preserve_total": r["preserve_total"], "uses CT": r["uses_ct"],
                "trials": len(r["tuning"]["trials"]) if r.get("tuning") else "",
                "grid": r["tuning"]["grid_size"] if r.get("tuning") else "",
                "validation psnr_db": max(r["post_processing_scores"].values()) if r.get("post_processing_scores") else ""}
               for n, r in tuning.items()], floatfmt=".3f")
    for name, ch in (network_choices or {}).items():
        rep.paragraph(f"{name}: options chosen on validation: {ch}")
    if tuning:
        rep.figure(_tuning_figure(tuning), caption="mean validation PSNR per parameter value (one-parameter methods)")
    if history:
        rep.heading("Training")
        rep.figure(_history_figure(history))
    return rep.write(out)
