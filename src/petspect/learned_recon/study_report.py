"""Summary, acceptance checks and HTML report of ``petspect study recon`` (see :mod:`petspect.learned_recon.study`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["finish", "judge"]

BETTER = {"nrmse_pct": "lower", "psnr_db": "higher", "suvmean_bias_pct": "abs-lower", "suvmax_bias_pct": "abs-lower",
          "poisson_deviance": "lower", "wall_s": "lower", "nrmse_vs_full_osem_pct": "lower"}


def _col(per_subject, method: str, metric: str) -> np.ndarray:
    return np.array([float(r.get(method, {}).get(metric, math.nan)) for r in per_subject])


def judge(pet: dict[str, Any], spect: dict[str, Any], n_boot: int, seed: int,
          tof: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Evaluate the acceptance checks (:data:`petspect.learned_recon.study.ACCEPTANCE_CHECKS`, in that order)."""
    from petspect.evaluation import paired_delta_ci
    from petspect.learned_recon.study_common import ACCEPTANCE_CHECKS

    ps, ss = pet["per_subject"], spect["per_subject"]
    out = []
    for name, other in (("osem", 0), ("map_rdp", 1)):
        d = paired_delta_ci(_col(ps, name, "nrmse_pct"), _col(ps, "unrolled", "nrmse_pct"), n_boot=n_boot, seed=seed)
        ok = bool(d.excludes_zero() and d.low > 0)
        out.append({"check": ACCEPTANCE_CHECKS[other], "passed": ok,
                    "detail": f"nrmse_pct({name}) - nrmse_pct(unrolled) = {d.value:.3f} [{d.low:.3f}, {d.high:.3f}]"})
    ratio = float(np.mean(_col(ps, "osem", "wall_s")) / max(np.mean(_col(ps, "direct", "wall_s")), 1e-12))
    out.append({"check": ACCEPTANCE_CHECKS[2], "passed": ratio >= 20.0,
                "detail": f"OSEM {np.mean(_col(ps, 'osem', 'wall_s')):.4f} s, direct "
                          f"{np.mean(_col(ps, 'direct', 'wall_s')):.4f} s per subject on the CPU: {ratio:.1f}x"})
    d = paired_delta_ci(_col(ps, "image_unet", "nrmse_pct"), _col(ps, "projection_unet", "nrmse_pct"), n_boot=n_boot,
                        seed=seed)
    winner = ("projection domain" if d.low > 0 else "image domain" if d.high < 0 else "neither (interval includes 0)")
    out.append({"check": ACCEPTANCE_CHECKS[3], "passed": None,
                "detail": f"nrmse_pct(image_unet) - nrmse_pct(projection_unet) = {d.value:.3f} [{d.low:.3f}, "
                          f"{d.high:.3f}]: {winner} wins (reported, not a pass/fail check)"})
    d = paired_delta_ci(_col(ss, "sparse_osem", "nrmse_vs_full_osem_pct"),
                        _col(ss, "synth_views_osem", "nrmse_vs_full_osem_pct"), n_boot=n_boot, seed=seed)
    out.append({"check": ACCEPTANCE_CHECKS[4], "passed": bool(d.excludes_zero() and d.low > 0),
                "detail": f"NRMSE to full-view OSEM: sparse - synthesised = {d.value:.3f} [{d.low:.3f}, {d.high:.3f}] %"})
    for i, rows, base, learned in ((5, ss, "spect_low_osem", "spect_projection_unet"),
                                   (6, (tof or {}).get("per_subject"), "tof_osem", "tof_projection_unet")):
        if not rows:
            out.append({"check": ACCEPTANCE_CHECKS[i], "passed": None, "detail": "not run"})
            continue
        d = paired_delta_ci(_col(rows, base, "nrmse_pct"), _col(rows, learned, "nrmse_pct"), n_boot=n_boot, seed=seed)
        winner = (learned if d.low > 0 else base if d.high < 0 else "neither (interval includes 0)")
        out.append({"check": ACCEPTANCE_CHECKS[i], "passed": None,
                    "detail": f"nrmse_pct({base}) - nrmse_pct({learned}) = {d.value:.3f} [{d.low:.3f}, {d.high:.3f}]: "
                              f"{winner} wins (reported, not a pass/fail check)"})
    return out


