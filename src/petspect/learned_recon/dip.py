"""Deep image prior reconstruction: a CNN's output is the image, fitted to the measured data through the system
model; no training data.

The image is ``x = c softplus(f_theta(z))`` with ``f_theta`` a 2D U-Net (:class:`~petspect.learned_recon.nets.UNet2d`)
applied to the transverse slices, ``z`` a fixed seeded noise input and ``c`` the case's image scale. The weights
minimise the Poisson negative log-likelihood of the data,

.. math:: \\sum_i \\bar y_i - y_i \\log \\bar y_i, \\qquad \\bar y = A x + b,

through the calibrated system model (:meth:`~petspect.operators.base.LinearOperator.as_layer`, gradient =
adjoint) with Adam, one ordered subset of views per iteration (stochastic gradients, as OSEM uses subsets).
As Gong et al. do, the network is first fitted to a short OSEM image of the same data (``warm_iterations``
steps of image-domain MSE, no projector; the OSEM image is computed from the data alone), so the data fit
starts near a plausible image instead of from noise. The network's structure fits images before noise (Ulyanov et al, CVPR 2018; Gong et al,
IEEE TMI 38:1655, 2019 for PET), so the number of iterations is the regulariser: it is chosen on validation
subjects (:func:`petspect.evaluation.grid_search`), the images being recorded at every candidate count during
one fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from petspect.errors import InputError
from petspect.learned_recon.cases import ReconCase
from petspect.learned_recon.nets import UNet2d

__all__ = ["DipSettings", "dip_reconstruct"]


@dataclass(frozen=True)
class DipSettings:
    """Deep image prior fit: U-Net widths, noise channels, Adam learning rate, and the iteration counts at which
    the image is recorded (the largest is the fit's length)."""

    widths: tuple[int, ...] = (16, 32, 64)
    noise_channels: int = 4
    lr: float = 3e-3
    checkpoints: tuple[int, ...] = (25, 50, 100, 150)
    n_subsets: int = 4
    warm_iterations: int = 100
    warm_mlem_iterations: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.checkpoints or min(self.checkpoints) < 1:
            raise InputError(f"checkpoints must be positive iteration counts, got {self.checkpoints}")


def dip_reconstruct(case: ReconCase, settings: DipSettings,
                    checkpoints: Sequence[int] | None = None) -> dict[int, torch.Tensor]:
    """Fit the deep image prior to one case's data; the images (Bq/mL, ``(z, y, x)``) at each checkpoint.

    Parameters
    ----------
    case : ReconCase
        Only its data, system model and image scale are used (no truth).
    settings : DipSettings
    checkpoints : sequence of int, optional
        Iteration counts to record (default ``settings.checkpoints``).
    """
    marks = sorted({int(c) for c in (checkpoints or settings.checkpoints)})
    if not marks or marks[0] < 1:
        raise InputError(f"checkpoints must be positive iteration counts, got {checkpoints}")
    from petspect.recon.em import osem

    op = case.system.operator
    y = case.data.prompts.to(torch.float32)
    b = case.data.additive.to(torch.float32) if case.data.additive is not None else torch.zeros_like(y)
    n_sub = int(settings.n_subsets)
    layers = [(op.subset(k, n_sub) if n_sub > 1 else op).as_layer() for k in range(n_sub)]
    ys = [op.take_subset(y, k, n_sub) if n_sub > 1 else y for k in range(n_sub)]
    bs = [op.take_subset(b, k, n_sub) if n_sub > 1 else b for k in range(n_sub)]
    nz, ny, nx = case.sens.shape
    gen = torch.Generator().manual_seed(int(settings.seed))
    z = 0.1 * torch.randn((nz, settings.noise_channels, ny, nx), generator=gen)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(settings.seed))
        net = UNet2d(settings.noise_channels, 1, settings.widths, residual=False)
    opt = torch.optim.Adam(net.parameters(), lr=settings.lr)
    support = case.support.to(torch.float32)
    c = float(case.scale)
    out: dict[int, torch.Tensor] = {}
    if settings.warm_iterations > 0:
        warm = osem(op, y, additive=b, n_iter=int(settings.warm_mlem_iterations), n_subsets=n_sub, progress=False)
        for _ in range(int(settings.warm_iterations)):
            x = torch.nn.functional.softplus(net(z)[:, 0]) * support
            loss = ((x - warm / c) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    for it in range(1, marks[-1] + 1):
        k = (it - 1) % n_sub
        x = c * torch.nn.functional.softplus(net(z)[:, 0]) * support
        ybar = (layers[k](x) + bs[k]).clamp_min(1e-6)
        loss = (ybar - ys[k] * torch.log(ybar)).sum() / float(ys[k].numel())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if it in marks:
            with torch.no_grad():
                out[it] = (c * torch.nn.functional.softplus(net(z)[:, 0]) * support).detach()
    return out
