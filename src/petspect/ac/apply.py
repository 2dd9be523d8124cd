"""Apply a trained synthetic-CT model to a patient's data: NAC PET (and MR) in, synthetic CT series out.

:func:`apply_sct` reads the NAC PET (a DICOM PET series or NIfTI) and, for an MR model, the MR (a DICOM MR
series or NIfTI, resampled onto the PET grid: it must share the PET's frame of reference), runs the network
slice by slice in the standard axial orientation and returns the synthetic CT in HU on the NAC PET's grid
(same geometry, so a viewer overlays it), with its 511 keV attenuation map
(:func:`petspect.materials.hu_to_mu_per_mm`). :func:`write_sct_outputs` writes it as NIfTI and, for a DICOM
input, as a DICOM CT series (integer HU, RescaleSlope 1 and RescaleIntercept 0, a new SeriesInstanceUID, the
input's patient, study and FrameOfReferenceUID, :func:`petspect.io.dicom_write.write_dicom_series`).

Inputs are normalised as the AC study trains the networks (:func:`petspect.ac.networks.model_inputs`).

Refusals (:class:`~petspect.errors.PetspectError`, before anything is written): a model that makes no
synthetic CT (direct NAC -> AC, sinogram or SPECT scatter models), an MR model without its MR images, MR images
given to a NAC model, an input that is not PET, a PET already attenuation corrected (CorrectedImage ATTN), an
MR series of another frame of reference.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from petspect.errors import GeometryError, InputError
from petspect.volume import Volume

__all__ = ["SctInputs", "read_sct_inputs", "sct_network_inputs", "apply_sct", "write_sct_outputs",
           "SCT_TASKS", "HU_RANGE"]

#: model tasks that make a synthetic CT, with the images each needs
SCT_TASKS = {"nac_sct": "NAC PET", "mr_sct": "MR (T1 and a UTE R2 map)"}
#: HU range a synthetic CT is clipped to (air to dense cortical bone)
HU_RANGE = (-1000.0, 3000.0)
#: ceiling of the 511 keV attenuation coefficient made from a synthetic CT (1/mm): a chosen guard, not a
#: published value; with petspect.materials' conversion water is 0.0096 /mm and HU_RANGE's top 0.025 /mm
MU_511_MAX_PER_MM = 0.03


@dataclass
class SctInputs:
    """The images one application reads.

    Attributes
    ----------
    nac : Volume
        NAC PET (Bq/mL, SUV or counts: only its shape of values matters); its grid is the output's.
    mr, ute : Volume, optional
        MR T1 and UTE R2 map on ``nac``'s grid (resampled).
    dicom_source : path, optional
        The NAC PET DICOM series (its patient, study and frame of reference go to the CT series).
    """

    nac: Volume
    mr: Volume | None = None
    ute: Volume | None = None
    dicom_source: Path | None = None


def _read(path: str | os.PathLike, what: str) -> tuple[Volume, bool]:
    """The image and whether it came from DICOM (a folder or a DICOM file)."""
    from petspect.io import load
    from petspect.io._paths import is_dicom_file, require_exists

    p = require_exists(path)
    return load(p), bool(p.is_dir() or is_dicom_file(p))


def _frame_of_reference(path: Path) -> str | None:
    from petspect.io.dicom_files import read_datasets

    return str(getattr(read_datasets(path)[0], "FrameOfReferenceUID", "") or "") or None


def read_sct_inputs(model, nac_path: str | os.PathLike, *, mr_path: str | os.PathLike | None = None,
                    ute_path: str | os.PathLike | None = None) -> SctInputs:
    """Read and check the images ``model`` needs (module docstring for the refusals)."""
    task = model.task
    if task not in SCT_TASKS:
        what = {"direct": "a direct NAC -> AC PET model", "tof_acf": "a TOF sinogram -> attenuation factor model",
                "scatter": "a PET scatter (sinogram) model", "spect_scatter": "a SPECT scatter model"}.get(
            task, f"a {task!r} model")
        raise InputError(f"{what} makes no synthetic CT; `petspect ac apply` needs a model of task "
                         f"{' or '.join(sorted(SCT_TASKS))}")
    nac_p = Path(nac_path)
    nac, nac_dicom = _read(nac_p, "NAC PET input")
    modality = nac.modality or nac.meta.get("dicom_modality")
    if (nac_dicom and modality != "PT") or modality not in (None, "", "PT"):
        raise InputError(f"--input is a {modality or 'non-PET'} series, not PET (Modality PT); give the NAC PET",
                         path=nac_p)
    corrected = [str(v).upper() for v in (nac.meta.get("corrected_image") or [])]
    if "ATTN" in corrected:
        raise InputError("the PET series is attenuation corrected (CorrectedImage holds ATTN); the model takes the "
                         "non-attenuation-corrected (NAC) reconstruction", path=nac_p)
    if task == "nac_sct":
        if mr_path is not None or ute_path is not None:
            raise InputError("this model was trained on NAC PET (task nac_sct); it takes no MR: drop --mr/--ute or "
                             "use an MR model (task mr_sct)")
        return SctInputs(nac, dicom_source=nac_p if nac_dicom else None)
    if mr_path is None:
        raise InputError("this model was trained on MR (task mr_sct): give the MR T1 series with --mr")
    if model.in_channels >= 2 and ute_path is None:
        raise InputError(f"this MR model takes {model.in_channels} MR channels (T1 and a UTE R2 map): give --ute")
    mr = _mr_on_grid(Path(mr_path), nac, nac_p if nac_dicom else None, "MR T1 (--mr)")
    ute = None if ute_path is None else _mr_on_grid(Path(ute_path), nac, nac_p if nac_dicom else None,
                                                     "UTE R2 map (--ute)")
    return SctInputs(nac, mr, ute, nac_p if nac_dicom else None)


def _mr_on_grid(path: Path, nac: Volume, nac_dicom: Path | None, what: str) -> Volume:
    vol, dicom = _read(path, what)
    if dicom:
        modality = vol.modality or vol.meta.get("dicom_modality")
        if modality != "MR":
            raise InputError(f"{what} is a {modality} series, not MR", path=path)
        if nac_dicom is not None:
            a, b = _frame_of_reference(path), _frame_of_reference(nac_dicom)
            if a and b and a != b:
                raise GeometryError(f"{what} has FrameOfReferenceUID {a}, the PET {b}: register the MR to the PET "
                                    "first (their coordinates are not the same)", path=path)
    return vol.resample_to(nac, mode="linear", fill_value=0.0)


def sct_network_inputs(model, nac: torch.Tensor, mr: torch.Tensor | None = None,
                       ute: torch.Tensor | None = None) -> torch.Tensor:
    """Slices ``(z, channels, y, x)`` for ``model`` from axial ``(z, y, x)`` images, normalised as in training
    (:func:`petspect.ac.networks.model_inputs`, the one owner of the normalisation)."""
    from petspect.ac.networks import model_inputs

    if model.task == "mr_sct" and (mr is None or ute is None):
        raise InputError("an mr_sct model needs the MR T1 image and the UTE R2 map")
    x = model_inputs(model, nac=nac, t1=mr, ute_r2_per_ms=ute)
    if x.shape[1] != model.in_channels:
        raise InputError(f"the model takes {model.in_channels} input channels; these images give {x.shape[1]}")
    return x


def _working_grid(axial: Volume, voxel_mm: float) -> Volume:
    """The axial grid of ``axial``'s slices with in-plane voxels of ``voxel_mm`` covering the same extent."""
    nz, ny, nx = axial.shape
    dz, dy, dx = axial.spacing_mm
    my, mx = (max(1, int(round(n * d / voxel_mm))) for n, d in ((ny, dy), (nx, dx)))
    centre = axial.voxel_to_world(((nz - 1) / 2, (ny - 1) / 2, (nx - 1) / 2))
    first = axial.voxel_to_world((0, 0, 0))
    origin = (float(centre[0] - (mx - 1) / 2 * voxel_mm), float(centre[1] - (my - 1) / 2 * voxel_mm), float(first[2]))
    return Volume(torch.zeros(nz, my, mx), (dz, voxel_mm, voxel_mm), origin, axial.direction)


