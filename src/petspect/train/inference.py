"""Whole-volume inference with MONAI sliding windows, in 2D, 2.5D and 3D."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from petspect.errors import InputError
from petspect.train.model_io import TrainedModel


def _as_channels(volume: Any) -> tuple[torch.Tensor, Any, list[str | None]]:
    """``(M, z, y, x)`` tensor, the Volume it came from (or None), and the unit of each modality (None: unknown)."""
    from petspect.volume import Volume

    if isinstance(volume, Volume):
        return volume.data[None], volume, [volume.unit]
    if isinstance(volume, (list, tuple)):
        vols = [v.data if isinstance(v, Volume) else torch.as_tensor(v) for v in volume]
        if len({tuple(v.shape) for v in vols}) != 1:
            raise InputError(f"modalities differ in shape: {[tuple(v.shape) for v in vols]}")
        ref = volume[0] if isinstance(volume[0], Volume) else None
        return torch.stack(vols), ref, [v.unit if isinstance(v, Volume) else None for v in volume]
    t = torch.as_tensor(volume)
    if t.ndim == 3:
        return t[None], None, [None]
    if t.ndim == 4:
        return t, None, [None] * len(t)
    raise InputError(f"volume must be (z, y, x) or (modalities, z, y, x), got shape {tuple(t.shape)}")


def _slices_2p5d(x: torch.Tensor, z: torch.Tensor, n_slices: int) -> torch.Tensor:
    """``(len(z), M * n_slices, y, x)`` stacks of neighbouring slices (ends repeated), modality-major."""
    h = n_slices // 2
    idx = (z[:, None] + torch.arange(-h, h + 1, device=z.device)[None, :]).clamp(0, x.shape[1] - 1)
    stacks = x[:, idx]  # (M, len(z), n_slices, y, x)
    return stacks.permute(1, 0, 2, 3, 4).reshape(len(z), -1, *x.shape[2:])


@torch.no_grad()
def predict_volume(model: TrainedModel | nn.Module, volume: Any, *, roi_size: Sequence[int] | None = None,
                   overlap: float = 0.25, device: torch.device | str | None = None, sw_batch_size: int = 4,
                   mode: str | None = None, n_slices: int | None = None, blend: str = "gaussian",
                   slice_batch: int = 32, amp: bool = False, tta: bool = False) -> Any:
    """Apply a network to a whole volume with overlapping sliding windows.

    Parameters
    ----------
    model : TrainedModel or nn.Module
        A loaded model (normalisation and data layout applied), or a bare network working on values as given
        (then ``mode`` and, for 2.5D, ``n_slices`` are needed).
    volume : Volume, tensor ``(z, y, x)`` or ``(M, z, y, x)``, or list of Volumes/tensors
        Input modalities in the model's channel order (PET first), in physical units.
    roi_size : sequence of int, optional
        Window ``(pz, py, px)`` in 3D or ``(py, px)`` in 2D/2.5D; default: the training patch size.
    overlap : float
        Fraction of overlap of neighbouring windows, in [0, 1).
    device : torch.device or str, optional
        Where the network runs (default: the model's device); windows are stitched on the volume's device.
    sw_batch_size : int
        Windows per network call.
    mode : {"2d", "2.5d", "3d"}, optional
        Only for a bare network.
    n_slices : int, optional
        Slices per modality of a bare 2.5D network.
    blend : {"gaussian", "constant"}
        Weighting of overlapping windows.
    slice_batch : int
        In 2D/2.5D, number of slices processed together.
    amp : bool
        Run the network under float16 autocast (CUDA only).
    tta : bool
        Test-time augmentation: average the network over the in-plane symmetries the training augmentation
        draws from (:class:`~petspect.train.data.Augmentation`): the 8 flips and 90-degree turns of the (y, x)
        plane for square windows, the 4 flips otherwise; each output is turned back before averaging. Costs
        8 (or 4) network passes; use it with models trained with ``flip`` and ``rot90``.

    Returns
    -------
    Volume or torch.Tensor
        The prediction ``(z, y, x)`` in the target's physical unit; a Volume (the first input's geometry, the
        target normalisation's unit when it names one) when a Volume was given.

    Raises
    ------
    InputError
        Wrong number of modalities, a Volume whose unit differs from the one the model was trained on, or
        an invalid window layout.
    """
    from monai.inferers import sliding_window_inference

    x, ref, units = _as_channels(volume)
    out_device = x.device
    out_unit = None
    if isinstance(model, TrainedModel):
        net, mode, n_slices = model.network, model.mode, model.n_slices
        roi_size = tuple(roi_size or model.patch_size)
        if x.shape[0] != len(model.input_normalizations):
            raise InputError(f"model takes {len(model.input_normalizations)} modalities {model.input_keys}, "
                             f"got {x.shape[0]}")
        for norm, unit in zip(model.input_normalizations, units):
            norm.check_unit(unit)
        out_unit = model.target_normalization.unit or None
        x = torch.stack([n.forward(c.float()) for n, c in zip(model.input_normalizations, x)])
        inverse = model.target_normalization.inverse
    else:
        net, inverse = model, (lambda t: t)
        if mode is None or roi_size is None:
            raise InputError("a bare network needs mode= and roi_size=")
        n_slices = n_slices or 1
        x = x.float()
    if mode not in ("2d", "2.5d", "3d"):
        raise InputError(f"mode must be '2d', '2.5d' or '3d', got {mode!r}")
    if len(roi_size) != (3 if mode == "3d" else 2):
        raise InputError(f"roi_size {tuple(roi_size)} does not fit mode {mode}")
    if not 0 <= overlap < 1:
        raise InputError(f"overlap must be in [0, 1), got {overlap}")
    run_device = torch.device(device) if device is not None else next(net.parameters()).device
    was_training = net.training
    net.eval()

    def once(batch: torch.Tensor) -> torch.Tensor:
        with torch.autocast(run_device.type, dtype=torch.float16, enabled=amp and run_device.type == "cuda"):
            return net(batch.to(run_device)).float().to(out_device)

    def predictor(batch: torch.Tensor) -> torch.Tensor:
        if not tta:
            return once(batch)
        turns = range(4) if batch.shape[-1] == batch.shape[-2] else (0, 2)
        total = None
        for k in turns:
            for flip in (False, True):
                b = torch.rot90(batch.flip(-1) if flip else batch, k, (-2, -1))
                o = torch.rot90(once(b), -k, (-2, -1))
                o = o.flip(-1) if flip else o
                total = o if total is None else total + o
        return total / (2 * len(turns))

    def windows(inp: torch.Tensor) -> torch.Tensor:
        return sliding_window_inference(inp, tuple(roi_size), sw_batch_size, predictor, overlap=overlap,
                                        mode=blend, device=out_device)

    try:
        if mode == "3d":
            y = windows(x[None])[0, 0]
        else:
            z_all = torch.arange(x.shape[1], device=x.device)
            parts = []
            for z in z_all.split(slice_batch):
                inp = x[:, z].permute(1, 0, 2, 3) if mode == "2d" else _slices_2p5d(x, z, n_slices)
                parts.append(windows(inp)[:, 0])
            y = torch.cat(parts)
    finally:
        net.train(was_training)
    y = inverse(y)
    return ref.with_data(y, unit=out_unit) if ref is not None else y
