"""What every part of ``petspect study recon`` shares: method names, required metrics, the acceptance checks
(written before any test split is read) and the scoring of one image against the true activity."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch

from petspect.learned_recon.cases import ReconCase


def timed(fn, *args, **kw):
    """``(fn(*args, **kw), wall seconds)``."""
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0

__all__ = ["PET_METHODS", "TOF_METHODS", "SPECT_METHODS", "CLASSICAL", "REQUIRED", "ACCEPTANCE_CHECKS", "SplitCases",
           "load_split_cases", "TestScores", "score_test_subjects", "score_image"]

PET_METHODS = ("osem", "map_rdp", "image_unet", "projection_unet", "direct", "unrolled", "dip")
TOF_METHODS = ("tof_osem", "tof_projection_unet")
SPECT_METHODS = ("spect_full_osem", "sparse_osem", "synth_views_osem", "spect_low_osem", "spect_projection_unet")
CLASSICAL = ("osem", "map_rdp")
REQUIRED = ("nrmse_pct", "psnr_db", "suvmean_bias_pct", "suvmax_bias_pct", "cho_dprime", "poisson_deviance", "wall_s")
ACCEPTANCE_CHECKS = [
    "unrolled beats OSEM in NRMSE on the test subjects (paired 95 % interval of nrmse_pct(osem) - nrmse_pct(unrolled) "
    "above 0)",
    "unrolled beats tuned MAP-RDP in NRMSE on the test subjects (paired interval above 0)",
    "direct reconstructs at least 20x faster than OSEM on the same device (mean wall_s ratio; aim 100x)",
    "projection-domain vs image-domain denoising: reported whichever wins (paired NRMSE interval)",
    "SPECT: OSEM of synthesised views is closer to full-view OSEM than sparse-view OSEM is (paired interval of "
    "nrmse_vs_full_osem_pct above 0)",
    "SPECT projection-domain denoising (10 % -> full counts, then OSEM) vs OSEM of the same 10 % projections, each "
    "tuned on validation: reported whichever wins (paired NRMSE interval)",
    "TOF PET projection-domain denoising (10 % -> full dose TOF sinograms, then TOF OSEM) vs TOF OSEM of the same "
    "10 % data, each tuned on validation: reported whichever wins (paired NRMSE interval)",
]


class SplitCases(NamedTuple):
    """A study part's dataset: its folder, fixed splits, organ label names and the training and validation cases."""

    root: Path
    splits: Any  # petspect.evaluation.protocol.Splits
    label_names: dict[int, str]
    training: list[ReconCase]
    validation: list[ReconCase]


def load_split_cases(root: Path, level: str) -> SplitCases:
    """Read ``root``'s splits (dataset.json) and load its training and validation subjects at ``level`` (the
    full-dose level as each case's ``full``); the test split is not touched (``read_test_split`` reads it)."""
    from petspect.evaluation import read_splits
    from petspect.learned_recon.cases import load_case

    splits = read_splits(root)
    names = {int(k): str(v) for k, v in (splits.meta.get("labels") or {}).items()}
    return SplitCases(root, splits, names, [load_case(root, e, level) for e in splits.training],
                      [load_case(root, e, level) for e in splits.validation])


class TestScores(NamedTuple):
    """Per-subject metrics of every method on the test subjects, the first subject's central slices and
    consistency maps (for the report), and the CHO's lesion-present / lesion-absent ROIs per method."""

    per_subject: list[dict[str, dict[str, float]]]
    example: dict[str, Any]
    maps: dict[str, Any]
    rois: dict[str, tuple[list, list]]


def score_test_subjects(out_p: Path, part: SplitCases, entries: list[dict[str, str]], level: str,
                        methods: tuple[str, ...], run_methods, voxel_mm: float, *,
                        twin_folder: str = "pet_twins") -> TestScores:
    """Run every method on each test subject (``run_methods(case) -> (images, wall_s)``) and score it against
    the true activity (:func:`score_image`) and against its measured data (Poisson deviance per bin); where
    the subject has lesion ROIs, run the methods on its lesion-absent twin too and keep both ROI stacks for
    the CHO. ``entries`` come from ``read_test_split`` (the one read of the test split)."""
    from petspect.learned_recon.cases import load_case
    from petspect.learned_recon.consistency import data_consistency
    from petspect.learned_recon.study_cho import lesion_absent_twin, roi_size
    from petspect.tasks.evaluate import extract_rois, lesion_roi_positions

    def central(img: torch.Tensor) -> Any:
        return img.detach().cpu()[img.shape[0] // 2].numpy()

    per_subject, example, maps = [], {}, {}
    rois: dict[str, tuple[list, list]] = {m: ([], []) for m in methods}
    size, _ = roi_size(float(voxel_mm))
    for e in entries:
        c = load_case(part.root, e, level, full_level=None)
        imgs, walls = run_methods(c)
        pos = lesion_roi_positions(c.lesions, size) if c.lesions is not None else []
        twin = lesion_absent_twin(out_p, part.splits.meta, e, level, folder=twin_folder) if pos else None
        if twin is not None:
            twin_imgs, _ = run_methods(twin)
            for m in methods:
                rois[m][0].append(extract_rois(imgs[m], pos, size))
                rois[m][1].append(extract_rois(twin_imgs[m], pos, size))
        row = {}
        for m in methods:
            img = imgs[m].to(torch.float32)
            cons = data_consistency(img, c.data, system=c.system)
            row[m] = {**score_image(img, c, part.label_names), "poisson_deviance": cons.deviance_per_bin,
                      "wall_s": walls[m]}
            if not example:
                maps[m] = cons.plane_view_map.numpy()
        if not example:
            example = {"subject": c.subject, "truth": central(c.truth.data), **{m: central(imgs[m]) for m in methods}}
        per_subject.append(row)
    return TestScores(per_subject, example, maps, rois)


def score_image(img: torch.Tensor, case: ReconCase, label_names: dict[int, str]) -> dict[str, float]:
    """Image metrics of one output against the case's true activity (see the module docstring)."""
    from petspect.learned_recon.unrolled import nrmse_pct
    from petspect.metrics import psnr
    from petspect.tasks.evaluate import Subject, bias_metrics

    truth = case.truth.data.to(torch.float64)
    p = img.detach().cpu().to(torch.float64)
    rng = float(truth.max() - truth.min())
    subj = Subject(case.subject, reference=case.truth, truth=case.truth, labels=case.labels, lesions=case.lesions,
                   label_names=label_names)
    bias = bias_metrics(p, truth, subj)
    return {"nrmse_pct": nrmse_pct(p, truth), "psnr_db": float(psnr(p.numpy(), truth.numpy(), data_range=rng)),
            "suvmean_bias_pct": bias.get("suvmean_bias_pct", math.nan),
            "suvmax_bias_pct": bias.get("suvmax_bias_pct", math.nan)}
