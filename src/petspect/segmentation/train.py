"""Training a lesion segmentation network: lesion-weighted patches, Dice + cross-entropy, best validation epoch.

* Patches of ``spec.patch_zyx`` voxels are drawn with a seeded generator: a fraction ``lesion_fraction``
  centred on a random lesion voxel (each lesion voxel equally likely), the rest on a random voxel of the
  body (nnU-Net oversamples foreground the same way: a third of its patches); where a patch leaves the
  volume each input channel is padded with its minimum (SUV 0, air) and the target with background.
* Loss: MONAI ``DiceCELoss`` (soft Dice + cross-entropy, equal weights), the nnU-Net loss.
* Loop: :func:`petspect.train.loop.fit_tensors` (AdamW, one-cycle schedule, the shared best-epoch tracker);
  after each epoch the validation subjects are segmented by sliding-window inference and their mean Dice
  picks the epoch (the test split is never seen here).
* Augmentation: random flips along y and x (left-right, anterior-posterior), seeded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from petspect.errors import InputError
from petspect.segmentation.networks import SegNetSpec, Segmenter, build_network, input_channels, predict_probability

__all__ = ["Case", "TrainSettings", "sample_patch_centres", "extract_patches", "train_segmenter"]


@dataclass
class Case:
    """One subject in memory: SUV, CT (HU), lesion instances and organ labels on one grid (z, y, x)."""

    subject: str
    suv: np.ndarray
    ct_hu: np.ndarray | None
    lesions: np.ndarray
    spacing_mm: tuple[float, float, float]
    labels: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainSettings:
    """Training settings.

    Attributes
    ----------
    epochs, batch_size, lr, weight_decay
    patches_per_case : int
        Patches drawn per training subject (one pool for the run).
    lesion_fraction : float
        Share of patches centred on a lesion voxel.
    seed : int
    """

    epochs: int = 20
    batch_size: int = 4
    lr: float = 3e-3
    weight_decay: float = 1e-5
    patches_per_case: int = 24
    lesion_fraction: float = 0.67
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or self.patches_per_case < 1:
            raise InputError("need epochs >= 1, batch_size >= 2 and patches_per_case >= 1")
        if not 0.0 <= self.lesion_fraction <= 1.0:
            raise InputError(f"lesion_fraction must lie in [0, 1], got {self.lesion_fraction}")


def sample_patch_centres(lesions: np.ndarray, body: np.ndarray, n: int, lesion_fraction: float,
                         rng: np.random.Generator) -> np.ndarray:
    """``n`` patch centres (n, 3) in (z, y, x): ``lesion_fraction`` of them on lesion voxels, the rest in ``body``."""
    les = np.argwhere(lesions > 0)
    bod = np.argwhere(body) if body.any() else np.argwhere(np.ones(lesions.shape, bool))
    n_les = int(round(n * lesion_fraction)) if len(les) else 0
    pick_l = les[rng.integers(0, len(les), n_les)] if n_les else np.zeros((0, 3), int)
    pick_b = bod[rng.integers(0, len(bod), n - n_les)]
    return np.concatenate([pick_l, pick_b]).astype(np.int64)


def extract_patches(x: torch.Tensor, y: torch.Tensor, centres: np.ndarray,
                    patch: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Patches ``(n, C, *patch)`` of the input and ``(n, 1, *patch)`` of the target about ``centres``.

    The volume is padded (input with each channel's minimum, target with 0) where a patch leaves it.
    """
    pads = [max(p - s, 0) for p, s in zip(patch, x.shape[1:])]
    half = [p // 2 for p in patch]
    pad_w = []
    for axis in (2, 1, 0):  # F.pad order: last axis first
        pad_w += [half[axis] + pads[axis], patch[axis] - half[axis] + pads[axis]]
    fill = x.amin(dim=(1, 2, 3))
    xp = torch.stack([torch.nn.functional.pad(x[c], pad_w, value=float(fill[c])) for c in range(x.shape[0])])
    yp = torch.nn.functional.pad(y, pad_w, value=0)
    xs, ys = [], []
    for c in centres:
        sl = tuple(slice(int(k) + pads[a], int(k) + pads[a] + patch[a]) for a, k in enumerate(c))
        xs.append(xp[(slice(None),) + sl])
        ys.append(yp[sl][None])
    return torch.stack(xs), torch.stack(ys)


def _flip(batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    x, y = batch
    for dim in (3, 4):
        if bool(torch.rand((), generator=gen) < 0.5):
            x, y = x.flip(dim), y.flip(dim)
    return x, y


def _body(case: Case) -> np.ndarray:
    if case.ct_hu is not None:
        return case.ct_hu > -500.0
    return case.suv > 0.1 * float(np.mean(case.suv))


def validation_dice(seg: Segmenter, cases: list[Case]) -> float:
    """Mean volume Dice of ``seg`` over cases with lesions (sliding-window inference)."""
    from petspect.segmentation.metrics import dice

    scores = []
    for c in cases:
        if not (c.lesions > 0).any():
            continue
        prob = predict_probability(seg.net, input_channels(c.suv, c.ct_hu, in_channels=seg.spec.in_channels),
                                   seg.spec.patch_zyx)
        scores.append(dice(prob.numpy() >= seg.threshold, c.lesions > 0))
    return float(np.mean(scores)) if scores else math.nan


def train_segmenter(train: list[Case], validation: list[Case], spec: SegNetSpec, settings: TrainSettings, *,
                    name: str | None = None, device: Any = "cpu") -> Segmenter:
    """Train a network of ``spec`` on ``train``; the best epoch by mean validation Dice is kept.

    Returns
    -------
    Segmenter
        In eval mode on ``device``; ``record`` holds the per-epoch losses and validation Dice, the best
        epoch and the settings.
    """
    from monai.losses import DiceCELoss

    from petspect.train.loop import LoopSettings, fit_tensors

    if not train or not validation:
        raise InputError("training needs at least one training and one validation subject")
    rng = np.random.default_rng(settings.seed)
    xs, ys = [], []
    for c in train:
        x = input_channels(c.suv, c.ct_hu, in_channels=spec.in_channels)
        y = torch.from_numpy((c.lesions > 0).astype(np.int64))
        centres = sample_patch_centres(c.lesions, _body(c), settings.patches_per_case, settings.lesion_fraction, rng)
        px, py = extract_patches(x, y, centres, spec.patch_zyx)
        xs.append(px)
        ys.append(py)
    gen = torch.Generator().manual_seed(settings.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        net = build_network(spec).to(device)
    seg = Segmenter(net, spec, name or spec.kind.value)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)

    def loss(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y = (t.to(device) for t in batch)
        return loss_fn(model(x), y)

    def validate(model: torch.nn.Module) -> float:
        v = validation_dice(seg, validation)
        return -1.0 if math.isnan(v) else v

    result = fit_tensors(net, [torch.cat(xs), torch.cat(ys)], loss=loss, validate=validate,
                         settings=LoopSettings(epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
                                               weight_decay=settings.weight_decay, mode="max"),
                         generator=gen, augment=_flip, description=f"training {seg.name}")
    seg.record = {"train_loss": result.train_loss, "val_dice": result.val, "best_epoch": result.best_epoch,
                  "settings": settings.__dict__, "n_train": len(train), "n_validation": len(validation),
                  "patches": int(sum(len(x) for x in xs))}
    return seg
