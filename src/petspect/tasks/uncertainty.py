"""Uncertainty maps of a denoising network: the spread of its test-time augmentations (TTA).

Method
------
The network is run on the 8 in-plane flips and quarter turns of the input (4 flips when the slices are not
square); each output is turned back. The mean is the TTA prediction
(:func:`petspect.train.predict_volume` with ``tta=True`` computes the same mean), the voxel-wise standard
deviation over the 8 outputs is the uncertainty map (Wang et al, Neurocomputing 338:34, 2019, test-time
augmentation for aleatoric uncertainty). This is neither MC dropout nor a deep ensemble: it measures how
much the prediction depends on the orientation of the input, a lower bound of the network's error
spread, so its calibration (:func:`petspect.evaluation.uncertainty_calibration`) is reported beside it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from petspect.volume import Volume

METHOD = "TTA spread (SD over the 8 in-plane flips and quarter turns)"


def _transforms(shape: Sequence[int]) -> list[tuple[int, bool]]:
    turns = range(4) if shape[-1] == shape[-2] else (0, 2)
    return [(k, f) for k in turns for f in (False, True)]


def _fwd(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    return torch.rot90(x.flip(-1) if flip else x, k, (-2, -1))


def _inv(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    y = torch.rot90(x, -k, (-2, -1))
    return y.flip(-1) if flip else y


def denoise_with_uncertainty(model: Any, volume: Volume, extra: Sequence[Volume] = (), *, overlap: float = 0.25,
                             device: Any = None, preserve_total: bool = False) -> tuple[Volume, Volume]:
    """TTA mean and SD of a network's output, in the model's training unit (see the module docstring).

    Parameters
    ----------
    model : petspect.train.TrainedModel
    volume : Volume
        Low-count reconstruction in the unit the model was trained on.
    extra : sequence of Volume
        Anatomical channels in the model's order.
    overlap, device
        As :func:`petspect.tasks.denoise.denoise_volume`.
    preserve_total : bool
        Scale the mean (and the SD by the same factor) to the input's total activity.

    Returns
    -------
    (Volume, Volume)
        The prediction and its standard deviation (same unit, >= 0).
    """
    from petspect.tasks.denoise import denoise_volume

    outs = []
    for k, flip in _transforms(volume.shape):
        v = volume.with_data(_fwd(volume.data, k, flip).contiguous())
        ex = [e.with_data(_fwd(e.data, k, flip).contiguous()) for e in extra]
        y = denoise_volume(model, v, ex, overlap=overlap, device=device, tta=False, preserve_total=False)
        outs.append(_inv(y.data.double(), k, flip))
    stack = torch.stack(outs)
    mean, sd = stack.mean(0), stack.std(0, unbiased=True)
    if preserve_total:
        t_in, t_out = float(volume.data.double().sum()), float(mean.sum())
        if t_in > 0 and t_out > 0:
            mean, sd = mean * (t_in / t_out), sd * (t_in / t_out)
    dt = volume.data.dtype if volume.data.is_floating_point() else torch.float32
    return volume.with_data(mean.to(dt)), volume.with_data(sd.to(dt))


def sd_path(out: str | os.PathLike) -> Path:
    """Where the uncertainty map of an output goes: ``x.nii.gz`` -> ``x_sd.nii.gz``; a DICOM folder ``d`` -> ``d_sd``."""
    p = Path(out)
    for suf in (".nii.gz", ".nii"):
        if p.name.endswith(suf):
            return p.with_name(p.name[: -len(suf)] + "_sd" + suf)
    return p.with_name(p.name + "_sd")


def apply_with_uncertainty(model_dir: str | os.PathLike, input_path: str | os.PathLike, out: str | os.PathLike, *,
                           extra: Mapping[str, str | os.PathLike] | None = None, overwrite: bool = False,
                           overlap: float = 0.25, device: Any = None,
                           preserve_total: bool = False) -> dict[str, Any]:
    """Denoise real data with TTA and write the prediction and its SD map beside it (:func:`sd_path`).

    Units, geometry and DICOM handling are those of :func:`petspect.tasks.apply.apply_model`; the SD map is in
    the same unit as the prediction.
    """
    import time

    from petspect._fileio import check_output_path
    from petspect.io import load, save
    from petspect.io._meta import full_suffix
    from petspect.tasks.apply import _load_extra, model_scale
    from petspect.train import load_model

    t0 = time.perf_counter()
    inp = Path(input_path)
    out_p = check_output_path(out, overwrite=overwrite, inputs=[inp, model_dir])
    sd_p = check_output_path(sd_path(out_p), overwrite=overwrite, inputs=[inp, model_dir])
    model = load_model(model_dir, device=device)
    vol = load(inp)
    extras = _load_extra(dict(extra or {}), model, vol)
    f, note = model_scale(vol, model)
    f = f.to(vol.device)
    scaled = vol.with_data((vol.data.double() * f).float(), unit=model.input_normalizations[0].unit or vol.unit)
    mean, sd = denoise_with_uncertainty(model, scaled, extras, overlap=overlap, device=device,
                                        preserve_total=preserve_total)
    name = Path(model_dir).resolve().name
    dt = vol.data.dtype if vol.data.is_floating_point() else torch.float32
    results = {}
    for key, img, path in (("output", mean, out_p), ("uncertainty", sd, sd_p)):
        v = vol.with_data((img.data.double() / f).to(dt))
        v.meta = {**v.meta, "denoised_by": {"model": name, "units": note},
                  **({"uncertainty": {"method": METHOD, "quantity": "standard deviation"}} if key == "uncertainty" else {})}
        if full_suffix(out_p) in (".nii", ".nii.gz"):
            save(v, path, overwrite=overwrite)
        else:
            from petspect.io import write_dicom_series

            is_dicom = inp.is_dir() or full_suffix(inp) not in (".nii", ".nii.gz", ".hv", ".h33")
            desc = f"petspect {'SD' if key == 'uncertainty' else 'denoised'} ({name})"[:64]
            write_dicom_series(v, path, source=inp if is_dicom else None, overwrite=overwrite, series_description=desc)
        results[key] = path
    return {**results, "unit": vol.unit, "conversion": note, "uncertainty_method": METHOD,
            "seconds": time.perf_counter() - t0}
