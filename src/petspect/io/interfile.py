"""Interfile 3.3 / STIR headers: images (``.hv`` + ``.v``) and SPECT projection data (``.hs`` + ``.s``).

Images follow STIR's ``write_basic_interfile_image_header``: axis ``[1]`` is x (columns, fastest in
the file), ``[2]`` y (rows), ``[3]`` z (slices), ``scaling factor (mm/pixel) [i]`` the voxel size and
``first pixel offset (mm) [i]`` the position of the first voxel's centre. petspect writes the LPS
origin there, so for the standard axial orientation STIR and petspect agree on voxel sizes and
offsets; other orientations are kept in the extra key ``petspect direction`` (STIR warns about and
ignores unknown keys). Images are written, and read, as ``patient orientation := head_in`` /
``patient rotation := supine``; a foreign header that says feet_in or prone (and has no ``petspect
direction``) is refused rather than read with its axes flipped.

SPECT projections follow STIR's SPECT header (``!imaging modality := nucmed``, ``!number of
projections``, ``!extent of rotation``, ``!direction of rotation``, ``start angle``, ``orbit``,
``Radius``; ``!matrix size [1]`` tangential bins, ``[2]`` axial rows; data ordered view, row, column).
Several energy windows are stored one after the other (the first is what STIR reads), described by the
standard ``energy window lower/upper level [i]`` keys.

Round trips through petspect are exact: values are written in their own dtype, every float in full
precision (``repr``), and angles, unit, modality and meta in ``petspect ...`` keys.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from petspect._fileio import atomic_path, atomic_write_text, check_output_path, require_regular
from petspect.errors import FormatError, InputError, MissingTagError, OutputExistsError
from petspect.geometry.spect import angles_from_dicom
from petspect.geometry.spect_data import EnergyWindow, SpectProjections
from petspect.io._guard import guarded
from petspect.io._meta import meta_to_json
from petspect.io._paths import require_file
from petspect.volume import AXIAL_DIRECTION, Volume

_FORMATS = {("float", 4): "f4", ("float", 8): "f8", ("short float", 4): "f4", ("long float", 8): "f8",
            ("signed integer", 1): "i1", ("signed integer", 2): "i2", ("signed integer", 4): "i4",
            ("signed integer", 8): "i8", ("unsigned integer", 1): "u1", ("unsigned integer", 2): "u2",
            ("unsigned integer", 4): "u4", ("unsigned integer", 8): "u8"}
_TORCH_SAFE = {"u2": "i4", "u4": "i8", "u8": "i8"}  # widened on reading: torch lacks these dtypes


# ---------------------------------------------------------------- header parsing
def _norm_key(key: str) -> str:
    return re.sub(r"\s+", " ", key.strip().lstrip("!").strip().lower()).replace(" [", "[").replace("[ ", "[")


def parse_header(path: str | os.PathLike) -> dict[str, str]:
    """Interfile ``key := value`` pairs; keys lower-cased, ``!`` and extra blanks removed, comments dropped."""
    p = require_file(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise FormatError(f"cannot read Interfile header ({exc})", path=p) from exc
    lines = [ln.split(";", 1)[0] if not ln.lstrip().startswith("petspect meta") else ln for ln in text.splitlines()]
    first = next((ln for ln in lines if ln.strip()), "")
    if _norm_key(first.split(":=", 1)[0]) != "interfile":
        raise FormatError("not an Interfile header (first line must be '!INTERFILE :=')", path=p)
    out: dict[str, str] = {}
    for ln in lines:
        if ":=" in ln:
            key, value = ln.split(":=", 1)
            out[_norm_key(key)] = value.strip()
    return out


def _key(h: dict[str, str], key: str, path: Any, default: Any = None) -> str:
    k = _norm_key(key)
    if k in h and h[k] != "":
        return h[k]
    if default is not None:
        return default
    raise MissingTagError(f"missing Interfile key '{key}'", path=path)


def _floats(value: str, key: str = "value", path: Any = None) -> list[float]:
    try:
        out = [float(v) for v in value.strip().strip("{}").split(",") if v.strip()]
    except ValueError:
        raise FormatError(f"Interfile key '{key}' is not a list of numbers: {value[:60]!r}", path=path) from None
    if not all(np.isfinite(out)):
        raise FormatError(f"Interfile key '{key}' holds a non-finite number: {value[:60]!r}", path=path)
    return out


def _float_key(h: dict[str, str], key: str, path: Any, default: Any = None, *, positive: bool = False) -> float:
    """A numeric key as a finite float (``positive``: > 0); FormatError naming the key otherwise."""
    text = _key(h, key, path, default)
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise FormatError(f"Interfile key '{key}' is not a number: {str(text)[:60]!r}", path=path) from None
    if not np.isfinite(value) or (positive and value <= 0):
        raise FormatError(f"Interfile key '{key}' must be a {'positive' if positive else 'finite'} number, "
                          f"got {text!r}", path=path)
    return value


MAX_ELEMENTS = 2**34  # sizes beyond this are a damaged header, not data


def _int_key(h: dict[str, str], key: str, path: Any, default: Any = None, *, minimum: int = 1) -> int:
    """An integer key (>= ``minimum``); FormatError naming the key otherwise."""
    text = _key(h, key, path, default)
    try:
        value = int(str(text).strip())
    except (TypeError, ValueError):
        raise FormatError(f"Interfile key '{key}' is not an integer: {str(text)[:60]!r}", path=path) from None
    if not minimum <= value <= MAX_ELEMENTS:
        raise FormatError(f"Interfile key '{key}' = {value} is out of range", path=path)
    return value


def data_file_path(h: dict[str, str], header: Path, *, allow_outside: bool = False) -> Path:
    """The data file a header names, which must lie in the header's folder (or below it).

    A header may name any path (``../../home/user/.ssh/id_rsa``); reading files outside the header's
    folder is refused unless ``allow_outside`` (CLI: ``--allow-outside-data``) says the user trusts it.
    """
    name = _key(h, "name of data file", header)
    data_file = Path(name) if Path(name).is_absolute() else header.parent / name
    if not allow_outside:
        base = header.parent.resolve()
        target = data_file.resolve()
        if target != base and base not in target.parents:
            raise FormatError(f"the header names the data file {name!r}, outside the header's folder; "
                              "petspect refuses it unless you allow it (allow_outside_data=True; petspect info / "
                              "convert --allow-outside-data)", path=header)
    require_regular(data_file, what="data file")
    return data_file


def _read_raw(h: dict[str, str], header: Path, count: int, offset_key: str = "data offset in bytes", *,
              allow_outside: bool = False) -> np.ndarray:
    data_file = data_file_path(h, header, allow_outside=allow_outside)
    fmt = _key(h, "number format", header).lower()
    nbytes = _int_key(h, "number of bytes per pixel", header)
    if (fmt, nbytes) not in _FORMATS:
        raise FormatError(f"unsupported number format {fmt!r} with {nbytes} bytes per pixel", path=header)
    order = _key(h, "imagedata byte order", header, "BIGENDIAN").upper()  # Interfile's default
    dtype = np.dtype(("<" if order.startswith("LITTLE") else ">") + _FORMATS[(fmt, nbytes)])
    offset_text = h.get(_norm_key(offset_key + "[1]")) or h.get(_norm_key(offset_key)) or "0"
    try:
        offset = int(float(offset_text))
    except (ValueError, OverflowError):
        raise FormatError(f"Interfile key '{offset_key}' is not a number: {offset_text[:60]!r}", path=header) from None
    if offset < 0:
        raise FormatError(f"Interfile key '{offset_key}' is negative ({offset})", path=header)
    if not data_file.is_file():
        raise FormatError(f"data file {data_file.name} named in the header does not exist", path=header)
    need = offset + count * dtype.itemsize
    if data_file.stat().st_size < need:
        raise FormatError(f"data file has {data_file.stat().st_size} bytes, the header needs {need}", path=data_file)
    arr = np.fromfile(data_file, dtype=dtype, count=count, offset=offset).astype(dtype.newbyteorder("="))
    scale = _float_key(h, "image scaling factor[1]", header, "1")
    if scale == 0.0:
        raise FormatError("Interfile key 'image scaling factor[1]' is 0: every value would read as 0", path=header)
    if dtype.kind == "u" and dtype.itemsize == 8 and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise FormatError(f"unsigned 8-byte values up to {int(arr.max())} do not fit int64 (they would wrap "
                          "negative)", path=data_file)
    if scale != 1.0:
        arr = arr.astype(np.float32 if dtype.itemsize <= 4 else np.float64) * scale
    return arr.astype(_TORCH_SAFE.get(arr.dtype.str[1:], arr.dtype), copy=False)


def _number_format(dtype: np.dtype) -> tuple[str, int]:
    kind = {"f": "float", "i": "signed integer", "u": "unsigned integer", "b": "unsigned integer"}.get(dtype.kind)
    if kind is None:
        raise InputError(f"cannot write dtype {dtype} to Interfile")
    return kind, dtype.itemsize


def _petspect_keys(unit: str | None, modality: str | None, meta: dict) -> list[str]:
    return [f"petspect unit := {unit or ''}", f"petspect modality := {modality or ''}",
            f"petspect meta := {meta_to_json(meta)}"]


def _write_pair(header_path: Path, data_suffix: str, arr: np.ndarray, lines: list[str], overwrite: bool) -> Path:
    """Write ``arr`` (little endian) to ``<stem><data_suffix>`` and the header, each atomically."""
    data_path = header_path.with_suffix(data_suffix)
    check_output_path(header_path, overwrite=overwrite)
    check_output_path(data_path, overwrite=overwrite)
    if data_path.exists():  # replace a data file only when the header being replaced names it
        try:
            named = parse_header(header_path).get("name of data file", "") if header_path.is_file() else ""
        except FormatError:
            named = ""
        if Path(named).name != data_path.name:
            raise OutputExistsError(f"{data_path.name} exists and no Interfile header here names it; petspect "
                                    "does not replace a file it did not write", path=data_path)
    body = ["!INTERFILE :=", f"name of data file := {data_path.name}", *lines, "!END OF INTERFILE :="]
    with atomic_path(data_path) as tmp:
        np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tofile(tmp)
    atomic_write_text(header_path, "\n".join(body) + "\n")
    return header_path


# ---------------------------------------------------------------- images
def write_interfile(volume: Volume, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a Volume as a STIR-compatible Interfile image: header ``path`` (``.hv``) and data ``.v``.

    Returns
    -------
    pathlib.Path
        The header path.
    """
    if not isinstance(volume, Volume):
        raise InputError(f"write_interfile takes a Volume, got {type(volume).__name__}")
    header = Path(path)
    arr = volume.numpy()
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    fmt, nbytes = _number_format(arr.dtype)
    nz, ny, nx = volume.shape
    dz, dy, dx = volume.spacing_mm
    ox, oy, oz = volume.origin_mm
    modality = {"PT": "PT", "NM": "nucmed", "CT": "CT"}.get(volume.modality or "", "PT")
    lines = [f"!imaging modality := {modality}", "!version of keys := STIR4.0", "!GENERAL DATA :=",
             "!GENERAL IMAGE DATA :=", "!type of data := PET" if modality == "PT" else "!type of data := Tomographic",
             "imagedata byte order := LITTLEENDIAN", "!PET STUDY (General) :=", "!PET data type := Image",
             "process status := Reconstructed", f"!number format := {fmt}", f"!number of bytes per pixel := {nbytes}",
             "number of dimensions := 3",
             "matrix axis label [1] := x", f"!matrix size [1] := {nx}", f"scaling factor (mm/pixel) [1] := {dx!r}",
             "matrix axis label [2] := y", f"!matrix size [2] := {ny}", f"scaling factor (mm/pixel) [2] := {dy!r}",
             "matrix axis label [3] := z", f"!matrix size [3] := {nz}", f"scaling factor (mm/pixel) [3] := {dz!r}",
             f"first pixel offset (mm) [1] := {ox!r}", f"first pixel offset (mm) [2] := {oy!r}",
             f"first pixel offset (mm) [3] := {oz!r}", "number of time frames := 1", "data offset in bytes[1] := 0",
             "patient orientation := head_in", "patient rotation := supine"]
    if not np.allclose(volume.direction, AXIAL_DIRECTION, atol=0):
        flat = ", ".join(repr(float(v)) for v in np.asarray(volume.direction).reshape(-1))
        lines.append(f"petspect direction := {{{flat}}}")
    lines += _petspect_keys(volume.unit, volume.modality, volume.meta)
    return _write_pair(header, ".v", arr, lines, overwrite)


