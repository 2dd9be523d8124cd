"""The TOF PET part of ``petspect study recon``: projection-domain denoising of TOF sinograms.

On the TOF cohort (:func:`~petspect.learned_recon.study_setup.tof_config`: a thin slab, no inverse crime, 100 % and
10 % dose) two methods get the 10 % TOF data:

* ``tof_osem``: TOF OSEM of the 10 % prompts with their estimated randoms and scatter;
* ``tof_projection_unet``: the 10 % TOF sinogram denoised plane by plane and TOF bin by TOF bin by the Anscombe-domain
  residual U-Net (:mod:`~petspect.learned_recon.projection_denoise`; trained on the training subjects' paired levels,
  best validation epoch kept), then the same TOF OSEM.

Each method's iterations and post-filter are chosen on the validation subjects (one grid search and budget each);
the test split is read once; ``cho_dprime`` from lesion-absent twins (``OUT/tof_twins``, :mod:`.study_cho`); deltas
against ``tof_osem``. The trained denoiser is written to ``OUT/models/tof_projection_unet``.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from petspect.learned_recon.study_common import timed

__all__ = ["tof_part", "TOF_METHODS"]

TOF_METHODS = ("tof_osem", "tof_projection_unet")


def tof_part(out_p: Path, s: Any, say, times: dict[str, float]) -> dict[str, Any]:
    """Train the TOF denoiser, tune both methods' OSEM on validation, then score them once on the test subjects."""
    from petspect.evaluation import Budget, grid_search, read_test_split
    from petspect.learned_recon.models import save_learned_model
    from petspect.learned_recon.projection_denoise import denoise_projections, train_projection_denoiser
    from petspect.learned_recon.study_cho import cho_metrics
    from petspect.learned_recon.study_common import load_split_cases, score_test_subjects
    from petspect.learned_recon.unrolled import nrmse_pct
    from petspect.recon.reconstruct import ReconSpec, reconstruct
    from petspect.simulate.layout import level_tag

    level = level_tag("dose", float(s.dose_percent))
    t0 = time.perf_counter()
    part = load_split_cases(out_p / "tof_dataset", level)
    root, train, val = part.root, part.training, part.validation
    say(f"training the TOF projection denoiser ({tuple(train[0].data.prompts.shape)} TOF sinograms, "
        f"{s.dose_percent:g} % -> 100 % dose)")
    denoiser, history = train_projection_denoiser(train, val, s.tof_projection, say)
    times["tof_train_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    inputs = {"tof_osem": [c.data for c in val], "tof_projection_unet": [denoise_projections(denoiser, c) for c in val]}
    budget = Budget(max_trials=int(s.budget_trials), seed=int(s.seed))

    def spec_of(p):
        return ReconSpec(iterations=int(p["iterations"]), subsets=int(s.osem_subsets),
                         post_filter_fwhm_mm=float(p["post_filter_fwhm_mm"]) or None)

    def objective(method):
        return lambda p: statistics.fmean(nrmse_pct(reconstruct(c.system, d, spec_of(p), progress=False), c.truth.data)
                                          for c, d in zip(val, inputs[method]))

    say("tuning the TOF OSEM of both methods on the validation subjects")
    tuned = {m: grid_search(m, objective(m), s.tof_osem_grid, budget, maximise=False,
                            objective_name="mean validation NRMSE vs the true activity, %") for m in TOF_METHODS}
    specs = {m: spec_of(tuned[m].best) for m in TOF_METHODS}
    times["tof_tune_s"] = time.perf_counter() - t0
    if (out_p / "models" / "tof_projection_unet").is_dir():  # a rerun into the study's own folder (--overwrite)
        import shutil

        shutil.rmtree(out_p / "models" / "tof_projection_unet")
    save_learned_model(out_p / "models" / "tof_projection_unet", "projection_unet", denoiser, train[0].data,
                       settings={"widths": list(denoiser.widths)}, recon_spec=specs["tof_projection_unet"].to_dict(),
                       training_inputs=[c.data for c in train])
    config = {"task": "recon-tof", "preset": s.preset, "level": level, "specs": {k: v.to_dict() for k, v in specs.items()},
              "widths": list(denoiser.widths), "seed": s.seed}
    t0 = time.perf_counter()
    entries, scoring = read_test_split(root, config, f"recon study (TOF PET): {len(TOF_METHODS)} methods")
    say(f"scoring the TOF methods once on {len(entries)} test subjects (test_scored {scoring.test_scored})")

    def run_methods(c):
        imgs, walls = {}, {}
        imgs["tof_osem"], walls["tof_osem"] = timed(reconstruct, c.system, c.data, specs["tof_osem"], progress=False)
        imgs["tof_projection_unet"], walls["tof_projection_unet"] = timed(
            lambda: reconstruct(c.system, denoise_projections(denoiser, c), specs["tof_projection_unet"],
                                progress=False))
        return imgs, walls

    per_subject, example, maps, rois = score_test_subjects(out_p, part, entries, level, TOF_METHODS, run_methods,
                                                           float(s.tof_voxel_mm), twin_folder="tof_twins")
    times["tof_test_s"] = time.perf_counter() - t0
    cho = cho_metrics(rois, float(s.tof_voxel_mm), s.n_boot, int(s.seed))
    return {"cho": cho, "per_subject": per_subject, "subjects": [str(e.get("subject")) for e in entries],
            "comparator": "tof_osem", "specs": {k: v.to_dict() for k, v in specs.items()},
            "tuned": {k: v.to_dict() for k, v in tuned.items()}, "history": history, "scoring": scoring.to_dict(),
            "example": example, "maps": maps, "splits": {"training": len(train), "validation": len(val),
                                                         "test": len(entries)}}
