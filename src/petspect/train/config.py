"""The typed training configuration: sections for data, model, loss, optimiser and schedule.

A :class:`TrainConfig` is five dataclass sections plus the run's own settings::

    TrainConfig(data=DataConfig(...), model=ModelConfig(...), loss=LossConfig(...),
                optim=OptimConfig(...), schedule=ScheduleConfig(...), out_dir=..., seed=..., ...)

It is saved as nested JSON (``to_dict``; ``"version": 2``) in the run folder, the checkpoint and the model
folder, and read from nested TOML/JSON by :func:`load_config`. Files written before the sections existed
(one flat table of 48 keys, "version 1") are still read: :meth:`TrainConfig.from_dict` recognises them and
maps each old key onto its section (:data:`FLAT_FIELDS`), so model folders saved by earlier versions load
and resume as before. The old flat names also still read as attributes (``config.lr`` is
``config.optim.lr``) and are accepted as keyword arguments of the constructor and of
:meth:`TrainConfig.replace`; they cannot be assigned (``config.lr = ...`` raises), since a config is
validated when it is made.

:class:`TrainOverlay` is a typed set of changes (every field ``None`` = keep) that the demo and the
denoising tasks lay over a configuration instead of passing ``**kwargs``.
"""

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
from petspect.train.normalization import Identity, Normalization, normalization_from_dict

ADVERSARIAL = (None, "pix2pix", "cyclegan")
LR_SCHEDULES = ("constant", "cosine")
VAL_METRICS = {"loss": "min", "psnr": "max", "ssim": "max", "nrmse": "min"}
CONFIG_VERSION = 2


def _augmentation(value: Any) -> Augmentation | None:
    """An :class:`Augmentation` from a table of its fields (``{}`` = defaults); ``None``/``False`` = none."""
    if value is None or value is False:
        return None
    if isinstance(value, Augmentation):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"augment must be a table of Augmentation fields or false, got {value!r}")
    try:
        return Augmentation(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
    except TypeError as exc:
        raise ConfigError(f"invalid augment options {value}: {exc}") from exc


@dataclass
class DataConfig:
    """What the network reads.

    Attributes
    ----------
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
        Lesion-aware loss: pixel-loss voxel weight ``weight_factor`` inside this entry map's positive voxels,
        dilated by ``weight_dilate_voxels``, 1 elsewhere (:class:`~petspect.train.data.PairedVolumeDataset`).
    augment : Augmentation or None
        Training-set augmentation (None disables it); files give a table of its fields, or false.
    normalization : Normalization
        Of the PET input and the target (files: ``{"kind": "suv_scaling", "factor": 5000.0, "unit": "Bq/mL"}``).
    extra_normalizations : dict of str to Normalization
        Of the anatomical channels.
    """

    dataset: str = ""
    target_key: str = ""
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
    augment: Augmentation | None = field(default_factory=Augmentation)
    normalization: Normalization = field(default_factory=Identity)
    extra_normalizations: dict[str, Normalization] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.extra_keys = tuple(self.extra_keys)
        self.patch_size = tuple(int(p) for p in self.patch_size)
        self.augment = _augmentation(self.augment)
        self.normalization = normalization_from_dict(self.normalization)
        self.extra_normalizations = {str(k): normalization_from_dict(v) for k, v in self.extra_normalizations.items()}
        if not self.dataset or not self.target_key:
            raise ConfigError("a training configuration needs data.dataset and data.target_key")
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {self.mode!r}")
        for name in ("patches_per_volume", "val_patches_per_volume"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        check_weighting(self.weight_factor if self.weight_key is not None else 1.0, self.weight_dilate_voxels)


@dataclass
class ModelConfig:
    """The generator network (:func:`petspect.nn.build_network`): name, widths, residual, output constraint."""

    network: str = "unet"
    channels: tuple[int, ...] = (16, 32, 64, 128)
    residual: bool = True
    nonnegative: bool | str = False
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        self.kwargs = dict(self.kwargs)


@dataclass
class DiscriminatorConfig:
    """PatchGAN discriminator (:func:`petspect.nn.build_discriminator` arguments)."""

    name: str = "patchgan"
    features: int = 32
    n_layers: int = 3
    norm: str = "instance"


@dataclass
class LossConfig:
    """What is minimised.

    Attributes
    ----------
    terms : dict of str to float
        Pixel-loss terms and weights ("l1", "charbonnier", "mse", "ssim").
    adversarial : None, "pix2pix" or "cyclegan"; gan_loss : "lsgan" or "bce"
    adversarial_weight, cycle_weight : float
        Weight of the adversarial term (the pixel loss weighs 1 through ``terms``) and of cycle consistency.
    discriminator : DiscriminatorConfig
    """

    terms: dict[str, float] = field(default_factory=lambda: {"l1": 1.0})
    adversarial: str | None = None
    gan_loss: str = "lsgan"
    adversarial_weight: float = 0.01
    cycle_weight: float = 10.0
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)

    def __post_init__(self) -> None:
        self.terms = {str(k): float(v) for k, v in dict(self.terms).items()}
        if isinstance(self.discriminator, dict):
            try:
                self.discriminator = DiscriminatorConfig(**self.discriminator)
            except TypeError as exc:
                raise ConfigError(f"invalid discriminator options {self.discriminator}: {exc}") from exc
        if self.adversarial not in ADVERSARIAL:
            raise ConfigError(f"adversarial must be one of {ADVERSARIAL}, got {self.adversarial!r}")
        if self.gan_loss not in GAN_LOSSES:
            raise ConfigError(f"gan_loss must be one of {GAN_LOSSES}, got {self.gan_loss!r}")
        unknown = set(self.terms) - set(LOSSES)
        if unknown:
            raise ConfigError(f"unknown loss terms {sorted(unknown)}; choose from {LOSSES}")
        for name in ("adversarial_weight", "cycle_weight"):
            v = float(getattr(self, name))
            if not math.isfinite(v) or v < 0:
                raise ConfigError(f"{name} must be a finite non-negative number, got {v!r}")


@dataclass
class OptimConfig:
    """AdamW and its batches: ``lr``, ``weight_decay``, ``betas``, gradient clipping (L2 norm, None = none),
    ``batch_size`` and mixed precision (``amp``, used on CUDA only)."""

    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip_norm: float | None = None
    batch_size: int = 4
    amp: bool = True

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        if not (math.isfinite(float(self.lr)) and float(self.lr) > 0):
            raise ConfigError(f"lr must be a finite positive number, got {self.lr!r}")
        if int(self.batch_size) < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size!r}")
        if self.grad_clip_norm is not None and not (math.isfinite(self.grad_clip_norm) and self.grad_clip_norm > 0):
            raise ConfigError(f"grad_clip_norm must be None or a positive number, got {self.grad_clip_norm!r}")