@guarded("Interfile image")
def read_interfile(path: str | os.PathLike, *, allow_outside_data: bool = False) -> Volume:
    """Read an Interfile image header (``.hv``/``.h33``) and its data into a Volume.

    Missing ``first pixel offset`` keys default to STIR's convention (x and y centred on 0, first
    slice at z = 0). ``image scaling factor[1]`` multiplies the stored values.

    Raises
    ------
    DataNotFoundError, FormatError, MissingTagError
    """
    p = require_file(path)
    h = parse_header(p)
    if h.get("number of projections"):
        raise FormatError("this header describes SPECT projections: use read_interfile_projections", path=p)
    n = [_int_key(h, f"matrix size [{i}]", p) for i in (1, 2, 3)]
    if n[0] * n[1] * n[2] > MAX_ELEMENTS:
        raise FormatError(f"matrix size {n} is too large", path=p)
    s = [_float_key(h, f"scaling factor (mm/pixel) [{i}]", p, "1", positive=True) for i in (1, 2, 3)]
    arr = _read_raw(h, p, n[0] * n[1] * n[2], allow_outside=allow_outside_data).reshape(n[2], n[1], n[0])
    default_off = [-(n[0] - 1) * s[0] / 2.0, -(n[1] - 1) * s[1] / 2.0, 0.0]
    origin = [_float_key(h, f"first pixel offset (mm) [{i + 1}]", p, repr(default_off[i])) for i in range(3)]
    direction = AXIAL_DIRECTION
    if h.get("petspect direction"):
        flat = _floats(h["petspect direction"], "petspect direction", p)
        if len(flat) != 9:
            raise FormatError(f"Interfile key 'petspect direction' needs 9 numbers, got {len(flat)}", path=p)
        direction = np.asarray(flat).reshape(3, 3)
    else:  # petspect reads the axes as head-first supine (x left, y posterior, z superior); refuse other set-ups
        position = (h.get("patient orientation", "head_in").strip().lower(),
                    h.get("patient rotation", "supine").strip().lower())
        if position != ("head_in", "supine"):
            raise FormatError(f"patient orientation {position[0]!r} / rotation {position[1]!r}: only head_in supine "
                              "images are read (reorient the image to head_in supine first)", path=p)
    modality_key = h.get("imaging modality", "").upper()
    modality = h.get("petspect modality") or {"PT": "PT", "PET": "PT", "NUCMED": "NM", "CT": "CT"}.get(modality_key)
    meta = _meta(h, p)
    return Volume(torch.from_numpy(np.ascontiguousarray(arr)), (s[2], s[1], s[0]), origin, direction,
                  unit=h.get("petspect unit") or "a.u.", modality=modality, meta=meta)


