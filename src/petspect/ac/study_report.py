"""Checks, summary and HTML report of ``petspect study ac`` (written with :mod:`petspect.evaluation.study`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["write_ac_study"]

ORDER = ("ct_ac", "nac", "seg_ac", "seg_ac_bone", "seg_ac_nac", "mlaa", "dl_nac_sct", "dl_mr_sct", "dl_direct",
         "dl_tof_acf", "dl_scatter")


def _checks(metrics: dict[str, dict[str, Any]]):
    """Acceptance checks of issue #18, fixed before the test split is read (their thresholds are constants)."""
    from petspect.evaluation.study import Check

    out = []
    seg = metrics.get("seg_ac", {}).get("suv_bias_pct_max_abs", math.nan)
    for m in ("dl_nac_sct", "dl_mr_sct"):
        v = metrics.get(m, {}).get("suv_bias_pct_max_abs", math.nan)
        out.append(Check(f"{m}: largest regional SUV bias < 5 %", bool(v < 5.0), f"{v:.2f} %"))
        out.append(Check(f"{m}: largest regional SUV bias below seg_ac's", bool(v < seg), f"{v:.2f} % vs {seg:.2f} %"))
    return out


def bias_maps_figure(title: str, maps: dict[str, Any], colorbar_label: str):
    """One row of signed bias maps (%, -20..+20), one panel per method in the order of ``maps``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(maps), figsize=(2.1 * len(maps), 2.4))
    for ax, (n, bias_pct) in zip(axes, maps.items()):
        im = ax.imshow(bias_pct, cmap="RdBu_r", vmin=-20, vmax=20)
        ax.set_title(n, fontsize=8)
        ax.axis("off")
    fig.colorbar(im, ax=axes, shrink=0.7, label=colorbar_label)
    fig.suptitle(title, fontsize=9)
    return fig


def _figure(title: str, maps: dict[str, Any]):
    return bias_maps_figure(title, {n: maps[n] for n in ORDER if n in maps}, "bias vs CT-AC (%)")


def write_ac_study(out: Path, cfg, result: dict[str, Any]):
    """Write metrics.json, summary.json and the report; returns the :class:`StudySummary`."""
    import matplotlib.pyplot as plt

    from petspect.evaluation.study import StudySummary, write_study
    from petspect.report.html import HtmlReport

    metrics = result["metrics"]
    checks = _checks(metrics)
    n_test = len(result["subjects"])
    summary = StudySummary(
        task="ac", preset=cfg.preset, seed=cfg.seed, data=result["data"], inverse_crime=False,
        test_scored=int(result["scoring"].test_scored),
        splits={"training": cfg.n_train * len(cfg.regions), "validation": cfg.n_val * len(cfg.regions),
                "test": n_test},
        tuned=result["tuned"], checks=checks, wall_s=result["wall_s"], device="cpu",
        notes=["reference: ct_ac (the CT's mu map, same raw data, same SSS scatter estimation); bias = regional mean "
               "of each method's PET against ct_ac's, over tissue labels",
               "data made from a 2x finer phantom with a 5 mm detector blur and SSS scatter of the fine truth; "
               "reconstruction with smoothed delayed randoms and SSS tail-fitted scatter per method's mu map",
               "networks trained on FDG only; test on FDG and on a second tracer (torso PSMA, brain amyloid)",
               "dl_tof_acf: attenuation line integrals predicted from the TOF sinogram (TOF bins as channels); its "
               "scatter is simulated with the NAC outline's water map. dl_scatter: CT-based attenuation, scatter "
               "predicted from the prompts and attenuation factors instead of SSS; scatter_nrmse_pct of ct_ac is "
               "SSS's error against the simulation's true scatter",
               "the DL scatter estimate for SPECT against TEW is its own study: petspect study spect-scatter",
               "suv_bias_pct_mean is the mean of the signed regional biases"],
        extra={"by_tracer_max_abs_bias_pct": result["by_tracer"], "subjects": result["subjects"]})
    rep = HtmlReport("petspect study ac", f"preset {cfg.preset}: CT-free attenuation correction")
    rep.paragraph("Every method's map is used to reconstruct the PET again from its raw TOF data (scatter "
                  "re-estimated by SSS with that map); the bias is measured against the CT-based reconstruction.")
    rep.metrics_table({m: metrics[m] for m in ORDER if m in metrics})
    rep.heading("Acceptance checks")
    rep.table([{"check": c.check, "passed": c.passed, "detail": c.detail} for c in checks])
    rep.heading("Largest regional bias by test tracer (mean over subjects, %)")
    rep.table([{"tracer": k, **{m: round(v, 2) for m, v in d.items()}} for k, d in result["by_tracer"].items()])
    rep.heading("Bias maps (first slice)")
    for title, maps in result["figures"]:
        fig = _figure(title, maps)
        rep.figure(fig, title)
        plt.close(fig)
    write_study(out, metrics, summary, rep, required=["suv_bias_pct_max_abs", "suv_bias_pct_mean"])
    return summary