def _figure(example: dict[str, Any], methods, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["truth", *methods]
    vmax = float(np.percentile(example["truth"], 99.5)) or 1.0
    fig, axes = plt.subplots(1, len(keys), figsize=(2.1 * len(keys), 2.4))
    for ax, k in zip(np.atleast_1d(axes), keys):
        ax.imshow(example[k], cmap="gray_r", vmin=0, vmax=vmax)
        ax.set_title(k, fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    return fig


def _maps_figure(maps: dict[str, np.ndarray], title: str):
    import matplotlib.pyplot as plt

    vmax = max(float(np.percentile(m, 99)) for m in maps.values()) or 1.0
    fig, axes = plt.subplots(1, len(maps), figsize=(2.1 * len(maps), 2.2))
    for ax, (k, m) in zip(np.atleast_1d(axes), maps.items()):
        ax.imshow(m, aspect="auto", cmap="magma", vmin=0, vmax=vmax)
        ax.set_title(k, fontsize=8)
        ax.set_xlabel("view", fontsize=7)
        ax.set_ylabel("plane", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _summarise(part: dict[str, Any], groups: list[tuple[tuple[str, ...], str]], s: Any) -> dict[str, Any]:
    """Intervals of every method of a part, each group of methods with paired deltas against its own comparator."""
    from petspect.evaluation import summarise_methods

    out: dict[str, Any] = {}
    for methods, comparator in groups:
        rows = [{m: r[m] for m in methods if m in r} for r in part["per_subject"]]
        out.update(summarise_methods(rows, comparator=comparator, n_boot=s.n_boot, seed=s.seed))
        for m in methods:
            out.setdefault(m, {}).update(part["cho"]["by_method"].get(m, {"cho_dprime": None, "cho_dprime_ci95": None}))
    return out


def finish(out_p: Path, s: Any, parts: dict[str, dict[str, Any]], times: dict[str, float], configs: dict[str, Any],
           say) -> dict[str, Any]:
    """Intervals, checks, report and the three study files (``parts`` and ``configs``: pet, tof, spect)."""
    from petspect.evaluation.study import Check, StudySummary, write_study
    from petspect.learned_recon.study_common import PET_METHODS, REQUIRED, SPECT_METHODS, TOF_METHODS
    from petspect.learned_recon.study_spect import LOW_METHODS, SPARSE_METHODS
    from petspect.report import HtmlReport
    from petspect.simulate.no_inverse_crime import describe

    pet, tof, spect = parts["pet"], parts["tof"], parts["spect"]
    metrics = _summarise(pet, [(PET_METHODS, pet["comparator"])], s)
    metrics.update(_summarise(tof, [(TOF_METHODS, tof["comparator"])], s))
    metrics.update(_summarise(spect, [(SPARSE_METHODS, spect["comparator"]), (LOW_METHODS, spect["low_comparator"])],
                              s))
    for m in list(PET_METHODS) + list(TOF_METHODS) + list(SPECT_METHODS):
        for k in REQUIRED:  # a metric with no finite value on any subject (no lesion in the slab): null, said here
            metrics[m].setdefault(k, None)
    checks = judge(pet, spect, s.n_boot, s.seed, tof=tof)
    desc = {k: describe(v) for k, v in configs.items()}
    notes = [f"PET: {pet['cho']['note']}", f"TOF PET: {tof['cho']['note']}", f"SPECT: {spect['cho']['note']}",
             "metrics against the true activity on the reconstruction grid (fine truth averaged); deltas: "
             f"PET against {pet['comparator']} (best classical on validation), TOF PET against tof_osem, SPECT "
             "sparse-view methods against sparse_osem, SPECT low-count methods against spect_low_osem",
             "wall_s: one subject's reconstruction from its data on this machine's CPU, shared with other jobs "
             "(timings are indicative), system model built beforehand for every method alike",
             f"poisson_deviance: per projection bin, against the data the method was given (PET and TOF PET: the "
             f"{s.dose_percent:g} % dose prompts with their estimated randoms and scatter; SPECT low-count methods: the "
             f"{s.spect_dose_percent:g} % projections; SPECT sparse-view methods: all measured full-count views, so "
             "sparse- and synthesised-view images are also judged on the views they did not use)",
             f"TOF PET cohort: {s.tof_shape} voxels of {s.tof_voxel_mm:g} mm, TOF "
             + (f"{s.tof_bins} bins of {s.tof_bin_width_ps:g} ps" if s.tof_bins else "binning of the scanner")
             + " (the scanner's 214 ps FWHM resolution); thinner and coarser than the non-TOF slab for CPU time"]
    summary = StudySummary(
        task="recon", preset=s.preset, seed=int(s.seed),
        data={k: {"cohort": configs[k].to_dict(), "simulation": desc[k]} for k in ("pet", "tof", "spect")},
        inverse_crime=any(bool(d["inverse_crime"]) for d in desc.values()),
        test_scored=max(int(p["scoring"]["test_scored"]) for p in parts.values()),
        splits={k: parts[k]["splits"] for k in ("pet", "tof", "spect")},
        tuned={**pet["tuned"], "specs": pet["specs"], "image_unet_input": pet["image_unet_input"],
               "tof": {**tof["tuned"], "specs": tof["specs"]},
               "spect": {"osem": spect["spec"], "sparse_osem": spect["sparse_spec"], **spect["tuned"],
                         "low_specs": spect["low_specs"]}},
        checks=[Check(c["check"], c["passed"], c["detail"]) for c in checks], wall_s=dict(times), device="cpu",
        notes=notes,
        extra={"inverse_crime_by_part": {k: desc[k]["inverse_crime"] for k in ("pet", "tof", "spect")},
               "test_scoring": {k: parts[k]["scoring"] for k in ("pet", "tof", "spect")},
               "subjects": {k: parts[k]["subjects"] for k in ("pet", "tof", "spect")},
               "per_subject": {k: parts[k]["per_subject"] for k in ("pet", "tof", "spect")},
               "histories": {**pet["histories"], "tof_projection_unet": tof["history"],
                             "view_synthesis": spect["history"], "spect_projection_unet": spect["denoiser_history"]},
               "comparator": {"pet": pet["comparator"], "tof": tof["comparator"],
                              "spect_sparse_view": spect["comparator"], "spect_low_count": spect["low_comparator"]}})
    rep = HtmlReport("petspect study recon: deep learning inside reconstruction",
                     f"preset {s.preset}; PET {pet['splits']}, TOF PET {tof['splits']}, SPECT {spect['splits']} subjects")
    rep.heading("Acceptance checks (written before the test splits were read)")
    rep.table([{"check": c["check"], "result": {True: "PASSED", False: "FAILED", None: "reported"}[c["passed"]],
                "detail": c["detail"]} for c in checks])

    def table(methods):
        rep.metrics_table({m: {k: v for k, v in metrics[m].items() if isinstance(v, (int, float))} for m in methods},
                          better=BETTER, floatfmt=".4g")

    rep.heading(f"PET ({s.dose_percent:g} % dose), test subjects")
    table(PET_METHODS)
    rep.figure(_figure(pet["example"], PET_METHODS, f"PET {pet['example']['subject']}, central slice"))
    rep.figure(_maps_figure(pet["maps"], "data-consistency maps: Poisson deviance per plane and view"))
    rep.heading(f"TOF PET ({s.dose_percent:g} % dose), test subjects")
    table(TOF_METHODS)
    rep.figure(_figure(tof["example"], TOF_METHODS, f"TOF PET {tof['example']['subject']}, central slice"))
    rep.figure(_maps_figure(tof["maps"], "TOF data-consistency maps (TOF bins summed)"))
    rep.heading("SPECT sparse view (1 of every %d views) and low count (%g %% projections), test subjects"
                % (s.sparse.every, s.spect_dose_percent))
    table(SPECT_METHODS)
    rep.figure(_figure(spect["example"], SPECT_METHODS, f"SPECT {spect['example']['subject']}, central slice"))
    rep.figure(_maps_figure(spect["maps"], "SPECT data-consistency maps (each against the data it was given)"))
    rep.heading("Tuning on validation")
    tuned_all = {**pet["tuned"], **tof["tuned"], **spect["tuned"]}
    rep.preformatted("\n".join(f"{k}: best {v['best']} (score {v['best_score']:.4g}, {len(v['trials'])} of "
                               f"{v['grid_size']} configurations)" for k, v in tuned_all.items()))
    rep.heading("Notes")
    for n in notes:
        rep.paragraph(n)
    paths = write_study(out_p, metrics, summary, rep, required=REQUIRED)
    say(f"wrote {paths['metrics']}")
    return {"checks": checks, "paths": {k: str(v) for k, v in paths.items()}, "metrics": metrics,
            "summary": summary.to_dict()}