# ---------------------------------------------------------------- SPECT projections
def write_interfile_projections(proj: SpectProjections, path: str | os.PathLike, *,
                                overwrite: bool = False) -> Path:
    """Write SPECT projections as a STIR SPECT Interfile header ``path`` (``.hs``) and data ``.s``.

    Angles are written as ``start angle`` / ``!direction of rotation`` / ``!extent of rotation`` (mean
    step times the number of views, to 1e-6 degree) for STIR and, exactly, in ``petspect angles (deg)``.
    """
    if not isinstance(proj, SpectProjections):
        raise InputError(f"write_interfile_projections takes SpectProjections, got {type(proj).__name__}")
    arr = proj.counts.detach().cpu().numpy()
    fmt, nbytes = _number_format(arr.dtype)
    n_win, n_views, n_rows, n_cols = arr.shape
    angles = proj.angles_deg.detach().cpu().numpy()
    step = float(angles[-1] - angles[0]) / (n_views - 1) if n_views > 1 else 360.0
    radii = proj.radius_mm.detach().cpu().numpy()
    circular = bool(np.all(radii == radii[0]))
    lines = ["!imaging modality := nucmed", "!version of keys := 3.3", "!GENERAL DATA :=", "!GENERAL IMAGE DATA :=",
             "!type of data := Tomographic", "imagedata byte order := LITTLEENDIAN", "data offset in bytes := 0",
             f"!number format := {fmt}", f"!number of bytes per pixel := {nbytes}",
             f"number of energy windows := {n_win}"]
    for i, w in enumerate(proj.energy_windows, start=1):
        lines += [f"energy window lower level[{i}] := {w.lower_kev!r}", f"energy window upper level[{i}] := {w.upper_kev!r}",
                  f"petspect energy window name[{i}] := {w.name}"]
    if proj.nuclide:
        lines.append(f"isotope name := {proj.nuclide}")
    lines += ["!SPECT STUDY (General) :=", "number of dimensions := 2",
              "matrix axis label [1] := bin coordinate", f"!matrix size [1] := {n_cols}",
              f"!scaling factor (mm/pixel) [1] := {proj.pixel_spacing_mm[1]!r}",
              "matrix axis label [2] := axial coordinate", f"!matrix size [2] := {n_rows}",
              f"!scaling factor (mm/pixel) [2] := {proj.pixel_spacing_mm[0]!r}",
              f"!number of projections := {n_views}", f"!extent of rotation := {round(abs(step) * n_views, 6)!r}",
              f"time per projection (sec) := {proj.frame_duration_s!r}", "!process status := acquired",
              "number of time frames := 1", f"!image duration (sec)[1] := {proj.frame_duration_s * n_views!r}",
              # STIR's angles follow DICOM (see _projection_angles): 180 - petspect's, turning the other way
              "!SPECT STUDY (acquired data) :=", f"!direction of rotation := {'CW' if step >= 0 else 'CCW'}",
              f"start angle := {float((180.0 - angles[0]) % 360.0)!r}",
              "orbit := Circular" if circular else "orbit := Non-circular",
              f"Radius := {float(radii[0])!r}" if circular else
              "radii := {" + ", ".join(repr(float(r)) for r in radii) + "}",
              "petspect angles (deg) := {" + ", ".join(repr(float(a)) for a in angles) + "}",
              f"petspect photopeak window := {proj.photopeak_window}",
              f"petspect meta := {meta_to_json(proj.meta)}"]
    return _write_pair(Path(path), ".s", arr, lines, overwrite)


