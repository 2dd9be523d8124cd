"""EM-unrolled reconstruction: OSEM data-consistency steps through petspect's own system model, alternated
with learned CNN updates, trained end to end.

Each of the ``n_blocks`` blocks applies one OSEM iteration (``n_subsets`` ordered-subset EM updates,
:mod:`petspect.recon.em`)

.. math:: x \\leftarrow \\frac{x}{s_k} A_k^T \\frac{y_k}{A_k x + b_k}

with ``A_k`` the calibrated system model of the subset (attenuation, normalisation, calibration: the same
model OSEM uses) applied through the autograd bridge :meth:`petspect.operators.base.LinearOperator.as_layer`
(backward = adjoint, so gradients flow through every projection), then a learned update

.. math:: x \\leftarrow \\mathrm{relu}\\bigl(x + c\\, \\mathrm{CNN}_j(x / c)\\bigr)

with its own small 2D U-Net per block on the transverse slices, in units of the case's image scale ``c``
(:func:`petspect.learned_recon.cases.image_scale`), so one network serves any dose and calibration. The
networks start as the identity (zero last layer), so the untrained model is plain OSEM. Training minimises the
mean squared error to the true activity over the system's support (supervised; the truth is known in a
simulated cohort). This is the EM-Net / MoDL family (Gong et al, IEEE TMI 38:1655, 2019, "EMnet"; Aggarwal
et al, IEEE TMI 38:394, 2019, MoDL) at CPU size.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from petspect.errors import ConfigError, InputError
from petspect.learned_recon.cases import ReconCase
from petspect.learned_recon.nets import UNet2d
from petspect.operators.base import AdjointOperator

__all__ = ["EmOperators", "UnrolledEM", "UnrolledSettings", "train_unrolled", "nrmse_pct"]


@dataclass
class EmOperators:
    """The subset operators of one case as differentiable layers, with data, additive terms and sensitivities."""

    forward: list[nn.Module]
    back: list[nn.Module]
    y: list[torch.Tensor]
    b: list[torch.Tensor]
    sens: list[torch.Tensor]
    support: torch.Tensor
    scale: float

    @classmethod
    def of(cls, case: ReconCase, n_subsets: int) -> "EmOperators":
        op = case.system.operator
        if n_subsets > op.n_views:
            raise InputError(f"n_subsets={n_subsets} exceeds the {op.n_views} views")
        y = case.data.prompts.to(torch.float32)
        b = case.data.additive.to(torch.float32) if case.data.additive is not None else torch.zeros_like(y)
        fw, bk, ys, bs, ss = [], [], [], [], []
        for k in range(n_subsets):
            sub = op.subset(k, n_subsets) if n_subsets > 1 else op
            fw.append(sub.as_layer())
            bk.append(AdjointOperator(sub).as_layer())
            ys.append(op.take_subset(y, k, n_subsets) if n_subsets > 1 else y)
            bs.append(op.take_subset(b, k, n_subsets) if n_subsets > 1 else b)
            with torch.no_grad():
                ss.append(sub.adjoint(torch.ones_like(ys[-1])))
        return cls(fw, bk, ys, bs, ss, case.support, case.scale)

    def em_iteration(self, x: torch.Tensor) -> torch.Tensor:
        """One differentiable OSEM iteration over every subset (zero-sensitivity voxels keep their value)."""
        for fw, bk, y, b, s in zip(self.forward, self.back, self.y, self.b, self.sens):
            ybar = (fw(x) + b).clamp_min(1e-6)
            upd = x * bk(y / ybar) / s.clamp_min(1e-12)
            x = torch.where(s > 0, upd, x)
        return x

    def start(self) -> torch.Tensor:
        return torch.where(self.support, torch.full_like(self.sens[0], self.scale), torch.zeros_like(self.sens[0]))


class UnrolledEM(nn.Module):
    """``n_blocks`` x (one OSEM iteration through the system model, then a residual 2D U-Net update).

    Parameters
    ----------
    n_blocks : int
    n_subsets : int
        Subsets of each block's OSEM iteration.
    widths : sequence of int
        U-Net widths of every block.
    """

    def __init__(self, n_blocks: int = 4, n_subsets: int = 4, widths: Sequence[int] = (16, 32)) -> None:
        super().__init__()
        if n_blocks < 1 or n_subsets < 1:
            raise InputError(f"n_blocks and n_subsets must be >= 1, got {n_blocks}, {n_subsets}")
        self.n_blocks, self.n_subsets, self.widths = int(n_blocks), int(n_subsets), tuple(widths)
        self.nets = nn.ModuleList([UNet2d(1, 1, widths, residual=True) for _ in range(n_blocks)])

    def forward(self, ops: EmOperators) -> torch.Tensor:
        """The image ``(z, y, x)`` in Bq/mL for one case's operators."""
        x = ops.start()
        c = float(ops.scale)
        for net in self.nets:
            x = ops.em_iteration(x)
            x = torch.relu(c * net((x / c)[:, None])[:, 0]) * ops.support
        return x

    def config(self) -> dict[str, Any]:
        return {"n_blocks": self.n_blocks, "n_subsets": self.n_subsets, "widths": list(self.widths)}