@dataclass
class ScheduleConfig:
    """How long and at what learning rate.

    Attributes
    ----------
    epochs : int
    lr_schedule : {"constant", "cosine"}; warmup_epochs : int
        Learning rate per epoch: linear warm-up over ``warmup_epochs``, then constant or cosine decay to
        ``0.01 lr`` at the last epoch (a function of the epoch only, so resuming needs no scheduler state).
    val_metric : {"loss", "psnr", "ssim", "nrmse"}; patience : int or None; min_delta : float
        Early stopping on the validation metric (None: never).
    """

    epochs: int = 50
    lr_schedule: str = "constant"
    warmup_epochs: int = 0
    val_metric: str = "loss"
    patience: int | None = None
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        if int(self.epochs) < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ConfigError(f"warmup_epochs must be in [0, epochs), got {self.warmup_epochs}")
        if self.val_metric not in VAL_METRICS:
            raise ConfigError(f"val_metric must be one of {sorted(VAL_METRICS)}, got {self.val_metric!r}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be None or at least 1, got {self.patience!r}")


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig, "optim": OptimConfig,
                             "schedule": ScheduleConfig}
RUN_FIELDS = ("out_dir", "seed", "num_workers", "tensorboard", "card")

#: The flat (version 1) keys and where each lives now: ``name -> (section, field)``.
FLAT_FIELDS: dict[str, tuple[str, str]] = {
    **{f.name: ("data", f.name) for f in dataclasses.fields(DataConfig)},
    **{f.name: ("model", f.name) for f in dataclasses.fields(ModelConfig) if f.name != "kwargs"},
    "network_kwargs": ("model", "kwargs"),
    **{f.name: ("loss", f.name) for f in dataclasses.fields(LossConfig) if f.name != "terms"},
    "loss": ("loss", "terms"),
    **{f.name: ("optim", f.name) for f in dataclasses.fields(OptimConfig)},
    **{f.name: ("schedule", f.name) for f in dataclasses.fields(ScheduleConfig)},
}


