"""Low-count to full-count denoising of PET and SPECT reconstructions, as configurations of the trainer.

Inputs are named apart by how the counts were reduced:

* ``source="dose"`` -- low dose, binomially thinned counts: input ``recon_d{PCT:03d}_{algo}_ac``;
* ``source="time"`` -- fast scan, the first part of the scan time: input ``recon_t{PCT:03d}_{algo}_ac``.

The target is the full-dose reconstruction ``recon_d100_{algo}_ac`` for every scheme except noise2noise.

==============  ================================================================================
method          training (all by :class:`petspect.train.Trainer`; nothing is re-implemented here)
==============  ================================================================================
``unet``        supervised, paired, MONAI UNet predicting the image (not a residual), L1 loss
``resnet``      supervised, paired, residual CNN denoiser (full resolution, predicts the noise), L1 loss
``cgan``        pix2pix: the U-Net generator with a PatchGAN discriminator on (input, output) pairs
``cyclegan``    unpaired: two generators and two discriminators with cycle consistency
``n2n``         noise2noise: input realisation 0, target realisation 1 of the same low count level
                (``..._ac`` and ``..._ac_r1``, independent data); evaluated against the full dose
==============  ================================================================================

The U-Nets predict the full-dose image directly: on the quick cohort a residual U-Net (input + correction)
reached 25.9 dB in 20 epochs where the same network predicting the image reached 30.4 dB (smoothing is
what a U-Net learns first). Pass ``residual=True`` to change it.

Anatomical channels (``extra_keys``: ``ct``, ``mr_t1``, ``mu_511``) are optional inputs, normalised with
fixed affine maps (CT: ``(HU + 1000) / 1000``; MR: divided by its typical value; mu: ``/ 0.01 per mm``).

Lesion-aware training (``lesion_weight``): the pixel loss weighs the dataset's lesion map, dilated by one
voxel, ``lesion_weight`` times more than the rest (:mod:`petspect.train.losses`), so flattening a few-voxel
hot spot costs the network what it gains by smoothing a large organ; simulated cohorts carry the map
(``lesions``), imported data may not.

Intensities: PET in Bq/mL is divided by the training cohort's Bq/mL per SUV unit (from the phantom's
recorded SUV factor, else the mean body uptake), so the network sees SUV-like values; the factor is
saved in the model folder, and :mod:`petspect.tasks.apply` maps real data (Bq/mL or SUV) onto it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from petspect.errors import ConfigError, InputError
from petspect.simulate.layout import DatasetKey, ScanLevel, time_point_suffix

if TYPE_CHECKING:
    from petspect.train.config import TrainOverlay

METHODS = ("unet", "resnet", "cgan", "cyclegan", "n2n")
SOURCES = {"dose": "low-dose (thinned counts)", "time": "fast-scan (short time window)"}
EXTRA_NORMALIZATIONS = {
    "ct": {"kind": "affine", "offset": -1000.0, "scale": 1000.0, "unit": "HU"},
    "mr_t1": {"kind": "affine", "offset": 0.0, "scale": 1000.0},
    "mr_t2": {"kind": "affine", "offset": 0.0, "scale": 1000.0},
    "mu_511": {"kind": "affine", "offset": 0.0, "scale": 0.01, "unit": "1/mm"},
}


@dataclass(frozen=True)
class DenoiseTask:
    """Which low-count level is mapped to which target.

    Parameters
    ----------
    source : {"dose", "time"}
        Low dose (thinned) or fast scan (short time window).
    percent : float
        Dose or scan-time percentage of the input, in (0, 100).
    algorithm : str
        Reconstruction algorithm of input and target ("osem", "map", ...).
    hours : float, optional
        Scan time point (hours after injection) of multi-time-point cohorts: every key ends in ``_h<HHH>``.
    """

    source: str = "dose"
    percent: float = 10.0
    algorithm: str = "osem"
    hours: float | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"source must be one of {sorted(SOURCES)}, got {self.source!r}")
        if not 0 < float(self.percent) < 100:
            raise ConfigError(f"percent must be in (0, 100), got {self.percent!r}")
        self.level  # noqa: B018 -- validates the percent's digits
        time_point_suffix(self.hours)  # validates the time point

    @property
    def level(self) -> ScanLevel:
        """The input's count level (:class:`~petspect.simulate.layout.ScanLevel`)."""
        return ScanLevel(self.source, self.percent)

    @property
    def tag(self) -> str:
        """``d010``, ``t050`` or ``d012p500``: the level's part of dataset keys and of model names."""
        return self.level.format()

    @property
    def input_key(self) -> str:
        return DatasetKey.recon(self.level, self.algorithm, hours=self.hours).format()

    @property
    def reference_key(self) -> str:
        """The full-dose reconstruction (evaluation reference and supervised target)."""
        return DatasetKey.recon(ScanLevel("dose", 100.0), self.algorithm, hours=self.hours).format()

    @property
    def second_realisation_key(self) -> str:
        """The independent realisation used as noise2noise target."""
        return DatasetKey.recon(self.level, self.algorithm, realisation=1, hours=self.hours).format()

    def map_key(self) -> str:
        """The MAP (relative-difference prior) reconstruction at the same level (a baseline)."""
        return DatasetKey.recon(self.level, "map", hours=self.hours).format()

    def target_key(self, method: str) -> str:
        return self.second_realisation_key if method == "n2n" else self.reference_key

    def model_name(self, method: str) -> str:
        """E.g. ``unet_d010``, ``n2n_t050`` or ``unet_d025_h024``."""
        return f"{method}_{self.tag}{time_point_suffix(self.hours)}"


