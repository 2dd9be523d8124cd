"""Training data from a petspect dataset (``dataset.json``, decathlon layout): patches, augmentation.

See docs/DEVELOPING.md, "Dataset layout": every split is a list of entries mapping keys
(``recon_d010_osem_ac``, ``recon_d100_osem_ac``, ``ct``, ...) to NIfTI paths relative to the dataset folder.

Sampling is deterministic: the patch and augmentation of item ``i`` in epoch ``e`` come from a generator
seeded with ``(seed, e, i)``, so the same item is the same patch whatever the worker or rank that loads
it, and a resumed run sees exactly the data an uninterrupted run would have seen.

Patch layout
------------
* ``mode="3d"``: ``patch_size = (pz, py, px)``; input ``(n_modalities, pz, py, px)``, target ``(1, pz, py, px)``.
* ``mode="2d"``: ``patch_size = (py, px)``; one axial slice: input ``(n_modalities, py, px)``.
* ``mode="2.5d"``: ``patch_size = (py, px)``; ``n_slices`` neighbouring slices per modality as channels,
  modality-major (see :func:`petspect.nn.channels_2p5d`), edge slices repeated at the volume ends;
  the target is the centre slice ``(1, py, px)``.

Modality 0 is the ``input_key`` image; ``extra_keys`` follow in order.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from petspect.errors import ConfigError, FormatError, InputError
from petspect.simulate.layout import DATASET_JSON, read_json
from petspect.train.normalization import Identity, Normalization

MODES = ("2d", "2.5d", "3d")


def read_dataset(path: str | os.PathLike, split: str) -> tuple[list[dict[str, str]], Path]:
    """Entries of one split of a dataset and the folder their paths are relative to.

    Parameters
    ----------
    path : str or PathLike
        The dataset folder or its ``dataset.json``.
    split : str
        "training", "validation" or "test" (any list-valued key of dataset.json).

    Returns
    -------
    (list of dict, Path)
        The entries (key -> relative path, plus "subject") and the dataset folder.
    """
    p = Path(path)
    js = p / DATASET_JSON if p.is_dir() else p
    meta = read_json(js)
    entries = meta.get(split, [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise FormatError(f"split {split!r} must be a list of entries (dicts)", path=js)
    return entries, js.parent


@dataclass
class Augmentation:
    """Random augmentations applied identically to input and target.

    Parameters
    ----------
    flip : bool
        Random flips of the in-plane axes (y, x) and, in 3D, of z.
    rot90 : bool
        Random multiples of 90 degrees in the axial (y, x) plane (square patches only).
    intensity_range : (float, float) or None
        Multiply the PET input and the target by one factor drawn log-uniformly in this range (the same
        for both, so the dose ratio is kept). Anatomical channels are not scaled.
    """

    flip: bool = True
    rot90: bool = True
    intensity_range: tuple[float, float] | None = (0.8, 1.25)

    def __post_init__(self) -> None:
        if self.intensity_range is not None:
            lo, hi = (float(v) for v in self.intensity_range)
            if not 0 < lo <= hi or not math.isfinite(hi):
                raise ConfigError(f"intensity_range must be 0 < low <= high, got {self.intensity_range!r}")
            self.intensity_range = (lo, hi)


def check_weighting(weight_factor: float, weight_dilate_voxels: int) -> None:
    """Raise :class:`~petspect.errors.ConfigError` unless ``weight_factor >= 1`` (finite) and the dilation >= 0."""
    if not (math.isfinite(weight_factor) and weight_factor >= 1.0):
        raise ConfigError(f"weight_factor must be a finite number >= 1, got {weight_factor!r}")
    if int(weight_dilate_voxels) < 0:
        raise ConfigError(f"weight_dilate_voxels must be >= 0, got {weight_dilate_voxels!r}")


def _item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    state = np.random.SeedSequence([int(seed), int(epoch) + 1, int(index)]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & 0x7FFF_FFFF_FFFF_FFFF)


def _randint(g: torch.Generator, high: int) -> int:
    return int(torch.randint(high, (1,), generator=g)) if high > 1 else 0


def _uniform(g: torch.Generator) -> float:
    return float(torch.rand((), generator=g))


class PairedVolumeDataset(Dataset):
    """Random patches of (input, target) pairs from dataset entries, for supervised or GAN training.

    Parameters
    ----------
    entries : sequence of dict
        Dataset entries (from :func:`read_dataset`): key -> path relative to ``root``.
    root : str or PathLike
        The dataset folder.
    input_key, target_key : str
        Entry keys of the network input (e.g. a low-dose reconstruction) and the target (full dose).
    extra_keys : sequence of str
        Anatomical channels (``ct``, ``mr_t1``, ``mu_511``) added after the input.
    patch_size : sequence of int
        ``(pz, py, px)`` in 3D, ``(py, px)`` in 2D and 2.5D; volumes smaller than a patch are zero-padded.
    mode : {"2d", "2.5d", "3d"}
    n_slices : int
        Slices per modality in 2.5D (odd); 1 otherwise.
    patches_per_volume : int
        Items per entry and epoch.
    foreground_fraction : float
        Probability that a patch is centred on a foreground voxel (target above ``foreground_threshold``).
    foreground_threshold : float, optional
        In the target's physical unit; default: the target's mean.
    augmentation : Augmentation, optional
        None for validation.
    normalizations : mapping key -> Normalization
        Applied after augmentation, per key; keys not given are left as they are.
    seed : int
        Seeds the patch positions and augmentations (with the epoch and item index).
    unpaired : bool
        Draw the target from another random entry at another position (CycleGAN).
    foreground_key : str, optional
        Centre foreground patches on voxels where this entry's map is positive (e.g. ``"lesions"``) instead
        of target voxels above ``foreground_threshold``; entries without such voxels fall back to the target.
    weight_key : str, optional
        Entry key of a region map (e.g. ``"lesions"``): items then carry a voxel weight map ``"weight"``
        (shaped like the target) equal to ``weight_factor`` where the map is positive, dilated by
        ``weight_dilate_voxels`` in-plane and through slices, and 1 elsewhere (lesion-aware losses,
        :mod:`petspect.train.losses`).
    weight_factor : float
        Voxel weight inside the regions (>= 1).
    weight_dilate_voxels : int
        Dilation of the regions before weighting (partial-volume spill of small lesions).
    """

    def __init__(self, entries: Sequence[Mapping[str, str]], root: str | os.PathLike, input_key: str, target_key: str,
                 extra_keys: Sequence[str] = (), *, patch_size: Sequence[int], mode: str = "3d", n_slices: int = 1,
                 patches_per_volume: int = 1, foreground_fraction: float = 0.0,
                 foreground_threshold: float | None = None, augmentation: Augmentation | None = None,
                 normalizations: Mapping[str, Normalization] | None = None, seed: int = 0,
                 unpaired: bool = False, foreground_key: str | None = None, weight_key: str | None = None,
                 weight_factor: float = 1.0, weight_dilate_voxels: int = 0) -> None:
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
        want = 3 if mode == "3d" else 2
        if len(patch_size) != want or any(int(s) < 1 for s in patch_size):
            raise ConfigError(f"patch_size for mode {mode} must be {want} positive sizes, got {tuple(patch_size)}")
        if mode == "2.5d" and (n_slices < 1 or n_slices % 2 == 0):
            raise ConfigError(f"n_slices must be odd and positive for 2.5D, got {n_slices}")
        if not entries:
            raise ConfigError("no entries: the split is empty")
        if not 0.0 <= foreground_fraction <= 1.0:
            raise ConfigError(f"foreground_fraction must be in [0, 1], got {foreground_fraction}")
        check_weighting(weight_factor, weight_dilate_voxels)
        self.keys = (input_key, *extra_keys)
        self.foreground_key, self.weight_key = foreground_key, weight_key
        self.weight_factor, self.weight_dilate_voxels = float(weight_factor), int(weight_dilate_voxels)
        self._map_keys = tuple(dict.fromkeys(k for k in (foreground_key, weight_key) if k))  # region maps to load
        for i, e in enumerate(entries):
            missing = [k for k in (*self.keys, target_key, *self._map_keys) if k not in e]
            if missing:
                raise ConfigError(f"entry {i} ({e.get('subject', '?')}) lacks keys {missing}; has {sorted(e)}")
        self.entries = [dict(e) for e in entries]
        self.root = Path(root)
        self.target_key = target_key
        self.mode, self.n_slices = mode, (n_slices if mode == "2.5d" else 1)
        self.patch = (1, *map(int, patch_size)) if mode != "3d" else tuple(map(int, patch_size))
        self.patches_per_volume = int(patches_per_volume)
        self.foreground_fraction, self.foreground_threshold = float(foreground_fraction), foreground_threshold
        self.augmentation = augmentation
        self.normalizations = dict(normalizations or {})
        self.seed, self.unpaired, self.epoch = int(seed), bool(unpaired), 0
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]] = {}

    # ---------------------------------------------------------------- basics
    @property
    def in_channels(self) -> int:
        """Network input channels: modalities times slices."""
        return len(self.keys) * self.n_slices

    @property
    def pet_channel(self) -> int:
        """Channel of the (centre) PET slice in the network input."""
        return self.n_slices // 2

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose patches and augmentations are drawn (call before each epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.entries) * self.patches_per_volume

    def _volumes(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(channels (M, z, y, x), target (z, y, x), foreground voxel indices or None, weights or None), cached."""
        if index not in self._cache:
            e = self.entries[index]
            from petspect.io import load

            vols = {k: load(self.root / e[k]) for k in (*self.keys, self.target_key, *self._map_keys)}
            for k, v in vols.items():
                if k in self.normalizations:
                    self.normalizations[k].check_unit(v.unit, path=self.root / e[k])
            shapes = {k: v.shape for k, v in vols.items()}
            if len(set(shapes.values())) != 1:
                raise InputError(f"entry {e.get('subject', index)}: images differ in shape {shapes}", path=self.root)
            x = torch.stack([vols[k].data.float() for k in self.keys])
            y = vols[self.target_key].data.float()
            fg = None
            if self.foreground_fraction > 0:
                idx = torch.nonzero(vols[self.foreground_key].data > 0) if self.foreground_key else torch.empty(0)
                if not len(idx):
                    thr = float(y.mean()) if self.foreground_threshold is None else float(self.foreground_threshold)
                    idx = torch.nonzero(y > thr)
                fg = idx if len(idx) else None
            w = self._weights(vols[self.weight_key].data) if self.weight_key else None
            self._cache[index] = (x, y, fg, w)
        return self._cache[index]

    def _weights(self, regions: torch.Tensor) -> torch.Tensor:
        """Voxel weights (z, y, x): ``weight_factor`` in the dilated regions, 1 elsewhere."""
        mask = regions.detach().cpu().numpy() > 0
        if self.weight_dilate_voxels and mask.any():
            from scipy.ndimage import binary_dilation

            mask = binary_dilation(mask, iterations=self.weight_dilate_voxels)
        return torch.from_numpy(1.0 + (self.weight_factor - 1.0) * mask.astype(np.float32))

    # ---------------------------------------------------------------- sampling
    def _corner(self, g: torch.Generator, shape: Sequence[int], fg: torch.Tensor | None) -> list[int]:
        """Patch start (z, y, x), possibly negative or past the end (padding fills)."""
        if fg is not None and _uniform(g) < self.foreground_fraction:
            centre = fg[_randint(g, len(fg))].tolist()
            return [c - p // 2 for c, p in zip(centre, self.patch)]
        return [_randint(g, n - p + 1) if n >= p else -((p - n) // 2) for n, p in zip(shape, self.patch)]

    def _crop(self, vol: torch.Tensor, corner: Sequence[int], size: Sequence[int]) -> torch.Tensor:
        """Crop ``vol[..., z, y, x]`` at ``corner`` with zeros outside, except z in 2.5D (edge slices repeat)."""
        *lead, nz, ny, nx = vol.shape
        out = vol.new_zeros((*lead, *size))
        src, dst = [], []
        for c, s, n in zip(corner, size, (nz, ny, nx)):
            lo, hi = max(c, 0), min(c + s, n)
            src.append(slice(lo, max(hi, lo)))
            dst.append(slice(lo - c, lo - c + max(hi - lo, 0)))
        out[(..., *dst)] = vol[(..., *src)]
        return out

    def _sample(self, index: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        v = index // self.patches_per_volume
        x, y, fg, w = self._volumes(v)
        corner = self._corner(g, y.shape, fg)
        if self.unpaired:
            other = _randint(g, len(self.entries))
            _, y2, fg2, _ = self._volumes(other)
            y = self._crop(y2, self._corner(g, y2.shape, fg2), self.patch)
        else:
            y = self._crop(y, corner, self.patch)
        w = None if w is None else self._crop(w, corner, self.patch)[None]
        if self.mode == "2.5d":  # neighbouring slices, clamped at the ends, stacked modality-major
            h = self.n_slices // 2
            zs = (torch.arange(-h, h + 1) + corner[0]).clamp(0, x.shape[1] - 1)
            x = self._crop(x[:, zs], [0, *corner[1:]], (self.n_slices, *self.patch[1:]))
            x = x.reshape(-1, 1, *self.patch[1:])
        else:
            x = self._crop(x, corner, self.patch)
        return x, y[None], w

    def _augment(self, x: torch.Tensor, y: torch.Tensor, g: torch.Generator,
                 w: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Flips, 90-degree turns (input, target and weights alike) and intensity scaling (PET and target)."""
        aug = self.augmentation
        if aug is None:
            return x, y, w
        if aug.flip:
            axes = [d for d in ((-3,) if self.mode == "3d" else ()) + (-2, -1) if _uniform(g) < 0.5]
            if axes:
                x, y = x.flip(axes), y.flip(axes)
                w = None if w is None else w.flip(axes)
        if aug.rot90 and self.patch[1] == self.patch[2]:
            k = _randint(g, 4)
            x, y = torch.rot90(x, k, (-2, -1)), torch.rot90(y, k, (-2, -1))
            w = None if w is None else torch.rot90(w, k, (-2, -1))
        if aug.intensity_range is not None:
            lo, hi = aug.intensity_range
            s = math.exp(math.log(lo) + _uniform(g) * (math.log(hi) - math.log(lo)))
            x = x.clone()
            x[: self.n_slices] *= s  # the PET slices only
            y = y * s
        return x, y, w

    def _normalise(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.clone()
        for m, key in enumerate(self.keys):
            norm = self.normalizations.get(key, Identity())
            x[m * self.n_slices:(m + 1) * self.n_slices] = norm.forward(x[m * self.n_slices:(m + 1) * self.n_slices])
        return x, self.normalizations.get(self.target_key, Identity()).forward(y)

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Any]:
        """``{"input": (C, *patch), "target": (1, *patch), "index": int}`` in normalised units.

        With ``weight_key``, also ``"weight": (1, *patch)`` (voxel weights, unit-free).

        ``index`` is an item number (drawn for the epoch set with :meth:`set_epoch`) or an ``(epoch, item)``
        pair, as :class:`EpochSampler` yields, so persistent DataLoader workers need no epoch update.
        """
        epoch, index = index if isinstance(index, tuple) else (self.epoch, index)
        if not 0 <= index < len(self):
            raise IndexError(index)
        g = _item_generator(self.seed, epoch, index)
        x, y, w = self._sample(index, g)
        x, y, w = self._augment(x, y, g, w)
        x, y = self._normalise(x, y)
        if self.mode != "3d":
            x, y = x[:, 0], y[:, 0]
            w = None if w is None else w[:, 0]
        item = {"input": x.contiguous(), "target": y.contiguous(), "index": index}
        if w is not None:
            item["weight"] = w.contiguous()
        return item


class EpochSampler(Sampler):
    """Wrap a sampler (e.g. ``DistributedSampler``) to yield ``(epoch, index)`` pairs.

    DataLoader workers hold copies of the dataset, so an epoch set on the main copy does not reach
    persistent workers; passing the epoch with every index does, and the workers keep their cached volumes.
    """

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self):
        return ((self.epoch, int(i)) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)
