"""Small 3D CNN classifiers (MONAI DenseNet / ResNet) for the diagnostic tasks, and occlusion maps.

The network sees the same normalised image the baselines use (:class:`petspect.cad.baselines.TaskFeatures`
``cnn_inputs``: brain images over the reference region, cropped to the brain; an LV-centred cube over the
polar-map normaliser for MPI) and outputs one logit (disease vs normal).

Training (:class:`CnnMethod`, one instance per cross-validation fold) uses only the fold's training
subjects: a stratified 75/25 split of them into fitting and validation subjects, binary cross-entropy,
AdamW with a one-cycle schedule (:func:`petspect.train.loop.fit_tensors`), augmentation by left-right flips
(brain; the diseases are not lateralised in the cohort as a whole) and +-1 voxel shifts, and the epoch with
the lowest validation loss. Only the validation subjects' logits are honest training-side scores, so the
threshold and the Platt map of the CNN are fitted on them alone (about a quarter of the fold's subjects; a
noisier choice than the baselines get from all training subjects, stated in the study).

Weights are initialised from the method's seed inside :func:`torch.random.fork_rng`, so the global RNG is
never touched and a run is a function of its seeds.

Occlusion sensitivity (Zeiler MD & Fergus R, ECCV 2014): cubes of the input are replaced by the training
normals' mean image there; the drop of the disease logit is the importance of the cube.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from petspect.errors import ConfigError, InputError

__all__ = ["CnnSettings", "make_network", "CnnMethod", "occlusion_map"]

ARCHITECTURES = ("densenet", "resnet")


@dataclass(frozen=True)
class CnnSettings:
    """Network and training settings (small defaults for a 2-core CPU).

    ``architecture``: ``densenet`` (MONAI DenseNet, blocks ``block_config`` of growth ``growth_rate``) or
    ``resnet`` (MONAI ResNet, basic blocks ``layers``, widths ``channels``).
    """

    architecture: str = "densenet"
    init_features: int = 8
    growth_rate: int = 8
    block_config: tuple[int, ...] = (2, 2, 2)
    channels: tuple[int, ...] = (8, 16, 32, 64)
    epochs: int = 20
    batch_size: int = 8
    lr: float = 3e-3
    weight_decay: float = 1e-3
    dropout: float = 0.2
    val_fraction: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if not 0.1 <= self.val_fraction <= 0.5:
            raise ConfigError(f"val_fraction must be within [0.1, 0.5], got {self.val_fraction}")


def make_network(settings: CnnSettings) -> torch.nn.Module:
    """A MONAI 3D classifier with one input channel and one output logit (weights from ``settings.seed``)."""
    from monai.networks.nets import DenseNet, ResNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(settings.seed))
        if settings.architecture == "densenet":
            return DenseNet(spatial_dims=3, in_channels=1, out_channels=1, init_features=settings.init_features,
                            growth_rate=settings.growth_rate, block_config=tuple(settings.block_config), bn_size=2,
                            dropout_prob=settings.dropout)
        return ResNet(block="basic", layers=(1, 1, 1, 1), block_inplanes=list(settings.channels), spatial_dims=3,
                      n_input_channels=1, num_classes=1, conv1_t_size=3, conv1_t_stride=1, no_max_pool=False)


def _split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of positions ``0..n-1`` into fitting and validation (both classes in validation)."""
    rng = np.random.default_rng(int(seed))
    fit, val = [], []
    for cls in (0, 1):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        k = max(1, int(round(fraction * idx.size)))
        if idx.size - k < 1:
            raise InputError("the CNN needs at least 2 training subjects per class")
        val.extend(idx[:k].tolist())
        fit.extend(idx[k:].tolist())
    return np.sort(np.asarray(fit)), np.sort(np.asarray(val))


def _augment(flip_lr: bool):
    def aug(batch, gen):
        x, y = batch
        if flip_lr and bool(torch.rand((), generator=gen) < 0.5):
            x = x.flip(-1)
        shifts = tuple(int(v) for v in torch.randint(-1, 2, (3,), generator=gen))
        return x.roll(shifts, dims=(-3, -2, -1)), y

    return aug


@torch.no_grad()
def _logits(model: torch.nn.Module, x: torch.Tensor, batch: int = 16) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + batch]).reshape(-1) for i in range(0, x.shape[0], batch)])