def task_from_key(input_key: str) -> DenoiseTask:
    """The task of a model from its input key, e.g. ``recon_d010_osem_ac``, ``recon_d012p500_map_ac_r1`` or
    ``recon_t050_osem_ac_h024`` (parsed by :class:`~petspect.simulate.layout.DatasetKey`)."""
    try:
        key = DatasetKey.parse(input_key)
    except ConfigError as exc:
        raise ConfigError(f"not a low-count reconstruction key: {exc.message}") from None
    if key.name != "recon" or not key.ac or key.level is None or key.level.percent >= 100:
        raise ConfigError(f"not a low-count attenuation-corrected reconstruction key (recon_d<PCT>_<ALGO>_ac or "
                          f"recon_t<PCT>_..., PCT below 100): {input_key!r}")
    return DenoiseTask(key.level.source, key.level.percent, key.algorithm or "osem", key.hours)


def bqml_per_suv(dataset: str | os.PathLike, split: str = "training", key: str | None = None) -> float:
    """Typical Bq/mL per SUV unit of a dataset's subjects (the PET intensity scale of training).

    The mean of ``1 / meta["suv_factor"]`` of the ``activity`` volumes (petspect phantoms record it); for
    datasets without it, the mean body uptake (:func:`petspect.tasks.baselines.body_scale`) of ``key``.
    """
    from petspect.io import load
    from petspect.tasks.baselines import body_scale
    from petspect.train import read_dataset

    entries, root = read_dataset(dataset, split)
    if not entries:
        raise ConfigError(f"split {split!r} of the dataset is empty", path=Path(dataset))
    factors = []
    for e in entries[:8]:
        if "activity" in e:
            f = load(root / e["activity"]).meta.get("suv_factor")
            if f:
                factors.append(1.0 / float(f))
    if factors:
        return float(sum(factors) / len(factors))
    if key is None or key not in entries[0]:
        raise ConfigError(f"no activity with an SUV factor and no key {key!r} to scale the intensities by")
    return float(sum(body_scale(load(root / e[key]).data) for e in entries[:4]) / min(len(entries), 4))


