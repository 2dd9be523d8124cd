"""The PET part of ``petspect study recon`` (tuning and training on training/validation subjects,
then one reading of each test split); :mod:`petspect.learned_recon.study` describes the protocol."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from petspect.learned_recon.study_common import PET_METHODS, timed

__all__ = ["pet_part"]


def _mean(values) -> float:
    return float(statistics.fmean(list(values)))


def _image_unet(root: Path, out_p: Path, s: Any, shape: tuple[int, ...], say) -> tuple[Any, list]:
    """The denoising task's U-Net (:mod:`petspect.tasks.denoise`), 10 % OSEM -> true activity, best validation epoch."""
    from petspect.tasks.denoise import DenoiseOptions, DenoiseTask, denoise_config, train_denoiser
    from petspect.train import load_model
    from petspect.train.config import TrainOverlay

    widths = (8, 16) if s.preset == "tiny" else (16, 32, 64)
    opts = DenoiseOptions(mode="2d", epochs=int(s.image_unet_epochs), patch_size=(int(shape[1]), int(shape[2])),
                          channels=widths, train=TrainOverlay(patches_per_volume=4, batch_size=4, lr=2e-3))
    cfg = denoise_config(root, out_p / "run_image_unet", method="unet", task=DenoiseTask("dose", s.dose_percent, "osem"),
                         options=opts, **{"data.target_key": "activity"})
    result = train_denoiser(cfg)
    say(f"  image_unet: {len(result.history)} epochs, best epoch {result.best_epoch}")
    return load_model(result.model_dir), list(result.history)


def _save_models(folder: Path, train: list, proj, direct, unrolled, s: Any, osem_spec) -> None:
    """The trained networks as model folders for ``petspect recon DATA --model OUT/models/<kind>``."""
    import shutil

    from petspect.learned_recon.models import save_learned_model

    for kind in ("projection_unet", "direct", "unrolled"):
        if (folder / kind).is_dir():  # a rerun into the study's own folder (claimed with --overwrite)
            shutil.rmtree(folder / kind)
    example = train[0].data
    save_learned_model(folder / "projection_unet", "projection_unet", proj, example,
                       settings={"widths": list(proj.widths)}, recon_spec=osem_spec.to_dict(),
                       training_inputs=[c.data for c in train])
    save_learned_model(folder / "direct", "direct", direct, example, settings={"widths": list(s.direct.widths)})
    save_learned_model(folder / "unrolled", "unrolled", unrolled, example, settings=unrolled.config())


