"""The typed training configuration (one dataclass, saved as JSON with the model; TOML for the CLI)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

from petspect.errors import ConfigError, DataNotFoundError
from petspect.train.data import MODES, Augmentation, check_weighting
from petspect.train.losses import GAN_LOSSES, LOSSES
from petspect.train.normalization import normalization_from_dict

ADVERSARIAL = (None, "pix2pix", "cyclegan")
LR_SCHEDULES = ("constant", "cosine")
VAL_METRICS = {"loss": "min", "psnr": "max", "ssim": "max", "nrmse": "min"}


@dataclass
class TrainConfig:
    """Everything that defines a training run; two runs with equal configs give equal weights.

    Data
    ----
    dataset : str
        Dataset folder (or its dataset.json), decathlon layout (docs/DEVELOPING.md).
    input_key, target_key : str
        Entry keys of the network input and target, e.g. "recon_d010_osem_ac" and "recon_d100_osem_ac".
    extra_keys : tuple of str
        Anatomical input channels ("ct", "mr_t1", "mu_511").
    train_split, val_split : str
        Splits of dataset.json; an empty or missing validation split disables validation.
    mode : {"2d", "2.5d", "3d"}; n_slices : int (2.5D, odd)
    patch_size : tuple of int
        (pz, py, px) in 3D, (py, px) in 2D/2.5D, in voxels.
    patches_per_volume, val_patches_per_volume : int
    foreground_fraction : float; foreground_threshold : float or None (target unit; None = target mean)
    foreground_key : str or None
        Centre foreground patches on this entry map's positive voxels (e.g. "lesions") instead of the target.
    weight_key : str or None; weight_factor : float; weight_dilate_voxels : int
        Lesion-aware loss: pixel-loss voxel weight ``weight_factor`` inside this entry map's positive voxels
        (e.g. "lesions"), dilated by ``weight_dilate_voxels``, 1 elsewhere (:class:`~petspect.train.data.PairedVolumeDataset`).
    augment : dict, False or None
        :class:`~petspect.train.data.Augmentation` fields (empty dict = defaults); ``False`` (TOML) or ``None``
        disables augmentation.
    normalization : dict
        Of the PET input and the target (``{"kind": "suv_scaling", "factor": 5000.0, "unit": "Bq/mL"}``).
    extra_normalizations : dict key -> dict
        Of the anatomical channels (e.g. ``{"ct": {"kind": "affine", "offset": 0, "scale": 1000}}``).

    Model
    -----
    network : str; channels : tuple of int; residual : bool; nonnegative : bool or str
    network_kwargs : dict
        See :func:`petspect.nn.build_network`.

    Optimisation
    ------------
    loss : dict name -> weight ("l1", "charbonnier", "mse", "ssim")
    adversarial : None, "pix2pix" or "cyclegan"; gan_loss : "lsgan" or "bce"
    adversarial_weight, cycle_weight : float
        Weight of the adversarial term (pixel loss has weight 1 via ``loss``) and of cycle consistency.
    discriminator : dict
        :func:`petspect.nn.build_discriminator` arguments (features, n_layers, norm).
    lr, weight_decay : float; betas : (float, float) (AdamW)
    grad_clip_norm : float or None
        Clip gradients to this L2 norm before each optimiser step (useful for GANs); None: no clipping.
    lr_schedule : {"constant", "cosine"}; warmup_epochs : int
        Learning rate per epoch: linear warm-up over ``warmup_epochs``, then constant or cosine decay to
        ``0.01 lr`` at the last epoch (a function of the epoch only, so resuming needs no scheduler state).
    batch_size, epochs : int; seed : int; amp : bool (used on CUDA only); num_workers : int
    val_metric : {"loss", "psnr", "ssim", "nrmse"}; patience : int or None; min_delta : float
    out_dir : str
        Run folder: checkpoint.pt, log.csv, tensorboard/, model/.
    card : dict
        Free facts for the model card (dose level, tracer, scanner, description).
    """

    dataset: str
    target_key: str
    out_dir: str
    input_key: str = "image"
    extra_keys: tuple[str, ...] = ()
    train_split: str = "training"
    val_split: str = "validation"
    mode: str = "3d"
    n_slices: int = 1
    patch_size: tuple[int, ...] = (32, 32, 32)
    patches_per_volume: int = 4
    val_patches_per_volume: int = 2
    foreground_fraction: float = 0.5
    foreground_threshold: float | None = None
    foreground_key: str | None = None
    weight_key: str | None = None
    weight_factor: float = 1.0
    weight_dilate_voxels: int = 0
    augment: dict[str, Any] | bool | None = field(default_factory=dict)
    normalization: dict[str, Any] = field(default_factory=lambda: {"kind": "identity"})
    extra_normalizations: dict[str, dict[str, Any]] = field(default_factory=dict)
    network: str = "unet"
    channels: tuple[int, ...] = (16, 32, 64, 128)
    residual: bool = True
    nonnegative: bool | str = False
    network_kwargs: dict[str, Any] = field(default_factory=dict)
    loss: dict[str, float] = field(default_factory=lambda: {"l1": 1.0})
    adversarial: str | None = None
    gan_loss: str = "lsgan"
    adversarial_weight: float = 0.01
    cycle_weight: float = 10.0
    discriminator: dict[str, Any] = field(default_factory=lambda: {"features": 32, "n_layers": 3})
    lr: float = 2e-4
    grad_clip_norm: float | None = None
    lr_schedule: str = "constant"
    warmup_epochs: int = 0
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 4
    epochs: int = 50
    seed: int = 0
    amp: bool = True
    num_workers: int = 0
    val_metric: str = "loss"
    patience: int | None = None
    min_delta: float = 0.0
    tensorboard: bool = True
    card: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("extra_keys", "patch_size", "channels", "betas"):
            setattr(self, name, tuple(getattr(self, name)))
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.adversarial not in ADVERSARIAL:
            raise ConfigError(f"adversarial must be one of {ADVERSARIAL}, got {self.adversarial!r}")
        if self.gan_loss not in GAN_LOSSES:
            raise ConfigError(f"gan_loss must be one of {GAN_LOSSES}, got {self.gan_loss!r}")
        if self.val_metric not in VAL_METRICS:
            raise ConfigError(f"val_metric must be one of {sorted(VAL_METRICS)}, got {self.val_metric!r}")
        unknown = set(self.loss) - set(LOSSES)
        if unknown:
            raise ConfigError(f"unknown loss terms {sorted(unknown)}; choose from {LOSSES}")
        if self.loss.get("ssim", 0) > 0 and min(self.patch_size) < 11:
            raise ConfigError(f"the SSIM loss uses an 11-voxel window: patch_size {self.patch_size} is too small")
        for name in ("batch_size", "epochs", "patches_per_volume", "val_patches_per_volume"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        check_weighting(self.weight_factor if self.weight_key is not None else 1.0, self.weight_dilate_voxels)
        if self.grad_clip_norm is not None and not (math.isfinite(self.grad_clip_norm) and self.grad_clip_norm > 0):
            raise ConfigError(f"grad_clip_norm must be None or a positive number, got {self.grad_clip_norm!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ConfigError(f"warmup_epochs must be in [0, epochs), got {self.warmup_epochs}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be None or at least 1, got {self.patience!r}")
        if self.num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0, got {self.num_workers}")
        for name in ("lr", "adversarial_weight", "cycle_weight"):
            v = float(getattr(self, name))
            if not math.isfinite(v) or v < 0 or (name == "lr" and v == 0):
                raise ConfigError(f"{name} must be a finite non-negative number (lr positive), got {v!r}")
        self.augmentation()  # validate
        normalization_from_dict(self.normalization)
        for spec in self.extra_normalizations.values():
            normalization_from_dict(spec)

    def lr_at(self, epoch: int) -> float:
        """Learning rate of ``epoch`` (0-based) under ``lr_schedule`` and ``warmup_epochs``."""
        if epoch < self.warmup_epochs:
            return self.lr * (epoch + 1) / (self.warmup_epochs + 1)
        if self.lr_schedule == "constant":
            return self.lr
        span = max(self.epochs - 1 - self.warmup_epochs, 1)
        t = min((epoch - self.warmup_epochs) / span, 1.0)
        return self.lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * t)))

    def augmentation(self) -> Augmentation | None:
        """The augmentation of the training set (None when disabled)."""
        if self.augment is None or self.augment is False:
            return None
        if not isinstance(self.augment, dict):
            raise ConfigError(f"augment must be a table of Augmentation fields or false, got {self.augment!r}")
        try:
            return Augmentation(**self.augment)
        except TypeError as exc:
            raise ConfigError(f"invalid augment options {self.augment}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict (JSON or TOML); unknown keys raise :class:`~petspect.errors.ConfigError`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown training options {sorted(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"invalid training configuration: {exc}") from exc


def load_config(path: str | os.PathLike) -> TrainConfig:
    """Read a :class:`TrainConfig` from a TOML (``.toml``) or JSON file; keys are the dataclass fields."""
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError("training configuration not found", path=p)
    text = p.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot parse the configuration: {exc}", path=p) from exc
    try:
        return TrainConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(exc.message, path=p) from exc
