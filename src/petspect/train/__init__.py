"""Training of image-to-image networks for PET and SPECT (denoising, synthesis, correction).

* :class:`TrainConfig`, :func:`load_config` -- the typed configuration (TOML/JSON) in sections
  (:class:`DataConfig`, :class:`ModelConfig`, :class:`LossConfig`, :class:`OptimConfig`,
  :class:`ScheduleConfig`); :class:`TrainOverlay` -- typed changes laid over a configuration.
* :class:`Trainer` -- supervised, pix2pix and CycleGAN training; checkpoints every epoch, exact resume,
  early stopping, CSV and TensorBoard logs, mixed precision on CUDA, DDP under ``torchrun``
  (``torchrun --nproc_per_node=N -m petspect.train.ddp_entry CONFIG``).
* :func:`read_dataset`, :class:`PairedVolumeDataset`, :class:`Augmentation` -- data from dataset.json.
* :class:`SuvScaling`, :class:`Log1p`, :class:`Affine`, :class:`Identity` -- invertible normalisations.
* :func:`build_loss`, :class:`CharbonnierLoss`, :class:`SSIMLoss`, :class:`GANLoss` -- losses.
* :func:`load_model`, :func:`save_model`, :class:`TrainedModel`, :func:`predict_volume` -- model folders and
  sliding-window inference.

Submodules load on first attribute access, so ``import petspect.train`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_ATTRS = {
    "TrainConfig": "config", "load_config": "config", "TrainOverlay": "config", "DataConfig": "config",
    "ModelConfig": "config", "LossConfig": "config", "OptimConfig": "config", "ScheduleConfig": "config",
    "DiscriminatorConfig": "config",
    "Trainer": "trainer", "TrainResult": "trainer",
    "read_dataset": "data", "PairedVolumeDataset": "data", "Augmentation": "data", "EpochSampler": "data",
    "Normalization": "normalization", "SuvScaling": "normalization", "Log1p": "normalization",
    "Affine": "normalization", "Identity": "normalization", "normalization_from_dict": "normalization",
    "build_loss": "losses", "CharbonnierLoss": "losses", "SSIMLoss": "losses", "GANLoss": "losses",
    "CombinedLoss": "losses",
    "load_model": "model_io", "save_model": "model_io", "TrainedModel": "model_io",
    "predict_volume": "inference",
    "init_from_env": "distributed", "dist_info": "distributed",
}


def __getattr__(name: str) -> Any:
    if name not in _ATTRS:
        raise AttributeError(f"module 'petspect.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"petspect.train.{_ATTRS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ATTRS))


__all__ = sorted(_ATTRS)
