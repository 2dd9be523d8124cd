"""The SPECT half of ``petspect study recon``: sparse-view synthesis and projection-domain denoising.

Two comparisons on the same Tc-99m MDP test subjects (:mod:`petspect.learned_recon.study` describes the protocol):

* sparse view (full-count data): ``spect_full_osem`` (all views), ``sparse_osem`` (1 of every 4 views),
  ``synth_views_osem`` (the missing views synthesised, :mod:`~petspect.learned_recon.sparse_view`), the same OSEM
  settings for all three; deltas against ``sparse_osem``;
* low count (``spect_dose_percent`` of the counts, e.g. 10 %): ``spect_low_osem`` (OSEM of the low-count projections)
  and ``spect_projection_unet`` (the projections denoised by the Anscombe-domain U-Net trained on the cohort's paired
  levels, :mod:`~petspect.learned_recon.projection_denoise`, then OSEM), each with its own iterations and post-filter
  chosen on the validation subjects by one grid search and budget; deltas against ``spect_low_osem``.

``cho_dprime``: every test subject with lesions has a lesion-absent twin (same seed, :mod:`.study_cho`) that every
method reconstructs with the same trained networks and settings.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch

from petspect.learned_recon.cases import load_case
from petspect.learned_recon.study_common import timed

__all__ = ["spect_part", "SPARSE_METHODS", "LOW_METHODS"]

SPARSE_METHODS = ("spect_full_osem", "sparse_osem", "synth_views_osem")
LOW_METHODS = ("spect_low_osem", "spect_projection_unet")


def _central(img: torch.Tensor) -> Any:
    return img.detach().cpu()[img.shape[0] // 2].numpy()


def spect_part(out_p: Path, s: Any, say, times: dict[str, float]) -> dict[str, Any]:
    """Train the view synthesiser and the projection denoiser, tune the low-count OSEM on validation, then score
    every SPECT method once on the test subjects (and their lesion-absent twins)."""
    from petspect.evaluation import Budget, grid_search, read_test_split
    from petspect.learned_recon.consistency import data_consistency
    from petspect.learned_recon.models import save_learned_model
    from petspect.learned_recon.projection_denoise import denoise_projections, train_projection_denoiser
    from petspect.learned_recon.sparse_view import sparse_acquisition, synthesised_acquisition, train_view_synthesiser
    from petspect.learned_recon.study_cho import cho_metrics, lesion_absent_twin, roi_size
    from petspect.learned_recon.study_common import load_split_cases, score_image
    from petspect.learned_recon.unrolled import nrmse_pct
    from petspect.recon.reconstruct import ReconSpec, reconstruct
    from petspect.simulate.layout import level_tag
    from petspect.systems.acquisition import system_model
    from petspect.tasks.evaluate import extract_rois, lesion_roi_positions

    low = level_tag("dose", float(s.spect_dose_percent))
    t0 = time.perf_counter()
    # low-count input, full count as each case's .full
    root, splits, names, train, val = load_split_cases(out_p / "spect_dataset", low)
    say(f"training the SPECT view synthesiser (1 of every {s.sparse.every} views acquired)")
    model, history = train_view_synthesiser([c.full for c in train], [c.full for c in val], s.sparse, say)
    say(f"training the SPECT projection denoiser ({s.spect_dose_percent:g} % -> 100 % counts, Anscombe domain)")
    denoiser, den_history = train_projection_denoiser(train, val, s.spect_projection, say)
    times["spect_train_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    budget = Budget(max_trials=int(s.budget_trials), seed=int(s.seed))
    val_denoised = [denoise_projections(denoiser, c) for c in val]
    inputs = {"spect_low_osem": [c.data for c in val], "spect_projection_unet": val_denoised}

    def low_spec(p):
        return ReconSpec(iterations=int(p["iterations"]), subsets=int(s.spect_osem_subsets),
                         post_filter_fwhm_mm=float(p["post_filter_fwhm_mm"]) or None)

    def objective(method):
        return lambda p: statistics.fmean(nrmse_pct(reconstruct(c.system, d, low_spec(p), progress=False), c.truth.data)
                                          for c, d in zip(val, inputs[method]))

    say("tuning the low-count SPECT OSEM of both methods on the validation subjects")
    tuned = {m: grid_search(m, objective(m), s.spect_low_grid, budget, maximise=False,
                            objective_name="mean validation NRMSE vs the true activity, %") for m in LOW_METHODS}
    low_specs = {m: low_spec(tuned[m].best) for m in LOW_METHODS}
    times["spect_tune_s"] = time.perf_counter() - t0
    if (out_p / "models" / "spect_projection_unet").is_dir():  # a rerun into the study's own folder (--overwrite)
        import shutil

        shutil.rmtree(out_p / "models" / "spect_projection_unet")
    save_learned_model(out_p / "models" / "spect_projection_unet", "projection_unet", denoiser, train[0].data,
                       settings={"widths": list(denoiser.widths)}, recon_spec=low_specs["spect_projection_unet"].to_dict(),
                       training_inputs=[c.data for c in train])
    spec = ReconSpec(iterations=int(s.spect_osem_iterations), subsets=int(s.spect_osem_subsets))
    sparse_subsets = max(1, min(int(s.spect_osem_subsets), int(s.spect_views) // int(s.sparse.every)))
    sparse_spec = ReconSpec(iterations=int(s.spect_osem_iterations), subsets=sparse_subsets)
    config = {"task": "recon-spect", "preset": s.preset, "spec": spec.to_dict(), "sparse_spec": sparse_spec.to_dict(),
              "every": s.sparse.every, "widths": list(s.sparse.widths), "low_level": low,
              "low_specs": {k: v.to_dict() for k, v in low_specs.items()},
              "denoiser_widths": list(denoiser.widths), "seed": s.seed}
    t0 = time.perf_counter()
    methods = SPARSE_METHODS + LOW_METHODS
    entries, scoring = read_test_split(root, config, f"recon study (SPECT): {len(methods)} methods")
    say(f"scoring every SPECT method once on {len(entries)} test subjects (test_scored {scoring.test_scored})")

    def run_methods(full, lowc):
        imgs, walls = {}, {}
        imgs["spect_full_osem"], walls["spect_full_osem"] = timed(reconstruct, full.system, full.data, spec,
                                                                   progress=False)
        sparse = sparse_acquisition(full.data, s.sparse.every)
        sparse_system = system_model(sparse)
        imgs["sparse_osem"], walls["sparse_osem"] = timed(reconstruct, sparse_system, sparse, sparse_spec,
                                                           progress=False)
        imgs["synth_views_osem"], walls["synth_views_osem"] = timed(
            lambda: reconstruct(full.system, synthesised_acquisition(model, full.data, sparse), spec, progress=False))
        imgs["spect_low_osem"], walls["spect_low_osem"] = timed(reconstruct, lowc.system, lowc.data,
                                                                 low_specs["spect_low_osem"], progress=False)
        imgs["spect_projection_unet"], walls["spect_projection_unet"] = timed(
            lambda: reconstruct(lowc.system, denoise_projections(denoiser, lowc), low_specs["spect_projection_unet"],
                                progress=False))
        return imgs, walls

    per_subject, example, maps = [], {}, {}
    rois: dict[str, tuple[list, list]] = {m: ([], []) for m in methods}
    size, _ = roi_size(float(s.spect_voxel_mm))
    for e in entries:
        c = load_case(root, e, "d100", full_level=None)
        cl = load_case(root, e, low, full_level=None, with_truth=False)
        imgs, walls = run_methods(c, cl)
        pos = lesion_roi_positions(c.lesions, size) if c.lesions is not None else []
        twin = lesion_absent_twin(out_p, splits.meta, e, "d100", folder="spect_twins") if pos else None
        if twin is not None:
            twin_low = lesion_absent_twin(out_p, splits.meta, e, low, folder="spect_twins")
            twin_imgs, _ = run_methods(twin, twin_low)
            for m in methods:
                rois[m][0].append(extract_rois(imgs[m], pos, size))
                rois[m][1].append(extract_rois(twin_imgs[m], pos, size))
        row = {}
        for m, img in imgs.items():
            given = cl if m in LOW_METHODS else c  # sparse/synthesised: judged against all measured views
            cons = data_consistency(img, given.data, system=given.system)
            row[m] = {**score_image(img, c, names), "poisson_deviance": cons.deviance_per_bin, "wall_s": walls[m]}
            if m in ("sparse_osem", "synth_views_osem"):
                row[m]["nrmse_vs_full_osem_pct"] = nrmse_pct(img, imgs["spect_full_osem"])
            if not example:
                maps[m] = cons.plane_view_map.numpy()
        if not example:
            example = {"subject": c.subject, "truth": _central(c.truth.data), **{m: _central(v) for m, v in imgs.items()}}
        per_subject.append(row)
    times["spect_test_s"] = time.perf_counter() - t0
    cho = cho_metrics(rois, float(s.spect_voxel_mm), s.n_boot, int(s.seed))
    return {"cho": cho, "per_subject": per_subject, "subjects": [str(e.get("subject")) for e in entries],
            "comparator": "sparse_osem", "low_comparator": "spect_low_osem", "spec": spec.to_dict(),
            "sparse_spec": sparse_spec.to_dict(), "low_specs": {k: v.to_dict() for k, v in low_specs.items()},
            "tuned": {k: v.to_dict() for k, v in tuned.items()}, "history": history,
            "denoiser_history": den_history, "scoring": scoring.to_dict(), "example": example, "maps": maps,
            "splits": {"training": len(train), "validation": len(val), "test": len(entries)}}