def _meta(h: dict[str, str], path: Path) -> dict:
    if not h.get("petspect meta"):
        return {}
    try:
        meta = json.loads(h["petspect meta"])
    except ValueError:
        raise FormatError("Interfile key 'petspect meta' is not valid JSON", path=path) from None
    if not isinstance(meta, dict):
        raise FormatError("Interfile key 'petspect meta' is not a JSON object", path=path)
    return meta


def _projection_angles(h: dict[str, str], n_views: int, path: Path) -> np.ndarray:
    """petspect angles of the views: ``petspect angles (deg)`` when written by petspect, else STIR's keys.

    STIR's SPECT angles follow DICOM (PS3.3 C.8.4.12): STIR's ``SPECT_dicom_to_interfile`` utility
    (``src/utilities/SPECT_dicom_to_interfile.cxx``) copies DICOM's StartAngle into ``start angle`` and its
    RotationDirection into ``!direction of rotation`` (CC -> CCW). View ``k`` is at ``start + k step`` (CCW) or
    ``start - k step`` (CW) with ``step = extent / views``; petspect's angle is ``180 - that``
    (:func:`petspect.geometry.spect.angles_from_dicom`).
    """
    if h.get("petspect angles (deg)"):
        angles = np.asarray(_floats(h["petspect angles (deg)"], "petspect angles (deg)", path))
        if angles.size != n_views:
            raise FormatError(f"'petspect angles (deg)' has {angles.size} angles for {n_views} projections", path=path)
        return angles
    extent = _float_key(h, "extent of rotation", path)
    start = _float_key(h, "start angle", path, "0")
    direction = _key(h, "direction of rotation", path, "CCW").upper()
    return angles_from_dicom(start, extent / n_views, "CW" if direction == "CW" else "CC", n_views).numpy()


