"""Apply a trained denoiser to real data: DICOM series or NIfTI in, derived DICOM series or NIfTI out.

Geometry, unit and SUV facts of the input are kept: the output has the input's grid, the input's unit
(Bq/mL or SUV), and, for DICOM, the input series' patient, study and radiopharmaceutical facts (so its
SUV factors are the input's; :func:`petspect.io.write_dicom_series` with the input as ``source``).

Units
-----
The network saw PET divided by the training cohort's Bq/mL per SUV unit (``bqml_per_suv`` in the model
card; :mod:`petspect.tasks.denoise`). Real data are mapped onto that scale and back with one factor ``f``
(``x_model = f x``, ``y = y_model / f``; per slice when the SUV factors differ by slice):

==========================  ===========================================  ================================
input                        model records ``bqml_per_suv`` (petspect)    otherwise
==========================  ===========================================  ================================
SUV (``meta["suv_kind"]``)   ``f = bqml_per_suv``                          to Bq/mL: ``f = 1 / suv_factor``
Bq/mL with SUVbw factors     ``f = suv_bw * bqml_per_suv`` (to SUV, then   ``f = 1``
                             to the training scale)
Bq/mL without SUV factors    ``f = 1``                                    ``f = 1``
==========================  ===========================================  ================================

A model trained on SUV volumes (normalisation unit ``SUV...``) takes ``f = suv_factor`` for Bq/mL input.
Any other unit mismatch raises :class:`~petspect.errors.UnitError`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from petspect.errors import InputError, UnitError
from petspect.volume import Volume


def _suv_factor(volume: Volume, kind: str) -> torch.Tensor | None:
    f = (volume.meta.get("suv_factors") or {}).get(kind)
    if f is None:
        return None
    t = torch.as_tensor(f, dtype=torch.float64)
    return t[:, None, None] if t.ndim == 1 else t


def model_scale(volume: Volume, model: Any) -> tuple[torch.Tensor, str]:
    """The factor ``f`` that puts ``volume`` on the model's training scale, and how it was chosen.

    Parameters
    ----------
    volume : Volume
        PET in Bq/mL or SUV (``meta["suv_kind"]`` and ``meta["suv_factors"]`` as :func:`petspect.io.load`
        sets them).
    model : petspect.train.TrainedModel

    Returns
    -------
    (torch.Tensor, str)
        ``f`` (scalar, or ``(z, 1, 1)`` per slice; float64) and a one-line description.
    """
    unit = model.input_normalizations[0].unit or ""
    per_suv = (model.card.get("data") or {}).get("bqml_per_suv")
    is_suv = volume.unit.startswith("SUV")
    one = torch.ones((), dtype=torch.float64)
    if unit.startswith("SUV"):
        if volume.unit == unit:
            return one, f"input already in {unit}"
        kind = "bw" if unit == "SUVbw" else unit[3:]
        f = _suv_factor(volume, kind)
        if volume.unit != "Bq/mL" or f is None:
            raise UnitError(f"the model takes {unit}; input in {volume.unit!r} without that SUV factor")
        return f, f"Bq/mL -> {unit} with the input's SUV factor"
    if unit not in ("", "Bq/mL"):
        if volume.unit != unit:
            raise UnitError(f"the model takes {unit!r}, the input is in {volume.unit!r}")
        return one, f"input already in {unit}"
    if is_suv:
        if per_suv:
            return one * float(per_suv), f"{volume.unit} x {float(per_suv):.6g} Bq/mL per SUV (training scale)"
        f = _suv_factor(volume, str(volume.meta.get("suv_kind", "bw")))
        if f is None:
            raise UnitError(f"input in {volume.unit} has no SUV factor to convert it to Bq/mL")
        return 1.0 / f, f"{volume.unit} -> Bq/mL with the input's SUV factor"
    if unit and volume.unit != unit:
        raise UnitError(f"the model takes {unit!r}, the input is in {volume.unit!r}")
    f = _suv_factor(volume, "bw")
    if per_suv and f is not None:
        return f * float(per_suv), "Bq/mL -> SUVbw -> training scale (Bq/mL per SUV of the training cohort)"
    return one, "Bq/mL used as is (no SUV factors)"


def denoise_physical(model: Any, volume: Volume, extra: tuple[Volume, ...] = (), *, overlap: float = 0.25,
                     device: Any = None, tta: bool = False, preserve_total: bool = False) -> tuple[Volume, str]:
    """Denoise a PET volume in any supported unit; returns (volume in the input's unit, conversion note)."""
    from petspect.tasks.denoise import denoise_volume

    if volume.modality not in ("PT", "NM", "", None):
        raise InputError(f"expected a PET or SPECT image, got modality {volume.modality!r}")
    f, note = model_scale(volume, model)
    f = f.to(volume.device)
    scaled = volume.with_data((volume.data.double() * f).float(), unit=model.input_normalizations[0].unit or volume.unit)
    pred = denoise_volume(model, scaled, extra, overlap=overlap, device=device, tta=tta, preserve_total=preserve_total)
    out = (pred.data.double() / f).to(volume.data.dtype if volume.data.is_floating_point() else torch.float32)
    return volume.with_data(out), note


def _load_extra(paths: Mapping[str, str | os.PathLike], model: Any, reference: Volume) -> tuple[Volume, ...]:
    from petspect.io import load

    want = list(model.input_keys[1:])
    missing = [k for k in want if k not in paths]
    if missing or set(paths) - set(want):
        raise InputError(f"the model takes anatomical channels {want}; got {sorted(paths)}")
    vols = []
    for k in want:
        v = load(paths[k])
        vols.append(v if v.same_grid(reference) and v.shape == reference.shape else v.resample_to(reference))
    return tuple(vols)


def apply_model(model_dir: str | os.PathLike, input_path: str | os.PathLike, out: str | os.PathLike, *,
                extra: Mapping[str, str | os.PathLike] | None = None, overwrite: bool = False,
                overlap: float = 0.25, device: Any = None, series_description: str | None = None,
                tta: bool = False, preserve_total: bool = False) -> dict[str, Any]:
    """Denoise a DICOM series or NIfTI file with a model folder and write the result.

    Parameters
    ----------
    model_dir : path
        A model folder (``model.pt``, ``config.json``, ``normalization.json``, ``model_card.json``).
    input_path : path
        DICOM series folder (or one of its files), or a NIfTI file, in Bq/mL or SUV.
    out : path
        ``*.nii`` / ``*.nii.gz``: a NIfTI file; anything else: a folder for a new DICOM series (derived
        from the input series when the input is DICOM).
    extra : mapping key -> path, optional
        Anatomical channels the model takes (e.g. ``{"ct": "ct_dicom/"}``); resampled onto the PET grid.
    overwrite : bool
        Replace an existing output.
    overlap : float
        Sliding-window overlap.
    device : torch.device or str, optional
    series_description : str, optional
        Of the derived DICOM series.
    tta : bool
        Average over in-plane flips and turns (:func:`petspect.train.predict_volume`).
    preserve_total : bool
        Scale the output to the input's total activity (:func:`petspect.tasks.denoise.denoise_volume`).

    Returns
    -------
    dict
        ``{"output": Path, "unit": str, "conversion": str, "shape": tuple, "seconds": float}``.
    """
    import time

    from petspect._fileio import check_output_path
    from petspect.io import load, save
    from petspect.io._meta import full_suffix
    from petspect.train import load_model

    t0 = time.perf_counter()
    inp = Path(input_path)
    out_p = check_output_path(out, overwrite=overwrite, inputs=[inp, model_dir])
    model = load_model(model_dir, device=device)
    vol = load(inp)
    extras = _load_extra(dict(extra or {}), model, vol)
    den, note = denoise_physical(model, vol, extras, overlap=overlap, device=device, tta=tta,
                                 preserve_total=preserve_total)
    name = Path(model_dir).resolve().name
    den.meta = {**den.meta, "denoised_by": {"model": name, "card": model.card.get("data", {}), "units": note}}
    if full_suffix(out_p) in (".nii", ".nii.gz"):
        save(den, out_p, overwrite=overwrite)
    else:
        from petspect.io import write_dicom_series

        is_dicom = inp.is_dir() or full_suffix(inp) not in (".nii", ".nii.gz", ".hv", ".h33")
        write_dicom_series(den, out_p, source=inp if is_dicom else None, overwrite=overwrite,
                           series_description=series_description or f"petspect denoised ({name})"[:64])
    return {"output": out_p, "unit": den.unit, "conversion": note, "shape": tuple(den.shape),
            "seconds": time.perf_counter() - t0}
