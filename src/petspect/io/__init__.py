"""Reading and writing real data: NIfTI, DICOM (PET, CT, NM, RTSTRUCT) and Interfile.

The entry points are :func:`load` and :func:`save`, which dispatch on the path:

==========================  ==========================================================
path                        format
==========================  ==========================================================
``*.nii``, ``*.nii.gz``     NIfTI-1 (:mod:`petspect.io.nifti`; RAS <-> LPS converted there)
folder, or a DICOM file     DICOM series: PET, CT, NM reconstructions (:mod:`petspect.io.dicom_read`)
``*.hv``, ``*.h33``         Interfile image header (:mod:`petspect.io.interfile`)
==========================  ==========================================================

``save`` refuses to replace an existing output unless ``overwrite=True`` and writes atomically (a
temporary file moved into place), so a failed write never leaves a half-written file.
"""

from __future__ import annotations

import os
from pathlib import Path

from petspect._fileio import atomic_path, check_output_path
from petspect.errors import FormatError, InputError, UnitError
from petspect.io._meta import full_suffix
from petspect.io._paths import is_dicom_file, require_exists
from petspect.io.nifti import read_nifti, write_nifti
from petspect.volume import Volume

__all__ = ["load", "save", "read_nifti", "write_nifti"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def load(path: str | os.PathLike, *, suv: str | None = None) -> Volume:
    """Read an image volume from a NIfTI file.

    Parameters
    ----------
    path : str or PathLike
        A ``.nii`` / ``.nii.gz`` file.
    suv : {"bw", "bsa", "lbm_james", "lbm_janmahasatian", "ibw"}, optional
        Return SUV of this kind instead of activity concentration. Needs a PET volume in Bq/mL whose
        ``meta["suv_factors"]`` holds the factor (as written by petspect from a DICOM PET series).

    Returns
    -------
    Volume
        LPS geometry, data ``(z, y, x)``.

    Raises
    ------
    DataNotFoundError, FormatError (and subclasses), UnitError
    """
    p = require_exists(path)
    sfx = full_suffix(p)
    if p.is_file() and sfx in NIFTI_SUFFIXES:
        vol = read_nifti(p)
    elif p.is_dir() or is_dicom_file(p):
        raise FormatError("DICOM reading is not available yet", path=p)
    else:
        raise FormatError("not a DICOM, NIfTI (.nii/.nii.gz) or Interfile (.hv/.h33) file", path=p)
    return vol if suv is None else to_suv(vol, suv, path=p)


def to_suv(volume: Volume, kind: str, *, path: str | os.PathLike | None = None) -> Volume:
    """Convert a PET Volume in Bq/mL to SUV of ``kind`` with the factors in ``meta["suv_factors"]``.

    Raises :class:`~petspect.errors.UnitError` for a non-PET volume, a volume not in Bq/mL, or when the
    factor of that kind is unknown (e.g. no patient height for ``bsa``).
    """
    if volume.modality != "PT":
        raise UnitError(f"SUV is defined for PET (modality PT) only, this is {volume.modality!r}", path=path)
    if volume.unit.startswith("SUV"):
        raise UnitError(f"volume is already in {volume.unit}", path=path)
    if volume.unit != "Bq/mL":
        raise UnitError(f"SUV needs activity concentration in Bq/mL, volume is in {volume.unit!r}", path=path)
    factors = volume.meta.get("suv_factors") or {}
    if kind not in factors:
        raise UnitError(f"no SUV factor of kind {kind!r} in this volume (have {sorted(factors)})", path=path)
    if factors[kind] is None:
        reason = (volume.meta.get("suv_missing") or {}).get(kind, "patient data missing")
        raise UnitError(f"SUV {kind} cannot be computed: {reason}", path=path)
    unit = {"lbm_james": "SUVlbm"}.get(kind, f"SUV{kind}")
    meta = dict(volume.meta, suv_kind=kind, suv_factor=float(factors[kind]))
    return volume.with_data(volume.data * float(factors[kind]), unit=unit, meta=meta)


def save(volume: Volume, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a Volume, the format chosen by the extension (``.nii``, ``.nii.gz``).

    Parameters
    ----------
    volume : Volume
    path : str or PathLike
        Output file.
    overwrite : bool
        Replace an existing output; otherwise :class:`~petspect.errors.OutputExistsError`.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    if not isinstance(volume, Volume):
        raise InputError(f"save takes a Volume, got {type(volume).__name__}")
    out = check_output_path(path, overwrite=overwrite)
    sfx = full_suffix(out)
    if sfx in NIFTI_SUFFIXES:
        with atomic_path(out) as tmp:
            write_nifti(volume, tmp)
        return out
    raise FormatError(f"unknown output extension {sfx!r}: use .nii or .nii.gz", path=out)
