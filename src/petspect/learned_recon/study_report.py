"""Summary, acceptance checks and HTML report of ``petspect study recon`` (see :mod:`petspect.learned_recon.study`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["finish", "judge"]

BETTER = {"nrmse_pct": "lower", "psnr_db": "higher", "suvmean_bias_pct": "abs-lower", "suvmax_bias_pct": "abs-lower",
          "poisson_deviance": "lower", "wall_s": "lower", "nrmse_vs_full_osem_pct": "lower"}
SPECT_CHO_NOTE = ("cho_dprime of the SPECT methods is not evaluated (no lesion-absent SPECT twins yet); written as "
                  "null")


def _col(per_subject, method: str, metric: str) -> np.ndarray:
    return np.array([float(r.get(method, {}).get(metric, math.nan)) for r in per_subject])


def judge(pet: dict[str, Any], spect: dict[str, Any], n_boot: int, seed: int) -> list[dict[str, Any]]:
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


def finish(out_p: Path, s: Any, pet: dict[str, Any], spect: dict[str, Any], times: dict[str, float],
           configs: tuple[Any, Any], say) -> dict[str, Any]:
    """Intervals, checks, report and the three study files."""
    from petspect.evaluation import summarise_methods
    from petspect.evaluation.study import Check, StudySummary, write_study
    from petspect.learned_recon.study_common import PET_METHODS, REQUIRED, SPECT_METHODS
    from petspect.report import HtmlReport
    from petspect.simulate.no_inverse_crime import describe

    metrics = summarise_methods(pet["per_subject"], comparator=pet["comparator"], n_boot=s.n_boot, seed=s.seed)
    metrics.update(summarise_methods(spect["per_subject"], comparator=spect["comparator"], n_boot=s.n_boot,
                                     seed=s.seed))
    for m in list(PET_METHODS) + list(SPECT_METHODS):
        metrics.setdefault(m, {}).update(pet["cho"]["by_method"].get(m, {"cho_dprime": None, "cho_dprime_ci95": None}))
        for k in REQUIRED:  # a metric with no finite value on any subject (no lesion in the slab): null, said here
            metrics[m].setdefault(k, None)
    checks = judge(pet, spect, s.n_boot, s.seed)
    pet_desc, spect_desc = describe(configs[0]), describe(configs[1])
    notes = [pet["cho"]["note"], SPECT_CHO_NOTE,
             "metrics against the true activity on the reconstruction grid (fine truth averaged); deltas: "
             f"PET against {pet['comparator']} (best classical on validation), SPECT against sparse_osem",
             "wall_s: one subject's reconstruction from its data on this machine's CPU, shared with other jobs "
             "(timings are indicative), system model built beforehand for every method alike",
             "poisson_deviance: per projection bin, against the data the method was given (PET: the 10 % dose "
             "prompts with their estimated randoms and scatter; SPECT: all measured views, so sparse- and "
             "synthesised-view images are also judged on the views they did not use)"]
    summary = StudySummary(
        task="recon", preset=s.preset, seed=int(s.seed),
        data={"pet": {"cohort": configs[0].to_dict(), "simulation": pet_desc},
              "spect": {"cohort": configs[1].to_dict(), "simulation": spect_desc}},
        inverse_crime=bool(pet_desc["inverse_crime"] or spect_desc["inverse_crime"]),
        test_scored=max(int(pet["scoring"]["test_scored"]), int(spect["scoring"]["test_scored"])),
        splits={"pet": pet["splits"], "spect": spect["splits"]},
        tuned={**pet["tuned"], "specs": pet["specs"], "image_unet_input": pet["image_unet_input"],
               "spect": {"osem": spect["spec"], "sparse_osem": spect["sparse_spec"]}},
        checks=[Check(c["check"], c["passed"], c["detail"]) for c in checks], wall_s=dict(times), device="cpu",
        notes=notes,
        extra={"inverse_crime_by_part": {"pet": pet_desc["inverse_crime"], "spect": spect_desc["inverse_crime"]},
               "test_scoring": {"pet": pet["scoring"], "spect": spect["scoring"]},
               "subjects": {"pet": pet["subjects"], "spect": spect["subjects"]},
               "per_subject": {"pet": pet["per_subject"], "spect": spect["per_subject"]},
               "histories": {**pet["histories"], "view_synthesis": spect["history"]},
               "comparator": {"pet": pet["comparator"], "spect": spect["comparator"]}})
    rep = HtmlReport("petspect study recon: deep learning inside reconstruction",
                     f"preset {s.preset}; PET {pet['splits']}, SPECT {spect['splits']} subjects")
    rep.heading("Acceptance checks (written before the test splits were read)")
    rep.table([{"check": c["check"], "result": {True: "PASSED", False: "FAILED", None: "reported"}[c["passed"]],
                "detail": c["detail"]} for c in checks])
    rep.heading("PET (10 % dose), test subjects")
    rep.metrics_table({m: {k: v for k, v in metrics[m].items() if isinstance(v, (int, float))} for m in PET_METHODS},
                      better=BETTER, floatfmt=".4g")
    rep.figure(_figure(pet["example"], PET_METHODS, f"PET {pet['example']['subject']}, central slice"))
    rep.figure(_maps_figure(pet["maps"], "data-consistency maps: Poisson deviance per plane and view"))
    rep.heading("SPECT sparse view (1 of every %d views), test subjects" % s.sparse.every)
    rep.metrics_table({m: {k: v for k, v in metrics[m].items() if isinstance(v, (int, float))} for m in SPECT_METHODS},
                      better=BETTER, floatfmt=".4g")
    rep.figure(_figure(spect["example"], SPECT_METHODS, f"SPECT {spect['example']['subject']}, central slice"))
    rep.figure(_maps_figure(spect["maps"], "data-consistency maps against all measured views"))
    rep.heading("Tuning on validation")
    rep.preformatted("\n".join(f"{k}: best {v['best']} (score {v['best_score']:.4g}, {len(v['trials'])} of "
                               f"{v['grid_size']} configurations)" for k, v in pet["tuned"].items()))
    rep.heading("Notes")
    for n in notes:
        rep.paragraph(n)
    paths = write_study(out_p, metrics, summary, rep, required=REQUIRED)
    say(f"wrote {paths['metrics']}")
    return {"checks": checks, "paths": {k: str(v) for k, v in paths.items()}, "metrics": metrics,
            "summary": summary.to_dict()}
