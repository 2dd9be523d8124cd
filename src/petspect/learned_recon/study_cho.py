"""Lesion detectability of ``petspect study recon``: channelised Hotelling observer on lesion-present /
lesion-absent ROI pairs.

Each test subject with lesions (PET, TOF PET, SPECT) gets a lesion-absent twin: the same subject (configuration, seed, anatomy,
noise generator) simulated again without lesions (:func:`petspect.simulate.subject.simulate_subject`, as the
denoising study's twins, :mod:`petspect.tasks.compare`), written as an acquisition folder under ``OUT/pet_twins``
(``tof_twins``, ``spect_twins``) and reconstructed by every method with the same trained networks and settings. ROIs of
``size x size`` pixels sit on each lesion's central slice (:func:`petspect.tasks.evaluate.lesion_roi_positions`),
at the same places in the twin; ``cho_dprime`` uses 5 Laguerre-Gauss channels of 15 mm width, with a bootstrap
interval over subjects (:func:`petspect.evaluation.cho_dprime_ci`).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np

from petspect.learned_recon.cases import ReconCase, load_case

__all__ = ["CHO_WIDTH_MM", "CHO_CHANNELS", "roi_size", "lesion_absent_twin", "cho_metrics"]

#: Laguerre-Gauss channel width (mm) and number of channels (those of the denoising study)
CHO_WIDTH_MM = 15.0
CHO_CHANNELS = 5


def roi_size(voxel_mm: float) -> tuple[int, float]:
    """ROI side (odd, pixels) spanning +-1.5 channel widths, and the width in pixels."""
    width_px = CHO_WIDTH_MM / float(voxel_mm)
    return 2 * int(math.ceil(1.5 * width_px)) + 1, width_px


def lesion_absent_twin(out_p: Path, meta: dict[str, Any], entry: dict[str, str], level: str, *,
                       folder: str = "pet_twins") -> ReconCase | None:
    """The test subject's lesion-absent twin as a :class:`ReconCase` at ``level`` (no truth), simulated once into
    ``out_p / folder``; None without simulation records."""
    from petspect._fileio import atomic_dir
    from petspect.simulate.config import config_from_dict
    from petspect.simulate.subject import simulate_subject, write_subject

    rec = (meta.get("petspect") or {})
    sub = str(entry.get("subject"))
    if not rec.get("config") or sub not in (rec.get("subjects") or {}):
        return None
    cfg = config_from_dict(copy.deepcopy(rec["config"]))
    cfg.phantom.params = {**cfg.phantom.params, "lesions": False}
    root = out_p / folder
    where = root / sub
    if not (where / "acquisition.json").is_file():
        result = simulate_subject(cfg, int(rec["subjects"][sub]["index"]), int(rec["subjects"][sub]["seed"]))
        with atomic_dir(where) as tmp:
            write_subject(result, tmp)
    return load_case(root, {"subject": sub}, level, full_level=None, with_truth=False)


def cho_metrics(rois: dict[str, tuple[list, list]], voxel_mm: float, n_boot: int, seed: int) -> dict[str, Any]:
    """``{method: {"cho_dprime", "cho_dprime_ci95"}}`` for methods with at least 2 x channels lesion ROIs, and a note."""
    from petspect.evaluation import cho_dprime_ci

    _, width_px = roi_size(voxel_mm)
    out: dict[str, Any] = {}
    n = 0
    for name, (present, absent) in rois.items():
        n = sum(len(p) for p in present)
        if n >= 2 * CHO_CHANNELS:
            iv = cho_dprime_ci([np.asarray(p) for p in present], [np.asarray(a) for a in absent], width_px=width_px,
                               n_channels=CHO_CHANNELS, n_boot=min(int(n_boot), 1000), seed=seed)
            out[name] = {"cho_dprime": iv.value, "cho_dprime_ci95": iv.as_list() if math.isfinite(iv.low) else None}
    note = (f"CHO, {CHO_CHANNELS} Laguerre-Gauss channels of {CHO_WIDTH_MM:g} mm, {n} lesion ROIs on the test subjects "
            "against the same places in their lesion-free twins (same seed); interval: bootstrap over subjects"
            if out else f"cho_dprime not evaluated: {n} lesion ROIs on the test subjects, fewer than the "
                        f"{2 * CHO_CHANNELS} the observer needs")
    return {"by_method": out, "note": note, "rois": n}
