"""Shape tables and option checks for the network factory (petspect.nn)."""

from __future__ import annotations

import pytest
import torch

from petspect.errors import InputError
from petspect.nn import build_discriminator, build_network, channels_2p5d

# name, spatial_dims, in_channels, out_channels, channels, input spatial shape
SHAPE_TABLE = [
    ("unet", 2, 1, 1, (4, 8, 16), (16, 16)),
    ("unet", 3, 2, 1, (4, 8), (8, 16, 12)),
    ("unet", 2, 5, 2, (4, 8, 16), (24, 32)),          # 2.5D: 5 slices of PET
    ("basicunet", 2, 1, 1, (4, 4, 8, 8, 16), (32, 32)),
    ("basicunet", 3, 2, 1, (2, 2, 4, 4, 8, 2), (32, 32, 32)),
    ("dynunet", 2, 6, 1, (4, 8, 16), (16, 20)),        # 2.5D: 3 slices x (PET, CT)
    ("dynunet", 3, 1, 3, (4, 4, 8), (8, 8, 8)),
    ("segresnet", 2, 1, 1, (8, 16, 32), (16, 16)),
    ("segresnet", 3, 2, 1, (8, 16), (8, 12, 8)),
    ("resnet", 2, 3, 1, (8,), (13, 7)),                 # full resolution: any size
    ("resnet", 3, 2, 2, (8,), (5, 9, 11)),
]


@pytest.mark.parametrize("name,dims,cin,cout,channels,spatial", SHAPE_TABLE)
def test_shape_table(name, dims, cin, cout, channels, spatial, device):
    """Every backbone keeps the spatial shape and maps in_channels to out_channels (2D, 2.5D, 3D)."""
    torch.manual_seed(0)  # parameter initialisation only
    net = build_network(name, spatial_dims=dims, in_channels=cin, out_channels=cout, channels=channels).to(device)
    x = torch.randn(2, cin, *spatial, generator=torch.Generator().manual_seed(0)).to(device)
    y = net(x)
    assert y.shape == (2, cout, *spatial)
    assert y.device.type == device.type and torch.isfinite(y).all()


def test_residual_identity_at_init():
    """The residual denoiser's tail starts at zero, so with residual learning it is the identity on the PET channel."""
    net = build_network("resnet", spatial_dims=2, in_channels=6, channels=(8,), residual=True, pet_channel=1)
    x = torch.randn(3, 6, 10, 10, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(net(x), x[:, 1:2])


def test_residual_adds_pet_channel():
    """output = x[:, pet_channel] + backbone(x)."""
    net = build_network("unet", spatial_dims=2, in_channels=3, channels=(4, 8), residual=True, pet_channel=2).eval()
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(net(x), net.backbone(x) + x[:, 2:3])


@pytest.mark.parametrize("mode", [True, "relu"])
def test_nonnegative(mode):
    net = build_network("dynunet", spatial_dims=3, in_channels=1, channels=(4, 4, 8), nonnegative=mode,
                        residual=True).eval()
    x = -10 * torch.rand(2, 1, 8, 8, 8, generator=torch.Generator().manual_seed(3))
    y = net(x)
    assert (y >= 0).all()
    if mode == "relu":
        assert (y == 0).any()


def test_channels_2p5d():
    assert channels_2p5d(5) == (5, 2)
    assert channels_2p5d(3, 2) == (6, 1)
    with pytest.raises(InputError):
        channels_2p5d(4)


@pytest.mark.parametrize("kwargs", [
    dict(name="vnet", spatial_dims=3, in_channels=1),
    dict(name="unet", spatial_dims=1, in_channels=1),
    dict(name="unet", spatial_dims=2, in_channels=0),
    dict(name="unet", spatial_dims=2, in_channels=1, channels=(8,)),
    dict(name="unet", spatial_dims=2, in_channels=2, pet_channel=2),
    dict(name="unet", spatial_dims=2, in_channels=1, out_channels=2, residual=True),
    dict(name="unet", spatial_dims=2, in_channels=1, nonnegative="abs"),
    dict(name="dynunet", spatial_dims=2, in_channels=1, channels=(8, 16)),
    dict(name="segresnet", spatial_dims=2, in_channels=1, channels=(8, 12)),
    dict(name="basicunet", spatial_dims=2, in_channels=1, channels=(8, 8, 8)),
    dict(name="resnet", spatial_dims=2, in_channels=1, channels=(8,), no_such_option=1),
])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(InputError):
        build_network(**kwargs)


def test_bad_input_shape_raises():
    net = build_network("unet", spatial_dims=2, in_channels=2, channels=(4, 8, 16))
    with pytest.raises(InputError, match="multiples of 4"):
        net(torch.zeros(1, 2, 10, 16))
    with pytest.raises(InputError):
        net(torch.zeros(1, 3, 16, 16))


@pytest.mark.parametrize("name,dims,spatial,grid", [
    ("patchgan", 2, (32, 32), (6, 6)),      # 32 -> 16 -> 8 (stride 2), 7, 6 (stride-1 k4)
    ("patchgan", 3, (32, 32, 32), (6, 6, 6)),
    ("monai_patchgan", 2, (32, 32), (6, 6)),
])
def test_discriminator_shapes(name, dims, spatial, grid, device):
    torch.manual_seed(0)
    d = build_discriminator(name, spatial_dims=dims, in_channels=2, features=8, n_layers=2, norm="batch").to(device)
    out = d(torch.randn(2, 2, *spatial, device=device))
    assert out.shape == (2, 1, *grid)


def test_discriminator_bad_args():
    with pytest.raises(InputError):
        build_discriminator("dcgan", spatial_dims=2, in_channels=2)
    with pytest.raises(InputError):
        build_discriminator(spatial_dims=2, in_channels=2, norm="layer")
