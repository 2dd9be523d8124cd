"""One optimisation step of each training scheme: supervised, pix2pix (cGAN) and CycleGAN.

A step object owns its networks and optimisers, so the trainer can checkpoint any scheme the same way
(:meth:`TrainStep.state_dict`). ``modules`` may be wrapped in DistributedDataParallel by the trainer;
``raw`` gives the unwrapped networks (for saving). Mixed precision is driven by the trainer's
``autocast`` context and one shared ``torch.amp.GradScaler`` (disabled on the CPU).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn

from petspect.train.losses import CombinedLoss, GANLoss

Autocast = Callable[[], AbstractContextManager]


def _raw(m: nn.Module) -> nn.Module:
    return m.module if isinstance(m, nn.parallel.DistributedDataParallel) else m


def _set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class TrainStep(abc.ABC):
    """Networks, optimisers and the update rule of one training scheme.

    Attributes
    ----------
    modules : dict name -> nn.Module
        Trainable networks; ``"generator"`` is the input -> target network that is saved and validated.
    optimizers : dict name -> torch.optim.Optimizer
    grad_clip_norm : float or None
        Clip each optimiser's gradients to this global L2 norm before its step (None: no clipping).
    """

    grad_clip_norm: float | None = None

    def __init__(self, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer]) -> None:
        self.modules = modules
        self.optimizers = optimizers

    @property
    def generator(self) -> nn.Module:
        """The (possibly DDP-wrapped) input -> target network."""
        return self.modules["generator"]

    def raw(self, name: str = "generator") -> nn.Module:
        """The unwrapped network ``name``."""
        return _raw(self.modules[name])

    def train(self, mode: bool = True) -> None:
        for m in self.modules.values():
            m.train(mode)

    @abc.abstractmethod
    def step(self, x: torch.Tensor, y: torch.Tensor, scaler: torch.amp.GradScaler,
             autocast: Autocast, weight: torch.Tensor | None = None) -> dict[str, float]:
        """Update the networks on one batch; return the loss terms (floats) for the log.

        ``weight`` is an optional voxel weight map of ``y``'s shape for the pixel loss (lesion-aware
        training); schemes without a paired pixel loss (CycleGAN) ignore it.
        """

    def state_dict(self) -> dict[str, Any]:
        return {"modules": {k: _raw(m).state_dict() for k, m in self.modules.items()},
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, m in self.modules.items():
            _raw(m).load_state_dict(state["modules"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])

    def _update(self, loss: torch.Tensor, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
        """Backward, optional gradient-norm clipping (on unscaled gradients), optimiser step."""
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if self.grad_clip_norm is not None:
            scaler.unscale_(opt)
            params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip_norm)
        scaler.step(opt)


class SupervisedStep(TrainStep):
    """Minimise a pixel/structural loss between ``generator(x)`` and ``y``."""

    def __init__(self, generator: nn.Module, loss: CombinedLoss, optimizer: torch.optim.Optimizer) -> None:
        super().__init__({"generator": generator}, {"generator": optimizer})
        self.loss = loss

    def step(self, x, y, scaler, autocast, weight=None):
        with autocast():
            pred = self.generator(x)
        loss = self.loss(pred.float(), y, weight)
        self._update(loss, self.optimizers["generator"], scaler)
        scaler.update()
        return {"loss": float(loss.detach()), **self.loss.last_terms}


class Pix2PixStep(TrainStep):
    """Conditional GAN (pix2pix): the discriminator judges ``cat(x, y)`` against ``cat(x, G(x))``.

    Generator loss: ``pixel_loss(G(x), y) + adversarial_weight * GAN(D(x, G(x)), real)``.
    Discriminator loss: ``(GAN(D(x, y), real) + GAN(D(x, G(x)), fake)) / 2``, with real and fake pairs in
    one batch (one forward per step, which DDP requires). Isola et al, CVPR 2017.
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: CombinedLoss, gan_loss: GANLoss,
                 opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, adversarial_weight: float) -> None:
        super().__init__({"generator": generator, "discriminator": discriminator},
                         {"generator": opt_g, "discriminator": opt_d})
        self.loss, self.gan, self.weight = loss, gan_loss, float(adversarial_weight)

    def step(self, x, y, scaler, autocast, weight=None):
        gen, disc = self.generator, self.modules["discriminator"]
        with autocast():
            fake = gen(x)
        # discriminator: real and fake pairs in one forward
        _set_requires_grad(self.raw("discriminator"), True)
        with autocast():
            logits = disc(torch.cat([torch.cat([x, y], 1), torch.cat([x, fake.detach().to(y.dtype)], 1)], 0))
        n = x.shape[0]
        loss_d = 0.5 * (self.gan(logits[:n], True) + self.gan(logits[n:], False))
        self._update(loss_d, self.optimizers["discriminator"], scaler)
        # generator; the unwrapped discriminator, frozen, so DDP does not wait for its gradients
        _set_requires_grad(self.raw("discriminator"), False)
        with autocast():
            adv = self.gan(self.raw("discriminator")(torch.cat([x, fake.to(y.dtype)], 1)), True)
        pixel = self.loss(fake.float(), y, weight)
        loss_g = pixel + self.weight * adv
        self._update(loss_g, self.optimizers["generator"], scaler)
        _set_requires_grad(self.raw("discriminator"), True)
        scaler.update()
        return {"loss": float(pixel.detach()), "loss_g_adv": float(adv.detach()), "loss_d": float(loss_d.detach()),
                **self.loss.last_terms}


