"""``petspect study spect-scatter``: a network's SPECT scatter estimate against TEW, and Chang against CT-based AC.

Protocol (:mod:`petspect.evaluation`): Tc-99m torso subjects simulated by
:func:`petspect.ac.spect_scatter.make_spect_case` (truth on a 2x finer grid, scatter model and count level
drawn per subject, Poisson noise); fixed subject-wise splits: training and validation subjects with the bone
tracer ``mdp``, test subjects with ``mdp`` and with the myocardial tracer ``sestamibi`` that no network saw.
The TEW smoothing is tuned on validation with :func:`petspect.evaluation.grid_search` (lowest scatter NRMSE);
the networks pick their epoch on validation; the test subjects are scored once
(:func:`petspect.evaluation.record_test_scoring`).

Per test subject and method:

* ``scatter_nrmse_pct`` (``100 ||s - s_true|| / ||s_true||``) and ``scatter_total_bias_pct`` against the
  simulation's expected photopeak scatter;
* ``suv_bias_pct_max_abs`` / ``suv_bias_pct_mean``: the largest absolute / mean signed regional bias of the
  OSEM image (CT-based attenuation in the projector) reconstructed with the estimate, against the same OSEM
  with the true scatter, over tissue labels with at least ``min_region_voxels`` voxels (skin and airway left
  out); ``chang`` is Chang's first-order correction of the image reconstructed without attenuation (TEW scatter)
  against the CT-based AC with the same TEW scatter.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from petspect.ac.study import regional_bias
from petspect.errors import ConfigError

__all__ = ["SpectScatterStudyConfig", "preset_config", "run_spect_scatter_study"]

TRAIN_TRACER, SECOND_TRACER = "mdp", "sestamibi"
TEW_FWHM_GRID_MM = (0.0, 12.0, 24.0, 36.0, 48.0, 72.0)
COUNT_SCALE_RANGE = (0.5, 1.5)


@dataclass(frozen=True)
class SpectScatterStudyConfig:
    """Sizes of one study preset (``n_test`` subjects per test tracer)."""

    preset: str
    n_train: int
    n_val: int
    n_test: int
    epochs: int
    shape: tuple[int, int, int]
    voxel_mm: float
    n_views: int
    seed: int = 2027
    min_region_voxels: int = 8
    iterations: int = 4
    subsets: int = 8


def preset_config(preset: str) -> SpectScatterStudyConfig:
    if preset == "tiny":
        return SpectScatterStudyConfig("tiny", 2, 1, 1, 2, (2, 32, 32), 12.0, 8, min_region_voxels=2,
                                       iterations=2, subsets=4)
    if preset == "quick":
        return SpectScatterStudyConfig("quick", 16, 4, 5, 150, (4, 64, 64), 6.0, 32)
    if preset == "full":
        return SpectScatterStudyConfig("full", 60, 12, 20, 150, (16, 96, 96), 4.0, 60)
    raise ConfigError(f"unknown preset {preset!r}")


def _count_scale(seed: int) -> float:
    return float(np.random.default_rng(int(seed) * 31 + 5).uniform(*COUNT_SCALE_RANGE))


def train_scatter_network(train, val, *, inputs, epochs: int, seed: int, trained_on: dict,
                          residual: str | None = "tew", tew_smooth_fwhm_mm: float | None = None):
    """Train the SPECT scatter U-Net on cases; returns the :class:`~petspect.ac.networks.AcModel` and its record.

    ``residual="tew"``: the network learns the correction to the TEW estimate smoothed with ``tew_smooth_fwhm_mm``
    (it starts from the measured scatter); None: it predicts the scatter itself.
    """
    from petspect.ac.networks import train_translation
    from petspect.ac.spect_scatter import scatter_inputs, scatter_target, tew_estimate

    def stack(cases):
        xs, ys = [], []
        for c in cases:
            x, norm = scatter_inputs(c.projections, inputs=inputs, mu_per_mm=c.mu_per_mm,
                                     voxel_mm=c.data.grid.spacing_mm, tew_smooth_fwhm_mm=tew_smooth_fwhm_mm)
            base = tew_estimate(c.projections, tew_smooth_fwhm_mm) if residual == "tew" else None
            xs.append(x)
            ys.append(scatter_target(c, norm, base))
        return torch.cat(xs), torch.cat(ys)

    xs, ys = stack(train)
    xv, yv = stack(val)
    record = {**trained_on, "inputs": list(inputs), "residual": residual or "none",
              "tew_smooth_fwhm_mm": tew_smooth_fwhm_mm}
    # no left-right mirroring: flipping the detector columns of every view is not a symmetry of attenuated data
    return train_translation("spect_scatter", xs, ys, xv, yv, target_scale=1.0, epochs=epochs, seed=seed,
                             trained_on=record, mirror=False)


def run_spect_scatter_study(cfg: SpectScatterStudyConfig, out, *, log=print) -> dict[str, Any]:
    """Simulate, tune, train, evaluate; returns the pieces :func:`write_spect_scatter_study` writes."""
    from petspect.ac.networks import save_model
    from petspect.ac.spect_scatter import (INPUTS_EMISSION, INPUTS_WITH_MU, chang_image, make_spect_case,
                                           predict_scatter, reconstruct_spect, scatter_nrmse_pct, tew_estimate)
    from petspect.evaluation import Budget, grid_search, record_test_scoring, summarise_methods

    t0 = time.time()
    wall: dict[str, float] = {}
    seeds = {"train": [cfg.seed + i for i in range(cfg.n_train)],
             "val": [cfg.seed + 500 + i for i in range(cfg.n_val)],
             "test": [cfg.seed + 900 + i for i in range(cfg.n_test)]}

    def case(seed, tracer):
        return make_spect_case(tracer, seed, voxel_mm=cfg.voxel_mm, shape=cfg.shape, n_views=cfg.n_views,
                               count_scale=_count_scale(seed))

    t = time.time()
    train = [case(s, TRAIN_TRACER) for s in seeds["train"]]
    val = [case(s, TRAIN_TRACER) for s in seeds["val"]]
    wall["simulate_train_val"] = time.time() - t
    t = time.time()
    tew_tuning = grid_search(
        "tew", lambda p: float(np.mean([scatter_nrmse_pct(tew_estimate(c.projections, p["smooth_fwhm_mm"]),
                                                          c.scatter_true) for c in val])),
        {"smooth_fwhm_mm": TEW_FWHM_GRID_MM}, Budget(max_trials=len(TEW_FWHM_GRID_MM), seed=cfg.seed),
        maximise=False, objective_name="mean validation scatter NRMSE, %")
    fwhm = float(tew_tuning.best["smooth_fwhm_mm"])
    tuned: dict[str, Any] = {"tew": {"smooth_fwhm_mm": fwhm, "search": tew_tuning.to_dict()}}
    models = {}
    trained_on = {"region": "torso", "tracer": TRAIN_TRACER, "seeds": seeds["train"], "system": "spect-lehr",
                  "pixel_mm": cfg.voxel_mm, "n_views": cfg.n_views}
    for name, inputs in (("dl_scatter", INPUTS_WITH_MU), ("dl_scatter_emission", INPUTS_EMISSION)):
        model, info = train_scatter_network(train, val, inputs=inputs, epochs=cfg.epochs, seed=cfg.seed,
                                            trained_on=trained_on, residual="tew", tew_smooth_fwhm_mm=fwhm)
        models[name] = model
        save_model(model, Path(out) / "models" / name)
        tuned[name] = {"epoch_chosen_on": "validation L1", "inputs": list(inputs), "residual": "tew", **info}
    wall["tune_and_train"] = time.time() - t
    del train, val
    # ---- test split: scored once per configuration (the ledger counts every read)
    t = time.time()
    per_subject: list[dict[str, dict[str, float]]] = []
    subject_ids: list[str] = []
    figures: list[tuple[str, dict[str, np.ndarray]]] = []
    profiles: list[tuple[str, dict[str, np.ndarray]]] = []
    recon = {"iterations": cfg.iterations, "subsets": cfg.subsets}
    for tracer in (TRAIN_TRACER, SECOND_TRACER):
        for s in seeds["test"]:
            c = case(s, tracer)
            grid_mm = c.data.grid.spacing_mm
            est = {"tew": tew_estimate(c.projections, fwhm),
                   "dl_scatter": predict_scatter(models["dl_scatter"], c.projections, mu_per_mm=c.mu_per_mm,
                                                 voxel_mm=grid_mm),
                   "dl_scatter_emission": predict_scatter(models["dl_scatter_emission"], c.projections)}
            ref = reconstruct_spect(c.data, c.scatter_true, **recon)
            imgs = {k: reconstruct_spect(c.data, v, **recon) for k, v in est.items()}
            imgs["no_scatter"] = reconstruct_spect(c.data, None, **recon)
            res: dict[str, dict[str, float]] = {}
            for k, v in est.items():
                res[k] = {"scatter_nrmse_pct": scatter_nrmse_pct(v, c.scatter_true),
                          "scatter_total_bias_pct": float(100 * (v.sum() / c.scatter_true.sum().clamp_min(1e-9) - 1))}
            for k, img in imgs.items():
                res.setdefault(k, {}).update(regional_bias(img, ref, c.labels, c.label_names, cfg.min_region_voxels))
            chang = chang_image(c.data, est["tew"], c.mu_per_mm, **recon)
            res["chang"] = regional_bias(chang, imgs["tew"], c.labels, c.label_names, cfg.min_region_voxels)
            per_subject.append(res)
            subject_ids.append(f"{tracer}-{s}")
            if s == seeds["test"][0]:
                z = c.data.grid.shape[0] // 2
                floor = 0.05 * float(ref.max())
                maps = {k: (100 * (v - ref) / ref.clamp_min(floor))[z].numpy() for k, v in imgs.items()}
                maps["chang (vs CT-AC, TEW)"] = (100 * (chang - imgs["tew"]) / imgs["tew"].clamp_min(floor))[z].numpy()
                figures.append((f"{tracer} subject {s}, slice {z}", maps))
                r = c.scatter_true.shape[1] // 2
                profiles.append((f"{tracer} subject {s}, view 0, row {r}",
                                 {"true": c.scatter_true[0, r].numpy(), "photopeak": c.projections.photopeak[0, r].numpy(),
                                  **{k: v[0, r].numpy() for k, v in est.items()}}))
            log(f"test {tracer} {s}: " + ", ".join(f"{k} nrmse {v['scatter_nrmse_pct']:.1f} %"
                                                   for k, v in res.items() if "scatter_nrmse_pct" in v))
    wall["test"] = time.time() - t
    scoring = record_test_scoring(out, {"task": "spect-scatter", "preset": cfg.preset, "seed": cfg.seed},
                                  "SPECT scatter NRMSE and regional bias on held-out subjects", subject_ids)
    metrics = summarise_methods(per_subject, comparator="tew",
                                metrics=["scatter_nrmse_pct", "scatter_total_bias_pct", "suv_bias_pct_max_abs",
                                         "suv_bias_pct_mean"])
    by_tracer = {}
    for tracer in (TRAIN_TRACER, SECOND_TRACER):
        sel = [p for p, sid in zip(per_subject, subject_ids) if sid.startswith(tracer + "-")]
        by_tracer[tracer] = {m: {k: float(np.nanmean([p[m][k] for p in sel])) for k in sel[0][m]} for m in sel[0]}
    wall["total"] = time.time() - t0
    data = {"simulator": "petspect.ac.spect_scatter.make_spect_case", "system": "spect-lehr (Tc-99m, TEW windows)",
            "shape": list(cfg.shape), "voxel_mm": cfg.voxel_mm, "truth_voxel_mm": cfg.voxel_mm / 2,
            "n_views": cfg.n_views, "count_scale_range": list(COUNT_SCALE_RANGE), "seeds": seeds,
            "train_tracer": TRAIN_TRACER, "test_tracers": [TRAIN_TRACER, SECOND_TRACER]}
    return {"metrics": metrics, "per_subject": per_subject, "subjects": subject_ids, "scoring": scoring,
            "tuned": tuned, "wall_s": wall, "figures": figures, "profiles": profiles, "data": data,
            "by_tracer": by_tracer}
