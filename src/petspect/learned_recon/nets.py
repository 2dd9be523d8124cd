"""Small networks shared by the learned reconstruction methods (2D, any input size, CPU-trainable).

* :class:`UNet2d` -- a compact U-Net (Ronneberger et al, MICCAI 2015) that pads its input to a multiple of
  ``2 ** (levels - 1)`` (edge replication) and crops the output back, optionally residual (adds input channel 0);
* :class:`DeepPetNet` -- a DeepPET-style encoder-decoder from a sinogram plane ``(views, radial)`` to an image
  slice ``(ny, nx)`` (Haggstrom et al, Med Image Anal 54:253, 2019: convolutional encoder on the sinogram, decoder
  to the image, no projector in the network).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from petspect.errors import InputError

__all__ = ["UNet2d", "DeepPetNet", "count_parameters"]


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(min(4, c_out), c_out),
                         nn.LeakyReLU(0.1, inplace=True), nn.Conv2d(c_out, c_out, 3, padding=1),
                         nn.LeakyReLU(0.1, inplace=True))


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


class UNet2d(nn.Module):
    """A small 2D U-Net: ``(B, in_channels, H, W) -> (B, out_channels, H, W)`` for any ``H, W``.

    Parameters
    ----------
    in_channels, out_channels : int
    widths : sequence of int
        Channels per level (``len(widths) - 1`` down-samplings by 2).
    residual : bool
        Add input channel 0 to the output (needs ``out_channels == 1``); the last convolution starts at zero, so
        an untrained residual network is the identity.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, widths: Sequence[int] = (16, 32, 64), *,
                 residual: bool = True) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) < 2 or min(widths) < 1 or in_channels < 1 or out_channels < 1:
            raise InputError(f"UNet2d needs >= 2 positive widths and positive channels, got {widths}")
        if residual and out_channels != 1:
            raise InputError("a residual UNet2d has one output channel")
        self.in_channels, self.out_channels, self.widths, self.residual = in_channels, out_channels, widths, residual
        self.down = nn.ModuleList([_block(in_channels, widths[0])] +
                                  [_block(widths[i - 1], widths[i]) for i in range(1, len(widths))])
        self.up = nn.ModuleList([nn.ConvTranspose2d(widths[i], widths[i - 1], 2, stride=2)
                                 for i in range(len(widths) - 1, 0, -1)])
        self.dec = nn.ModuleList([_block(2 * widths[i - 1], widths[i - 1]) for i in range(len(widths) - 1, 0, -1)])
        self.head = nn.Conv2d(widths[0], out_channels, 1)
        if residual:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise InputError(f"UNet2d expects (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        m = 2 ** (len(self.widths) - 1)
        ph, pw = (-h) % m, (-w) % m
        z = F.pad(x, (0, pw, 0, ph), mode="replicate") if (ph or pw) else x
        skips = []
        for i, blk in enumerate(self.down):
            z = blk(z if i == 0 else F.max_pool2d(z, 2))
            skips.append(z)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips[:-1])):
            z = dec(torch.cat([up(z), skip], dim=1))
        out = self.head(z)[..., :h, :w]
        return out + x[:, :1] if self.residual else out


class DeepPetNet(nn.Module):
    """DeepPET-style encoder-decoder: a sinogram plane ``(B, 1, views, radial)`` -> an image ``(B, 1, ny, nx)``.

    The encoder (strided convolutions) reduces the sinogram to a ``(ny / 8, nx / 8)`` feature map (adaptive
    average pooling fixes the size whatever the sinogram's), the decoder up-samples three times to ``(ny, nx)``;
    softplus keeps the output non-negative. The image's scale is the caller's (normalised units).

    Parameters
    ----------
    image_shape : (int, int)
        ``(ny, nx)``, multiples of 8.
    widths : sequence of 3 int
        Encoder widths (the decoder mirrors them).
    gain : float
        The caller's output unit, kept with the weights (buffer ``gain``; see :mod:`petspect.learned_recon.direct`).
    """

    def __init__(self, image_shape: tuple[int, int], widths: Sequence[int] = (32, 64, 128), *,
                 gain: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("gain", torch.tensor(float(gain), dtype=torch.float64))
        ny, nx = (int(v) for v in image_shape)
        w = tuple(int(v) for v in widths)
        if ny % 8 or nx % 8 or len(w) != 3 or min(w) < 1:
            raise InputError(f"DeepPetNet needs an image shape of multiples of 8 and 3 widths, got {image_shape}, {w}")
        self.image_shape = (ny, nx)
        self.encoder = nn.Sequential(_block(1, w[0]), nn.Conv2d(w[0], w[0], 3, stride=2, padding=1), _block(w[0], w[1]),
                                     nn.Conv2d(w[1], w[1], 3, stride=2, padding=1), _block(w[1], w[2]))
        self.pool = nn.AdaptiveAvgPool2d((ny // 8, nx // 8))
        self.bottleneck = _block(w[2], w[2])
        self.decoder = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), _block(w[2], w[1]),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), _block(w[1], w[0]),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), _block(w[0], w[0]),
            nn.Conv2d(w[0], 1, 3, padding=1))

    def forward(self, sino: torch.Tensor) -> torch.Tensor:
        if sino.ndim != 4 or sino.shape[1] != 1:
            raise InputError(f"DeepPetNet expects (B, 1, views, radial), got {tuple(sino.shape)}")
        return F.softplus(self.decoder(self.bottleneck(self.pool(self.encoder(sino)))))


def fit_mse(model: nn.Module, forward: Callable[[nn.Module, torch.Tensor], torch.Tensor], x: torch.Tensor,
            t: torch.Tensor, xv: torch.Tensor, tv: torch.Tensor, *, epochs: int, batch_size: int, lr: float, seed: int,
            description: str, val_key: str = "val_mse") -> tuple[Any, list[dict[str, float]]]:
    """Train ``model`` on ``(x, t)`` pairs with the mean squared error of ``forward(model, x)``, keeping the epoch
    with the lowest validation MSE on ``(xv, tv)`` (:func:`petspect.train.loop.fit_tensors`, batches drawn from a
    generator seeded with ``seed``).

    Returns
    -------
    (FitResult, list of dict)
        The loop's result and the history rows ``{"epoch", "train_loss", val_key}`` (MSE in the targets' units).
    """
    from petspect.train.loop import LoopSettings, fit_tensors

    def loss(m, batch):
        return ((forward(m, batch[0]) - batch[1]) ** 2).mean()

    def validate(m):
        with torch.no_grad():
            return float(((forward(m, xv) - tv) ** 2).mean())

    res = fit_tensors(model, [x, t], loss=loss, validate=validate,
                      settings=LoopSettings(epochs=epochs, batch_size=batch_size, lr=lr),
                      generator=torch.Generator().manual_seed(int(seed)), description=description)
    history = [{"epoch": i + 1, "train_loss": a, val_key: b} for i, (a, b) in enumerate(zip(res.train_loss, res.val))]
    return res, history