@dataclass(frozen=True)
class UnrolledSettings:
    """Training of the unrolled network: ``epochs`` passes over the training cases, AdamW at ``lr``."""

    n_blocks: int = 4
    n_subsets: int = 4
    widths: tuple[int, ...] = (16, 32)
    epochs: int = 20
    lr: float = 2e-3
    seed: int = 0


def nrmse_pct(image: torch.Tensor, truth: torch.Tensor) -> float:
    """RMSE / (max - min of the truth) x 100 (the ultra-low-dose PET challenge convention, docs/REFERENCE.md)."""
    t = truth.to(torch.float64)
    rng = float(t.max() - t.min())
    if not rng > 0:
        raise InputError("the truth is constant: NRMSE needs a positive range")
    return 100.0 * float(torch.sqrt(((image.to(torch.float64) - t) ** 2).mean())) / rng


def train_unrolled(train: Sequence[ReconCase], val: Sequence[ReconCase], settings: UnrolledSettings,
                   log: Any = None) -> tuple[UnrolledEM, list[dict[str, float]]]:
    """Train :class:`UnrolledEM` end to end on ``train`` (MSE to the truth over the support, in image-scale units);
    keep the epoch with the lowest mean validation NRMSE (the epoch 0 row is the untrained, OSEM-equivalent net).

    Returns
    -------
    (UnrolledEM, history)
        The best network (eval mode) and per-epoch ``{"epoch", "train_loss", "val_nrmse_pct"}``.
    """
    if not train or not val:
        raise ConfigError("the unrolled network needs training and validation subjects")
    for c in list(train) + list(val):
        if c.truth is None:
            raise ConfigError(f"subject {c.subject} has no true activity to train or validate against")
    gen = torch.Generator().manual_seed(int(settings.seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(settings.seed))
        model = UnrolledEM(settings.n_blocks, settings.n_subsets, settings.widths)
    ops_t = [EmOperators.of(c, settings.n_subsets) for c in train]
    ops_v = [EmOperators.of(c, settings.n_subsets) for c in val]
    truths_t = [c.truth.data.to(torch.float32) for c in train]
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr)

    def validate() -> float:
        model.eval()
        with torch.no_grad():
            return sum(nrmse_pct(model(o), c.truth.data) for o, c in zip(ops_v, val)) / len(val)

    history = [{"epoch": 0, "train_loss": float("nan"), "val_nrmse_pct": validate()}]
    best, best_state = history[0]["val_nrmse_pct"], copy.deepcopy(model.state_dict())
    for epoch in range(1, settings.epochs + 1):
        model.train()
        total = 0.0
        for i in torch.randperm(len(train), generator=gen).tolist():
            o, t = ops_t[i], truths_t[i]
            x = model(o)
            loss = (((x - t) / o.scale) ** 2 * o.support).sum() / o.support.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
        val_nrmse = validate()
        history.append({"epoch": epoch, "train_loss": total / len(train), "val_nrmse_pct": val_nrmse})
        if log:
            log(f"  unrolled epoch {epoch}: train loss {total / len(train):.4g}, validation NRMSE {val_nrmse:.3f} %")
        if val_nrmse < best:
            best, best_state = val_nrmse, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.eval()
    return model, history


def reconstruct_unrolled(model: UnrolledEM, case: ReconCase) -> torch.Tensor:
    """The trained network's image of one case (Bq/mL, ``(z, y, x)``)."""
    with torch.no_grad():
        return model(EmOperators.of(case, model.n_subsets))


__all__ += ["reconstruct_unrolled"]
