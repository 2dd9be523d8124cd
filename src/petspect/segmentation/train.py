"""Training a segmentation network: foreground-weighted patches drawn afresh every epoch, Dice + cross-entropy,
best validation epoch.

* Every epoch each training subject gives ``patches_per_case`` patches of ``spec.patch_zyx`` voxels, drawn with
  the run's seeded generator: with probability ``lesion_fraction`` the patch is centred (up to a random
  ``jitter`` of a quarter patch) on a voxel of a foreground instance picked uniformly among the subject's
  instances (lesions; organs for an organ network), so a 3-voxel lesion is drawn as often as a 70-voxel one,
  otherwise on a random body voxel (nnU-Net oversamples foreground the same way: a third of its patches).
  Where a patch leaves the volume each input channel is padded with its minimum (SUV 0, air) and the target
  with background. A fixed pool of patches (the first version) let the networks see only 16 views of each
  subject and learn them by heart.
* Loss: MONAI ``DiceCELoss`` (soft Dice over the foreground classes computed over the whole batch, as
  nnU-Net's batch Dice, + cross-entropy, equal weights). Per-sample Dice with the background class included
  (the first version) gives a patch without lesion a Dice term the background dominates.
* Loop: :func:`petspect.train.loop.fit_tensors` (AdamW, one-cycle schedule, the shared best-epoch tracker);
  after each epoch the validation subjects are segmented by sliding-window inference and their mean Dice
  picks the epoch (the test split is never seen here).
* Augmentation: random flips along y and x (left-right, anterior-posterior), seeded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from petspect.errors import InputError
from petspect.segmentation.networks import SegNetSpec, Segmenter, build_network, input_channels

__all__ = ["Case", "TrainSettings", "PatchIndex", "patch_index", "sample_patch_centres", "extract_patches",
           "fit_segmentation_network", "validation_dice", "train_segmenter"]


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
        Patches drawn afresh per training subject and epoch.
    lesion_fraction : float
        Probability that a patch is centred on a foreground instance (a lesion, an organ).
    average_last : int
        If > 1, the weights of the last ``average_last`` epochs are also averaged (stochastic weight
        averaging at the end of the one-cycle schedule); the average replaces the best single epoch only if
        its validation score is at least as high (a choice on validation).
    seed : int
    """

    epochs: int = 20
    batch_size: int = 4
    lr: float = 3e-3
    weight_decay: float = 1e-5
    patches_per_case: int = 24
    lesion_fraction: float = 0.67
    average_last: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or self.patches_per_case < 1:
            raise InputError("need epochs >= 1, batch_size >= 2 and patches_per_case >= 1")
        if not 0 <= self.average_last <= self.epochs:
            raise InputError(f"average_last must lie in [0, epochs], got {self.average_last}")
        if not 0.0 <= self.lesion_fraction <= 1.0:
            raise InputError(f"lesion_fraction must lie in [0, 1], got {self.lesion_fraction}")


@dataclass(frozen=True)
class PatchIndex:
    """Where patch centres of one volume may fall: the foreground ids, the voxels (k, 3) of each and of the
    body, and the volume's shape; built once per volume by :func:`patch_index`, used by every draw."""

    ids: np.ndarray
    voxels: dict[int, np.ndarray]
    body_voxels: np.ndarray
    shape: tuple[int, ...]


def patch_index(instances: np.ndarray, body: np.ndarray) -> PatchIndex:
    """The :class:`PatchIndex` of ``instances`` (ids > 0 are foreground) and ``body`` (bool, same shape; all
    voxels where it is empty)."""
    ids = np.unique(instances[instances > 0])
    bod = np.argwhere(body) if body.any() else np.argwhere(np.ones(instances.shape, bool))
    return PatchIndex(ids, {int(i): np.argwhere(instances == i) for i in ids}, bod, tuple(instances.shape))