def apply_sct(model, inputs: SctInputs) -> tuple[Volume, Volume]:
    """Synthetic CT (HU) and its 511 keV mu map (1/mm) on the NAC PET's grid.

    When the model records the in-plane voxel size it was trained at (``trained_on["voxel_mm"]``) and the input's
    differs by more than 5 %, the slices are resampled to it for the network and the HU back onto the input grid.
    """
    from petspect.ac.networks import predict_slices
    from petspect.materials import hu_to_mu_per_mm
    from petspect.orientation import from_axial, to_axial

    nac_ax, view = to_axial(inputs.nac, what="NAC PET")
    images = [nac_ax] + [None if v is None else to_axial(v, what="MR")[0] for v in (inputs.mr, inputs.ute)]
    trained_mm = model.trained_on.get("voxel_mm")
    work = None
    if trained_mm and any(abs(d / float(trained_mm) - 1.0) > 0.05 for d in nac_ax.spacing_mm[1:]):
        work = _working_grid(nac_ax, float(trained_mm))
        images = [None if v is None else v.resample_to(work, mode="linear", fill_value=0.0) for v in images]
    x = sct_network_inputs(model, *(None if v is None else v.data for v in images))
    hu = predict_slices(model, x)[:, 0]
    if work is not None:
        hu = work.with_data(hu).resample_to(nac_ax, mode="linear", fill_value=HU_RANGE[0]).data
    hu = hu.clamp(*HU_RANGE).round()
    meta = {"synthetic": True, "model_task": model.task, "trained_on": model.trained_on,
            "network_voxel_mm": None if work is None else float(trained_mm)}
    ct_ax = Volume(hu, nac_ax.spacing_mm, nac_ax.origin_mm, nac_ax.direction, unit="HU", modality="CT", meta=meta)
    mu = hu_to_mu_per_mm(hu, 511.0).clamp(0, MU_511_MAX_PER_MM)
    mu_ax = Volume(mu, nac_ax.spacing_mm, nac_ax.origin_mm, nac_ax.direction, unit="1/mm", modality="OT",
                   meta={"energy_kev": 511.0, "from": "synthetic CT"})
    return from_axial(ct_ax, view), from_axial(mu_ax, view)


