"""Checks, summary and HTML report of ``petspect study spect-scatter`` (:mod:`petspect.evaluation.study`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from petspect.ac.study_report import bias_maps_figure

__all__ = ["acceptance_checks", "write_spect_scatter_study"]

ORDER = ("tew", "dl_scatter", "dl_scatter_emission", "no_scatter", "chang")


def acceptance_checks(metrics: dict[str, dict[str, Any]], by_tracer: dict[str, dict[str, dict[str, float]]]):
    """Acceptance checks, fixed before the test split is read (thresholds are constants, never tuned)."""
    from petspect.evaluation.study import Check

    def get(m, k, src=metrics):
        return float(src.get(m, {}).get(k, math.nan))

    out = []
    for k, what in (("scatter_nrmse_pct", "scatter NRMSE"), ("suv_bias_pct_max_abs", "largest regional bias")):
        d, t = get("dl_scatter", k), get("tew", k)
        out.append(Check(f"dl_scatter: {what} below TEW's", bool(d < t), f"{d:.2f} % vs {t:.2f} %"))
    d = get("dl_scatter", "suv_bias_pct_max_abs")
    out.append(Check("dl_scatter: largest regional bias against the true-scatter OSEM < 5 %", bool(d < 5.0),
                     f"{d:.2f} %"))
    second = by_tracer.get("sestamibi", {})
    d, t = get("dl_scatter", "scatter_nrmse_pct", second), get("tew", "scatter_nrmse_pct", second)
    out.append(Check("dl_scatter: scatter NRMSE below TEW's on the tracer it was not trained on (sestamibi)",
                     bool(d < t), f"{d:.2f} % vs {t:.2f} %"))
    return out


def _profile_figure(title: str, curves: dict[str, Any]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    for n, v in curves.items():
        ax.plot(v, label=n, lw=2.0 if n == "true" else 1.2, ls=":" if n == "photopeak" else "-")
    ax.set_xlabel("detector column")
    ax.set_ylabel("counts")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    return fig


def write_spect_scatter_study(out: Path, cfg, result: dict[str, Any]):
    """Write metrics.json, summary.json and the report; returns the :class:`StudySummary`."""
    import matplotlib.pyplot as plt

    from petspect.evaluation.study import StudySummary, write_study
    from petspect.report.html import HtmlReport

    metrics = result["metrics"]
    checks = acceptance_checks(metrics, result["by_tracer"])
    summary = StudySummary(
        task="spect-scatter", preset=cfg.preset, seed=cfg.seed, data=result["data"], inverse_crime=False,
        test_scored=int(result["scoring"].test_scored),
        splits={"training": cfg.n_train, "validation": cfg.n_val, "test": len(result["subjects"])},
        tuned=result["tuned"], checks=checks, wall_s=result["wall_s"], device="cpu",
        notes=["truth: the simulation's expected photopeak scatter (broad-beam build-up model of "
               "petspect.physics.spect_scatter, parameters drawn per subject); data projected from a 2x finer phantom "
               "onto the reconstruction's detector pixels, Poisson noise, count level drawn in 0.5-1.5x",
               "the network learns the simulator's scatter model: its advantage over TEW on measured data is not "
               "shown by this study (no Monte Carlo or phantom measurement here)",
               "regional bias of scatter methods: OSEM (CT-based AC) with each estimate against OSEM with the true "
               "scatter; chang: Chang's first-order AC of the OSEM without attenuation (TEW scatter) against the "
               "OSEM with the CT's mu in the projector (same TEW scatter)",
               "dl_scatter takes photopeak, both TEW windows and the CT's attenuation line integrals; "
               "dl_scatter_emission the three windows only; both trained on mdp, tested on mdp and sestamibi",
               "suv_bias_pct_mean is the mean of the signed regional biases"],
        extra={"by_tracer": result["by_tracer"], "subjects": result["subjects"]})
    rep = HtmlReport("petspect study spect-scatter",
                     f"preset {cfg.preset}: SPECT scatter by a network against TEW; Chang against CT-based AC")
    rep.paragraph("Scatter estimates are compared with the simulation's true photopeak scatter; each estimate is "
                  "used as the additive term of an OSEM with CT-based attenuation, whose regional means are compared "
                  "with the OSEM that uses the true scatter.")
    rep.metrics_table({m: metrics[m] for m in ORDER if m in metrics})
    rep.heading("Acceptance checks")
    rep.table([{"check": c.check, "passed": c.passed, "detail": c.detail} for c in checks])
    rep.heading("By test tracer (means over subjects)")
    rows = []
    for tracer, d in result["by_tracer"].items():
        for m, vals in d.items():
            rows.append({"tracer": tracer, "method": m, **{k: round(v, 2) for k, v in vals.items()}})
    rep.table(rows)
    rep.heading("Scatter profiles")
    for title, curves in result["profiles"]:
        fig = _profile_figure(title, curves)
        rep.figure(fig, title)
        plt.close(fig)
    rep.heading("Bias maps")
    for title, maps in result["figures"]:
        fig = bias_maps_figure(title, maps, "bias vs true-scatter OSEM (%)")
        rep.figure(fig, title)
        plt.close(fig)
    write_study(out, metrics, summary, rep, required=["suv_bias_pct_max_abs", "suv_bias_pct_mean"])
    return summary
