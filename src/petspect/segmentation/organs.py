"""Organ segmentation on CT: the organs dosimetry needs, learned from a cohort's organ labels.

The classes are organ groups of the phantoms' label names (:data:`ORGAN_GROUPS`: both kidney compartments
make "kidneys"); a cohort trains the groups its training subjects show (:func:`organs_present`: a 72 mm
chest-abdomen field of view has liver, spleen, kidneys and lung bases but no bladder or salivary glands).
The network is the lesion task's (:mod:`petspect.segmentation.networks`, ``inputs="ct"``, one output class
per organ plus background), trained by :func:`~petspect.segmentation.train.fit_segmentation_network` with
patches centred on each organ equally often; the epoch is the best mean validation Dice over organs.
The label map is the argmax of the softmax.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from petspect.errors import InputError
from petspect.segmentation.networks import SegNetSpec, Segmenter
from petspect.segmentation.train import Case, TrainSettings

__all__ = ["ORGAN_GROUPS", "organs_present", "organ_target", "organ_dice", "train_organ_segmenter"]

#: Organ classes and the phantom label names each gathers.
ORGAN_GROUPS: dict[str, tuple[str, ...]] = {
    "liver": ("liver",), "kidneys": ("kidney_cortex", "kidney_medulla"), "spleen": ("spleen",),
    "lungs": ("lung",), "bladder": ("bladder",), "salivary_glands": ("salivary_glands",)}


def _ids(label_ids: Mapping[str, int], organ: str) -> list[int]:
    if organ not in ORGAN_GROUPS:
        raise InputError(f"unknown organ {organ!r}; choose from {sorted(ORGAN_GROUPS)}")
    return [int(label_ids[n]) for n in ORGAN_GROUPS[organ] if n in label_ids]


def organs_present(label_maps: Sequence[np.ndarray], label_ids: Mapping[str, int], *, min_voxels: int = 20,
                   min_fraction: float = 0.5) -> tuple[str, ...]:
    """Organ groups with at least ``min_voxels`` voxels in at least ``min_fraction`` of the label maps."""
    out = []
    for organ in ORGAN_GROUPS:
        ids = _ids(label_ids, organ)
        if not ids or not label_maps:
            continue
        seen = [int(np.isin(m, ids).sum()) >= min_voxels for m in label_maps]
        if np.mean(seen) >= min_fraction:
            out.append(organ)
    return tuple(out)


def organ_target(labels: np.ndarray, label_ids: Mapping[str, int], organs: Sequence[str]) -> np.ndarray:
    """Class map (z, y, x) int64: 0 background, ``k`` for ``organs[k - 1]``."""
    t = np.zeros(np.shape(labels), np.int64)
    for k, organ in enumerate(organs, start=1):
        t[np.isin(labels, _ids(label_ids, organ))] = k
    return t


def organ_dice(pred: np.ndarray, target: np.ndarray, organs: Sequence[str]) -> dict[str, float]:
    """Dice of each organ class between two class maps (NaN where the organ is in neither)."""
    from petspect.segmentation.metrics import dice

    if np.shape(pred) != np.shape(target):
        raise InputError(f"class maps differ in shape: {np.shape(pred)} and {np.shape(target)}")
    return {organ: dice(pred == k, target == k) for k, organ in enumerate(organs, start=1)}


def _mean_organ_dice(seg: Segmenter, cases: Sequence[Case], targets: Sequence[np.ndarray]) -> float:
    vals = []
    for c, t in zip(cases, targets):
        d = organ_dice(seg.labels(c.ct_hu), t, seg.spec.classes[1:])
        vals += [v for v in d.values() if not math.isnan(v)]
    return float(np.mean(vals)) if vals else math.nan


def train_organ_segmenter(train: Sequence[Case], validation: Sequence[Case], label_ids: Mapping[str, int],
                          spec: SegNetSpec, settings: TrainSettings, *, name: str = "organs",
                          device: Any = "cpu") -> Segmenter:
    """Train an organ network (CT in, ``spec.classes`` out) on cases with CT and organ labels.

    ``spec.inputs`` must be ``"ct"`` and ``spec.classes`` ``("background", *organs)`` with organs from
    :data:`ORGAN_GROUPS`. The best epoch by mean validation Dice over organs is kept (``record["val_dice"]``).
    """
    from petspect.segmentation.networks import input_channels
    from petspect.segmentation.train import fit_segmentation_network

    if spec.inputs != "ct":
        raise InputError(f"an organ network takes the CT alone (inputs='ct'), got {spec.inputs!r}")
    organs = spec.classes[1:]
    for o in organs:
        _ids(label_ids, o)
    if not train or not validation:
        raise InputError("training needs at least one training and one validation subject")
    for c in (*train, *validation):
        if c.ct_hu is None or c.labels is None:
            raise InputError(f"subject {c.subject} lacks its CT or organ labels")
    xs = [input_channels(None, c.ct_hu, in_channels=1, inputs="ct") for c in train]
    ts = [organ_target(c.labels, label_ids, organs) for c in train]
    vt = [organ_target(c.labels, label_ids, organs) for c in validation]
    seg = fit_segmentation_network(xs, ts, ts, [c.ct_hu > -500.0 for c in train], spec, settings,
                                   validate=lambda s: _mean_organ_dice(s, validation, vt), name=name, device=device)
    seg.record.update({"n_validation": len(validation), "organs": list(organs),
                       "label_groups": {o: list(ORGAN_GROUPS[o]) for o in organs}})
    return seg
