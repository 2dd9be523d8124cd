"""Neural networks for detector-level AI, their training loop and their saved form.

- :class:`PositionMLP`: fully connected network on the normalised pixel signals (+ log energy).
- :class:`PositionCNN`: residual convolutional network on the 2D map of the SiPM signals
  (cf. the residual CNN of the published ring simulation in docs/REFERENCE.md).
- :class:`TimingCNN`: 1D convolutional network on a pair of coincident waveforms that regresses
  their time difference (Berg and Cherry, PMB 2018); :class:`PulseTimingCNN` and
  :class:`AlignedPulseCNN`: one shared per-pulse network, output the difference of the two pulses.

All take and return tensors on the device of their parameters; :func:`fit_regressor` trains any of
them with a masked Smooth-L1 (or Cauchy, or squared) loss through the generic in-memory loop of
:mod:`petspect.train.loop` (seeded ``torch.Generator`` for shuffling and augmentation, the weights of
the best validation epoch or their average over the last epochs); :func:`predict` is
:func:`petspect.train.loop.predict_tensors`. A trained model is a folder holding
``weights.pt`` (a plain ``state_dict``, loadable with ``torch.load(weights_only=True)``),
``config.json`` (architecture, scalings, training settings, data record) and ``model_card.md``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from petspect._fileio import atomic_path, atomic_write_text
from petspect._json import json_default
from petspect.errors import ConfigError, DataNotFoundError, FormatError, InputError
from petspect.metrics.distribution import width_at_fraction
from petspect.train.loop import LoopSettings, fit_tensors
from petspect.train.loop import predict_tensors as predict


class PositionMLP(nn.Module):
    """Multilayer perceptron: ``(B, n_features) -> (B, n_out)``.

    Parameters
    ----------
    n_features : int
        Input features (pixels + 1 for the log energy).
    hidden : tuple of int
        Widths of the hidden layers (ReLU).
    n_out : int
        Outputs (3 = x, y, doi in scaled units).
    """

    def __init__(self, n_features: int, hidden: tuple[int, ...] = (256, 256, 128), n_out: int = 3) -> None:
        super().__init__()
        if n_features < 1 or n_out < 1 or not hidden or min(hidden) < 1:
            raise ConfigError("PositionMLP needs positive n_features, n_out and hidden widths")
        layers, width = [], n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, n_out))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _ResBlock(nn.Module):
    def __init__(self, channels: int, dims: int) -> None:
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
        self.body = nn.Sequential(conv(channels, channels, 3, padding=1), norm(channels), nn.ReLU(),
                                  conv(channels, channels, 3, padding=1), norm(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class PositionCNN(nn.Module):
    """Residual CNN on the SiPM signal map: ``(B, 2, n_y, n_x) -> (B, n_out)``.

    Channel 0 is the signal map divided by its sum, channel 1 the log of the sum (constant map),
    so the network sees the light distribution and the energy.

    Parameters
    ----------
    n_y, n_x : int
        Map size (SiPM pixels), at least 2 x 2.
    channels : int
        Feature channels.
    blocks : int
        Residual blocks.
    n_out : int
        Outputs.
    """

    def __init__(self, n_y: int, n_x: int, *, channels: int = 32, blocks: int = 2, n_out: int = 3) -> None:
        super().__init__()
        if n_y < 2 or n_x < 2 or channels < 1 or blocks < 0:
            raise ConfigError("PositionCNN needs a map of at least 2x2, channels >= 1 and blocks >= 0")
        self.stem = nn.Sequential(nn.Conv2d(2, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU())
        self.blocks = nn.Sequential(*[_ResBlock(channels, 2) for _ in range(blocks)])
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels * n_y * n_x, 128), nn.ReLU(),
                                  nn.Linear(128, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 2:
            raise InputError(f"PositionCNN expects (B, 2, n_y, n_x), got {tuple(x.shape)}")
        return self.head(self.blocks(self.stem(x)))


class TimingCNN(nn.Module):
    """1D CNN on two coincident waveforms: ``(B, 2, n_samples) -> (B, 1)`` time difference (scaled).

    Parameters
    ----------
    n_samples : int
        Samples per waveform (divisible by 4).
    channels : int
        Feature channels.
    blocks : int
        Residual blocks after each of the two stride-2 stages.
    """

    def __init__(self, n_samples: int, *, channels: int = 32, blocks: int = 1) -> None:
        super().__init__()
        if n_samples < 8 or n_samples % 4:
            raise ConfigError("TimingCNN needs n_samples >= 8 and divisible by 4")
        layers: list[nn.Module] = [nn.Conv1d(2, channels, 5, padding=2), nn.BatchNorm1d(channels), nn.ReLU()]
        for _ in range(2):
            layers += [_ResBlock(channels, 1) for _ in range(blocks)]
            layers += [nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.BatchNorm1d(channels), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels * n_samples // 4, 128), nn.ReLU(),
                                  nn.Linear(128, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1] != 2:
            raise InputError(f"TimingCNN expects (B, 2, n_samples), got {tuple(x.shape)}")
        return self.head(self.features(x))


class _DilatedBlock(nn.Module):
    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation),
                                  nn.BatchNorm1d(channels), nn.ReLU(),
                                  nn.Conv1d(channels, channels, 3, padding=1), nn.BatchNorm1d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class PulseTimingCNN(nn.Module):
    """Siamese timing network: one shared per-pulse net ``f``, output ``f(a) - f(b)`` (Berg and Cherry 2018).

    ``(B, 2, n_samples) -> (B, 1)``. Each waveform is read on its own at full sampling (no striding)
    by a 1D ResNet with dilations ``1, 2, 4, 8`` (receptive field ~ 35 samples around each sample of
    the rising edge), from two input channels: the compressed waveform the caller gives
    (``asinh(w / 2) / 6``) and the same waveform divided by its own maximum (amplitude-normalised, as
    a constant-fraction discriminator sees it). ``f`` regresses the pulse's arrival time in the
    window; the difference is antisymmetric by construction (swapping the detectors negates it) and
    any bias common to both detectors cancels.

    Parameters
    ----------
    n_samples : int
    channels : int
    dilations : tuple of int
    """

    def __init__(self, n_samples: int, *, channels: int = 32, dilations: tuple = (1, 2, 4, 8)) -> None:
        super().__init__()
        if n_samples < 8 or n_samples % 4:
            raise ConfigError("PulseTimingCNN needs n_samples >= 8 and divisible by 4")
        layers: list[nn.Module] = [nn.Conv1d(2, channels, 5, padding=2), nn.BatchNorm1d(channels), nn.ReLU()]
        layers += [_DilatedBlock(channels, d) for d in dilations]
        layers += [nn.Conv1d(channels, 8, 1), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * n_samples, 64), nn.ReLU(), nn.Linear(64, 1))

    def pulse_time(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pulse output ``f`` of compressed waveforms ``(B, n_samples)`` -> ``(B, 1)``."""
        raw = 2.0 * torch.sinh(6.0 * x)  # back to spe (the input is asinh(w / 2) / 6)
        norm = raw / raw.amax(dim=-1, keepdim=True).clamp(min=1.0)
        return self.head(self.features(torch.stack([x, norm], dim=1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1] != 2:
            raise InputError(f"PulseTimingCNN expects (B, 2, n_samples), got {tuple(x.shape)}")
        f = self.pulse_time(torch.cat([x[:, 0], x[:, 1]], dim=0))
        return f[:len(x)] - f[len(x):]


class AlignedPulseCNN(nn.Module):
    """Siamese correction network on trigger-aligned windows: ``(B, 2, 2 W + 2) -> (B, 1)`` = ``g(a) - g(b)``.

    Each pulse is given as one feature row: two channels of ``W`` samples cut around its own
    constant-fraction crossing (the waveform divided by its maximum, and ``asinh(w / 2) / 6`` in spe)
    followed by two scalars (the sub-sample position of the crossing minus 0.5, and the log of the
    pulse maximum). ``g`` is a small full-resolution 1D CNN (three 3-tap convolutions, GELU) and an
    MLP head that also reads the scalars; it regresses the pulse's correction to its constant-fraction
    time. The output is antisymmetric under swapping the detectors and, as the windows follow the
    pulses, cannot depend on where the pulses lie in the record.

    Parameters
    ----------
    window : int
        Samples per aligned window ``W``.
    channels : int
    """

    def __init__(self, window: int, *, channels: int = 32) -> None:
        super().__init__()
        if window < 4 or channels < 1:
            raise ConfigError("AlignedPulseCNN needs window >= 4 and channels >= 1")
        self.window = window
        self.features = nn.Sequential(nn.Conv1d(2, channels, 3, padding=1), nn.GELU(),
                                      nn.Conv1d(channels, channels, 3, padding=1), nn.GELU(),
                                      nn.Conv1d(channels, channels, 3, padding=1), nn.GELU(),
                                      nn.Conv1d(channels, 4, 1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(4 * window + 2, 128), nn.GELU(), nn.Linear(128, 64), nn.GELU(),
                                  nn.Linear(64, 1))

    def pulse_correction(self, rows: torch.Tensor) -> torch.Tensor:
        """Per-pulse output ``g`` of feature rows ``(B, 2 W + 2)`` -> ``(B, 1)``."""
        w = self.window
        return self.head(torch.cat([self.features(rows[:, :2 * w].reshape(-1, 2, w)), rows[:, 2 * w:]], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1] != 2 or x.shape[2] != 2 * self.window + 2:
            raise InputError(f"AlignedPulseCNN expects (B, 2, {2 * self.window + 2}), got {tuple(x.shape)}")
        g = self.pulse_correction(torch.cat([x[:, 0], x[:, 1]], dim=0))
        return g[:len(x)] - g[len(x):]


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings of :func:`fit_regressor`.

    Parameters
    ----------
    epochs, batch_size : int
    lr, weight_decay : float
        AdamW learning rate (one-cycle schedule peak) and weight decay.
    val_fraction : float
        Fraction of the events held out to select the best epoch.
    seed : int
        Seed of the shuffling / augmentation generator and of the weight initialisation.
    loss : {"smooth_l1", "cauchy", "mse"}
        Training loss (``beta`` 0.05 in target units); the Cauchy loss weighs the core of the error
        distribution more than its tails.
    select_by : {"loss", "fwhm"}
        Epoch kept: smallest held-out loss, or (single-output regressors) smallest FWHM of the held-out
        errors, the figure of merit of the timing CNN.
    average_last : int
        If > 0, no epoch is picked: the weights (and batch-norm statistics) are averaged over the last
        ``average_last`` epochs of the annealed schedule (stochastic weight averaging).
    """

    epochs: int = 20
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.1
    seed: int = 0
    loss: str = "smooth_l1"
    select_by: str = "loss"
    average_last: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or not 0 < self.val_fraction < 0.5:
            raise ConfigError("epochs, batch_size, lr > 0 and 0 < val_fraction < 0.5 are required")
        if self.loss not in ("smooth_l1", "cauchy", "mse") or self.select_by not in ("loss", "fwhm"):
            raise ConfigError("loss must be smooth_l1, cauchy or mse, select_by loss or fwhm")
        if not 0 <= self.average_last <= self.epochs:
            raise ConfigError("average_last must lie in [0, epochs]")


def masked_smooth_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, beta: float = 0.05,
                     kind: str = "smooth_l1") -> torch.Tensor:
    """Smooth-L1 loss (``kind="cauchy"``: ``log(1 + (d / beta)^2)``; ``"mse"``: ``d^2``) over the known labels."""
    if kind == "mse":
        loss = (pred - torch.nan_to_num(target)) ** 2
    elif kind == "cauchy":
        loss = torch.log1p(((pred - torch.nan_to_num(target)) / beta) ** 2)
    else:
        loss = nn.functional.smooth_l1_loss(pred, torch.nan_to_num(target), reduction="none", beta=beta)
    m = mask.to(loss.dtype)
    return (loss * m).sum() / m.sum().clamp(min=1.0)


def fit_regressor(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None,
                  *, settings: TrainSettings = TrainSettings(),
                  augment: Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple] | None = None,
                  eval_transform: Callable[[torch.Tensor, torch.Tensor], tuple] | None = None,
                  description: str = "training") -> dict:
    """Train ``model`` in place to regress ``targets`` from ``inputs`` (with :func:`petspect.train.loop.fit_tensors`).

    A seeded split holds out ``settings.val_fraction`` of the events; the loop (AdamW, one-cycle
    schedule, seeded shuffling) keeps the epoch with the smallest held-out masked loss, or held-out
    error FWHM, or the average of the last epochs' weights.

    Parameters
    ----------
    model : torch.nn.Module
        Its device sets where training runs; ``inputs`` and ``targets`` are moved there batch-wise.
    inputs : torch.Tensor, shape (N, ...)
    targets : torch.Tensor, shape (N, k)
        Scaled targets (order 1).
    mask : torch.Tensor, shape (N, k), bool, optional
        Known labels; default all.
    settings : TrainSettings
    augment : callable, optional
        ``augment(x, y, generator) -> (x, y)`` applied to training batches (not to validation).
    eval_transform : callable, optional
        ``eval_transform(x, y) -> (x, y)`` applied to the validation events (e.g. a centre crop).
    description : str
        Progress-bar text.

    Returns
    -------
    dict
        ``{"train_loss": [...], "val_loss": [...], "best_epoch": int or None}``; the model holds the
        weights of the best validation epoch (``None`` with ``settings.average_last``: their average
        over the last epochs), in eval mode.
    """
    n = inputs.shape[0]
    if targets.shape[0] != n or targets.ndim != 2:
        raise InputError("targets must be (N, k) with the N of inputs")
    mask = torch.isfinite(targets) if mask is None else mask.bool() & torch.isfinite(targets)
    dev = next(model.parameters()).device
    gen = torch.Generator().manual_seed(settings.seed)
    perm = torch.randperm(n, generator=gen)
    n_val = max(1, int(round(settings.val_fraction * n)))
    val_idx, tr_idx = perm[:n_val], perm[n_val:]
    xv, yv = inputs[val_idx], targets[val_idx]
    if eval_transform is not None:
        xv, yv = eval_transform(xv, yv)
    mv = mask[val_idx]

    def loss(net: nn.Module, batch: tuple) -> torch.Tensor:
        x, y, m = batch
        return masked_smooth_l1(net(x.to(dev)), y.to(dev), m.to(dev), kind=settings.loss)

    def validate(net: nn.Module) -> float:
        if settings.select_by == "fwhm":  # the held-out error FWHM (k = 1 output)
            err = (predict(net, xv, settings.batch_size * 4) - yv).numpy()[:, 0]
            return width_at_fraction(err - float(np.median(err)))
        return evaluate_loss(net, xv, yv, mv, settings.batch_size * 4)

    def augment_batch(batch: tuple, g: torch.Generator) -> tuple:
        x, y = augment(batch[0], batch[1], g)
        return x, y, batch[2]

    loop = LoopSettings(epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
                        weight_decay=settings.weight_decay, average_last=settings.average_last)
    result = fit_tensors(model, (inputs, targets, mask), loss=loss, validate=validate, settings=loop, generator=gen,
                         index=tr_idx, augment=augment_batch if augment is not None else None,
                         description=description)
    return {"train_loss": result.train_loss, "val_loss": result.val, "best_epoch": result.best_epoch}


@torch.no_grad()
def evaluate_loss(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                  batch_size: int = 4096) -> float:
    """Masked Smooth-L1 loss over a dataset (eval mode)."""
    pred = predict(model, inputs, batch_size)
    return float(masked_smooth_l1(pred, targets, mask))


def save_model_folder(folder: str | os.PathLike, model: nn.Module, config: dict, card: str) -> Path:
    """Write ``weights.pt`` (state_dict), ``config.json`` and ``model_card.md`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "weights.pt") as tmp:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    atomic_write_text(folder / "config.json", json.dumps(config, indent=2, default=json_default))
    atomic_write_text(folder / "model_card.md", card)
    return folder


def load_model_folder(folder: str | os.PathLike) -> tuple[dict, dict]:
    """Read a model folder; returns ``(state_dict, config)`` (weights loaded with ``weights_only=True``)."""
    folder = Path(folder)
    for name in ("weights.pt", "config.json"):
        if not (folder / name).exists():
            raise DataNotFoundError(f"model folder lacks {name}", path=folder)
    try:
        state = torch.load(folder / "weights.pt", map_location="cpu", weights_only=True)
        config = json.loads((folder / "config.json").read_text())
    except (RuntimeError, ValueError) as exc:
        raise FormatError(f"cannot read model folder ({exc})", path=folder) from exc
    return state, config


def restore(estimator, state: dict, config: dict):
    """Load ``state`` into ``estimator.model`` (eval mode) and its training history; returns the estimator."""
    estimator.model.load_state_dict(state)
    estimator.model.eval()
    estimator.history_ = config.get("history")
    return estimator
