"""NIfTI-1 reading and writing (``.nii``, ``.nii.gz``) with the RAS <-> LPS conversion.

NIfTI stores an array indexed ``(i, j, k)`` and an affine mapping ``(i, j, k, 1)`` to RAS+ mm
(x grows to the patient's Right, y Anterior, z Superior). petspect's :class:`~petspect.volume.Volume` holds
``(z, y, x)`` data and an LPS affine. The conversion, done only here, is

* data: ``nifti_array = volume.data.transpose(2, 1, 0)`` (so ``i`` runs along the Volume's x axis);
* affine: ``A_ras = diag(-1, -1, 1, 1) @ A_lps[:, [2, 1, 0, 3]]`` (negate the first two rows, reverse
  the order of the index columns); the same relation read backwards on loading.

Any orthogonal affine (oblique directions, flipped axes) round-trips exactly; a sheared affine is
refused with :class:`~petspect.errors.GeometryError`.

How unit, modality and meta are kept
------------------------------------
A NIfTI header has no field for physical units of the values, so petspect writes them twice:

* a header extension with code 6 (``NIFTI_ECODE_COMMENT``) holding the JSON text
  ``{"petspect": {"unit": ..., "modality": ..., "meta": {...}}}`` (read back in full);
* the 80-byte ``descrip`` field ``"petspect unit=<unit> modality=<modality>"`` (human readable in any
  viewer, and the fallback when a tool dropped the extension).

Files written by other software load with unit ``"a.u."`` and modality ``None`` unless their
``descrip`` follows the form above.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from petspect.errors import FormatError, GeometryError, InputError
from petspect.io._guard import reading
from petspect.io._meta import meta_to_json
from petspect.io._paths import require_file
from petspect.volume import Volume

_LPS_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_ECODE_COMMENT = 6
_DESCRIP_RE = re.compile(r"petspect unit=(?P<unit>\S+)(?: modality=(?P<modality>\S+))?")
# on-disk dtypes that torch cannot hold are widened (never narrowed)
_WIDEN = {np.dtype(np.uint16): np.int32, np.dtype(np.uint32): np.int64, np.dtype(np.uint64): np.int64,
          np.dtype(np.float16): np.float32}


def lps_affine_to_nifti(affine_lps_zyx: np.ndarray) -> np.ndarray:
    """NIfTI RAS affine of ``(i, j, k) = (x, y, z)`` indices from a Volume's LPS ``(z, y, x)`` affine.

    Parameters
    ----------
    affine_lps_zyx : ndarray, shape (4, 4)
        ``Volume.affine``: index ``(kz, ky, kx, 1)`` -> LPS ``(x, y, z, 1)`` in mm.

    Returns
    -------
    ndarray, shape (4, 4)
        Index ``(i, j, k, 1)`` -> RAS ``(x, y, z, 1)`` in mm.
    """
    return _LPS_RAS @ np.asarray(affine_lps_zyx, dtype=np.float64)[:, [2, 1, 0, 3]]


def nifti_affine_to_lps(affine_ras_ijk: np.ndarray) -> np.ndarray:
    """Inverse of :func:`lps_affine_to_nifti` (the flip is its own inverse)."""
    return (_LPS_RAS @ np.asarray(affine_ras_ijk, dtype=np.float64))[:, [2, 1, 0, 3]]


def _geometry_from_affine(a_lps: np.ndarray, path: Path) -> tuple[tuple, tuple, np.ndarray]:
    cols = a_lps[:3, :3]
    spacing = np.linalg.norm(cols, axis=0)
    if np.any(spacing <= 0) or not np.all(np.isfinite(cols)):
        raise GeometryError("affine has a zero or non-finite column (degenerate voxel size)", path=path)
    direction = cols / spacing[None, :]
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise GeometryError("sheared (non-orthogonal) affine is not supported; resample it first", path=path)
    # re-orthonormalise the rounding noise of float32 headers (polar decomposition)
    u, _, vt = np.linalg.svd(direction)
    return tuple(spacing), tuple(a_lps[:3, 3]), u @ vt


def _read_petspect_info(img: Any) -> dict[str, Any]:
    for ext in img.header.extensions:
        if ext.get_code() == _ECODE_COMMENT:
            try:
                info = json.loads(ext.get_content().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(info, dict) and isinstance(info.get("petspect"), dict):
                return info["petspect"]
    descrip = img.header["descrip"].tobytes().split(b"\0", 1)[0].decode("latin-1")
    m = _DESCRIP_RE.search(descrip)
    if m:
        mod = m.group("modality")
        return {"unit": m.group("unit"), "modality": None if mod in (None, "None") else mod}
    return {}


def _load_image(p: Path) -> Any:
    """The nibabel image of ``p``, read whole into memory (the Volume must not depend on the file).

    A ``.nii.gz`` is decompressed completely first, so that gzip's CRC-32 and length checks run: a
    damaged stream is refused instead of giving silently different voxels.
    """
    import gzip
    import zlib

    import nibabel as nib

    raw = p.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise FormatError(f"the gzip stream is damaged ({exc}); the file cannot be trusted", path=p) from None
    elif p.name.lower().endswith(".gz"):
        raise FormatError("named .gz but is not gzip-compressed", path=p)
    if len(raw) < 348:
        raise FormatError(f"too short for a NIfTI header ({len(raw)} bytes)", path=p)
    klass = nib.Nifti2Image if int.from_bytes(raw[:4], "little") == 540 or int.from_bytes(raw[:4], "big") == 540 \
        else nib.Nifti1Image
    try:
        return klass.from_bytes(raw)
    except (nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError, OSError, EOFError,
            ValueError) as exc:
        raise FormatError(f"not a readable NIfTI file ({exc})", path=p) from None


def _check_header(img: Any, p: Path) -> None:
    """Refuse header fields that would give wrong values silently."""
    hdr = img.header
    try:
        hdr.get_data_dtype()
    except Exception as exc:  # noqa: BLE001 - nibabel raises several kinds for an unknown code
        raise FormatError(f"datatype code {int(hdr['datatype'])} is not a NIfTI data type ({exc})", path=p) from None
    slope, inter = float(hdr["scl_slope"]), float(hdr["scl_inter"])
    if np.isinf(slope) or (slope not in (0.0,) and not np.isnan(slope) and np.isinf(inter)):
        raise FormatError(f"scl_slope / scl_inter = {slope!r} / {inter!r} are not finite", path=p)
    shape = img.shape
    if any(int(n) <= 0 for n in shape):
        raise FormatError(f"dim holds a non-positive size {tuple(shape)}", path=p)


def _read_array(img: Any, path: Path | None = None) -> np.ndarray:
    # nibabel moves scl_slope/scl_inter from the header into the array proxy on loading
    proxy = img.dataobj
    slope, inter = float(getattr(proxy, "slope", 1.0)), float(getattr(proxy, "inter", 0.0))
    if slope == 1.0 and inter == 0.0:
        arr = np.asarray(proxy)
    else:
        disk = img.get_data_dtype()
        arr = img.get_fdata(dtype=np.float64 if disk == np.float64 else np.float32)
    if arr.dtype == np.uint64 and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise FormatError(f"uint64 values up to {int(arr.max())} do not fit the int64 that holds them "
                          "(they would wrap negative); store the image as float64 or a smaller integer type", path=path)
    return arr.astype(_WIDEN.get(arr.dtype, arr.dtype), copy=False)


def read_nifti(path: str | os.PathLike) -> Volume:
    """Read a NIfTI-1/2 file into a Volume (LPS, data ``(z, y, x)``).

    Parameters
    ----------
    path : str or PathLike
        ``.nii`` or ``.nii.gz`` file. 2D images get one slice; 4D images must have a single volume.

    Returns
    -------
    Volume
        Values with the header scaling (scl_slope/scl_inter) applied; the on-disk dtype is kept when
        the file is unscaled (label maps stay integer). Geometry from the sform (or qform, as nibabel
        chooses); unit/modality/meta from petspect's header extension when present.

    Raises
    ------
    DataNotFoundError, FormatError, GeometryError
    """
    import nibabel as nib

    p = require_file(path)
    with reading(p, "NIfTI file"):
        img = _load_image(p)
        _check_header(img, p)
        try:
            arr = _read_array(img, p)
        except (nib.filebasedimages.ImageFileError, OSError, EOFError, ValueError) as exc:
            raise FormatError(f"not a readable NIfTI file ({exc})", path=p) from exc
        return _to_volume(img, arr, p)


def _to_volume(img: Any, arr: np.ndarray, p: Path) -> Volume:
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim > 3:
        extra = arr.shape[3:]
        if int(np.prod(extra)) != 1:
            raise FormatError(f"{arr.ndim}D image of shape {arr.shape}: petspect Volumes are 3D", path=p)
        arr = arr.reshape(arr.shape[:3])
    spacing, origin, direction = _geometry_from_affine(nifti_affine_to_lps(img.affine), p)
    info = _read_petspect_info(img)
    meta = info.get("meta") if isinstance(info.get("meta"), dict) else {}
    data = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 1, 0)))
    return Volume(data, spacing, origin, direction, unit=info.get("unit") or "a.u.",
                  modality=info.get("modality"), meta=meta)


def write_nifti(volume: Volume, path: str | os.PathLike) -> Path:
    """Write a Volume as NIfTI-1 to exactly ``path`` (no existence check: use :func:`petspect.io.save`).

    The data are stored in their dtype (bool as uint8, int64 as int32 when the values fit), with both
    sform and qform set (code 1, scanner) to the RAS affine, spatial unit mm, and petspect's unit /
    modality / meta in a JSON header extension and in ``descrip`` (see the module docstring).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    import nibabel as nib

    if not isinstance(volume, Volume):
        raise InputError(f"write_nifti takes a Volume, got {type(volume).__name__}")
    arr = volume.numpy()
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    elif arr.dtype == np.int64 and (arr.size == 0 or np.abs(arr).max() < 2**31):
        arr = arr.astype(np.int32)
    arr = np.ascontiguousarray(arr.transpose(2, 1, 0))
    affine = lps_affine_to_nifti(volume.affine)
    img = nib.Nifti1Image(arr, affine)
    hdr = img.header
    hdr.set_sform(affine, code=1)
    hdr.set_qform(affine, code=1)
    hdr.set_xyzt_units(xyz="mm")
    hdr.set_slope_inter(1.0, 0.0)
    hdr["descrip"] = f"petspect unit={volume.unit} modality={volume.modality}"[:80].encode("latin-1", "replace")
    payload = json.dumps({"petspect": {"unit": volume.unit, "modality": volume.modality,
                                       "meta": json.loads(meta_to_json(volume.meta))}})
    hdr.extensions.append(nib.nifti1.Nifti1Extension(_ECODE_COMMENT, payload.encode("utf-8")))
    p = Path(path)
    nib.save(img, str(p))
    return p
