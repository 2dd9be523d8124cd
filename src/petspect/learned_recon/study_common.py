"""What every part of ``petspect study recon`` shares: method names, required metrics, the acceptance checks
(written before any test split is read) and the scoring of one image against the true activity."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

import torch

from petspect.learned_recon.cases import ReconCase

__all__ = ["PET_METHODS", "TOF_METHODS", "SPECT_METHODS", "CLASSICAL", "REQUIRED", "ACCEPTANCE_CHECKS", "SplitCases",
           "load_split_cases", "score_image"]

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