class CycleGANStep(TrainStep):
    """CycleGAN for unpaired domains A (input, e.g. low dose) and B (target, full dose).

    ``G_AB = generator``, ``G_BA = generator_ba``; discriminators ``D_A``, ``D_B`` judge single images.
    Generator loss: ``adversarial_weight * (GAN(D_B(G_AB(a))) + GAN(D_A(G_BA(b))))
    + cycle_weight * (|G_BA(G_AB(a)) - a| + |G_AB(G_BA(b)) - b|)`` (L1 means); discriminators as LSGAN/BCE
    halves. Both domains are single-channel images here. Zhu et al, ICCV 2017.
    """

    def __init__(self, g_ab: nn.Module, g_ba: nn.Module, d_a: nn.Module, d_b: nn.Module, gan_loss: GANLoss,
                 opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, adversarial_weight: float,
                 cycle_weight: float) -> None:
        super().__init__({"generator": g_ab, "generator_ba": g_ba, "disc_a": d_a, "disc_b": d_b},
                         {"generators": opt_g, "discriminators": opt_d})
        self.gan, self.adv_w, self.cyc_w = gan_loss, float(adversarial_weight), float(cycle_weight)

    def step(self, x, y, scaler, autocast, weight=None):
        g_ab, g_ba, d_a, d_b = (self.modules[k] for k in ("generator", "generator_ba", "disc_a", "disc_b"))
        for k in ("disc_a", "disc_b"):  # frozen and unwrapped for the generators' update (see Pix2PixStep)
            _set_requires_grad(self.raw(k), False)
        with autocast():
            fake_b = g_ab(x)
            fake_a = g_ba(y)
            cycle = (g_ba(fake_b).float() - x).abs().mean() + (g_ab(fake_a).float() - y).abs().mean()
            adv = self.gan(self.raw("disc_b")(fake_b), True) + self.gan(self.raw("disc_a")(fake_a), True)
        loss_g = self.adv_w * adv + self.cyc_w * cycle
        self._update(loss_g, self.optimizers["generators"], scaler)
        for k in ("disc_a", "disc_b"):
            _set_requires_grad(self.raw(k), True)
        n = x.shape[0]
        with autocast():
            la = d_a(torch.cat([x, fake_a.detach().to(x.dtype)], 0))
            lb = d_b(torch.cat([y, fake_b.detach().to(y.dtype)], 0))
        loss_d = 0.5 * (self.gan(la[:n], True) + self.gan(la[n:], False) + self.gan(lb[:n], True)
                        + self.gan(lb[n:], False))
        self._update(loss_d, self.optimizers["discriminators"], scaler)
        scaler.update()
        return {"loss": float(cycle.detach()), "loss_g_adv": float(adv.detach()), "loss_d": float(loss_d.detach())}