def sample_patch_centres(instances: np.ndarray | PatchIndex, body: np.ndarray | None, n: int, lesion_fraction: float,
                         rng: np.random.Generator, *, jitter_zyx: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """``n`` patch centres (n, 3) in (z, y, x).

    Each centre is, with probability ``lesion_fraction``, a voxel of a foreground instance (an id > 0 of
    ``instances``, picked uniformly among the ids present, then a voxel of it uniformly) moved by a uniform
    integer offset of at most ``jitter_zyx`` (kept inside the volume); otherwise a voxel of ``body``.
    ``instances`` may be a :class:`PatchIndex` made beforehand (``body`` is then not read), which spares the
    whole-volume scans when one volume is sampled many times.
    """
    index = instances if isinstance(instances, PatchIndex) else patch_index(instances, body)
    ids, bod, voxels = index.ids, index.body_voxels, index.voxels
    fg = rng.random(n) < lesion_fraction if len(ids) else np.zeros(n, bool)
    out = bod[rng.integers(0, len(bod), n)]
    if fg.any():
        jit = np.asarray(jitter_zyx, dtype=np.int64)
        hi = np.asarray(index.shape) - 1
        for k in np.flatnonzero(fg):
            v = voxels[int(ids[rng.integers(0, len(ids))])]
            c = v[rng.integers(0, len(v))] + rng.integers(-jit, jit + 1)
            out[k] = np.clip(c, 0, hi)
    return out.astype(np.int64)


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


def new_segmenter(spec: SegNetSpec, settings: TrainSettings, name: str, device: Any = "cpu") -> Segmenter:
    """A freshly initialised network of ``spec`` (weights drawn from ``settings.seed``; the global torch RNG is
    left as it was) wrapped as a :class:`Segmenter`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        net = build_network(spec).to(device)
    return Segmenter(net, spec, name)


def fit_segmenter(seg: Segmenter, n_cases: int, settings: TrainSettings, *,
                  draw: Callable[[tuple[torch.Tensor, ...], torch.Generator], tuple[torch.Tensor, ...]],
                  validate: Callable[[torch.nn.Module], float], device: Any = "cpu") -> Any:
    """The training loop both segmentation trainers share: ``settings.patches_per_case`` items per case and
    epoch, each turned into an (input, class map) batch by ``draw``; loss Dice over the foreground classes over
    the batch + cross-entropy (MONAI ``DiceCELoss``); AdamW with a one-cycle schedule
    (:func:`petspect.train.loop.fit_tensors`, its generator seeded by ``settings.seed``); the epoch with the best
    ``validate`` score is kept. Sets ``seg.record`` (losses, validation scores, best epoch, settings) and
    returns the loop's result."""
    from monai.losses import DiceCELoss

    from petspect.train.loop import LoopSettings, fit_tensors

    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)

    def loss(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y = (t.to(device) for t in batch)
        return loss_fn(model(x), y)

    order = torch.arange(n_cases).repeat_interleave(settings.patches_per_case)
    result = fit_tensors(seg.net, [order], loss=loss, validate=validate,
                         settings=LoopSettings(epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
                                               weight_decay=settings.weight_decay, mode="max"),
                         generator=torch.Generator().manual_seed(settings.seed), augment=draw,
                         description=f"training {seg.name}")
    seg.record = {"train_loss": result.train_loss, "val_dice": result.val, "best_epoch": result.best_epoch,
                  "settings": settings.__dict__, "n_train": n_cases, "patches_per_epoch": int(len(order))}
    return result


def fit_segmentation_network(inputs: list[torch.Tensor], targets: list[np.ndarray], instances: list[np.ndarray],
                             bodies: list[np.ndarray], spec: SegNetSpec, settings: TrainSettings, *,
                             validate: Callable[[Segmenter], float], name: str, device: Any = "cpu") -> Segmenter:
    """Train a network of ``spec`` on whole volumes with patches drawn afresh every epoch (module docstring).

    Parameters
    ----------
    inputs : list of torch.Tensor, each (C, z, y, x)
        Network inputs (:func:`~petspect.segmentation.networks.input_channels`).
    targets : list of numpy.ndarray, each (z, y, x) int
        Class index per voxel (0 background .. ``spec.out_channels - 1``).
    instances : list of numpy.ndarray, each (z, y, x) int
        Foreground instances for the patch sampling (lesion ids, or the classes).
    bodies : list of numpy.ndarray of bool
        Where background patches are centred.
    validate : callable ``Segmenter -> float``
        Mean validation score after an epoch (higher is better; NaN counts as -1).
    """
    if not inputs:
        raise InputError("training needs at least one training subject")
    for t in targets:
        if t.min() < 0 or t.max() >= spec.out_channels:
            raise InputError(f"target classes must lie in [0, {spec.out_channels - 1}] for {spec.out_channels} "
                             f"classes, got [{t.min()}, {t.max()}]")
    rng = np.random.default_rng(settings.seed)
    ys = [torch.from_numpy(np.ascontiguousarray(t, dtype=np.int64)) for t in targets]
    jitter = tuple(p // 4 for p in spec.patch_zyx)
    index = [patch_index(t, b) for t, b in zip(instances, bodies)]
    seg = new_segmenter(spec, settings, name, device)
    net = seg.net

    def draw(batch: tuple[torch.Tensor, ...], g: torch.Generator) -> tuple[torch.Tensor, ...]:
        px, py = [], []
        for i in batch[0].tolist():
            c = sample_patch_centres(index[i], None, 1, settings.lesion_fraction, rng, jitter_zyx=jitter)
            a, b = extract_patches(inputs[i], ys[i], c, spec.patch_zyx)
            px.append(a)
            py.append(b)
        return _flip((torch.cat(px), torch.cat(py)), g)

    averaged: dict[str, Any] = {"state": None, "n": 0, "epoch": 0}

    def val(model: torch.nn.Module) -> float:
        averaged["epoch"] += 1
        if settings.average_last > 1 and averaged["epoch"] > settings.epochs - settings.average_last:
            k, st = averaged["n"], model.state_dict()
            averaged["state"] = ({n: t.detach().clone().float() for n, t in st.items()} if k == 0 else
                                 {n: a + (st[n].float() - a) / (k + 1) for n, a in averaged["state"].items()})
            averaged["n"] = k + 1
        v = validate(seg)
        return -1.0 if math.isnan(v) else v

    result = fit_segmenter(seg, len(inputs), settings, draw=draw, validate=val, device=device)
    if averaged["state"] is not None:
        best_val = max(result.val)
        best_state = {n: t.detach().clone() for n, t in net.state_dict().items()}
        net.load_state_dict({n: a.to(best_state[n].dtype) for n, a in averaged["state"].items()})
        net.eval()
        v_avg = validate(seg)
        seg.record["val_dice_average"] = v_avg
        seg.record["averaged_epochs"] = averaged["n"]
        if not math.isnan(v_avg) and v_avg >= best_val:
            seg.record["weights"] = f"average of the last {averaged['n']} epochs"
        else:
            net.load_state_dict(best_state)
            net.eval()
            seg.record["weights"] = f"epoch {result.best_epoch + 1 if result.best_epoch is not None else '?'}"
    return seg


def validation_dice(seg: Segmenter, cases: list[Case]) -> float:
    """Mean volume Dice of ``seg`` (probability >= 0.5, no post-processing) over cases with lesions."""
    from petspect.segmentation.metrics import dice

    scores = [dice(seg.probability(c.suv, c.ct_hu).numpy() >= 0.5, c.lesions > 0)
              for c in cases if (c.lesions > 0).any()]
    return float(np.mean(scores)) if scores else math.nan


def train_segmenter(train: list[Case], validation: list[Case], spec: SegNetSpec, settings: TrainSettings, *,
                    name: str | None = None, device: Any = "cpu") -> Segmenter:
    """Train a lesion network of ``spec`` on ``train``; the best epoch by mean validation Dice is kept.

    Returns
    -------
    Segmenter
        In eval mode on ``device``; ``record`` holds the per-epoch losses and validation Dice, the best
        epoch and the settings.
    """
    if not train or not validation:
        raise InputError("training needs at least one training and one validation subject")
    if spec.classes != ("background", "lesion"):
        raise InputError(f"a lesion network has classes ('background', 'lesion'), got {spec.classes}")
    xs = [input_channels(c.suv, c.ct_hu, in_channels=spec.in_channels, inputs=spec.inputs) for c in train]
    seg = fit_segmentation_network(xs, [(c.lesions > 0).astype(np.int64) for c in train], [c.lesions for c in train],
                                   [_body(c) for c in train], spec, settings,
                                   validate=lambda s: validation_dice(s, validation), name=name or spec.kind.value,
                                   device=device)
    seg.record["n_validation"] = len(validation)
    return seg
