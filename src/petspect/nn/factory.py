"""The network factory: MONAI image-to-image networks and our own, behind one validated call.

2D, 2.5D and 3D
---------------
* 3D: ``spatial_dims=3``, tensors ``(B, C, z, y, x)``.
* 2D: ``spatial_dims=2``, tensors ``(B, C, y, x)`` (one axial slice).
* 2.5D: ``spatial_dims=2`` with ``n_slices`` neighbouring slices of each modality stacked as channels,
  modality-major: channel ``m * n_slices + s`` is slice ``s`` of modality ``m``. The network predicts
  the centre slice; :func:`channels_2p5d` gives ``in_channels`` and the centre PET channel.

Modality 0 is always the PET (or SPECT) image; further modalities (CT, MR, attenuation map) are
anatomical priors given as extra input channels.

Output options
--------------
* ``residual=True``: the network learns a correction, ``output = x[:, pet_channel] + net(x)``.
* ``nonnegative="softplus"`` or ``"relu"``: the output goes through that function. This means a
  non-negative activity only when the intensity normalisation maps 0 to 0 and is increasing (true of
  :class:`petspect.train.SuvScaling` and :class:`petspect.train.Log1p`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from petspect.errors import InputError
from petspect.nn.denoisers import PatchGAN, ResidualDenoiser, _check_dims, _check_positive

NETWORKS = ("unet", "basicunet", "dynunet", "segresnet", "resnet")
DISCRIMINATORS = ("patchgan", "monai_patchgan")


def channels_2p5d(n_slices: int, n_modalities: int = 1) -> tuple[int, int]:
    """``(in_channels, pet_channel)`` of a 2.5D network.

    Parameters
    ----------
    n_slices : int
        Odd number of neighbouring slices per modality (the centre one is predicted).
    n_modalities : int
        PET plus anatomical channels (CT, MR, ...).

    Returns
    -------
    (int, int)
        ``n_slices * n_modalities`` and the index of the centre PET slice, ``n_slices // 2``.
    """
    _check_positive(n_slices=n_slices, n_modalities=n_modalities)
    if n_slices % 2 == 0:
        raise InputError(f"n_slices must be odd (the centre slice is predicted), got {n_slices}")
    return n_slices * n_modalities, n_slices // 2


class ImageToImage(nn.Module):
    """A backbone with the residual and non-negativity options applied to its output.

    Attributes
    ----------
    backbone : nn.Module
        ``(B, in_channels, *spatial) -> (B, out_channels, *spatial)``.
    size_divisor : int
        Each spatial input size must be a multiple of this (1 when any size works).
    """

    def __init__(self, backbone: nn.Module, *, spatial_dims: int, in_channels: int, out_channels: int,
                 residual: bool, pet_channel: int, nonnegative: str | None, size_divisor: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.residual = residual
        self.pet_channel = pet_channel
        self.nonnegative = nonnegative
        self.size_divisor = size_divisor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_channels, *spatial)`` to ``(B, out_channels, *spatial)``."""
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise InputError(f"expected shape (B, {self.in_channels}, {self.spatial_dims} spatial axes), "
                             f"got {tuple(x.shape)}")
        bad = [n for n in x.shape[2:] if n % self.size_divisor]
        if bad:
            raise InputError(f"spatial sizes {tuple(x.shape[2:])} must be multiples of {self.size_divisor} "
                             "for this network (pad the input or change the patch size)")
        y = self.backbone(x)
        if self.residual:
            y = y + x[:, self.pet_channel:self.pet_channel + 1]
        if self.nonnegative == "softplus":
            y = nn.functional.softplus(y)
        elif self.nonnegative == "relu":
            y = torch.relu(y)
        return y


def _validate_channels(channels: Sequence[int], minimum: int) -> tuple[int, ...]:
    ch = tuple(channels)
    if len(ch) < minimum or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in ch):
        raise InputError(f"channels must be at least {minimum} positive integers, got {channels!r}")
    return ch


def _backbone(name: str, spatial_dims: int, in_channels: int, out_channels: int, channels: tuple[int, ...],
              kw: dict[str, Any]) -> tuple[nn.Module, int]:
    """Build the bare network and its size divisor; ``kw`` is consumed."""
    n = len(channels)
    if name == "resnet":
        return ResidualDenoiser(spatial_dims, in_channels, out_channels, features=channels[0], **kw), 1
    from monai.networks import nets  # lazy: importing MONAI takes seconds

    if name == "unet":
        net = nets.UNet(spatial_dims, in_channels, out_channels, channels=channels, strides=(2,) * (n - 1),
                        num_res_units=kw.pop("num_res_units", 2), norm=kw.pop("norm", "INSTANCE"), **kw)
        return net, 2 ** (n - 1)
    if name == "basicunet":
        if n not in (5, 6):
            raise InputError(f"basicunet takes 5 encoder widths (or 6 with the decoder's last), got {channels}")
        feats = channels if n == 6 else (*channels, channels[0])
        return nets.BasicUNet(spatial_dims, in_channels, out_channels, features=feats, **kw), 16
    if name == "dynunet":
        strides = [1] + [2] * (n - 1)
        net = nets.DynUNet(spatial_dims, in_channels, out_channels, kernel_size=[3] * n, strides=strides,
                           upsample_kernel_size=strides[1:], filters=channels, res_block=kw.pop("res_block", True),
                           **kw)
        return net, 2 ** (n - 1)
    # segresnet: widths double at each level
    if any(c != channels[0] * 2**i for i, c in enumerate(channels)):
        raise InputError(f"segresnet widths must double at each level (e.g. 8, 16, 32, 64), got {channels}")
    groups = kw.pop("num_groups", min(8, channels[0]))
    net = nets.SegResNet(spatial_dims, init_filters=channels[0], in_channels=in_channels, out_channels=out_channels,
                         blocks_down=kw.pop("blocks_down", (1,) + (2,) * (n - 2) + (4,)),
                         blocks_up=kw.pop("blocks_up", (1,) * (n - 1)), norm=("GROUP", {"num_groups": groups}), **kw)
    return net, 2 ** (n - 1)


