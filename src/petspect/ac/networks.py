"""The image-to-image networks of the AC methods: a 2D MONAI U-Net trained slice-wise.

One trainer for every image-domain method (NAC -> synthetic CT, MR -> synthetic CT, NAC -> AC PET): inputs
and targets are normalised slices ``(N, C, H, W)`` (:func:`network_inputs` for the image inputs); the loss
is L1 (robust to the heavy HU tails of bone and air); training batches are mirrored left-right at random;
the epoch is chosen on a validation set of other subjects (:func:`petspect.train.loop.fit_tensors`).

The U-Net normalises with batch statistics (running means at inference). Instance normalisation (MONAI's
default, used by version-1 models) scales every slice by its own feature statistics, which throws away the
absolute signal level a voxel's HU depends on (fat vs soft tissue on T1, the bone level of the UTE R2 map);
on the study's validation subjects it left bone at ~0 HU and fat 100 HU too low (BENCHMARKS.md, the AC
section).

A model is saved as ``model.pt`` (state dict) plus ``model.json`` (task, channels, the input
normalisation, the network's arguments) so ``petspect ac apply`` can rebuild it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from petspect.errors import FormatError, InputError

__all__ = ["AcModel", "UTE_SCALE_PER_MS", "build_unet", "network_inputs", "model_inputs", "train_translation",
           "predict_slices", "save_model", "load_model"]

#: the UTE R2 map (1/ms) is divided by this before it enters a network: soft tissue ~0.2, rib and vertebra
#: mixtures ~0.8-1, skull ~3 (:mod:`petspect.ac.mr_contrasts`); clipped at 10
UTE_SCALE_PER_MS = 0.1


@dataclass
class AcModel:
    """A trained AC network and how to feed it.

    Attributes
    ----------
    task : str
        ``nac_sct`` (NAC PET -> HU), ``mr_sct`` ((T1, UTE R2) -> HU) or ``direct`` (NAC -> AC PET).
    in_channels : int
    net_args : dict
        Arguments of :func:`build_unet`.
    target_scale : float
        Network output times this is the target unit (HU, or a multiple of the NAC normaliser).
    trained_on : dict
        Regions, tracers and subjects it was trained on.
    input_norm : dict
        How the inputs were scaled (:func:`network_inputs`; e.g. ``{"ute_scale_per_ms": 0.1}``).
    """

    task: str
    in_channels: int
    net_args: dict[str, Any]
    target_scale: float
    trained_on: dict[str, Any] = field(default_factory=dict)
    net: torch.nn.Module | None = None
    input_norm: dict[str, Any] = field(default_factory=dict)


def build_unet(in_channels: int, channels=(16, 32, 64), strides=(2, 2), norm: str = "batch") -> torch.nn.Module:
    """2D MONAI U-Net with residual units, one output channel.

    ``norm``: ``"batch"`` (default; module docstring) or ``"instance"`` (the version-1 models).
    """
    from monai.networks.nets import UNet

    if in_channels < 1:
        raise InputError(f"in_channels must be >= 1, got {in_channels}")
    if norm not in ("batch", "instance"):
        raise InputError(f"norm must be 'batch' or 'instance', got {norm!r}")
    if len(strides) != len(channels) - 1:
        raise InputError(f"a U-Net needs one stride per level below the first: channels {channels}, strides {strides}")
    return UNet(spatial_dims=2, in_channels=int(in_channels), out_channels=1, channels=tuple(channels),
                strides=tuple(strides), num_res_units=1, norm=norm)


def _q99(x: torch.Tensor) -> float:
    return float(torch.quantile(x.detach().flatten().to(torch.float32), 0.99).clamp_min(1e-6))


def network_inputs(task: str, *, nac: torch.Tensor | None = None, t1: torch.Tensor | None = None,
                   ute_r2_per_ms: torch.Tensor | None = None, ute_scale_per_ms: float = UTE_SCALE_PER_MS,
                   ute_clip: float = 10.0) -> torch.Tensor:
    """Normalised network input slices ``(z, C, y, x)`` from whole volumes ``(z, y, x)``.

    ``mr_sct``: T1 divided by its 99th percentile and the UTE R2 map (1/ms) divided by
    ``ute_scale_per_ms`` (clipped to [0, ``ute_clip``]); ``nac_sct`` and ``direct``: the NAC image divided
    by its 99th percentile. The one normalisation of training; for a saved model use :func:`model_inputs`.
    """
    if task == "mr_sct":
        if t1 is None or ute_r2_per_ms is None:
            raise InputError("an mr_sct network needs the T1 image and the UTE R2 map")
        if t1.shape != ute_r2_per_ms.shape or t1.ndim != 3:
            raise InputError(f"T1 and UTE R2 must be volumes (z, y, x) of one shape, got {tuple(t1.shape)} and "
                             f"{tuple(ute_r2_per_ms.shape)}")
        t1 = t1.to(torch.float32)
        ute = (ute_r2_per_ms.to(torch.float32) / float(ute_scale_per_ms)).clamp(0.0, float(ute_clip))
        return torch.stack([t1 / _q99(t1), ute], 1)
    if task in ("nac_sct", "direct"):
        if nac is None or nac.ndim != 3:
            raise InputError(f"a {task} network needs the NAC PET volume (z, y, x)")
        nac = nac.to(torch.float32)
        return (nac / _q99(nac))[:, None]
    raise InputError(f"no image inputs for task {task!r} (mr_sct, nac_sct, direct)")


def _pad16(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % 4, (-w) % 4
    return torch.nn.functional.pad(x, (0, pw, 0, ph)), (h, w)


def model_inputs(model: AcModel, *, nac: torch.Tensor | None = None, t1: torch.Tensor | None = None,
                 ute_r2_per_ms: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`network_inputs` with the normalisation ``model`` was trained with (its ``input_norm``; a
    version-1 model, which records none, took the UTE R2 map unscaled, clipped at 1.5/ms)."""
    norm = model.input_norm
    scale = float(norm.get("ute_scale_per_ms", 1.0 if not norm else UTE_SCALE_PER_MS))
    clip = float(norm.get("ute_clip", 1.5 if not norm else 10.0))
    return network_inputs(model.task, nac=nac, t1=t1, ute_r2_per_ms=ute_r2_per_ms, ute_scale_per_ms=scale,
                          ute_clip=clip)


