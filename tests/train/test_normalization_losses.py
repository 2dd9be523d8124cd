"""Normalisations (invertible, unit-aware, serialisable) and losses (definitions and limits)."""

from __future__ import annotations

import pytest
import torch

from petspect.errors import ConfigError, InputError
from petspect.train import (Affine, CharbonnierLoss, GANLoss, Identity, Log1p, SuvScaling, build_loss,
                            normalization_from_dict)


@pytest.mark.parametrize("norm", [Identity(), SuvScaling(5000.0, unit="Bq/mL"), Log1p(2.5), Affine(-1000.0, 1000.0)])
def test_roundtrip_and_serialisation(norm, device):
    x = (torch.rand(3, 4, 5, generator=torch.Generator().manual_seed(0)) * 1e4).to(device, torch.float64)
    torch.testing.assert_close(norm.inverse(norm.forward(x)), x)
    again = normalization_from_dict(norm.to_dict())
    assert type(again) is type(norm) and again == norm
    assert norm.forward(x).device == x.device and norm.forward(x).dtype == x.dtype


def test_values():
    """SUV scaling divides; log1p(x / s) compresses; both keep 0 at 0 (non-negativity survives inversion)."""
    x = torch.tensor([0.0, 5000.0, 20000.0])
    torch.testing.assert_close(SuvScaling(5000.0).forward(x), torch.tensor([0.0, 1.0, 4.0]))
    torch.testing.assert_close(Log1p(5000.0).forward(x), torch.log1p(torch.tensor([0.0, 1.0, 4.0])))
    torch.testing.assert_close(Affine(-1000.0, 1000.0).forward(torch.tensor([-1000.0, 0.0])), torch.tensor([0.0, 1.0]))


def test_unit_check_and_bad_parameters():
    SuvScaling(1.0, unit="Bq/mL").check_unit("Bq/mL")
    SuvScaling(1.0).check_unit("HU")  # no unit recorded: any is accepted
    with pytest.raises(InputError, match="Bq/mL"):
        SuvScaling(1.0, unit="Bq/mL").check_unit("SUVbw")
    for bad in (lambda: SuvScaling(0.0), lambda: Log1p(-1.0), lambda: Affine(0.0, float("inf"))):
        with pytest.raises(InputError):
            bad()
    with pytest.raises(ConfigError):
        normalization_from_dict({"kind": "zscore"})
    with pytest.raises(ConfigError):
        normalization_from_dict({"kind": "log1p", "factor": 2.0})


def test_charbonnier_limits():
    """Zero for equal images, ~|d| for |d| >> eps, ~d^2 / (2 eps) for |d| << eps."""
    loss = CharbonnierLoss(eps=1e-3)
    a = torch.zeros(1, 1, 4, 4)
    assert float(loss(a, a)) == 0.0
    assert float(loss(a + 2.0, a)) == pytest.approx(2.0, rel=1e-3)
    assert float(loss(a + 1e-5, a)) == pytest.approx(1e-10 / 2e-3, rel=1e-2)


def test_combined_loss_weights():
    g = torch.Generator().manual_seed(0)
    p, t = torch.rand(2, 1, 16, 16, generator=g), torch.rand(2, 1, 16, 16, generator=g)
    combo = build_loss({"l1": 1.0, "mse": 0.5, "ssim": 0.2}, spatial_dims=2)
    value = combo(p, t)
    terms = combo.last_terms
    assert terms["l1"] == pytest.approx(float((p - t).abs().mean()), rel=1e-6)
    assert terms["mse"] == pytest.approx(float(((p - t) ** 2).mean()), rel=1e-6)
    assert float(value) == pytest.approx(terms["l1"] + 0.5 * terms["mse"] + 0.2 * terms["ssim"], rel=1e-6)
    assert float(build_loss({"ssim": 1.0}, spatial_dims=2)(t, t)) == pytest.approx(0.0, abs=1e-5)
    assert 0.0 < terms["ssim"] <= 2.0


def test_voxel_weighted_pixel_losses():
    """Weights of ones change nothing; weights w on a region and 1 elsewhere give sum(w l) / sum(w); SSIM ignores
    the map. Reference: the weighted arithmetic mean written out by hand."""
    g = torch.Generator().manual_seed(1)
    p, t = torch.rand(2, 1, 12, 12, generator=g), torch.rand(2, 1, 12, 12, generator=g)
    w = torch.ones_like(t)
    w[:, :, 2:4, 2:5] = 10.0
    for name, per_voxel in (("l1", (p - t).abs()), ("mse", (p - t) ** 2),
                            ("charbonnier", torch.sqrt((p - t) ** 2 + 1e-6) - 1e-3)):
        loss = build_loss({name: 1.0}, spatial_dims=2)
        assert float(loss(p, t, torch.ones_like(t))) == pytest.approx(float(loss(p, t)), rel=1e-6)
        assert float(loss(p, t, w)) == pytest.approx(float((w * per_voxel).sum() / w.sum()), rel=1e-5)
    ssim = build_loss({"ssim": 1.0}, spatial_dims=2)
    assert float(ssim(p, t, w)) == pytest.approx(float(ssim(p, t)), rel=1e-6)
    # a weight map only on the region equals the region's own mean
    only = torch.zeros_like(t)
    only[:, :, 2:4, 2:5] = 1.0
    region = (p - t).abs()[:, :, 2:4, 2:5].mean()
    assert float(build_loss({"l1": 1.0}, spatial_dims=2)(p, t, only)) == pytest.approx(float(region), rel=1e-6)


def test_loss_bad_specs():
    for spec in ({}, {"perceptual": 1.0}, {"l1": -1.0}, {"l1": 0.0}):
        with pytest.raises(ConfigError):
            build_loss(spec, spatial_dims=3)
    with pytest.raises(ConfigError):
        GANLoss("wgan")


@pytest.mark.parametrize("kind", ["lsgan", "bce"])
def test_gan_loss(kind):
    """A confident, correct discriminator has a small loss; a wrong one a large loss."""
    gan = GANLoss(kind)
    good = torch.full((2, 1, 3, 3), 1.0 if kind == "lsgan" else 20.0)
    assert float(gan(good, True)) < 1e-6
    assert float(gan(good, False)) > 0.9
    if kind == "lsgan":
        assert float(gan(torch.zeros(1, 1, 2, 2), True)) == pytest.approx(1.0)


def test_gradient_clipping_bounds_the_update():
    """With grad_clip_norm the gradient applied by plain SGD has exactly that norm (the raw one is larger)."""
    from petspect.train.losses import build_loss
    from petspect.train.steps import SupervisedStep

    torch.manual_seed(0)  # parameter initialisation
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    before = [p.detach().clone() for p in net.parameters()]
    step = SupervisedStep(net, build_loss({"mse": 1.0}, spatial_dims=2), torch.optim.SGD(net.parameters(), lr=1.0))
    step.grad_clip_norm = 0.5
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(2, 1, 8, 8, generator=g), 100 * torch.rand(2, 1, 8, 8, generator=g)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    step.step(x, y, scaler, lambda: torch.autocast("cpu", enabled=False))
    delta = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(net.parameters(), before)))
    assert float(delta) == pytest.approx(0.5, rel=1e-5)