def build_network(name: str, *, spatial_dims: int, in_channels: int, out_channels: int = 1,
                  channels: Sequence[int] = (16, 32, 64, 128), residual: bool = False, nonnegative: bool | str = False,
                  pet_channel: int = 0, **kw: Any) -> ImageToImage:
    """Build an image-to-image network (denoising, synthesis, direct correction).

    Parameters
    ----------
    name : {"unet", "basicunet", "dynunet", "segresnet", "resnet"}
        MONAI ``UNet`` (residual units), ``BasicUNet``, ``DynUNet`` (nnU-Net style), ``SegResNet``, or our
        :class:`~petspect.nn.denoisers.ResidualDenoiser` (full resolution, any input size).
    spatial_dims : {2, 3}
        2 for 2D and 2.5D, 3 for 3D (see the module docstring).
    in_channels : int
        Input channels: modalities (2D/3D) or ``n_slices * n_modalities`` (2.5D, see :func:`channels_2p5d`).
    out_channels : int
        Output channels (1 for a PET image).
    channels : sequence of int
        Widths per resolution level (U-Nets: ``len(channels) - 1`` down-samplings; ``basicunet``: 5;
        ``segresnet``: doubling widths; ``resnet``: ``channels[0]`` is the width).
    residual : bool
        Add the input's PET channel ``x[:, pet_channel]`` to the output (needs ``out_channels == 1``).
    nonnegative : bool or {"softplus", "relu"}
        Pass the output through softplus (``True``) or ReLU.
    pet_channel : int
        Index of the PET channel used by ``residual`` (the centre slice in 2.5D).
    **kw
        Passed to the backbone (e.g. ``num_res_units``, ``dropout`` for UNet; ``n_blocks``, ``norm`` for resnet).

    Returns
    -------
    ImageToImage
        ``(B, in_channels, *spatial) -> (B, out_channels, *spatial)``; ``size_divisor`` tells which input
        sizes are allowed.

    Raises
    ------
    InputError
        Unknown name, invalid sizes or options.
    """
    _check_dims(spatial_dims)
    _check_positive(in_channels=in_channels, out_channels=out_channels)
    key = name.lower()
    if key not in NETWORKS:
        raise InputError(f"unknown network {name!r}; choose one of {NETWORKS}")
    ch = _validate_channels(channels, {"resnet": 1, "dynunet": 3}.get(key, 2))
    if not 0 <= pet_channel < in_channels:
        raise InputError(f"pet_channel must be in [0, {in_channels}), got {pet_channel}")
    if residual and out_channels != 1:
        raise InputError("residual=True adds the PET channel to the output, so out_channels must be 1")
    nonneg = {False: None, None: None, True: "softplus", "softplus": "softplus", "relu": "relu"}.get(nonnegative, "?")
    if nonneg == "?":
        raise InputError(f"nonnegative must be False, True, 'softplus' or 'relu', got {nonnegative!r}")
    try:
        backbone, divisor = _backbone(key, spatial_dims, in_channels, out_channels, ch, dict(kw))
    except (TypeError, ValueError) as exc:  # an unknown keyword or value for this backbone
        raise InputError(f"invalid option for network {name!r}: {exc}") from exc
    return ImageToImage(backbone, spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels,
                        residual=residual, pet_channel=pet_channel, nonnegative=nonneg, size_divisor=divisor)


def build_discriminator(name: str = "patchgan", *, spatial_dims: int, in_channels: int, features: int = 64,
                        n_layers: int = 3, norm: str = "instance") -> nn.Module:
    """Build a PatchGAN discriminator returning logits ``(B, 1, *patch_grid)``.

    Parameters
    ----------
    name : {"patchgan", "monai_patchgan"}
        Our :class:`~petspect.nn.denoisers.PatchGAN` or MONAI's ``PatchDiscriminator`` (last output only).
    spatial_dims : {2, 3}
    in_channels : int
        Channels judged: for a conditional GAN the condition's channels plus the image's.
    features, n_layers, norm
        Width of the first layer, number of stride-2 layers, normalisation ("batch", "instance", "none").
    """
    key = name.lower()
    if key == "patchgan":
        return PatchGAN(spatial_dims, in_channels, features=features, n_layers=n_layers, norm=norm)
    if key != "monai_patchgan":
        raise InputError(f"unknown discriminator {name!r}; choose one of {DISCRIMINATORS}")
    _check_dims(spatial_dims)
    _check_positive(in_channels=in_channels, features=features, n_layers=n_layers)
    from monai.networks.nets import PatchDiscriminator

    return _LastOutput(PatchDiscriminator(spatial_dims=spatial_dims, channels=features, in_channels=in_channels,
                                          num_layers_d=n_layers, norm=norm.upper() if norm != "none" else None))


class _LastOutput(nn.Module):
    """Keep only the final output of a module returning a list of intermediate features."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)[-1]