def _mirror(batch, g: torch.Generator):
    """Left-right mirror of a random half of a batch (every tensor of it alike)."""
    flip = torch.rand(batch[0].shape[0], generator=g) < 0.5
    return tuple(torch.where(flip.view(-1, *([1] * (t.ndim - 1))), t.flip(-1), t) for t in batch)


def train_translation(task: str, x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor,
                      y_val: torch.Tensor, *, target_scale: float, epochs: int = 30, seed: int = 0,
                      mask_train: torch.Tensor | None = None, trained_on: dict | None = None,
                      channels: tuple[int, ...] = (16, 32, 64), batch_size: int = 8, lr: float = 2e-3,
                      mirror: bool = True, input_norm: dict | None = None) -> tuple[AcModel, dict]:
    """Train a U-Net on slices ``x (N, C, H, W) -> y (N, 1, H, W)`` (targets already divided by ``target_scale``).

    ``channels`` sets the U-Net's width and depth (stride 2 between levels); ``mirror`` flips random
    training slices left-right (images whose left and right are alike: bodies, heads; the radial axis of a
    non-TOF sinogram, i.e. the object turned by 180 degrees; not TOF sinograms, whose bins would have to be
    reversed as well). ``input_norm`` is recorded in the model (how :func:`network_inputs` scaled the inputs).
    Returns the model (best validation L1 epoch) and ``{"best_epoch", "val_l1", "epochs", "steps"}``.
    """
    from petspect.train.loop import LoopSettings, fit_tensors

    if x_train.ndim != 4 or y_train.shape[:1] != x_train.shape[:1] or y_train.shape[1] != 1:
        raise InputError(f"expected x (N, C, H, W) and y (N, 1, H, W), got {tuple(x_train.shape)}, {tuple(y_train.shape)}")
    g = torch.Generator().manual_seed(int(seed))
    net_args = {"in_channels": int(x_train.shape[1]), "channels": [int(c) for c in channels],
                "strides": [2] * (len(channels) - 1), "norm": "batch"}
    with torch.random.fork_rng():
        torch.random.manual_seed(int(seed))
        net = build_unet(**net_args)
    w = torch.ones_like(y_train) if mask_train is None else mask_train.to(torch.float32)
    xv, _ = _pad16(x_val)

    def loss(model, batch):
        xb, yb, wb = batch
        xp, (h, ww) = _pad16(xb)
        out = model(xp)[..., :h, :ww]
        return ((out - yb).abs() * wb).sum() / wb.sum().clamp_min(1.0)

    def validate(model):
        model.eval()
        with torch.no_grad():
            out = model(xv)[..., :x_val.shape[-2], :x_val.shape[-1]]
        return float((out - y_val).abs().mean())

    settings = LoopSettings(epochs=int(epochs), batch_size=int(batch_size), lr=float(lr), weight_decay=1e-4)
    res = fit_tensors(net, [x_train, y_train, w], loss=loss, validate=validate, settings=settings, generator=g,
                      augment=_mirror if mirror else None, description=f"ac {task}")
    model = AcModel(task, int(x_train.shape[1]), net_args, float(target_scale), trained_on or {}, net,
                    dict(input_norm or {}))
    steps = int(epochs) * -(-int(x_train.shape[0]) // int(batch_size))
    return model, {"best_epoch": res.best_epoch, "val_l1": validate(net), "epochs": int(epochs), "steps": steps}


def predict_slices(model: AcModel, x: torch.Tensor) -> torch.Tensor:
    """Network output in the target unit for slices ``(N, C, H, W)``."""
    if model.net is None:
        raise InputError("the model has no network loaded")
    if x.ndim != 4 or x.shape[1] != model.in_channels:
        raise InputError(f"expected (N, {model.in_channels}, H, W) inputs, got {tuple(x.shape)}")
    model.net.eval()
    xp, (h, w) = _pad16(x.to(torch.float32))
    with torch.no_grad():
        return model.net(xp)[..., :h, :w] * model.target_scale


def save_model(model: AcModel, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``model.pt`` and ``model.json`` into a new folder."""
    from petspect._fileio import atomic_dir, check_output_path

    out = check_output_path(folder, overwrite=overwrite, kind="model")
    with atomic_dir(out, kind="model") as tmp:
        torch.save(model.net.state_dict(), tmp / "model.pt")
        meta = {k: v for k, v in asdict(model).items() if k != "net"}
        (tmp / "model.json").write_text(json.dumps({"format": "petspect-ac-model", "version": 2, **meta}, indent=2),
                                        encoding="utf-8")
    return out


def load_model(folder: str | os.PathLike) -> AcModel:
    """Read a model folder written by :func:`save_model`."""
    p = Path(folder)
    meta_p, weights = p / "model.json", p / "model.pt"
    if not meta_p.is_file() or not weights.is_file():
        raise FormatError("not an AC model folder (needs model.json and model.pt)", path=p)
    try:
        meta = json.loads(meta_p.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise FormatError(f"invalid JSON: {exc}", path=meta_p) from None
    if meta.get("format") != "petspect-ac-model":
        raise FormatError(f"unknown model format {meta.get('format')!r}", path=meta_p)
    model = AcModel(meta["task"], int(meta["in_channels"]), dict(meta["net_args"]), float(meta["target_scale"]),
                    dict(meta.get("trained_on", {})), input_norm=dict(meta.get("input_norm", {})))
    args = dict(model.net_args)
    args.setdefault("norm", "instance")  # version-1 models (no "norm" recorded) used MONAI's instance norm
    try:
        net = build_unet(**args)
    except (TypeError, InputError) as exc:
        raise FormatError(f"network arguments not understood: {exc}", path=meta_p) from None
    try:
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except (RuntimeError, OSError, ValueError) as exc:
        raise FormatError(f"weights do not fit the network: {exc}", path=weights) from None
    model.net = net.eval()
    return model