#: Words in a SPECT header that name a geometry other than parallel holes (refused by name).
_UNSUPPORTED_GEOMETRIES = {"pinhole": "pinhole", "fan beam": "fan-beam", "fanbeam": "fan-beam", "fan-beam": "fan-beam",
                           "cone beam": "cone-beam", "cone-beam": "cone-beam", "conebeam": "cone-beam",
                           "slant": "slant-hole", "half-cone": "cone-beam"}


#: Cameras whose SPECT data are pinhole projections although the header does not say so (STIR configures the
#: pinhole in its projector's parameter file): small-animal pinhole systems (STIR's recon_test_pack/SPECT/
#: PinholeSPECTUB/input.hs is a Cubresa SPARK acquisition).
_PINHOLE_SYSTEMS = ("cubresa", "spark", "u-spect", "uspect", "nanospect", "vector", "x-spect")


def _refuse_unsupported_geometry(h: dict[str, str], path: Path) -> None:
    system = (h.get("originating system") or "").lower()
    if any(name in system for name in _PINHOLE_SYSTEMS):
        raise FormatError(f"the data come from {h['originating system']!r}, a pinhole SPECT system; petspect models "
                          "parallel-hole collimators only", path=path)
    orientation = (h.get("patient orientation") or "head_in").lower()
    rotation = (h.get("patient rotation") or "supine").lower()
    if not h.get("petspect meta") and (orientation != "head_in" or rotation != "supine"):
        raise FormatError(f"patient {orientation} {rotation}: petspect reads SPECT projections of head_in supine "
                          "patients only (other positions would come out with flipped axes)", path=path)
    for key, value in h.items():
        if key.startswith("petspect") or key in ("name of data file", "patient name", "study id"):
            continue  # free text: file and window names say nothing of the geometry
        text = f"{key} {value}".lower()
        for word, name in _UNSUPPORTED_GEOMETRIES.items():
            if word in text:
                raise FormatError(f"the header describes {name} SPECT data ({key} := {value}); petspect models "
                                  "parallel-hole collimators only", path=path)


