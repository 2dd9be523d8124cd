"""The generic pieces of a training loop: best-epoch tracking with early stopping, weight averaging, and
an epoch loop over tensors held in memory.

:class:`BestTracker` decides whether an epoch improved a held-out figure and when to stop; both
:class:`petspect.train.Trainer` (image-to-image networks, data from a dataset folder) and
:func:`fit_tensors` use it. :func:`fit_tensors` trains any network on tensors that fit in memory
(detector events, features, small signals): seeded shuffling, AdamW with a one-cycle learning-rate
schedule, a caller-given loss and held-out figure, and the weights of the best epoch or their average
over the last epochs (stochastic weight averaging). :mod:`petspect.detector` trains its positioning
and timing networks with it.

Randomness comes only from the ``torch.Generator`` the caller passes; nothing here seeds the global RNG.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import nn

from petspect.errors import ConfigError, InputError
from petspect.progress import track

Batch = tuple[torch.Tensor, ...]


class BestTracker:
    """Best value of a held-out figure over epochs, and early stopping after ``patience`` epochs without gain.

    Parameters
    ----------
    mode : {"min", "max"}
        Whether smaller or larger values are better.
    min_delta : float
        An epoch improves only when it beats the best value by more than this (in the figure's unit;
        normally >= 0).
    patience : int, optional
        Stop after this many epochs in a row without improvement (None: never).

    Notes
    -----
    The state (:meth:`state_dict`) is the plain dict ``{"value", "epoch", "bad_epochs"}`` (empty before
    the first value), so a checkpoint can store it as it is.
    """

    def __init__(self, mode: Literal["min", "max"] = "min", *, min_delta: float = 0.0,
                 patience: int | None = None) -> None:
        if mode not in ("min", "max"):
            raise ConfigError(f"mode must be 'min' or 'max', got {mode!r}")
        if not math.isfinite(min_delta) or (patience is not None and patience < 1):
            raise ConfigError("min_delta must be a finite number and patience >= 1 (or None)")
        self.mode, self.min_delta, self.patience = mode, float(min_delta), patience
        self.state: dict[str, Any] = {}

    @property
    def value(self) -> float | None:
        """The best value so far (None before the first)."""
        return self.state.get("value")

    @property
    def epoch(self) -> int | None:
        """The epoch of the best value (None before the first)."""
        return self.state.get("epoch")

    def update(self, value: float, epoch: int) -> bool:
        """Record the figure of ``epoch``; True when it is the new best.

        The first value always is (so there are weights to keep); a NaN never beats a number, and any
        number beats a NaN best.
        """
        best = self.state.get("value")
        sign = 1.0 if self.mode == "max" else -1.0
        if best is None or (math.isnan(best) and not math.isnan(value)) or sign * (value - best) > self.min_delta:
            self.state = {"value": value, "epoch": int(epoch), "bad_epochs": 0}
            return True
        self.state["bad_epochs"] = self.state.get("bad_epochs", 0) + 1
        return False

    @property
    def should_stop(self) -> bool:
        """True once ``patience`` epochs in a row brought no improvement."""
        return self.patience is not None and self.state.get("bad_epochs", 0) >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return dict(self.state)

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        self.state = dict(state or {})


def running_average(average: dict[str, torch.Tensor] | None, state: dict[str, torch.Tensor],
                    k: int) -> dict[str, torch.Tensor]:
    """Running mean of the floating-point tensors of ``k + 1`` state dicts (integer buffers: the latest).

    Parameters
    ----------
    average : dict or None
        Mean of the first ``k`` states (None when ``k == 0``).
    state : dict
        The ``k + 1``-th state (e.g. ``model.state_dict()``); copied, never aliased.
    k : int
        Number of states already in ``average``.
    """
    if average is None:
        return {name: v.detach().clone() for name, v in state.items()}
    return {name: average[name] + (v.detach() - average[name]) / (k + 1) if v.is_floating_point()
            else v.detach().clone() for name, v in state.items()}


@dataclasses.dataclass(frozen=True)
class LoopSettings:
    """Optimisation settings of :func:`fit_tensors`.

    Parameters
    ----------
    epochs, batch_size : int
    lr, weight_decay : float
        AdamW peak learning rate of the one-cycle schedule, and weight decay.
    mode : {"min", "max"}
        Direction of the held-out figure.
    average_last : int
        If > 0, no epoch is picked: the weights (and batch-norm statistics) are averaged over the last
        ``average_last`` epochs.
    patience : int, optional
        Early stopping (not with ``average_last``, which needs the schedule to end).
    min_delta : float
        Smallest gain that counts as an improvement.
    """

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    mode: Literal["min", "max"] = "min"
    average_last: int = 0
    patience: int | None = None
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0 or self.weight_decay < 0:
            raise ConfigError("epochs >= 1, batch_size >= 1, lr > 0 and weight_decay >= 0 are required")
        if not 0 <= self.average_last <= self.epochs:
            raise ConfigError("average_last must lie in [0, epochs]")
        if self.average_last and self.patience is not None:
            raise ConfigError("weight averaging over the last epochs and early stopping exclude each other")


@dataclasses.dataclass
class LoopResult:
    """Outcome of :func:`fit_tensors`.

    ``train_loss`` (per epoch, mean over the training events), ``val`` (the held-out figure per epoch),
    ``best_epoch`` (None when the weights are an average), ``stopped_early``.
    """

    train_loss: list[float]
    val: list[float]
    best_epoch: int | None
    stopped_early: bool = False


def fit_tensors(model: nn.Module, tensors: Sequence[torch.Tensor], *, loss: Callable[[nn.Module, Batch], torch.Tensor],
                validate: Callable[[nn.Module], float], settings: LoopSettings, generator: torch.Generator,
                index: torch.Tensor | None = None, augment: Callable[[Batch, torch.Generator], Batch] | None = None,
                description: str = "training") -> LoopResult:
    """Train ``model`` in place on in-memory tensors, then load the best (or averaged) weights, in eval mode.

    Every epoch the training events are shuffled with ``generator``, cut into batches of
    ``settings.batch_size`` (a last batch of one event is skipped: batch normalisation needs two), and
    each batch takes one AdamW step; the learning rate follows a one-cycle schedule over all steps.
    After each epoch ``validate(model)`` gives the held-out figure that picks the best epoch.

    Parameters
    ----------
    model : torch.nn.Module
        Trained where its parameters are; ``loss`` moves batches there.
    tensors : sequence of torch.Tensor
        Tensors with a common first dimension ``N`` (e.g. inputs, targets, label mask); a batch is the
        tuple of their rows.
    loss : callable ``(model, batch) -> scalar tensor``
        Mean training loss of a batch (sets model mode: the loop calls ``model.train()`` before it).
    validate : callable ``model -> float``
        Held-out figure of the current weights (smaller is better with ``settings.mode == "min"``).
    settings : LoopSettings
    generator : torch.Generator
        Source of the shuffling (and of ``augment``'s randomness): the run is a function of its seed.
    index : torch.Tensor, optional
        Rows of ``tensors`` that are training events (default: all), e.g. after a held-out split.
    augment : callable ``(batch, generator) -> batch``, optional
        Applied to training batches.
    description : str
        Progress-bar text.

    Returns
    -------
    LoopResult
    """
    if not tensors or any(t.shape[0] != tensors[0].shape[0] for t in tensors):
        raise InputError("fit_tensors needs tensors with one common first dimension")
    idx = torch.arange(tensors[0].shape[0]) if index is None else index
    n = len(idx)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps = max(1, math.ceil(n / settings.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings.lr, total_steps=settings.epochs * steps)
    tracker = BestTracker(settings.mode, min_delta=settings.min_delta, patience=settings.patience)
    result = LoopResult([], [], None)
    best_state, average = None, None
    for epoch in track(range(settings.epochs), description):
        model.train()
        order = idx[torch.randperm(n, generator=generator)]
        total = 0.0
        for i in range(steps):
            b = order[i * settings.batch_size:(i + 1) * settings.batch_size]
            if len(b) < 2:
                continue
            batch = tuple(t[b] for t in tensors)
            if augment is not None:
                batch = augment(batch, generator)
            value = loss(model, batch)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            sched.step()
            total += value.item() * len(b)
        val = float(validate(model))
        result.train_loss.append(total / max(1, n))
        result.val.append(val)
        if tracker.update(val, epoch):
            best_state = copy.deepcopy(model.state_dict())
        if epoch >= settings.epochs - settings.average_last:
            average = running_average(average, model.state_dict(), epoch - settings.epochs + settings.average_last)
        if tracker.should_stop:
            result.stopped_early = True
            break
    result.best_epoch = tracker.epoch
    if average is not None:
        best_state, result.best_epoch = average, None
    model.load_state_dict(best_state)
    model.eval()
    return result


@torch.no_grad()
def predict_tensors(model: nn.Module, inputs: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Model outputs for ``inputs`` in batches (eval mode), returned on the CPU."""
    model.eval()
    dev = next(model.parameters()).device
    return torch.cat([model(inputs[i:i + batch_size].to(dev)).cpu() for i in range(0, len(inputs), batch_size)])
