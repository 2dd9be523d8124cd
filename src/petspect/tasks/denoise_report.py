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


def judge(comparison: Comparison, model: str) -> dict[str, Any]:
    """The task's acceptance checks for ``model`` on the compared split (numbers and pass flags)."""
    m = comparison.metrics
    mod, gau = m.get(model, {}), m.get("gaussian", {})
    out: dict[str, Any] = {"model": model}
    if "psnr_db" in mod and "psnr_db" in gau:
        out["psnr_gain_over_gaussian_db"] = mod["psnr_db"] - gau["psnr_db"]
        out["beats_gaussian_psnr"] = out["psnr_gain_over_gaussian_db"] > 0
    if "nlm" in m and "psnr_db" in mod:
        out["psnr_gain_over_nlm_db"] = mod["psnr_db"] - m["nlm"]["psnr_db"]
        out["beats_nlm_psnr"] = out["psnr_gain_over_nlm_db"] > 0
    if "suvmean_bias_pct" in mod:
        out["organ_suvmean_bias_within_3pct"] = abs(mod["suvmean_bias_pct"]) <= 3.0
    if "suvmax_abs_bias_pct" in mod and "suvmax_abs_bias_pct" in gau:
        out["lesion_suvmax_abs_bias_below_gaussian"] = mod["suvmax_abs_bias_pct"] < gau["suvmax_abs_bias_pct"]
    for other in ("gaussian", "nlm"):
        if model in comparison.curves and other in comparison.curves:
            out[f"curve_fraction_below_{other}"] = curve_below(comparison.curves[model], comparison.curves[other])
    return out


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

    fig, axes = plt.subplots(1, len(tuning), figsize=(3.6 * len(tuning), 3.0), squeeze=False)
    for ax, (name, rec) in zip(axes[0], tuning.items()):
        ax.plot([s["value"] for s in rec["scores"]], [s["psnr_db"] for s in rec["scores"]], "o-")
        ax.axvline(rec["value"], color="k", ls=":")
        ax.set_xlabel(rec["parameter"])
        ax.set_ylabel("validation PSNR (dB)")
        ax.set_title(name)
    fig.tight_layout()
    return fig


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
                 checks: Mapping[str, Any] | None = None, facts: Mapping[str, Any] | None = None) -> Path:
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
    checks : mapping, optional
        :func:`judge` output.
    facts : mapping, optional
        Extra key-value facts (timings, sizes) shown in a table.
    """
    from petspect.report import HtmlReport

    rep = HtmlReport(title, subtitle="petspect demo")
    rep.paragraph(description)
    if facts:
        rep.table([{"fact": k, "value": v} for k, v in facts.items()], floatfmt=".4g")
    rep.heading("Metrics on the held-out test subjects")
    rep.paragraph("Against the full-dose OSEM reference, mean over test subjects. psnr_db/ssim/nrmse use the "
                  "reference range as data_range; biases are (method - reference) / reference in %, organs "
                  "(SUVmean) and lesions (SUVmax, SUVpeak in a 12 mm sphere); lesion_cr_pct is contrast recovery "
                  "against the true activity ratio; liver_cov_pct the liver's SD/mean. Bold: best value.")
    sel = {k: {c: v[c] for c in MAIN_COLUMNS if c in v} for k, v in comparison.metrics.items()}
    rep.metrics_table(sel, better=BETTER)
    rep.heading("Ultra-low-dose PET challenge conventions", level=3)
    rep.metrics_table({k: {c: v[c] for c in CHALLENGE_COLUMNS if c in v} for k, v in comparison.metrics.items()
                       if k != REFERENCE}, better=BETTER, floatfmt=".4f")
    rep.heading("Bias against the true activity", level=3)
    rep.metrics_table({k: {c: v[c] for c in TRUTH_COLUMNS if c in v} for k, v in comparison.metrics.items()},
                      better={c: "abs-lower" for c in TRUTH_COLUMNS})
    if checks:
        rep.heading("Acceptance checks", level=3)
        rep.table([{"check": k, "value": v} for k, v in checks.items()], floatfmt=".3f")
    rep.heading("Published results beside ours")
    ours = comparison.metrics.get(model, {})
    low = comparison.metrics.get(LOW, {})
    rows = [dict(r) for r in PUBLISHED]
    rows.append({"study": "this demo", "data": description.split(".")[0][:60], "method": f"{model} (image domain)",
                 "psnr_db": ours.get("psnr_db", math.nan),
                 "suv_bias_pct": f"{ours.get('suvmean_abs_bias_pct', math.nan):.2f} (mean |organ SUVmean bias|)"})
    rows.append({"study": "this demo", "data": "same", "method": "low-count input", "psnr_db": low.get("psnr_db", math.nan),
                 "suv_bias_pct": f"{low.get('suvmean_abs_bias_pct', math.nan):.2f}"})
    rep.table(rows, floatfmt=".2f")
    rep.paragraph("Same direction, not the same data: the published figures are for brain PET at 5 % dose with "
                  "their own PSNR convention; ours are simulated torsos at the demo's dose and voxel size.")
    rep.heading("Images")
    methods = [n for n in (LOW, "gaussian", "nlm", "bm4d", MAP, model) if n in comparison.example]
    fig, z = _image_figure(comparison.example, methods)
    rep.figure(fig, caption=f"subject {comparison.subjects[0]}, slice {z}: top, images on one grey scale; bottom, "
                            "difference to the full-dose reference")
    rep.heading("Noise-bias curves")
    rep.figure(_curve_figure(comparison.curves), caption="each method with increasing smoothing (Gaussian FWHM in mm, "
               "NLM strength, Gaussian post-filter of the model output); first setting labelled")
    rep.heading("Baseline tuning on the validation set")
    rep.table([{"baseline": n, "parameter": r["parameter"], "value": r["value"]} for n, r in tuning.items()])
    if tuning:
        rep.figure(_tuning_figure(tuning), caption="mean validation PSNR (challenge convention) per parameter value")
    if history:
        rep.heading("Training")
        rep.figure(_history_figure(history))
    return rep.write(out)