def _frame_duration(h: dict[str, str], n_views: int, path: Path) -> tuple[float, str]:
    """Seconds per view and where they came from: ``time per projection (sec)``, else STIR's
    ``image duration (sec)[1]`` (the whole frame: STIR's SPECT_dicom_to_interfile writes views x
    ActualFrameDuration there) over the number of projections."""
    if h.get("time per projection (sec)"):
        return _float_key(h, "time per projection (sec)", path, positive=True), "time per projection (sec)"
    for key in ("image duration (sec)[1]", "image duration (sec)"):
        if h.get(key):
            return _float_key(h, key, path, positive=True) / n_views, f"{key} / number of projections"
    import warnings

    warnings.warn(f"{path}: no frame duration in the header (time per projection, image duration); 1 s per view "
                  "assumed, so activity is scaled by the true time per view", stacklevel=3)
    return 1.0, "not in the header: 1 s per view assumed"


def _energy_windows(h: dict[str, str], p: Path) -> tuple[list[EnergyWindow], dict[str, Any]]:
    """The energy windows, or, for a header without energy-window keys (STIR's SPECT samples), one window
    around the isotope's main line (+-10 %) or one marked unknown (``--window KEV`` must state it)."""
    n_win = _int_key(h, "number of energy windows", p, "1")
    if n_win > 64:
        raise FormatError(f"{n_win} energy windows are too many", path=p)
    windows = []
    for i in range(1, n_win + 1):
        lo, hi = h.get(f"energy window lower level[{i}]"), h.get(f"energy window upper level[{i}]")
        if lo is None or hi is None:
            if i == 1 and n_win == 1:
                break
            raise MissingTagError(f"missing Interfile key 'energy window lower/upper level[{i}]'", path=p)
        windows.append(EnergyWindow(h.get(f"petspect energy window name[{i}]") or f"window{i}",
                                    _float_key(h, f"energy window lower level[{i}]", p),
                                    _float_key(h, f"energy window upper level[{i}]", p)))
    if windows:
        return windows, {}
    isotope = (h.get("isotope name") or "").strip()
    if isotope:
        from petspect.nuclides import canonical_name, get_nuclide

        line = None
        for name in (isotope, dicom_nuclide_name(isotope)):
            try:
                line = get_nuclide(canonical_name(name)).main_photon()
                break
            except InputError:
                continue
        if line is not None:
            kev = float(line.energy_kev)
            note = f"no energy window keys: {kev:g} keV +-10 % assumed from the isotope {isotope!r}"
            return [EnergyWindow(f"{kev:g}keV(assumed)", 0.9 * kev, 1.1 * kev)], {"energy_window": note}
    return ([EnergyWindow(UNKNOWN_WINDOW, 1.0, 10000.0)],
            {"energy_window": "no energy window keys and no known isotope: the photopeak energy is unknown",
             "energy_window_unknown": True})


