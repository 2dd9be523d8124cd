"""Reading and writing real data: NIfTI, DICOM (PET, CT, NM, RTSTRUCT) and Interfile.

The entry points are :func:`load` and :func:`save`, which dispatch on the path:

==========================  ==========================================================
path                        format
==========================  ==========================================================
``*.nii``, ``*.nii.gz``     NIfTI-1 (:mod:`petspect.io.nifti`; RAS <-> LPS converted there)
folder, or a DICOM file     load: DICOM series PET/CT/MR/NM reconstruction (:mod:`.dicom_read`);
                            save (path without extension): new DICOM series (:mod:`.dicom_write`)
``*.hv``, ``*.h33``         Interfile image header (:mod:`petspect.io.interfile`)
==========================  ==========================================================

``save`` refuses to replace an existing output unless ``overwrite=True`` and writes atomically (a
temporary file moved into place), so a failed write never leaves a half-written file.

Other readers: :func:`read_nm_projections` (DICOM NM TOMO or GATED TOMO -> SpectProjections; one gate or their
sum), :func:`read_nm_gates` (every gate), :func:`read_rtstruct`
(contours -> masks), :func:`read_interfile_projections` / :func:`write_interfile_projections`
(STIR ``.hs``). SUV: :func:`suv_factor` / :func:`suv_factors` per DICOM instance (:mod:`.suv`),
``load(..., suv=kind)`` for a Volume. :mod:`petspect.io.convert` backs ``petspect info`` / ``convert``.
"""

from __future__ import annotations

import os
from pathlib import Path

from petspect._fileio import atomic_path, check_output_path
from petspect.errors import FormatError, InputError
from petspect.io._guard import guarded
from petspect.io._meta import full_suffix
from petspect.io._paths import is_dicom_file, require_exists
from petspect.io.nifti import read_nifti, write_nifti
from petspect.io.suv import SUV_KINDS, apply_suv, suv_factor, suv_factors
from petspect.volume import Volume

_LAZY = {  # name -> module, imported on first use (pydicom / scikit-image load only when needed)
    "read_dicom_series": "dicom_read", "read_datasets": "dicom_files", "write_dicom_series": "dicom_write",
    "read_nm_projections": "nm", "read_nm_gates": "nm", "read_rtstruct": "rtstruct", "read_interfile": "interfile",
    "write_interfile": "interfile", "read_interfile_projections": "interfile",
    "write_interfile_projections": "interfile",
}
__all__ = ["load", "save", "read_nifti", "write_nifti", "SUV_KINDS", "apply_suv", "suv_factor", "suv_factors",
           *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"petspect.io.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'petspect.io' has no attribute {name!r}")

NIFTI_SUFFIXES = (".nii", ".nii.gz")
INTERFILE_SUFFIXES = (".hv", ".h33")


@guarded("file")
def load(path: str | os.PathLike, *, suv: str | None = None, allow_outside_data: bool = False) -> Volume:
    """Read an image volume from a NIfTI file, a DICOM series (folder or file) or an Interfile header.

    Parameters
    ----------
    path : str or PathLike
        ``.nii`` / ``.nii.gz`` file, a folder holding one DICOM series (PET, CT, NM reconstruction,
        MR), a DICOM file (one multi-frame instance or one slice), or an Interfile ``.hv``/``.h33``.
        FIFOs and devices are refused before anything opens them.
    suv : {"bw", "bsa", "lbm_james", "lbm_janmahasatian", "ibw"}, optional
        Return SUV of this kind. DICOM PET: computed from the series (QIBA rules,
        :mod:`petspect.io.suv`); other formats: a PET volume whose ``meta["suv_factors"]`` holds the
        factor (petspect keeps it when converting DICOM PET to NIfTI or Interfile).

    allow_outside_data : bool
        Let an Interfile header name a data file outside its own folder (refused by default).

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
    elif p.is_file() and sfx in INTERFILE_SUFFIXES + (".hs",):
        from petspect.io.interfile import read_interfile

        vol = read_interfile(p, allow_outside_data=allow_outside_data)
    elif p.is_dir() or is_dicom_file(p):
        from petspect.io.dicom_read import read_dicom_series

        return read_dicom_series(p, suv=suv)
    else:
        raise FormatError("not a DICOM, NIfTI (.nii/.nii.gz) or Interfile (.hv/.h33) file", path=p)
    return vol if suv is None else apply_suv(vol, suv, path=p)


def output_kind(path: str | os.PathLike) -> str | None:
    """The :func:`petspect._fileio.check_output_path` ``kind`` of what :func:`save` writes at ``path``:
    ``"dicom-series"`` for a path without extension (a folder), ``None`` for a single file."""
    return "dicom-series" if full_suffix(path) == "" else None


def save(volume: Volume, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a Volume, the format chosen by the extension.

    Parameters
    ----------
    volume : Volume
    path : str or PathLike
        ``.nii`` / ``.nii.gz`` (NIfTI-1), ``.hv`` (Interfile header; data next to it in ``.v``), or
        a path without extension: a folder with a new DICOM series (a synthetic study; use
        :func:`petspect.io.dicom_write.write_dicom_series` to attach it to a source study).
    overwrite : bool
        Replace an existing output; otherwise :class:`~petspect.errors.OutputExistsError`.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    if not isinstance(volume, Volume):
        raise InputError(f"save takes a Volume, got {type(volume).__name__}")
    out = check_output_path(path, overwrite=overwrite, kind=output_kind(path))
    sfx = full_suffix(out)
    if sfx in NIFTI_SUFFIXES:
        with atomic_path(out) as tmp:
            write_nifti(volume, tmp)
        return out
    if sfx in INTERFILE_SUFFIXES:
        from petspect.io.interfile import write_interfile

        return write_interfile(volume, out, overwrite=overwrite)
    if sfx == "":
        from petspect.io.dicom_write import write_dicom_series

        write_dicom_series(volume, out, overwrite=overwrite)
        return out
    raise FormatError(f"unknown output extension {sfx!r}: use .nii, .nii.gz, .hv, or no extension for a "
                      "DICOM series folder", path=out)
