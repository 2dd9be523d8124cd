"""Describe and convert files (the API behind ``petspect info`` and ``petspect convert``).

Both handle image volumes (NIfTI, DICOM series, Interfile images) and SPECT projection data (DICOM
NM TOMO, Interfile ``.hs``). Descriptions hold geometry, units and SUV factors, never patient
identifiers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from petspect._fileio import check_output_path
from petspect.errors import FormatError
from petspect.geometry.spect_data import SpectProjections
from petspect.io._guard import guarded
from petspect.io._meta import full_suffix, multi_valued
from petspect.io._paths import is_dicom_file, require_exists
from petspect.volume import Volume


@guarded("file")
def is_projection_data(path: str | os.PathLike) -> bool:
    """True for an Interfile ``.hs`` header or DICOM holding an NM TOMO (projection) instance."""
    p = require_exists(path)
    if full_suffix(p) == ".hs":
        return True
    if full_suffix(p) == ".hdr" and p.is_file():  # STIR's SPECT_dicom_to_interfile writes <prefix>_en_1_<name>.hdr
        return _is_interfile_projection_header(p)
    if not (p.is_dir() or is_dicom_file(p)):
        return False
    import pydicom

    if p.is_dir():  # a folder of a SPECT/CT study holds the NM projections next to the CT slices
        from petspect.io.nm import _tomo_files

        return bool(_tomo_files(p))
    ds = pydicom.dcmread(p, stop_before_pixels=True)
    image_type = [v.upper() for v in multi_valued(getattr(ds, "ImageType", None))]
    from petspect.io.nm import PROJECTION_TYPES

    return getattr(ds, "Modality", None) == "NM" and any(v in PROJECTION_TYPES for v in image_type)


def _is_interfile_projection_header(p: Path) -> bool:
    with open(p, "rb") as fh:
        head = fh.read(8192).decode("latin-1", errors="replace").lower()
    return head.lstrip().startswith("!interfile") and "number of projections" in head


@guarded("file")
def read_any(path: str | os.PathLike, *, suv: str | None = None, gate: int | None = None,
             allow_outside_data: bool = False) -> Volume | SpectProjections:
    """A Volume (:func:`petspect.io.load`) or, for projection data, SpectProjections.

    ``gate`` (1-based) picks one time slot of gated DICOM NM TOMO data (default: their sum);
    ``allow_outside_data`` lets an Interfile header name a data file outside its folder."""
    from petspect.io import load

    if is_projection_data(path):
        if suv is not None:
            raise FormatError("SUV applies to PET images, not SPECT projection data", path=path)
        if full_suffix(path) in (".hs", ".hdr"):
            if gate is not None:
                raise FormatError("gate applies to gated DICOM NM TOMO data, not Interfile", path=path)
            from petspect.io.interfile import read_interfile_projections

            return read_interfile_projections(path, allow_outside_data=allow_outside_data)
        from petspect.io.nm import read_nm_projections

        return read_nm_projections(path, gate=gate)
    if gate is not None:
        raise FormatError("gate applies to gated SPECT projection data (DICOM NM GATED TOMO)", path=path)
    return load(path, suv=suv, allow_outside_data=allow_outside_data)


def _volume_summary(vol: Volume) -> dict[str, Any]:
    data = vol.data.double()
    out: dict[str, Any] = {
        "kind": "volume", "modality": vol.modality, "unit": vol.unit, "dtype": str(vol.data.dtype).replace("torch.", ""),
        "shape_zyx": list(vol.shape), "spacing_mm_zyx": list(vol.spacing_mm), "origin_mm_lps": list(vol.origin_mm),
        "direction": [list(r) for r in vol.direction], "extent_mm_zyx": list(vol.extent_mm),
        "min": float(data.min()), "max": float(data.max()), "mean": float(data.mean()),
    }
    for key in ("series_description", "manufacturer", "dicom_units", "decay_correction", "corrected_image",
                "radionuclide_half_life_s"):
        if vol.meta.get(key) not in (None, "", []):
            out[key] = vol.meta[key]
    if vol.modality == "PT" and "suv_factors" in vol.meta:
        out["suv_factors"] = vol.meta["suv_factors"]
        out["suv_missing"] = vol.meta.get("suv_missing", {})
    return out


def _projection_summary(proj: SpectProjections) -> dict[str, Any]:
    angles = proj.angles_deg.numpy()
    return {
        "kind": "spect_projections", "counts_shape_wvrc": list(proj.counts.shape), "n_views": proj.n_views,
        "angles_deg_first_last": [float(angles[0]), float(angles[-1])],
        "radius_mm_min_max": [float(proj.radius_mm.min()), float(proj.radius_mm.max())],
        "pixel_spacing_mm": list(proj.pixel_spacing_mm), "frame_duration_s": proj.frame_duration_s,
        "energy_windows_kev": {f"{i + 1}:{w.name}": [w.lower_kev, w.upper_kev]
                               for i, w in enumerate(proj.energy_windows)},
        "photopeak_window": proj.energy_windows[proj.photopeak_window].name, "nuclide": proj.nuclide,
        "total_counts_per_window": [float(c) for c in np.asarray(proj.counts.double().sum(dim=(1, 2, 3)))],
        **({"n_gates": proj.meta["n_gates"], "gate": proj.meta["gate"]} if "n_gates" in proj.meta else {}),
    }


@guarded("file")
def describe(path: str | os.PathLike, *, allow_outside_data: bool = False) -> dict[str, Any]:
    """JSON-ready description of a file: geometry, units, modality and, for PET, all SUV factors."""
    obj = read_any(path, allow_outside_data=allow_outside_data)
    return _volume_summary(obj) if isinstance(obj, Volume) else _projection_summary(obj)


def convert(src: str | os.PathLike, dst: str | os.PathLike, *, suv: str | None = None, gate: int | None = None,
            overwrite: bool = False, allow_outside_data: bool = False, anonymise: bool = False,
            secret_file: str | os.PathLike | None = None, unit: str | None = None) -> Path:
    """Read ``src`` and write it to ``dst`` in the format of ``dst``'s extension.

    Volumes go through :func:`petspect.io.save` (``.nii``, ``.nii.gz``, ``.hv``, or a folder for
    DICOM: a derived series of the source study when ``src`` is DICOM, else a synthetic study); SPECT
    projections can be written to Interfile ``.hs`` (``gate``: one time slot of gated data, default
    their sum). ``src`` is never overwritten. ``anonymise`` de-identifies a DICOM output with keyed
    pseudonyms (:mod:`petspect.io.anonymise`; key from ``secret_file`` or stored beside ``dst``). ``unit`` states
    the unit of a volume that carries none (:func:`petspect.io.stated_units.state_unit`).
    """
    from petspect.io import save

    from petspect.io import output_kind

    out = check_output_path(dst, overwrite=overwrite, inputs=[src], kind=output_kind(dst))
    obj = read_any(src, suv=suv, gate=gate, allow_outside_data=allow_outside_data)
    if unit is not None:
        if not isinstance(obj, Volume):
            raise FormatError("--unit applies to images, not to SPECT projection data", path=src)
        from petspect.io.stated_units import state_unit

        obj = state_unit(obj, unit, path=src)
    if isinstance(obj, SpectProjections):
        if full_suffix(out) != ".hs":
            raise FormatError("SPECT projection data can be written to Interfile .hs only", path=out)
        from petspect.io.interfile import write_interfile_projections

        return write_interfile_projections(obj, out, overwrite=overwrite)
    src_p = Path(src)
    if full_suffix(out) == "" and (src_p.is_dir() or is_dicom_file(src_p)):
        from petspect.io.dicom_write import write_dicom_series

        # DICOM -> DICOM: keep the patient and study of the source so viewers pair the series
        write_dicom_series(obj, out, source=src_p, overwrite=overwrite, series_description="petspect convert",
                           anonymize=anonymise, secret_file=secret_file)
        return out
    if full_suffix(out) == "" and anonymise:
        from petspect.io.dicom_write import write_dicom_series

        write_dicom_series(obj, out, overwrite=overwrite, anonymize=True, secret_file=secret_file)
        return out
    return save(obj, out, overwrite=overwrite)
