"""Organ segmentation on CT: the organs dosimetry needs, learned from a cohort's organ labels.

The classes are organ groups of the phantoms' label names (:data:`ORGAN_GROUPS`: both kidney compartments
make "kidneys"); a cohort trains the groups its training subjects show (:func:`organs_present`: a 72 mm
chest-abdomen field of view has liver, spleen, kidneys and lung bases but no bladder or salivary glands).
The network is the lesion task's (:mod:`petspect.segmentation.networks`, one output class per organ plus
background) on the CT alone, preferably in two windows (``inputs="ct_windows"``: HU / 1000 for air, lung and
bone, and a soft-tissue window). The phantoms' unenhanced CT numbers (:data:`petspect.phantoms.anatomy.TISSUES`,
from Lamba et al 2014) are liver 58, spleen 47, muscle/soft tissue 45, kidney 30-33 HU, under ~11 HU of noise
per voxel in the simulated CTs: spleen and soft tissue differ by 2 HU, so the network must learn the spleen
(and partly the kidneys) from shape and position, and at HU / 1000 alone (the first version) the 10-30 HU
differences are ~1 % of the input range.

Training (:func:`fit_organ_network`): whole volumes when they fit in the network's window (the small
cohorts), shifted by a few voxels as augmentation, else windows centred on each organ equally often; never
flipped left-right (the liver would move to the spleen's side); Dice + cross-entropy; the epoch is the best
mean validation Dice over organs. The label map is the argmax of the softmax; :func:`segment_organs` applies
a model to a CT on any grid at the voxel size it was trained on.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from petspect.errors import InputError
from petspect.segmentation.networks import CT_ONLY_INPUTS, SegNetSpec, Segmenter
from petspect.segmentation.train import Case, TrainSettings

__all__ = ["ORGAN_GROUPS", "organs_present", "organ_target", "organ_dice", "fit_organ_network",
           "train_organ_segmenter", "segment_organs"]

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


def _validation_organ_dice(seg: Segmenter, cases: Sequence[Case],
                           targets: Sequence[np.ndarray]) -> tuple[float, dict[str, float]]:
    """Mean over cases of the mean Dice over organs (as the study's test ``organ_dice``), and each organ's
    mean Dice over the cases that have it in the truth or the prediction (NaN if none)."""
    organs = seg.spec.classes[1:]
    per: dict[str, list[float]] = {o: [] for o in organs}
    means = []
    for c, t in zip(cases, targets):
        d = {o: v for o, v in organ_dice(seg.labels(c.ct_hu), t, organs).items() if not math.isnan(v)}
        for o, v in d.items():
            per[o].append(v)
        if d:
            means.append(float(np.mean(list(d.values()))))
    return (float(np.mean(means)) if means else math.nan,
            {o: float(np.mean(v)) if v else math.nan for o, v in per.items()})


def _shift_window(x: torch.Tensor, y: torch.Tensor, patch: tuple[int, int, int], shift: np.ndarray,
                  air: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``patch`` window of a volume ``x`` (C, z, y, x) / ``y`` (z, y, x) centred on the volume centre + ``shift``.

    Outside the volume the input is ``air`` (C,) and the target background.
    """
    shape = np.asarray(x.shape[1:])
    start = (shape - np.asarray(patch)) // 2 + shift  # window start in volume coordinates (may be < 0)
    xo = air.to(x.dtype)[:, None, None, None].expand(x.shape[0], *patch).clone()
    yo = torch.zeros(patch, dtype=y.dtype)
    src = [slice(max(0, int(s)), min(int(n), int(s) + p)) for s, n, p in zip(start, shape, patch)]
    dst = [slice(r.start - int(s), r.stop - int(s)) for r, s in zip(src, start)]
    if all(r.stop > r.start for r in src):
        xo[(slice(None), *dst)] = x[(slice(None), *src)]
        yo[tuple(dst)] = y[tuple(src)]
    return xo, yo


def fit_organ_network(inputs: Sequence[torch.Tensor], targets: Sequence[np.ndarray], spec: SegNetSpec,
                      settings: TrainSettings, *, validate: Callable[[Segmenter], float], name: str = "organs",
                      shift_zyx: tuple[int, int, int] = (1, 4, 4), device: Any = "cpu") -> Segmenter:
    """Train an organ network on CT inputs; no flips (left and right organs differ).

    Each training item is one window of ``spec.patch_zyx`` voxels per subject, ``settings.patches_per_case``
    items per subject and epoch. Where a subject fits inside the window (the whole-volume case of small
    cohorts) the window is centred on the volume centre moved by a uniform integer shift of at most
    ``shift_zyx`` voxels (a translation augmentation); otherwise, with probability ``settings.lesion_fraction``,
    it is centred near a voxel of one organ picked uniformly among those present (every organ as often, up to
    a quarter-window jitter), else on a random body voxel. The input is padded with air outside the volume.
    Left-right and anterior-posterior flips, which the lesion networks use, are not applied: they would move
    the liver to the spleen's side. Loss: Dice over the organ classes over the batch + cross-entropy
    (MONAI ``DiceCELoss``); AdamW with a one-cycle schedule (:func:`petspect.train.loop.fit_tensors`); the epoch
    with the best ``validate`` score is kept.

    Parameters
    ----------
    inputs : sequence of torch.Tensor, each (C, z, y, x)
        Network inputs (:func:`~petspect.segmentation.networks.input_channels` of the CT alone: ``inputs``
        "ct" or "ct_windows"; channel 0 is HU / 1000).
    targets : sequence of numpy.ndarray, each (z, y, x) int
        Class maps (:func:`organ_target`).
    """
    from petspect.segmentation.train import (extract_patches, fit_segmenter, new_segmenter, patch_index,
                                             sample_patch_centres)

    if not inputs or len(inputs) != len(targets):
        raise InputError("training needs one target per input and at least one subject")
    if len(shift_zyx) != 3 or min(shift_zyx) < 0:
        raise InputError(f"shift_zyx must be three voxel counts >= 0, got {shift_zyx}")
    for t in targets:
        if t.min() < 0 or t.max() >= spec.out_channels:
            raise InputError(f"target classes must lie in [0, {spec.out_channels - 1}], got [{t.min()}, {t.max()}]")
    rng = np.random.default_rng(settings.seed)
    ys = [torch.from_numpy(np.ascontiguousarray(t, dtype=np.int64)) for t in targets]
    patch = tuple(int(p) for p in spec.patch_zyx)
    shift = np.asarray(shift_zyx, dtype=np.int64)
    whole = [all(n <= p for n, p in zip(x.shape[1:], patch)) for x in inputs]
    air = [x.amin(dim=(1, 2, 3)) for x in inputs]  # each channel's air value
    bodies = [(x[0] > -0.5).numpy() for x in inputs]  # HU > -500
    jitter = tuple(p // 4 for p in patch)
    index = [None if w else patch_index(t, b) for t, b, w in zip(targets, bodies, whole)]
    seg = new_segmenter(spec, settings, name, device)

    def draw(batch: tuple[torch.Tensor, ...], g: torch.Generator) -> tuple[torch.Tensor, ...]:
        px, py = [], []
        for i in batch[0].tolist():
            if whole[i]:
                a, b = _shift_window(inputs[i], ys[i], patch, rng.integers(-shift, shift + 1), air[i])
                a, b = a[None], b[None, None]
            else:
                c = sample_patch_centres(index[i], None, 1, settings.lesion_fraction, rng, jitter_zyx=jitter)
                a, b = extract_patches(inputs[i], ys[i], c, patch)
            px.append(a)
            py.append(b)
        return torch.cat(px), torch.cat(py)

    def val(model: torch.nn.Module) -> float:
        v = validate(seg)
        return -1.0 if math.isnan(v) else v

    fit_segmenter(seg, len(inputs), settings, draw=draw, validate=val, device=device)
    seg.record.update(whole_volume=bool(all(whole)), shift_zyx=list(shift_zyx), flips=False)
    return seg


def train_organ_segmenter(train: Sequence[Case], validation: Sequence[Case], label_ids: Mapping[str, int],
                          spec: SegNetSpec, settings: TrainSettings, *, name: str = "organs",
                          shift_zyx: tuple[int, int, int] = (1, 4, 4), device: Any = "cpu") -> Segmenter:
    """Train an organ network (CT in, ``spec.classes`` out) on cases with CT and organ labels.

    ``spec.inputs`` must be ``"ct"`` or ``"ct_windows"`` and ``spec.classes`` ``("background", *organs)`` with
    organs from :data:`ORGAN_GROUPS`. Training: :func:`fit_organ_network`. The best epoch by mean validation
    Dice over organs is kept; ``record["val_dice"]`` holds the mean per epoch and ``record["val_organ_dice"]``
    each organ's mean validation Dice per epoch; ``record["spacing_mm"]`` the training voxel size.
    """
    from petspect.segmentation.networks import input_channels

    if spec.inputs not in CT_ONLY_INPUTS:
        raise InputError(f"an organ network takes the CT alone (inputs {CT_ONLY_INPUTS}), got {spec.inputs!r}")
    organs = spec.classes[1:]
    for o in organs:
        _ids(label_ids, o)
    if not train or not validation:
        raise InputError("training needs at least one training and one validation subject")
    for c in (*train, *validation):
        if c.ct_hu is None or c.labels is None:
            raise InputError(f"subject {c.subject} lacks its CT or organ labels")
    xs = [input_channels(None, c.ct_hu, in_channels=spec.in_channels, inputs=spec.inputs) for c in train]
    ts = [organ_target(c.labels, label_ids, organs) for c in train]
    vt = [organ_target(c.labels, label_ids, organs) for c in validation]
    per_organ: list[dict[str, float]] = []

    def validate(s: Segmenter) -> float:
        mean, d = _validation_organ_dice(s, validation, vt)
        per_organ.append(d)
        return mean

    seg = fit_organ_network(xs, ts, spec, settings, validate=validate, name=name, shift_zyx=shift_zyx, device=device)
    seg.record.update({"n_validation": len(validation), "organs": list(organs),
                       "label_groups": {o: list(ORGAN_GROUPS[o]) for o in organs},
                       "val_organ_dice": {o: [d[o] for d in per_organ] for o in organs},
                       "spacing_mm": [float(v) for v in train[0].spacing_mm]})
    return seg


def segment_organs(seg: Segmenter, ct: Any) -> np.ndarray:
    """Organ label map ``(z, y, x)`` int16 of a CT Volume (HU) on its own grid, by an organ network.

    The network sees voxels of the size it was trained on (``seg.record["spacing_mm"]``): a CT on another
    grid is smoothed (Gaussian, to the model's voxel size) and resampled to that voxel size over the same
    field of view, segmented there, and the label map is brought back onto the CT's grid by nearest
    neighbour. A model without a recorded spacing (or a CT within 10 % of it) is applied on the CT's grid.
    """
    import torch as _torch
    from scipy import ndimage

    from petspect.volume import Volume

    if not isinstance(ct, Volume):
        raise InputError(f"segment_organs takes a CT Volume (HU), got {type(ct).__name__}")
    if seg.spec.inputs not in CT_ONLY_INPUTS:
        raise InputError(f"{seg.name} is not an organ model (inputs {seg.spec.inputs!r}); it takes a PET")
    if ct.unit != "HU":
        raise InputError(f"an organ model takes a CT in HU; this image is in {ct.unit!r}")
    model_sp = seg.record.get("spacing_mm")
    sp = np.asarray(ct.spacing_mm, dtype=float)
    if model_sp is None or np.allclose(sp, model_sp, rtol=0.1):
        return seg.labels(ct.numpy())
    msp = np.asarray(model_sp, dtype=float)
    from petspect.units import fwhm_to_sigma

    sigma_vox = fwhm_to_sigma(np.sqrt(np.clip(msp ** 2 - sp ** 2, 0, None))) / sp
    hu = ndimage.gaussian_filter(ct.numpy().astype(np.float32), sigma_vox, mode="nearest")
    shape = tuple(max(1, int(np.ceil(n * s / m))) for n, s, m in zip(ct.shape, sp, msp))
    origin = np.asarray(ct.origin_mm) + np.asarray(ct.direction) @ ((msp - sp) / 2.0)
    grid = Volume(_torch.zeros(shape), tuple(msp), tuple(float(v) for v in origin), ct.direction, unit="HU")
    coarse = ct.with_data(_torch.from_numpy(hu)).resample_to(grid, fill_value=-1000.0)
    lab = grid.with_data(_torch.from_numpy(seg.labels(coarse.numpy()).astype(np.int32)), unit="label")
    return lab.resample_to(ct, mode="nearest", fill_value=0.0).numpy().astype(np.int16)