def pet_part(out_p: Path, s: Any, say, times: dict[str, float]) -> dict[str, Any]:
    """Tune, train, then score every PET method once on the test subjects."""
    from petspect.evaluation import Budget, grid_search, read_test_split
    from petspect.learned_recon.dip import dip_reconstruct
    from petspect.learned_recon.direct import reconstruct_direct, train_direct
    from petspect.learned_recon.projection_denoise import denoise_projections, train_projection_denoiser
    from petspect.learned_recon.study_common import load_split_cases, score_test_subjects
    from petspect.learned_recon.unrolled import nrmse_pct, reconstruct_unrolled, train_unrolled
    from petspect.recon.reconstruct import ReconSpec, reconstruct
    from petspect.simulate.layout import level_tag
    from petspect.systems.acquisition import stored_recon_specs
    from petspect.tasks.denoise import denoise_volume

    level = level_tag("dose", float(s.dose_percent))
    t0 = time.perf_counter()
    part = load_split_cases(out_p / "pet_dataset", level)
    root, splits, train, val = part.root, part.splits, part.training, part.validation
    budget = Budget(max_trials=int(s.budget_trials), seed=int(s.seed))

    def osem_spec(p):
        return ReconSpec(iterations=int(p["iterations"]), subsets=int(s.osem_subsets),
                         post_filter_fwhm_mm=float(p["post_filter_fwhm_mm"]) or None)

    def map_spec(p):
        return ReconSpec(algorithm="map", iterations=int(s.map_iterations), subsets=int(s.osem_subsets),
                         beta=float(p["beta"]), gamma=float(p["gamma"]))

    def val_nrmse(make):
        return lambda p: _mean(nrmse_pct(reconstruct(c.system, c.data, make(p), progress=False), c.truth.data)
                               for c in val)

    say("tuning OSEM and MAP-RDP on the validation subjects (one grid search, one budget)")
    tuned = {"osem": grid_search("osem", val_nrmse(osem_spec), s.osem_grid, budget, maximise=False,
                                 objective_name="mean validation NRMSE vs the true activity, %"),
             "map_rdp": grid_search("map_rdp", val_nrmse(map_spec), s.map_grid, budget, maximise=False,
                                    objective_name="mean validation NRMSE vs the true activity, %")}
    comparator = min(("osem", "map_rdp"), key=lambda m: tuned[m].best_score)
    specs = {"osem": osem_spec(tuned["osem"].best), "map_rdp": map_spec(tuned["map_rdp"].best)}
    times["pet_tune_classical_s"] = time.perf_counter() - t0
    histories: dict[str, Any] = {}
    t0 = time.perf_counter()
    say("training image_unet (10 % OSEM -> truth, the denoising task's trainer)")
    unet, histories["image_unet"] = _image_unet(root, out_p, s, tuple(train[0].sens.shape), say)
    say("training projection_unet (Anscombe sinograms, 10 % -> 100 % dose)")
    proj, histories["projection_unet"] = train_projection_denoiser(train, val, s.projection, say)
    say("training direct (DeepPET-style)")
    direct, histories["direct"] = train_direct(train, val, s.direct, say)
    say("training unrolled (EM-unrolled through the system model)")
    unrolled, histories["unrolled"] = train_unrolled(train, val, s.unrolled, say)
    say("choosing the deep image prior's iteration count on validation")
    dip_val = [dip_reconstruct(c, s.dip) for c in val]
    tuned["dip"] = grid_search("dip", lambda p: _mean(nrmse_pct(d[int(p["iterations"])], c.truth.data)
                                                      for d, c in zip(dip_val, val)),
                               {"iterations": tuple(float(v) for v in s.dip.checkpoints)},
                               Budget(max_trials=len(s.dip.checkpoints), seed=int(s.seed)), maximise=False,
                               objective_name="mean validation NRMSE vs the true activity, %")
    dip_iters = int(tuned["dip"].best["iterations"])
    times["pet_train_s"] = time.perf_counter() - t0
    _save_models(out_p / "models", train, proj, direct, unrolled, s, specs["osem"])
    stored = ReconSpec.from_dict(stored_recon_specs(root / splits.training[0]["subject"])["osem"])
    config = {"task": "recon-pet", "preset": s.preset, "level": level, "specs": {k: v.to_dict() for k, v in specs.items()},
              "image_unet_input": stored.to_dict(), "dip_iterations": dip_iters,
              "networks": {"projection": list(proj.widths), "direct": list(s.direct.widths),
                           "unrolled": unrolled.config()}, "seed": s.seed}
    t0 = time.perf_counter()
    entries, scoring = read_test_split(root, config, f"recon study (PET): {len(PET_METHODS)} methods")
    say(f"scoring every PET method once on {len(entries)} test subjects (test_scored {scoring.test_scored})")
    from petspect.learned_recon.study_cho import cho_metrics

    def run_methods(c):
        imgs, walls = {}, {}
        for m in ("osem", "map_rdp"):
            imgs[m], walls[m] = timed(reconstruct, c.system, c.data, specs[m], progress=False)

        def unet_run(case=c):
            base = reconstruct(case.system, case.data, stored, progress=False)
            out = denoise_volume(unet, case.data.image_volume(base, unit="Bq/mL", modality="PT")).data
            return out.clamp_min(0)  # activity is non-negative (the other networks end in ReLU/softplus)

        imgs["image_unet"], walls["image_unet"] = timed(unet_run)
        imgs["projection_unet"], walls["projection_unet"] = timed(
            lambda case=c: reconstruct(case.system, denoise_projections(proj, case), specs["osem"], progress=False))
        imgs["direct"], walls["direct"] = timed(reconstruct_direct, direct, c)
        imgs["unrolled"], walls["unrolled"] = timed(reconstruct_unrolled, unrolled, c)
        imgs["dip"], walls["dip"] = timed(lambda case=c: dip_reconstruct(case, s.dip, [dip_iters])[dip_iters])
        return imgs, walls

    per_subject, example, maps, rois = score_test_subjects(out_p, part, entries, level, PET_METHODS, run_methods,
                                                           float(s.pet_voxel_mm))
    times["pet_test_s"] = time.perf_counter() - t0
    cho = cho_metrics(rois, float(s.pet_voxel_mm), s.n_boot, int(s.seed))
    return {"cho": cho, "per_subject": per_subject, "subjects": [str(e.get("subject")) for e in entries], "comparator": comparator,
            "tuned": {k: v.to_dict() for k, v in tuned.items()}, "specs": {k: v.to_dict() for k, v in specs.items()},
            "image_unet_input": stored.to_dict(), "histories": histories, "scoring": scoring.to_dict(),
            "example": example, "maps": maps, "splits": {"training": len(train), "validation": len(val),
                                                         "test": len(entries)}}