class CnnMethod:
    """The CNN as a cross-validation method (``fit`` / ``score``, as the baselines)."""

    name = "cnn"

    def __init__(self, settings: CnnSettings | None = None, *, device: str | torch.device = "cpu") -> None:
        self.settings = settings or CnnSettings()
        self.device = torch.device(device)

    def fit(self, feats: Any, train: np.ndarray) -> np.ndarray:
        from torch.nn.functional import binary_cross_entropy_with_logits as bce

        from petspect.train.loop import LoopSettings, fit_tensors

        s = self.settings
        x = torch.as_tensor(feats.cnn_inputs[train], dtype=torch.float32)[:, None]
        y = torch.as_tensor(feats.labels[train], dtype=torch.float32)
        fit_pos, val_pos = _split(feats.labels[train], s.val_fraction, s.seed)
        self.model = make_network(s).to(self.device)
        xv, yv = x[val_pos].to(self.device), y[val_pos].to(self.device)
        self.normal_mean = x[np.flatnonzero(feats.labels[train] == 0)].mean(0)

        def loss(model, batch):
            xb, yb = (t.to(self.device) for t in batch)
            return bce(model(xb).reshape(-1), yb)

        def validate(model):
            return float(bce(_logits(model, xv), yv))

        gen = torch.Generator().manual_seed(int(s.seed) + 1)
        settings = LoopSettings(epochs=s.epochs, batch_size=min(s.batch_size, len(fit_pos)), lr=s.lr,
                                weight_decay=s.weight_decay, mode="min")
        self.result = fit_tensors(self.model, (x, y), loss=loss, validate=validate, settings=settings, generator=gen,
                                  index=torch.as_tensor(fit_pos), augment=_augment(feats.task.value != "mpi"),
                                  description=f"cnn {feats.task.value}")
        self.best_epoch = self.result.best_epoch
        honest = np.full(train.size, math.nan)
        honest[val_pos] = _logits(self.model, xv).cpu().numpy()
        return honest

    def score(self, feats: Any, test: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(feats.cnn_inputs[test], dtype=torch.float32)[:, None].to(self.device)
        return _logits(self.model, x).cpu().numpy().astype(np.float64)


@torch.no_grad()
def occlusion_map(model: torch.nn.Module, image: np.ndarray, fill: np.ndarray | torch.Tensor, *, patch: int = 4,
                  batch: int = 32) -> np.ndarray:
    """Drop of the disease logit when each ``patch``^3 cube of ``image`` is replaced by ``fill`` there.

    Parameters
    ----------
    model : torch.nn.Module
        A trained classifier (one logit).
    image, fill : (z, y, x) arrays
        The input (as the network sees it) and the replacement values (the normals' mean image).
    patch : int
        Cube edge in voxels (also the stride).

    Returns
    -------
    numpy.ndarray, (z, y, x)
        ``logit(image) - logit(occluded)`` painted over each cube (positive: evidence for disease).
    """
    x = torch.as_tensor(np.asarray(image, dtype=np.float32))
    f = torch.as_tensor(np.asarray(fill, dtype=np.float32)).reshape(x.shape)
    if x.ndim != 3 or int(patch) < 1:
        raise InputError("occlusion needs a (z, y, x) image and patch >= 1")
    dev = next(model.parameters()).device
    model.eval()
    base = float(model(x[None, None].to(dev)).reshape(-1)[0])
    corners = [(a, b, c) for a in range(0, x.shape[0], patch) for b in range(0, x.shape[1], patch)
               for c in range(0, x.shape[2], patch)]
    out = np.zeros(x.shape, dtype=np.float32)
    for i in range(0, len(corners), batch):
        chunk = corners[i:i + batch]
        xs = x[None].repeat(len(chunk), 1, 1, 1)
        for k, (a, b, c) in enumerate(chunk):
            xs[k, a:a + patch, b:b + patch, c:c + patch] = f[a:a + patch, b:b + patch, c:c + patch]
        drop = base - model(xs[:, None].to(dev)).reshape(-1).cpu().numpy()
        for k, (a, b, c) in enumerate(chunk):
            out[a:a + patch, b:b + patch, c:c + patch] = drop[k]
    return out