def _plain(value: Any) -> Any:
    """A section value as JSON-ready data (normalisations through their own ``to_dict``)."""
    if isinstance(value, Normalization):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _build(cls: type, name: str, values: Any) -> Any:
    if isinstance(values, cls):
        return values
    if not isinstance(values, dict):
        raise ConfigError(f"section {name!r} must be a table of its fields, got {values!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown options {sorted(unknown)} in section {name!r}; it has {sorted(known)}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"invalid section {name!r}: {exc}") from exc


@dataclass(init=False)
class TrainConfig:
    """Everything that defines a training run; two runs with equal configs give equal weights.

    Parameters
    ----------
    data, model, loss, optim, schedule : section dataclass or dict of its fields
        See :class:`DataConfig`, :class:`ModelConfig`, :class:`LossConfig`, :class:`OptimConfig`,
        :class:`ScheduleConfig`.
    out_dir : str
        Run folder: checkpoint.pt, log.csv, tensorboard/, model/.
    seed : int
        Seeds network initialisation, data order, patches and augmentations (through generators; the
        global RNG is not seeded, see :mod:`petspect.train.trainer`).
    num_workers : int
        DataLoader worker processes.
    tensorboard : bool
    card : dict
        Free facts for the model card (dose level, tracer, scanner, description).
    **flat
        Version-1 flat names (``lr=1e-3``, ``input_key=...``; see :data:`FLAT_FIELDS`), placed in their sections.
    """

    data: DataConfig
    model: ModelConfig
    loss: LossConfig
    optim: OptimConfig
    schedule: ScheduleConfig
    out_dir: str
    seed: int
    num_workers: int
    tensorboard: bool
    card: dict[str, Any]

    def __init__(self, data: DataConfig | dict | None = None, model: ModelConfig | dict | None = None,
                 loss: LossConfig | dict | None = None, optim: OptimConfig | dict | None = None,
                 schedule: ScheduleConfig | dict | None = None, *, out_dir: str = "", seed: int = 0,
                 num_workers: int = 0, tensorboard: bool = True, card: dict[str, Any] | None = None,
                 **flat: Any) -> None:
        given = {"data": data, "model": model, "loss": loss, "optim": optim, "schedule": schedule}
        if isinstance(loss, dict) and loss and set(loss) <= set(LOSSES):
            given["loss"], flat = None, {**flat, "loss": loss}  # a flat ``loss={"l1": 1.0}`` (terms)
        tables: dict[str, dict[str, Any]] = {}
        for name, value in given.items():
            tables[name] = dict(value) if isinstance(value, dict) else {} if value is None else value
        unknown = set(flat) - set(FLAT_FIELDS)
        if unknown:
            raise ConfigError(f"unknown training options {sorted(unknown)}")
        for key, value in flat.items():
            section, name = FLAT_FIELDS[key]
            if not isinstance(tables[section], dict):
                tables[section] = _plain_fields(tables[section])
            tables[section][name] = value
        for name, cls in SECTIONS.items():
            object.__setattr__(self, name, _build(cls, name, tables[name]))
        if not out_dir:
            raise ConfigError("a training configuration needs out_dir (the run folder)")
        for key, value in (("out_dir", str(out_dir)), ("seed", int(seed)), ("num_workers", int(num_workers)),
                           ("tensorboard", bool(tensorboard)), ("card", dict(card or {}))):
            object.__setattr__(self, key, value)
        self._check()

    def _check(self) -> None:
        """Rules that span sections."""
        if self.num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.loss.terms.get("ssim", 0) > 0 and min(self.data.patch_size) < 11:
            raise ConfigError(f"the SSIM loss uses an 11-voxel window: patch_size {self.data.patch_size} is too small")

    # ------------------------------------------------------------------ flat (version 1) names
    def __getattr__(self, name: str) -> Any:
        where = FLAT_FIELDS.get(name)
        if where is None or name.startswith("_"):
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        return getattr(object.__getattribute__(self, where[0]), where[1])

    def __setattr__(self, name: str, value: Any) -> None:
        raise ConfigError(f"a TrainConfig is validated when made: use config.replace({name}=...) instead of "
                          f"assigning {name!r}")

    def __getstate__(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with ``changes``: flat names (``lr=1e-3``), dotted names (``**{"optim.lr": 1e-3}``),
        whole sections (``optim=OptimConfig(...)``) or run fields (``seed=1``)."""
        doc = self.to_dict()
        doc.pop("version")
        for key, value in changes.items():
            if "." in key:
                section, name = key.split(".", 1)
                if section not in SECTIONS:
                    raise ConfigError(f"unknown configuration section {section!r} in {key!r}")
                doc[section][name] = _plain(value)
            elif key in SECTIONS and (key != "loss" or isinstance(value, LossConfig)
                                      or (isinstance(value, dict) and not set(value) <= set(LOSSES))):
                doc[key] = _plain(value)
            elif key in RUN_FIELDS:
                doc[key] = value
            elif key in FLAT_FIELDS:
                section, name = FLAT_FIELDS[key]
                doc[section][name] = _plain(value)
            else:
                raise ConfigError(f"unknown training option {key!r}")
        return TrainConfig.from_dict(doc)

    # ------------------------------------------------------------------ behaviour
    def lr_at(self, epoch: int) -> float:
        """Learning rate of ``epoch`` (0-based) under the schedule and its warm-up."""
        lr, s = self.optim.lr, self.schedule
        if epoch < s.warmup_epochs:
            return lr * (epoch + 1) / (s.warmup_epochs + 1)
        if s.lr_schedule == "constant":
            return lr
        span = max(s.epochs - 1 - s.warmup_epochs, 1)
        t = min((epoch - s.warmup_epochs) / span, 1.0)
        return lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * t)))

    def augmentation(self) -> Augmentation | None:
        """The augmentation of the training set (None when disabled)."""
        return self.data.augment

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        """Nested JSON-serialisable dict (``"version": 2``); :meth:`from_dict` reads it back to an equal config."""
        doc: dict[str, Any] = {"version": CONFIG_VERSION}
        doc.update({name: _plain(getattr(self, name)) for name in SECTIONS})
        doc.update({name: _plain(getattr(self, name)) for name in RUN_FIELDS})
        return doc

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict (JSON or TOML), nested (version 2) or flat (version 1, written before the sections).

        Raises :class:`~petspect.errors.ConfigError` on unknown keys or invalid values.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"a training configuration is a table, got {type(data).__name__}")
        doc = dict(data)
        version = doc.pop("version", None)
        nested = version is not None or any(k in doc for k in ("data", "model", "optim", "schedule"))
        if version not in (None, CONFIG_VERSION):
            raise ConfigError(f"training configuration version {version!r} is not known (this petspect reads 1 and 2)")
        if not nested:  # version 1: one flat table
            unknown = set(doc) - set(FLAT_FIELDS) - set(RUN_FIELDS)
            if unknown:
                raise ConfigError(f"unknown training options {sorted(unknown)}")
            return cls(**doc)
        unknown = set(doc) - set(SECTIONS) - set(RUN_FIELDS)
        if unknown:
            raise ConfigError(f"unknown training options {sorted(unknown)}; the sections are {sorted(SECTIONS)} "
                              f"and the run fields {list(RUN_FIELDS)}")
        try:
            return cls(**{k: v for k, v in doc.items()})
        except TypeError as exc:
            raise ConfigError(f"invalid training configuration: {exc}") from exc


def _plain_fields(section: Any) -> dict[str, Any]:
    return {f.name: getattr(section, f.name) for f in dataclasses.fields(section)}


@dataclass(frozen=True)
class TrainOverlay:
    """Typed changes to a :class:`TrainConfig`; every field left ``None`` keeps the configuration's value.

    The demo's settings and the denoising tasks use it instead of ``**kwargs``: its fields are checked
    when it is made (a misspelt option is a ``TypeError`` at the call site) and again, with the whole
    configuration, when it is applied.
    """

    patches_per_volume: int | None = None
    val_patches_per_volume: int | None = None
    foreground_fraction: float | None = None
    network_kwargs: dict[str, Any] | None = None
    residual: bool | None = None
    nonnegative: bool | str | None = None
    loss: dict[str, float] | None = None
    adversarial_weight: float | None = None
    lr: float | None = None
    weight_decay: float | None = None
    grad_clip_norm: float | None = None
    batch_size: int | None = None
    amp: bool | None = None
    lr_schedule: str | None = None
    warmup_epochs: int | None = None
    val_metric: str | None = None
    patience: int | None = None
    seed: int | None = None
    num_workers: int | None = None
    tensorboard: bool | None = None

    def changes(self) -> dict[str, Any]:
        """The fields that are set, by their flat names."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}

    def apply(self, config: TrainConfig) -> TrainConfig:
        """``config`` with this overlay's changes (validated)."""
        changes = self.changes()
        return config.replace(**changes) if changes else config


def load_config(path: str | os.PathLike) -> TrainConfig:
    """Read a :class:`TrainConfig` from a TOML (``.toml``) or JSON file, nested or flat (version 1)."""
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
