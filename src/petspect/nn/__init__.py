"""Networks for PET and SPECT image-to-image tasks (denoising, synthesis, correction).

Import cost is small: MONAI is loaded only when a MONAI network is built.

* :func:`build_network` -- MONAI UNet, BasicUNet, DynUNet, SegResNet or our residual denoiser, in
  2D, 2.5D or 3D, with residual-learning and non-negative output options.
* :func:`build_discriminator` -- a PatchGAN discriminator (ours or MONAI's).
* :func:`channels_2p5d` -- channel count and centre PET channel of a 2.5D input.
"""

from __future__ import annotations

from petspect.nn.denoisers import PatchGAN, ResidualDenoiser
from petspect.nn.factory import (DISCRIMINATORS, NETWORKS, ImageToImage, build_discriminator, build_network,
                                 channels_2p5d)

__all__ = ["build_network", "build_discriminator", "channels_2p5d", "ImageToImage", "ResidualDenoiser", "PatchGAN",
           "NETWORKS", "DISCRIMINATORS"]
