"""Segmenting one real PET image and writing the result: SUV conversion, masks, DICOM SEG/RTSTRUCT, tables.

This backs ``petspect segment``: the PET is read (DICOM series or NIfTI), converted to SUV, segmented by a
threshold method or a trained network, and written into a folder as

* ``lesions.nii.gz`` (binary mask, uint8) and ``lesion_instances.nii.gz`` (18-connected lesions 1..n),
* ``lesions.csv`` -- per-lesion MTV (mL), TLG (SUV x mL), SUVmax, SUVmean and LPS centroid (mm),
* ``seg.dcm`` (DICOM SEG) and ``rtstruct.dcm`` (RT Structure Set) referencing the source series, when the
  input is a DICOM series,
* ``segmentation.json`` -- method, parameters, SUV kind and factor, totals.

An organ model on a CT writes :func:`write_organ_segmentation`'s ``organs.nii.gz`` (label map, 1..K in the
model's class order), ``organs.csv`` (volume and mean HU per organ) and one SEG/RTSTRUCT segment per organ.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from petspect.errors import InputError, UnitError
from petspect.volume import Volume

__all__ = ["SEGMENT_KIND", "to_suv", "SegmentationOutput", "write_segmentation", "write_organ_segmentation"]

SEGMENT_KIND = "segmentation"
#: every file a segmentation run can write into its folder (removed first on an --overwrite rerun)
SEGMENT_OUTPUTS = ("lesions.csv", "lesions.nii.gz", "lesion_instances.nii.gz", "organs.csv", "organs.nii.gz",
                   "seg.dcm", "rtstruct.dcm", "segmentation.json")
FORMATS = ("nifti", "seg", "rtstruct")


def to_suv(pet: Volume, *, kind: str = "bw", factor: float | None = None, path: Any = None) -> Volume:
    """The PET in SUV: kept when already SUV, else from its recorded SUV factors or an explicit ``factor``.

    ``factor`` multiplies Bq/mL values into SUV (g/mL: body weight in g / decay-corrected injected Bq); it is
    refused for an image already in SUV (it would be applied twice).
    """
    from petspect.io.suv import apply_suv

    if pet.unit.upper().startswith("SUV"):
        if factor is not None:
            raise InputError(f"the image is already in SUV ({pet.unit}); an SUV factor would scale it a second "
                             "time", path=path)
        return pet
    if factor is not None:
        if not (np.isfinite(factor) and factor > 0):
            raise InputError(f"the SUV factor must be positive and finite, got {factor!r}")
        if pet.unit != "Bq/mL":
            hint = " (a file without a unit: state it with --unit Bq/mL)" if pet.unit in ("a.u.", "") else ""
            raise UnitError(f"an SUV factor converts Bq/mL; this image is in {pet.unit!r}{hint}", path=path)
        return pet.with_data(pet.data.float() * float(factor), unit=f"SUV{kind}",
                             meta=dict(pet.meta, suv_kind=kind, suv_factor_given=float(factor)))
    return apply_suv(pet, kind, path=path)


@dataclass
class SegmentationOutput:
    """What :func:`write_segmentation` wrote (paths) and the totals."""

    paths: dict[str, Path]
    n_lesions: int
    mtv_ml: float
    tlg: float
    not_written: list[str] = field(default_factory=list)


def write_segmentation(out_dir: str | os.PathLike, suv: Volume, mask: Any, *, method: str,
                       source_dicom: str | os.PathLike | None = None, formats: tuple[str, ...] = FORMATS,
                       info: dict[str, Any] | None = None, overwrite: bool = False,
                       inputs: tuple[Any, ...] = ()) -> SegmentationOutput:
    """Write a lesion mask on the SUV image's grid with its per-lesion table (see the module docstring).

    Parameters
    ----------
    out_dir : path
        Output folder (claimed for ``segmentation``; an existing foreign folder is refused).
    suv : Volume
        The SUV image the mask was made on (its grid is the mask's).
    mask : array_like of bool, (nz, ny, nx)
    method : str
    source_dicom : path, optional
        The source DICOM series; ``seg`` and ``rtstruct`` need it (skipped without it, said in the JSON).
    formats : tuple of {"nifti", "seg", "rtstruct"}
    info : dict
        Extra facts for ``segmentation.json``.
    """
    from petspect._fileio import atomic_path, claim_output_folder
    from petspect._json import write_json
    from petspect.io import save
    from petspect.segmentation.volumes import label_lesions, lesion_table, lesion_table_csv

    bad = set(formats) - set(FORMATS)
    if bad:
        raise InputError(f"unknown output formats {sorted(bad)}; choose from {list(FORMATS)}")
    m = np.asarray(mask.detach().cpu().numpy() if hasattr(mask, "detach") else mask) != 0
    if m.shape != suv.shape:
        raise InputError(f"the mask {m.shape} is not on the SUV image's grid {suv.shape}")
    out = claim_output_folder(out_dir, kind=SEGMENT_KIND, overwrite=overwrite, outputs=SEGMENT_OUTPUTS,
                              inputs=[p for p in (*inputs, source_dicom) if p is not None])
    lab, n = label_lesions(m)
    rows = lesion_table(suv.numpy(), m, suv.spacing_mm, instances=lab, affine=suv.affine)
    paths: dict[str, Path] = {}
    with atomic_path(out / "lesions.csv") as tmp:
        tmp.write_text(lesion_table_csv(rows), encoding="utf-8")
    paths["table"] = out / "lesions.csv"
    if "nifti" in formats:
        mvol = suv.with_data(torch.from_numpy(m.astype(np.uint8)), unit="label", modality="SEG",
                             meta={"method": method})
        paths["mask"] = save(mvol, out / "lesions.nii.gz", overwrite=True)
        ivol = mvol.with_data(torch.from_numpy(lab.astype(np.int16)))
        paths["instances"] = save(ivol, out / "lesion_instances.nii.gz", overwrite=True)
    skipped = []
    if {"seg", "rtstruct"} & set(formats):
        if source_dicom is None:
            skipped = [f for f in ("seg", "rtstruct") if f in formats]
        elif not m.any():
            skipped = [f"{f} (no lesion found: an empty object is not written)" for f in ("seg", "rtstruct")
                       if f in formats]
        else:
            family = "network" if method not in ("suv41", "suv50", "suv25", "percist", "adaptive", "gradient") else (
                "gradient" if method == "gradient" else "threshold")
            if "seg" in formats:
                from petspect.io.dicom_seg import write_dicom_seg

                paths["seg"] = write_dicom_seg({"lesion": m}, source_dicom, out / "seg.dcm", algorithm=method,
                                               algorithm_family=family, overwrite=True)
            if "rtstruct" in formats:
                from petspect.io.rtstruct_write import write_rtstruct

                paths["rtstruct"] = write_rtstruct({"lesion": m}, source_dicom, out / "rtstruct.dcm",
                                                   algorithm=method, overwrite=True)
    mtv = float(sum(r.mtv_ml for r in rows))
    tlg_total = float(sum(r.tlg for r in rows))
    doc = {"method": method, "n_lesions": n, "mtv_ml": mtv, "tlg": tlg_total, "suv_unit": suv.unit,
           "connectivity": 18, "files": {k: p.name for k, p in paths.items()},
           "not_written": [f"{s} (the input is not a DICOM series)" if "(" not in s else s for s in skipped],
           **(info or {})}
    write_json(out / "segmentation.json", doc)
    paths["summary"] = out / "segmentation.json"
    return SegmentationOutput(paths, n, mtv, tlg_total, list(doc["not_written"]))


def write_organ_segmentation(out_dir: str | os.PathLike, ct: Volume, labels: Any, organs: tuple[str, ...], *,
                             method: str, source_dicom: str | os.PathLike | None = None,
                             formats: tuple[str, ...] = FORMATS, info: dict[str, Any] | None = None,
                             overwrite: bool = False, inputs: tuple[Any, ...] = ()) -> SegmentationOutput:
    """Write an organ label map (class ``k`` = ``organs[k - 1]``) made on ``ct``'s grid.

    Files: ``organs.nii.gz``, ``organs.csv`` (organ, label, voxels, volume_ml, mean_hu), ``seg.dcm`` and
    ``rtstruct.dcm`` (one segment per organ found; DICOM input only), ``segmentation.json``.
    ``n_lesions`` of the result counts the organs found; ``mtv_ml`` is their total volume and ``tlg`` 0.
    """
    from petspect._fileio import atomic_path, claim_output_folder
    from petspect._json import write_json
    from petspect.io import save
    from petspect.units import ML_PER_MM3

    bad = set(formats) - set(FORMATS)
    if bad:
        raise InputError(f"unknown output formats {sorted(bad)}; choose from {list(FORMATS)}")
    lab = np.asarray(labels.detach().cpu().numpy() if hasattr(labels, "detach") else labels).astype(np.int16)
    if lab.shape != ct.shape:
        raise InputError(f"the label map {lab.shape} is not on the CT's grid {ct.shape}")
    if lab.min() < 0 or lab.max() > len(organs):
        raise InputError(f"labels must lie in [0, {len(organs)}] for organs {list(organs)}")
    out = claim_output_folder(out_dir, kind=SEGMENT_KIND, overwrite=overwrite, outputs=SEGMENT_OUTPUTS,
                              inputs=[p for p in (*inputs, source_dicom) if p is not None])
    voxel_ml = float(np.prod(ct.spacing_mm)) * ML_PER_MM3
    hu = ct.numpy()
    rows = ["organ,label,voxels,volume_ml,mean_hu"]
    found: dict[str, np.ndarray] = {}
    for k, organ in enumerate(organs, start=1):
        m = lab == k
        n = int(m.sum())
        rows.append(f"{organ},{k},{n},{n * voxel_ml:.3f},{float(hu[m].mean()) if n else float('nan'):.1f}")
        if n:
            found[organ] = m
    paths: dict[str, Path] = {}
    with atomic_path(out / "organs.csv") as tmp:
        tmp.write_text("\n".join(rows) + "\n", encoding="utf-8")
    paths["table"] = out / "organs.csv"
    if "nifti" in formats:
        paths["labels"] = save(ct.with_data(torch.from_numpy(lab), unit="label", modality="SEG",
                                            meta={"method": method, "classes": ["background", *organs]}),
                               out / "organs.nii.gz", overwrite=True)
    skipped = []
    if {"seg", "rtstruct"} & set(formats):
        if source_dicom is None:
            skipped = [f"{f} (the input is not a DICOM series)" for f in ("seg", "rtstruct") if f in formats]
        elif not found:
            skipped = [f"{f} (no organ found: an empty object is not written)" for f in ("seg", "rtstruct")
                       if f in formats]
        else:
            if "seg" in formats:
                from petspect.io.dicom_seg import write_dicom_seg

                paths["seg"] = write_dicom_seg(found, source_dicom, out / "seg.dcm", algorithm=method,
                                               algorithm_family="network", overwrite=True)
            if "rtstruct" in formats:
                from petspect.io.rtstruct_write import write_rtstruct

                paths["rtstruct"] = write_rtstruct(found, source_dicom, out / "rtstruct.dcm", algorithm=method,
                                                   overwrite=True)
    total = float(sum(m.sum() for m in found.values()) * voxel_ml)
    doc = {"method": method, "task": "organs", "organs": list(organs), "found": list(found),
           "volume_ml": {o: float(m.sum() * voxel_ml) for o, m in found.items()},
           "files": {k: p.name for k, p in paths.items()}, "not_written": skipped, **(info or {})}
    write_json(out / "segmentation.json", doc)
    paths["summary"] = out / "segmentation.json"
    return SegmentationOutput(paths, len(found), total, 0.0, skipped)
