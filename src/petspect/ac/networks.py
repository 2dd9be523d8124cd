"""The image-to-image networks of the AC methods: a 2D MONAI U-Net trained slice-wise.

One trainer for every image-domain method (NAC -> synthetic CT, MR -> synthetic CT, NAC -> AC PET): inputs
and targets are normalised slices ``(N, C, H, W)``; the loss is L1 (robust to the heavy HU tails of bone
and air); the epoch is chosen on a validation set of other subjects (:func:`petspect.train.loop.fit_tensors`).
A model is saved as ``model.pt`` (state dict) plus ``model.json`` (task, channels, normalisation, the
network's arguments) so ``petspect ac apply`` can rebuild it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from petspect.errors import FormatError, InputError

__all__ = ["AcModel", "build_unet", "train_translation", "predict_slices", "save_model", "load_model"]


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
    """

    task: str
    in_channels: int
    net_args: dict[str, Any]
    target_scale: float
    trained_on: dict[str, Any] = field(default_factory=dict)
    net: torch.nn.Module | None = None


def build_unet(in_channels: int, channels=(16, 32, 64), strides=(2, 2)) -> torch.nn.Module:
    """2D MONAI U-Net with residual units, one output channel."""
    from monai.networks.nets import UNet

    if in_channels < 1:
        raise InputError(f"in_channels must be >= 1, got {in_channels}")
    return UNet(spatial_dims=2, in_channels=int(in_channels), out_channels=1, channels=tuple(channels),
                strides=tuple(strides), num_res_units=1)


def _pad16(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % 4, (-w) % 4
    return torch.nn.functional.pad(x, (0, pw, 0, ph)), (h, w)


def train_translation(task: str, x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor,
                      y_val: torch.Tensor, *, target_scale: float, epochs: int = 30, seed: int = 0,
                      mask_train: torch.Tensor | None = None, trained_on: dict | None = None) -> tuple[AcModel, dict]:
    """Train a U-Net on slices ``x (N, C, H, W) -> y (N, 1, H, W)`` (targets already divided by ``target_scale``).

    Returns the model (best validation L1 epoch) and ``{"best_epoch", "val_l1", "epochs"}``.
    """
    from petspect.train.loop import LoopSettings, fit_tensors

    if x_train.ndim != 4 or y_train.shape[:1] != x_train.shape[:1] or y_train.shape[1] != 1:
        raise InputError(f"expected x (N, C, H, W) and y (N, 1, H, W), got {tuple(x_train.shape)}, {tuple(y_train.shape)}")
    g = torch.Generator().manual_seed(int(seed))
    net_args = {"in_channels": int(x_train.shape[1])}
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

    settings = LoopSettings(epochs=int(epochs), batch_size=8, lr=2e-3, weight_decay=1e-4)
    res = fit_tensors(net, [x_train, y_train, w], loss=loss, validate=validate, settings=settings, generator=g,
                      description=f"ac {task}")
    model = AcModel(task, int(x_train.shape[1]), net_args, float(target_scale), trained_on or {}, net)
    return model, {"best_epoch": getattr(res, "best_epoch", None), "val_l1": validate(net), "epochs": int(epochs)}


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
        (tmp / "model.json").write_text(json.dumps({"format": "petspect-ac-model", "version": 1, **meta}, indent=2),
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
                    dict(meta.get("trained_on", {})))
    net = build_unet(**model.net_args)
    try:
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except (RuntimeError, OSError, ValueError) as exc:
        raise FormatError(f"weights do not fit the network: {exc}", path=weights) from None
    model.net = net.eval()
    return model