def write_sct_outputs(out: Path, ct: Volume, mu: Volume, inputs: SctInputs) -> dict[str, Any]:
    """Write ``synthetic_ct.nii.gz``, ``mu_511.nii.gz`` and (DICOM input) ``synthetic_ct_dicom/`` into ``out``."""
    from petspect.io.dicom_write import write_dicom_series
    from petspect.io.nifti import write_nifti

    written = {"synthetic_ct": write_nifti(ct, out / "synthetic_ct.nii.gz"),
               "mu_511": write_nifti(mu, out / "mu_511.nii.gz")}
    if inputs.dicom_source is not None:
        files = write_dicom_series(ct, out / "synthetic_ct_dicom", source=inputs.dicom_source,
                                   overwrite=True, series_description="petspect synthetic CT (from NAC PET)"
                                   if inputs.mr is None else "petspect synthetic CT (from MR)")
        written["synthetic_ct_dicom"] = files[0].parent
    return written


def _require_cover(mu: Volume, grid: Volume, raw) -> None:
    """Refuse a synthetic CT whose grid does not cover the raw data's image grid (its air would be wrong)."""
    import numpy as np

    corners = np.array([[i, j, k] for i in (0, grid.shape[0] - 1) for j in (0, grid.shape[1] - 1)
                        for k in (0, grid.shape[2] - 1)], dtype=np.float64)
    idx = np.stack([mu.world_to_voxel(grid.voxel_to_world(c)) for c in corners])
    hi = np.asarray(mu.shape, dtype=np.float64) - 0.5
    if (idx < -0.5 - 1e-3).any() or (idx > hi + 1e-3).any():
        raise GeometryError(f"the synthetic CT's grid {tuple(mu.shape)} x {tuple(mu.spacing_mm)} mm does not cover the "
                            f"raw data's image grid {tuple(grid.shape)} x {tuple(grid.spacing_mm)} mm; give the NAC PET "
                            "reconstructed from these raw data", path=raw)


def corrected_pet(raw: str | os.PathLike, mu: Volume, *, iterations: int = 3, subsets: int = 6) -> Volume:
    """The PET of the acquisition folder ``raw`` reconstructed again with ``mu`` (resampled onto its grid), Bq/mL."""
    from petspect.ac.correct import reconstruct_with_mu
    from petspect.systems.acquisition import load_acquisition

    from petspect.systems.records import SpectSystemSpec

    data = load_acquisition(raw)
    if isinstance(data.system, SpectSystemSpec):
        raise InputError("--raw holds SPECT data; a synthetic CT at 511 keV corrects PET", path=raw)
    grid = data.grid.volume(torch.zeros(data.grid.shape))
    _require_cover(mu, grid, raw)
    mu_on = mu.resample_to(grid, mode="linear", fill_value=0.0).data.clamp_min(0.0)
    res = reconstruct_with_mu(data, mu_on, iterations=iterations, subsets=subsets)
    return data.image_volume(res.image, unit=data.calibration.unit, modality="PT",
                             meta={"attenuation": "synthetic CT", "scatter": res.info})
