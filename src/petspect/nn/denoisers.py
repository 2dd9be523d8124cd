"""Networks of our own: a residual CNN denoiser and a PatchGAN discriminator.

Both take ``spatial_dims`` (2 or 3), work on tensors of shape ``(batch, channels, *spatial)`` and keep
the spatial size of their input unchanged (the denoiser) or reduce it by a fixed factor (the
discriminator). Device and dtype follow the module's parameters (``.to(...)``).
"""

from __future__ import annotations

import torch
from torch import nn

from petspect.errors import InputError

_NORMS = ("batch", "instance", "none")


def _check_dims(spatial_dims: int) -> None:
    if spatial_dims not in (2, 3):
        raise InputError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")


def _conv(spatial_dims: int, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, padding: int | None = None,
          bias: bool = True) -> nn.Module:
    cls = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
    pad = kernel // 2 if padding is None else padding
    return cls(c_in, c_out, kernel, stride=stride, padding=pad, bias=bias)


def _norm(spatial_dims: int, kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return (nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d)(channels)
    if kind == "instance":
        return (nn.InstanceNorm2d if spatial_dims == 2 else nn.InstanceNorm3d)(channels, affine=True)
    return nn.Identity()


class _ResBlock(nn.Module):
    """conv-norm-act-conv-norm plus the identity, then the activation (He et al, CVPR 2016)."""

    def __init__(self, spatial_dims: int, channels: int, norm: str) -> None:
        super().__init__()
        bias = norm == "none"
        self.body = nn.Sequential(
            _conv(spatial_dims, channels, channels, bias=bias), _norm(spatial_dims, norm, channels),
            nn.LeakyReLU(0.01, inplace=True),
            _conv(spatial_dims, channels, channels, bias=bias), _norm(spatial_dims, norm, channels),
        )
        self.act = nn.LeakyReLU(0.01, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class ResidualDenoiser(nn.Module):
    """A DnCNN-like denoiser built from residual blocks, at full resolution (no down-sampling).

    ``head conv (3) -> n_blocks x residual block -> tail conv (3)``. The network has no pooling, so
    any spatial size works and the receptive field is ``2 * (2 * n_blocks + 2) + 1`` voxels per axis.
    The tail convolution starts at zero, so with residual learning (see
    :func:`petspect.nn.build_network`) an untrained network is the identity map.

    Parameters
    ----------
    spatial_dims : {2, 3}
        2 for slices (and 2.5D stacks of slices as channels), 3 for volumes.
    in_channels, out_channels : int
        Channels of the input ``(B, in_channels, *spatial)`` and output ``(B, out_channels, *spatial)``.
    features : int
        Width (channels) of every hidden layer.
    n_blocks : int
        Number of residual blocks.
    norm : {"batch", "instance", "none"}
        Normalisation inside the blocks.

    References
    ----------
    Zhang et al, "Beyond a Gaussian denoiser: residual learning of deep CNN for image denoising",
    IEEE TIP 2017 (DnCNN).
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int = 1, *, features: int = 32,
                 n_blocks: int = 4, norm: str = "batch") -> None:
        super().__init__()
        _check_dims(spatial_dims)
        _check_positive(in_channels=in_channels, out_channels=out_channels, features=features, n_blocks=n_blocks)
        if norm not in _NORMS:
            raise InputError(f"norm must be one of {_NORMS}, got {norm!r}")
        self.spatial_dims = spatial_dims
        self.head = nn.Sequential(_conv(spatial_dims, in_channels, features), nn.LeakyReLU(0.01, inplace=True))
        self.blocks = nn.Sequential(*[_ResBlock(spatial_dims, features, norm) for _ in range(n_blocks)])
        self.tail = _conv(spatial_dims, features, out_channels)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_channels, *spatial)`` to ``(B, out_channels, *spatial)``."""
        if x.ndim != self.spatial_dims + 2:
            raise InputError(f"expected a {self.spatial_dims + 2}D tensor (B, C, *spatial), got shape {tuple(x.shape)}")
        return self.tail(self.blocks(self.head(x)))


class PatchGAN(nn.Module):
    """The pix2pix PatchGAN discriminator: one realness logit per overlapping input patch.

    ``conv(4, stride 2) -> LeakyReLU(0.2)``, then ``n_layers - 1`` blocks of ``conv(4, stride 2) -> norm
    -> LeakyReLU`` doubling the width (at most 8x), one stride-1 block and a stride-1 conv to one channel.
    Logits are raw (no sigmoid): use them with an LSGAN (MSE) or BCE-with-logits loss.

    Parameters
    ----------
    spatial_dims : {2, 3}
    in_channels : int
        For a conditional GAN: channels of the condition plus channels of the image judged.
    features : int
        Width of the first layer.
    n_layers : int
        Number of stride-2 layers; the output is about ``1 / 2**n_layers`` of the input size and each
        logit sees a 70x70 patch for ``n_layers = 3`` (in 2D).
    norm : {"batch", "instance", "none"}

    References
    ----------
    Isola et al, "Image-to-image translation with conditional adversarial networks", CVPR 2017.
    """

    def __init__(self, spatial_dims: int, in_channels: int, *, features: int = 64, n_layers: int = 3,
                 norm: str = "instance") -> None:
        super().__init__()
        _check_dims(spatial_dims)
        _check_positive(in_channels=in_channels, features=features, n_layers=n_layers)
        if norm not in _NORMS:
            raise InputError(f"norm must be one of {_NORMS}, got {norm!r}")
        self.spatial_dims = spatial_dims
        layers: list[nn.Module] = [_conv(spatial_dims, in_channels, features, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        width = features
        for i in range(1, n_layers + 1):
            new = features * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers += [_conv(spatial_dims, width, new, 4, stride, 1, bias=norm == "none"),
                       _norm(spatial_dims, norm, new), nn.LeakyReLU(0.2, True)]
            width = new
        layers.append(_conv(spatial_dims, width, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_channels, *spatial)`` to logits ``(B, 1, *patch_grid)``."""
        if x.ndim != self.spatial_dims + 2:
            raise InputError(f"expected a {self.spatial_dims + 2}D tensor (B, C, *spatial), got shape {tuple(x.shape)}")
        return self.model(x)