@dataclass(frozen=True)
class DenoiseOptions:
    """How a denoiser is trained, beyond its method and task: a typed overlay on the method's defaults.

    Attributes
    ----------
    extra_keys : tuple of str
        Anatomical channels (not with cyclegan).
    mode : {"2d", "2.5d", "3d"}; n_slices : int (2.5D)
        CycleGAN always uses 2D (one channel each way).
    patch_size : tuple of int, optional
        Default (64, 64) in 2D/2.5D, (16, 64, 64) in 3D.
    channels : tuple of int, optional
        Network widths (default U-Nets (16, 32, 64, 128); resnet (48,)).
    epochs : int
    scale : float, optional
        Bq/mL per SUV unit of the normalisation (default :func:`bqml_per_suv` of the training split).
    lesion_weight : float, optional
        Lesion-aware loss: voxel weight (>= 1) of the dilated ``lesions`` map (module docstring); None: none.
    train : TrainOverlay
        Further changes to the :class:`~petspect.train.TrainConfig` (lr, batch size, loss, patience, ...).
    """

    extra_keys: tuple[str, ...] = ()
    mode: str = "2.5d"
    n_slices: int = 3
    patch_size: tuple[int, ...] | None = None
    channels: tuple[int, ...] | None = None
    epochs: int = 30
    scale: float | None = None
    lesion_weight: float | None = None
    train: TrainOverlay | None = None  # (a string annotation: torch stays out of ``import petspect.tasks``)

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra_keys", tuple(self.extra_keys))
        for name in ("patch_size", "channels"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if self.train is not None and type(self.train).__name__ != "TrainOverlay":
            raise ConfigError(f"DenoiseOptions.train must be a TrainOverlay, got {type(self.train).__name__}")


_OPTION_NAMES = ("extra_keys", "mode", "n_slices", "patch_size", "channels", "epochs", "scale", "lesion_weight")


def denoise_config(dataset: str | os.PathLike, out_dir: str | os.PathLike, *, method: str = "unet",
                   task: DenoiseTask | None = None, options: DenoiseOptions | None = None, **overrides: Any) -> Any:
    """The :class:`petspect.train.TrainConfig` of a denoising method (see the module table).

    Parameters
    ----------
    dataset : path
        Dataset folder with ``dataset.json``.
    out_dir : path
        Run folder (the model is written to ``out_dir/model``).
    method : {"unet", "resnet", "cgan", "cyclegan", "n2n"}
    task : DenoiseTask, optional
        Level and source of the input (default: 10 % dose, OSEM).
    options : DenoiseOptions, optional
        The typed overlay of training choices (defaults: :class:`DenoiseOptions`).
    **overrides
        For scripts and ``petspect denoise train --set``: any :class:`DenoiseOptions` field
        (``epochs=5``, ``mode="2d"``) or any flat :class:`~petspect.train.TrainConfig` name (``lr=1e-3``,
        ``val_split=...``); applied over ``options``, validated, unknown names raise ConfigError.

    Returns
    -------
    TrainConfig
    """
    from petspect.train import TrainConfig

    if method not in METHODS:
        raise ConfigError(f"unknown denoising method {method!r}; choose one of {METHODS}")
    opts = options or DenoiseOptions()
    picked = {k: overrides.pop(k) for k in _OPTION_NAMES if k in overrides}
    if picked:
        opts = dataclasses.replace(opts, **picked)
    task = task or DenoiseTask()
    extra_keys, mode = opts.extra_keys, opts.mode
    unknown = set(extra_keys) - set(EXTRA_NORMALIZATIONS)
    if unknown:
        raise ConfigError(f"unknown anatomical channels {sorted(unknown)}; choose from {sorted(EXTRA_NORMALIZATIONS)}")
    if method == "cyclegan":
        if extra_keys:
            raise ConfigError("cyclegan maps one PET channel to one PET channel: no extra_keys")
        mode = "2d" if mode == "2.5d" else mode
    scale = opts.scale
    if scale is None:
        scale = bqml_per_suv(dataset, key=task.reference_key)
    if not (math.isfinite(scale) and scale > 0):
        raise InputError(f"scale must be a positive number of Bq/mL per SUV, got {scale!r}")
    patch_size = opts.patch_size or ((16, 64, 64) if mode == "3d" else (64, 64))
    network = "resnet" if method == "resnet" else "unet"
    channels = opts.channels or ((48,) if network == "resnet" else (16, 32, 64, 128))
    card = {"task": "denoise", "method": method, "source": SOURCES[task.source], "level_pct": float(task.percent),
            "reference_key": task.reference_key, "bqml_per_suv": float(scale),
            "scheme": "noise2noise" if method == "n2n" else ("unpaired" if method == "cyclegan" else "paired")}
    data = dict(dataset=str(dataset), input_key=task.input_key, target_key=task.target_key(method),
                extra_keys=extra_keys, mode=mode, n_slices=opts.n_slices if mode == "2.5d" else 1,
                patch_size=patch_size, foreground_fraction=0.7,
                normalization={"kind": "suv_scaling", "factor": float(scale), "unit": "Bq/mL"},
                extra_normalizations={k: EXTRA_NORMALIZATIONS[k] for k in extra_keys})
    loss: dict[str, Any] = {"terms": {"l1": 1.0}, "adversarial": {"cgan": "pix2pix", "cyclegan": "cyclegan"}.get(method)}
    if method in ("cgan", "cyclegan"):
        loss["discriminator"] = {"features": 32, "n_layers": 2}
    if opts.lesion_weight is not None:
        if method == "cyclegan":
            raise ConfigError("cyclegan has no paired pixel loss to weigh: no lesion_weight")
        data.update(weight_key="lesions", weight_factor=float(opts.lesion_weight), weight_dilate_voxels=1)
        card["lesion_weight"] = float(opts.lesion_weight)
    config = TrainConfig(data=data, model={"network": network, "channels": channels, "residual": network == "resnet",
                                           "nonnegative": False},
                         loss=loss, schedule={"epochs": int(opts.epochs),
                                              "val_metric": "psnr" if method != "cyclegan" else "loss"},
                         out_dir=str(out_dir), tensorboard=False, card=card)
    if opts.train is not None:
        config = opts.train.apply(config)
    return config.replace(**overrides) if overrides else config


def train_denoiser(config: Any, *, device: Any = None, callbacks: Sequence[Any] = ()) -> Any:
    """Train (or resume) a denoiser from its TrainConfig; returns the :class:`~petspect.train.TrainResult`."""
    from petspect.train import Trainer

    return Trainer(config, device=device, callbacks=callbacks).fit()


def denoise_volume(model: Any, volume: Any, extra: Sequence[Any] = (), *, overlap: float = 0.25,
                   device: Any = None, tta: bool = False, preserve_total: bool = False) -> Any:
    """Denoise one reconstruction with a loaded model (sliding windows), in the model's training unit.

    Parameters
    ----------
    model : petspect.train.TrainedModel
    volume : Volume
        The low-count reconstruction, in the unit the model was trained on (see :mod:`petspect.tasks.apply`
        for other units).
    extra : sequence of Volume
        Anatomical channels in the model's order, on the volume's grid.
    overlap : float
        Sliding-window overlap.
    device : torch.device or str, optional
        Where the network runs (default: the model's device); the result is on the volume's device.
    tta : bool
        Average over in-plane flips and turns (:func:`petspect.train.predict_volume`).
    preserve_total : bool
        Scale the output so that its total activity (sum over the volume, Bq/mL x voxels) equals the input's.
        The total of a low-count reconstruction is an unbiased estimate of the full-count total with a
        relative noise of about ``1 / sqrt(counts)``, so this removes a network's global calibration drift
        (a few per cent between training runs) and leaves its regional contrasts as they are.

    Returns
    -------
    Volume
        Same grid, unit and metadata as ``volume``.
    """
    from petspect.train import predict_volume

    if len(extra) != len(model.input_keys) - 1:
        raise InputError(f"the model takes anatomical channels {list(model.input_keys[1:])}, got {len(extra)}")
    for v in extra:
        if v.shape != volume.shape:
            raise InputError(f"anatomical channel shape {v.shape} differs from the PET shape {volume.shape}")
    pred = predict_volume(model, [volume, *extra] if extra else volume, overlap=overlap, device=device, tta=tta)
    out = pred.data
    if preserve_total:
        total_in, total_out = float(volume.data.double().sum()), float(out.double().sum())
        if not (total_in > 0 and total_out > 0):
            raise InputError("preserve_total needs a positive total activity in the input and the prediction")
        out = out * (total_in / total_out)
    return volume.with_data(out.to(volume.data.dtype))
