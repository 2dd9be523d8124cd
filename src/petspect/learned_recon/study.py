"""``petspect study recon``: deep learning inside reconstruction on the evaluation protocol of issue 13.

Steps (seeded; :mod:`petspect.learned_recon.study_setup` holds the presets):

1. simulate a PET cohort (thin slab, no inverse crime, 100 and 10 % dose), a TOF PET cohort (thinner slab, same
   levels) and a SPECT cohort (100 and 10 % counts);
2. write the acceptance checks before anything reads a test split;
3. on the training and validation subjects only: tune OSEM (iterations, post-filter) and MAP-RDP (relative beta)
   with one :func:`~petspect.evaluation.grid_search` and budget (mean validation NRMSE against the true activity),
   train ``image_unet`` (the denoising task's U-Net, :mod:`petspect.tasks.denoise`, 10 % OSEM -> true activity),
   ``projection_unet`` (:mod:`~petspect.learned_recon.projection_denoise`), ``direct``
   (:mod:`~petspect.learned_recon.direct`) and ``unrolled`` (:mod:`~petspect.learned_recon.unrolled`), each keeping
   its best validation epoch, and choose the deep image prior's iteration count (:mod:`~petspect.learned_recon.dip`);
   TOF PET (:mod:`~petspect.learned_recon.study_tof`): train the TOF sinogram denoiser and tune TOF OSEM for it and
   for the plain 10 % data; SPECT (:mod:`~petspect.learned_recon.study_spect`): train the view synthesiser
   (:mod:`~petspect.learned_recon.sparse_view`) and the projection denoiser, and tune OSEM of the 10 % projections
   with and without it;
4. read each test split once (:func:`~petspect.evaluation.read_test_split`), reconstruct every test subject with
   every method, timing each (``wall_s``: the reconstruction of one subject from its data on this machine's CPU,
   network and corrections included, training excluded), and score against the true activity: ``nrmse_pct``
   (RMSE / truth range x 100), ``psnr_db`` (peak = truth range), ``suvmean_bias_pct`` (organs),
   ``suvmax_bias_pct`` (lesions), ``poisson_deviance`` (per bin, against the measured data the method was given:
   :mod:`~petspect.learned_recon.consistency`); SPECT methods also ``nrmse_vs_full_osem_pct``;
5. intervals over subjects and paired deltas against the best classical method on validation
   (:func:`~petspect.evaluation.summarise_methods`); metrics.json, summary.json and report/index.html through
   :func:`~petspect.evaluation.study.write_study`.

``cho_dprime`` (PET, TOF PET and SPECT alike): every test subject with lesions gets a lesion-absent twin (same seed,
no lesions) that every method reconstructs with the same trained networks (:mod:`~petspect.learned_recon.study_cho`);
null, with the reason in summary.json, when a part's test subjects hold fewer lesion ROIs than the observer needs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from petspect.errors import InputError
from petspect.learned_recon.study_common import (ACCEPTANCE_CHECKS, CLASSICAL, PET_METHODS, REQUIRED,  # noqa: F401
                                                 SPECT_METHODS, TOF_METHODS, score_image)

__all__ = ["run_recon_study", "score_image", "ACCEPTANCE_CHECKS", "PET_METHODS", "TOF_METHODS", "SPECT_METHODS"]


def run_recon_study(out: str | Path, *, preset: str = "quick", overwrite: bool = False, device: Any = None,
                    log: Any = None, settings: Any = None) -> dict[str, Any]:
    """Run the study into ``out`` (a new folder, or one this study wrote with ``overwrite``).

    Parameters
    ----------
    out : path
    preset : {"tiny", "quick", "full"}
    overwrite : bool
    device : optional
        Must be the CPU: the study's operators and networks run there (a CUDA device is refused, not ignored).
    log : callable(str), optional
    settings : ReconStudySettings, optional
        Instead of the preset's.

    Returns
    -------
    dict
        ``{"checks": [...], "paths": {...}, "metrics": {...}, "summary": {...}}``.
    """
    from petspect._json import write_json
    from petspect.evaluation.study import claim_study_folder
    from petspect.learned_recon.study_run import pet_part
    from petspect.learned_recon.study_setup import pet_config, spect_config, study_settings, tof_config
    from petspect.learned_recon.study_spect import spect_part
    from petspect.learned_recon.study_tof import tof_part
    from petspect.simulate.cohort import simulate_cohort

    if device is not None and torch.device(device).type != "cpu":
        raise InputError(f"the recon study runs on the CPU (its operators and small networks); got device {device}. "
                         "Pass --device cpu")
    say = log or (lambda s: None)
    s = settings or study_settings(preset)
    out_p = claim_study_folder(out, overwrite=overwrite)
    write_json(out_p / "acceptance_checks.json", {"written_before_the_test_split_was_read": True,
                                                  "checks": ACCEPTANCE_CHECKS})
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    say(f"simulating the PET cohort ({s.pet_subjects} subjects), the TOF PET cohort ({s.tof_subjects}) and the SPECT "
        f"cohort ({s.spect_subjects}) on the CPU")
    pet_cfg, tof_cfg, spect_cfg = pet_config(s), tof_config(s), spect_config(s)
    simulate_cohort(pet_cfg, out_p / "pet_dataset", workers=s.workers, show_progress=False)
    simulate_cohort(tof_cfg, out_p / "tof_dataset", workers=s.workers, show_progress=False)
    simulate_cohort(spect_cfg, out_p / "spect_dataset", workers=s.workers, show_progress=False)
    times["simulate_s"] = time.perf_counter() - t0
    pet = pet_part(out_p, s, say, times)
    tof = tof_part(out_p, s, say, times)
    spect = spect_part(out_p, s, say, times)
    from petspect.learned_recon.study_report import finish

    return finish(out_p, s, {"pet": pet, "tof": tof, "spect": spect}, times,
                  {"pet": pet_cfg, "tof": tof_cfg, "spect": spect_cfg}, say)