_ELEMENTS = {"technetium": "Tc", "lutetium": "Lu", "iodine": "I", "indium": "In", "yttrium": "Y", "gallium": "Ga",
             "thallium": "Tl", "fluorine": "F", "xenon": "Xe", "samarium": "Sm", "holmium": "Ho", "radium": "Ra"}


def dicom_nuclide_name(name: str) -> str:
    """``"^99m^Technetium"`` (DICOM code meaning, as STIR copies it) -> ``"Tc-99m"``; else the name unchanged."""
    m = re.fullmatch(r"\^?\s*(\d+)\s*(m?)\s*\^?\s*([A-Za-z]+)\s*", name)
    if not m:
        return name
    element = _ELEMENTS.get(m.group(3).lower(), m.group(3))
    return f"{element}-{m.group(1)}{m.group(2)}"


#: Name of the window of a header that states no energy window and no known isotope.
UNKNOWN_WINDOW = "unknown-energy"


@guarded("Interfile projection file")
def read_interfile_projections(path: str | os.PathLike, *, allow_outside_data: bool = False) -> SpectProjections:
    """Read a STIR/Interfile SPECT projection header (``.hs``) and its data into SpectProjections.

    Raises
    ------
    DataNotFoundError, FormatError, MissingTagError
    """
    p = require_file(path)
    h = parse_header(p)
    n_views = _int_key(h, "number of projections", p)
    n_cols, n_rows = _int_key(h, "matrix size [1]", p), _int_key(h, "matrix size [2]", p)
    _refuse_unsupported_geometry(h, p)
    windows, window_meta = _energy_windows(h, p)
    n_win = len(windows)
    if n_win * n_views * n_rows * n_cols > MAX_ELEMENTS:
        raise FormatError(f"projection sizes {n_win} x {n_views} x {n_rows} x {n_cols} are too large", path=p)
    counts = _read_raw(h, p, n_win * n_views * n_rows * n_cols,
                       allow_outside=allow_outside_data).reshape(n_win, n_views, n_rows, n_cols)
    radius_key = "radii" if h.get("radii") else "radius"
    radius = _floats(_key(h, radius_key, p), radius_key, p)
    if len(radius) not in (1, n_views):
        raise FormatError(f"Interfile key '{radius_key}' has {len(radius)} values for {n_views} projections (radii)",
                          path=p)
    duration, duration_from = _frame_duration(h, n_views, p)
    meta = _meta(h, p)
    meta.update(window_meta)
    if not h.get("petspect meta"):
        meta["frame_duration_from"] = duration_from
    return SpectProjections(
        counts=torch.from_numpy(np.ascontiguousarray(counts)), angles_deg=_projection_angles(h, n_views, p),
        radius_mm=radius if len(radius) > 1 else radius[0],
        pixel_spacing_mm=(_float_key(h, "scaling factor (mm/pixel) [2]", p, positive=True),
                          _float_key(h, "scaling factor (mm/pixel) [1]", p, positive=True)),
        energy_windows=windows, frame_duration_s=duration,
        photopeak_window=_int_key(h, "petspect photopeak window", p, "0", minimum=0), nuclide=h.get("isotope name") or None,
        meta=meta)
