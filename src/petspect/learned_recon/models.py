"""Trained learned-reconstruction models on disk, the system they were trained for, and applying them to data.

A model folder holds ``learned_model.json`` (kind, network settings, the acquisition it was trained for:
:func:`system_fingerprint`, and the OSEM settings of a projection-domain model) and ``weights.pt`` (the state
dict). :func:`reconstruct_with_model` refuses data from another system, energy window, sinogram or image grid,
naming every difference, and returns the image with its data consistency
(:func:`~petspect.learned_recon.consistency.data_consistency`).

Kinds: ``projection_unet`` (:mod:`~petspect.learned_recon.projection_denoise`, then OSEM), ``unrolled``
(:mod:`~petspect.learned_recon.unrolled`), ``direct`` (:mod:`~petspect.learned_recon.direct`).
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from petspect.errors import FormatError, InputError
from petspect.systems.acquisition import AcquisitionData
from petspect.systems.records import Modality

__all__ = ["MODEL_JSON", "KINDS", "COUNT_LEVEL_TOLERANCE", "counts_per_bin", "system_fingerprint", "save_learned_model", "load_learned_model",
           "check_compatible", "reconstruct_with_model"]

MODEL_JSON = "learned_model.json"
WEIGHTS = "weights.pt"
KINDS = ("projection_unet", "unrolled", "direct")
FORMAT = "petspect-learned-recon-model"
#: A projection-domain model accepts data whose mean counts per bin lie within this factor of its training range
COUNT_LEVEL_TOLERANCE = 2.0


def system_fingerprint(data: AcquisitionData) -> dict[str, Any]:
    """What a model depends on: modality, system preset, TOF, energy window (SPECT), projection and image grids."""
    sys = data.system
    fp: dict[str, Any] = {"modality": data.modality.value, "system": sys.preset,
                          "prompts_shape": [int(v) for v in data.prompts.shape],
                          "grid_shape": [int(v) for v in data.grid.shape],
                          "voxel_mm": [round(float(v), 4) for v in data.grid.spacing_mm]}
    if data.modality is Modality.PET:
        fp.update(scanner=sys.scanner.name, tof=bool(sys.tof))
    else:
        w = sys.photopeak_window
        fp.update(nuclide=sys.nuclide, window_kev=[round(float(w.lower_kev), 2), round(float(w.upper_kev), 2)],
                  pixel_mm=[round(float(v), 4) for v in sys.pixel_mm])
    return fp


def counts_per_bin(data: AcquisitionData) -> float:
    """Mean prompts per projection bin (the count level a projection-domain network sees)."""
    return float(data.prompts.to(torch.float64).mean())


def save_learned_model(folder: str | os.PathLike, kind: str, model: torch.nn.Module, example: AcquisitionData, *,
                       settings: dict[str, Any], recon_spec: dict[str, Any] | None = None,
                       training_inputs: list[AcquisitionData] | None = None) -> Path:
    """Write a model folder (see the module docstring); ``example`` is one of its training acquisitions.

    ``training_inputs`` (a projection-domain model's training inputs) records the range of their mean counts per
    bin: data are then accepted by count level (within a factor :data:`COUNT_LEVEL_TOLERANCE` of that range)
    rather than by the simulated count fraction, so the model applies to measured data of its system."""
    from petspect._fileio import atomic_dir
    from petspect._json import write_json

    if kind not in KINDS:
        raise InputError(f"unknown learned model kind {kind!r}; choose one of {KINDS}")
    doc = {"format": FORMAT, "version": 1, "kind": kind, "settings": settings, "trained_for": system_fingerprint(example),
           "count_fraction": float(example.calibration.count_fraction), "recon_spec": recon_spec}
    if training_inputs:
        levels = [counts_per_bin(d) for d in training_inputs]
        doc["input_counts_per_bin"] = [min(levels), max(levels)]
    with atomic_dir(Path(folder)) as tmp:
        torch.save(model.state_dict(), tmp / WEIGHTS)
        write_json(tmp / MODEL_JSON, doc)
    return Path(folder)


def load_learned_model(folder: str | os.PathLike) -> tuple[dict[str, Any], torch.nn.Module]:
    """Read a model folder: its record and the network (eval mode, CPU)."""
    from petspect.learned_recon.nets import DeepPetNet
    from petspect.learned_recon.projection_denoise import ProjectionDenoiser
    from petspect.learned_recon.unrolled import UnrolledEM

    p = Path(folder)
    js = p / MODEL_JSON
    if not js.is_file():
        raise FormatError(f"not a learned reconstruction model folder (no {MODEL_JSON})", path=p)
    try:
        doc = json.loads(js.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise FormatError(f"not valid JSON: {exc}", path=js) from None
    if not isinstance(doc, dict):
        raise FormatError(f"not a learned model record (a JSON {type(doc).__name__}, not an object)", path=js)
    if doc.get("format") != FORMAT or doc.get("kind") not in KINDS:
        raise FormatError(f"unknown model format or kind {doc.get('format')!r} / {doc.get('kind')!r}", path=js)
    if not isinstance(doc.get("trained_for"), dict):
        raise FormatError("the record lacks 'trained_for' (the acquisition the model was trained for)", path=js)
    st = doc.get("settings") or {}
    try:
        if doc["kind"] == "projection_unet":
            model: torch.nn.Module = ProjectionDenoiser(tuple(st["widths"]), float(doc["count_fraction"]))
        elif doc["kind"] == "unrolled":
            model = UnrolledEM(int(st["n_blocks"]), int(st["n_subsets"]), tuple(st["widths"]))
        else:
            model = DeepPetNet(tuple(doc["trained_for"]["grid_shape"][1:]), tuple(st["widths"]))
        model.load_state_dict(torch.load(p / WEIGHTS, map_location="cpu", weights_only=True))
    except (KeyError, TypeError, ValueError, RuntimeError, OSError, EOFError, pickle.UnpicklingError) as exc:
        if isinstance(exc, (pickle.UnpicklingError, EOFError)):
            raise FormatError(f"damaged model: {WEIGHTS} is empty, truncated or not a PyTorch weights file",
                              path=p) from None
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        raise FormatError(f"damaged model ({type(exc).__name__}: {first})", path=p) from None
    model.eval()
    return doc, model


def check_compatible(doc: dict[str, Any], data: AcquisitionData, *, where: Any = None) -> None:
    """Refuse data the model was not trained for, naming every difference."""
    want, got = doc["trained_for"], system_fingerprint(data)
    diffs = [f"{k}: model {want.get(k)!r}, data {got.get(k)!r}" for k in sorted(set(want) | set(got))
             if want.get(k) != got.get(k)]
    if doc["kind"] == "projection_unet":
        level = doc.get("input_counts_per_bin")
        if isinstance(level, list) and len(level) == 2:
            lo, hi = float(level[0]) / COUNT_LEVEL_TOLERANCE, float(level[1]) * COUNT_LEVEL_TOLERANCE
            got_level = counts_per_bin(data)
            if not lo <= got_level <= hi:
                diffs.append(f"count level: model trained on {level[0]:.4g}-{level[1]:.4g} counts per bin (accepts "
                             f"{lo:.4g}-{hi:.4g}), data {got_level:.4g}")
        else:  # a record without the count level: the simulated count fraction
            f = float(data.calibration.count_fraction)
            if abs(f - float(doc["count_fraction"])) > 1e-6:
                diffs.append(f"count_fraction: model {doc['count_fraction']:g}, data {f:g}")
    if diffs:
        raise InputError(f"the {doc['kind']} model was trained for another acquisition: " + "; ".join(diffs),
                         path=where)


def reconstruct_with_model(folder: str | os.PathLike, data: AcquisitionData, *, device=None):
    """Reconstruct ``data`` with a model folder; returns ``(image tensor (z, y, x), ConsistencyResult, record)``."""
    from petspect.learned_recon.cases import ReconCase, image_scale, sensitivity_image
    from petspect.learned_recon.consistency import data_consistency
    from petspect.learned_recon.direct import reconstruct_direct
    from petspect.learned_recon.projection_denoise import denoise_projections
    from petspect.learned_recon.unrolled import reconstruct_unrolled
    from petspect.recon.reconstruct import ReconSpec, reconstruct
    from petspect.systems.acquisition import system_model

    doc, model = load_learned_model(folder)
    check_compatible(doc, data, where=folder)
    if device is not None and torch.device(device).type != "cpu":
        raise InputError("learned reconstruction models run on the CPU here; pass --device cpu")
    system = system_model(data)
    sens = sensitivity_image(system)
    case = ReconCase("data", data, system, sens, image_scale(data, sens))
    if doc["kind"] == "projection_unet":
        img = reconstruct(system, denoise_projections(model, case, check_fraction="input_counts_per_bin" not in doc),
                          ReconSpec.from_dict(doc["recon_spec"]), progress=False)
    elif doc["kind"] == "unrolled":
        img = reconstruct_unrolled(model, case)
    else:
        img = reconstruct_direct(model, case)
    return img, data_consistency(img, data, system=system), doc


def recon_with_model_cli(data: AcquisitionData, folder: str | os.PathLike, out: str | os.PathLike, *,
                         overwrite: bool = False, device=None, echo=print):
    """``petspect recon DATA --model M --out OUT``: the image as a Volume; writes ``<OUT stem>_consistency.json``
    and ``<OUT stem>_consistency_map.npy`` beside OUT (refused, before any work, when they exist and not
    ``overwrite``)."""
    from petspect._fileio import check_output_path
    from petspect.learned_recon.consistency import write_consistency

    out_p = Path(out)
    stem = out_p.name.split(".")[0] + "_consistency"
    for name in (f"{stem}.json", f"{stem}_map.npy"):
        check_output_path(out_p.parent / name, overwrite=overwrite, inputs=[folder])
    img, cons, doc = reconstruct_with_model(folder, data, device=device)
    write_consistency(cons, out_p.parent, stem=stem, facts={"model": str(folder), "kind": doc["kind"]})
    echo(f"{doc['kind']} model: Poisson deviance {cons.deviance_per_bin:.4f} per bin against the data "
         f"(map {tuple(cons.plane_view_map.shape)} planes x views in {out_p.parent / (stem + '_map.npy')})")
    meta = {"algorithm": f"learned:{doc['kind']}", "model": str(folder), "poisson_deviance_per_bin": cons.deviance_per_bin,
            "system": data.system.preset}
    unit = data.calibration.unit
    return data.image_volume(img.detach().cpu(), unit=unit, modality="PT" if data.modality is Modality.PET else "NM",
                             meta=meta)


__all__ += ["recon_with_model_cli"]
