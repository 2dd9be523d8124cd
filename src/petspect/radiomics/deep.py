"""Deep features: the bottleneck of a small 3D convolutional autoencoder trained (unsupervised) on ROI-centred
patches, as an alternative to hand-crafted radiomic features.

Each ROI becomes a fixed-size patch centred on the ROI's centre of mass, with two channels: the image divided
by the ROI's mean intensity (so features describe shape and texture, not the uptake level) and the mask.
The autoencoder reconstructs the patch; the encoder's global-average-pooled bottleneck gives the features
``deep_000`` ... (no label is used, so the features can be built on all subjects before a nested CV).
"""

from __future__ import annotations

import numpy as np

from petspect.errors import InputError

__all__ = ["roi_patch", "DeepFeatureModel", "train_deep_features", "deep_features"]


def roi_patch(image: np.ndarray, mask: np.ndarray, size: int = 24) -> np.ndarray:
    """(2, size, size, size) patch around the ROI's centre of mass: image / ROI mean, and the mask (zero-padded)."""
    image = np.asarray(image, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if image.shape != mask.shape or image.ndim != 3:
        raise InputError(f"image and mask must be 3D of one shape, got {image.shape}, {mask.shape}")
    if not mask.any():
        raise InputError("the ROI mask is empty")
    mean = float(image[mask].mean())
    if not np.isfinite(mean) or mean == 0:
        raise InputError("the ROI mean intensity must be finite and nonzero")
    c = np.round(np.argwhere(mask).mean(0)).astype(int)
    out = np.zeros((2, size, size, size))
    src, dst = [], []
    for ax in range(3):
        start = c[ax] - size // 2
        a, b = max(0, start), min(image.shape[ax], start + size)
        src.append(slice(a, b))
        dst.append(slice(a - start, b - start))
    out[(0, *dst)] = image[tuple(src)] / mean
    out[(1, *dst)] = mask[tuple(src)]
    return out


class DeepFeatureModel:
    """A 3D convolutional autoencoder (2 -> 8 -> 16 -> ``n_features`` channels, stride-2 convolutions) whose
    pooled bottleneck are the features."""

    def __init__(self, n_features: int = 16, size: int = 24, seed: int = 0):
        import torch
        from torch import nn

        if size % 8:
            raise InputError("patch size must be a multiple of 8")
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.encoder = nn.Sequential(
                nn.Conv3d(2, 8, 3, stride=2, padding=1), nn.GELU(), nn.Conv3d(8, 16, 3, stride=2, padding=1),
                nn.GELU(), nn.Conv3d(16, n_features, 3, stride=2, padding=1))
            self.decoder = nn.Sequential(
                nn.GELU(), nn.ConvTranspose3d(n_features, 16, 4, stride=2, padding=1), nn.GELU(),
                nn.ConvTranspose3d(16, 8, 4, stride=2, padding=1), nn.GELU(),
                nn.ConvTranspose3d(8, 2, 4, stride=2, padding=1))
        self.n_features = n_features
        self.size = size
        self.history: list[float] = []

    def embed(self, patches: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            z = self.encoder(torch.as_tensor(patches, dtype=torch.float32))
        return z.mean((2, 3, 4)).numpy().astype(np.float64)


def train_deep_features(patches: np.ndarray, *, n_features: int = 16, epochs: int = 60, lr: float = 2e-3,
                        batch: int = 16, seed: int = 0) -> DeepFeatureModel:
    """Train the autoencoder on patches (n, 2, s, s, s) with a seeded generator (no global RNG)."""
    import torch

    x = torch.as_tensor(np.asarray(patches), dtype=torch.float32)
    if x.ndim != 5 or x.shape[1] != 2:
        raise InputError(f"patches must be (n, 2, s, s, s), got {tuple(x.shape)}")
    model = DeepFeatureModel(n_features, x.shape[-1], seed)
    params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g)
        total = 0.0
        for i in range(0, len(x), batch):
            xb = x[order[i:i + batch]]
            opt.zero_grad()
            loss = ((model.decoder(model.encoder(xb)) - xb) ** 2).mean()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(xb)
        model.history.append(total / len(x))
    return model


def deep_features(model: DeepFeatureModel, image: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """``deep_000`` ... features of one ROI."""
    z = model.embed(roi_patch(image, mask, model.size)[None])[0]
    return {f"deep_{i:03d}": float(v) for i, v in enumerate(z)}
