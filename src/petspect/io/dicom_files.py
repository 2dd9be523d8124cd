"""Finding, grouping and decoding DICOM files (shared by the image, NM and RTSTRUCT readers)."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from petspect.errors import FormatError, MissingTagError, MixedSeriesError, UnsupportedTransferSyntaxError
from petspect.io._guard import reading
from petspect.io._paths import is_dicom_file, require_exists

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # DICOMDIR


def _candidate_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def read_datasets(path: str | os.PathLike, *, series_uid: str | None = None) -> list[Any]:
    """All datasets of one DICOM series in a folder (searched recursively) or a single file.

    Files that are not DICOM (no ``DICM`` preamble) and DICOMDIR indexes are skipped. Large elements
    (pixel data) are read lazily.

    Parameters
    ----------
    path : str or PathLike
        Folder or file.
    series_uid : str, optional
        SeriesInstanceUID to pick when the folder holds several series.

    Raises
    ------
    DataNotFoundError, FormatError
        Nothing DICOM found (or no instance of ``series_uid``).
    MixedSeriesError
        Several series found and ``series_uid`` not given; the message lists their UIDs.
    """
    import pydicom

    root = require_exists(path)
    groups: dict[str, list[Any]] = defaultdict(list)
    for f in _candidate_files(root):
        if not is_dicom_file(f):
            continue
        with reading(f, "DICOM file"):
            try:
                ds = pydicom.dcmread(f, defer_size="4 KB")
            except (pydicom.errors.InvalidDicomError, OSError, EOFError, ValueError) as exc:
                raise FormatError(f"cannot parse DICOM file ({exc})", path=f) from exc
            _check_transfer_syntax(ds, f)
            if str(getattr(ds, "SOPClassUID", "") or "") == MEDIA_STORAGE_DIRECTORY:
                continue
            groups[str(getattr(ds, "SeriesInstanceUID", "") or "")].append(ds)
    if not groups:
        raise FormatError("not a DICOM file" if root.is_file() else "no DICOM files found in this folder", path=root)
    if series_uid is not None:
        if series_uid not in groups:
            raise FormatError(f"no instance of series {series_uid}; found {sorted(groups)}", path=root)
        return groups[series_uid]
    if len(groups) > 1:
        listing = "; ".join(f"{uid or '<no SeriesInstanceUID>'} ({getattr(g[0], 'Modality', '?')}, "
                            f"{len(g)} files)" for uid, g in sorted(groups.items()))
        raise MixedSeriesError(f"folder holds {len(groups)} DICOM series: {listing}; pass series_uid= "
                               "or put each series in its own folder", path=root)
    return next(iter(groups.values()))


def _check_transfer_syntax(ds: Any, path: Path) -> None:
    """Refuse a TransferSyntaxUID pydicom does not know (it could not decode the pixel data)."""
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is None:
        return
    try:
        ts.is_compressed  # noqa: B018 - raises for an unknown UID
    except (ValueError, AttributeError):
        raise UnsupportedTransferSyntaxError(f"unknown TransferSyntaxUID (0002,0010) {str(ts)[:64]!r}", path=path) from None


def where(ds: Any) -> Any:
    """The file a dataset was read from (for error messages), or None."""
    return getattr(ds, "filename", None) or None


def require(ds: Any, keyword: str, *, path: Any = None) -> Any:
    """``ds.<keyword>``, or :class:`MissingTagError` naming the attribute, its tag and the file.

    ``path`` names the file for a sequence item (which does not know its file).
    """
    from pydicom.datadict import tag_for_keyword

    value = getattr(ds, keyword, None)
    if value is None or (isinstance(value, (str, bytes, list)) and len(value) == 0):
        tag = tag_for_keyword(keyword)
        tag_s = f" ({tag >> 16:04X},{tag & 0xFFFF:04X})" if tag is not None else ""
        raise MissingTagError(f"missing {keyword}{tag_s}", path=path or where(ds))
    return value


def pixel_array(ds: Any) -> np.ndarray:
    """Stored pixel values of a dataset (frames first for multi-frame), decoding compressed syntaxes.

    Raises
    ------
    MissingTagError
        No PixelData.
    UnsupportedTransferSyntaxError
        Compressed pixel data that no installed pydicom plugin can decode.
    """
    if "PixelData" not in ds:
        raise MissingTagError("missing PixelData (7FE0,0010)", path=where(ds))
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        compressed = ts is not None and ts.is_compressed
    except (ValueError, AttributeError):
        raise UnsupportedTransferSyntaxError(f"unknown TransferSyntaxUID (0002,0010) {str(ts)[:64]!r}",
                                             path=where(ds)) from None
    try:
        return np.asarray(ds.pixel_array)
    except Exception as exc:  # pydicom raises RuntimeError/NotImplementedError/ValueError by plugin
        if compressed:
            raise UnsupportedTransferSyntaxError(
                f"pixel data compressed as {ts.name} ({ts}) cannot be decoded here ({exc}); decompress "
                "it first (e.g. gdcmconv --raw, dcmdjpeg) or install a pydicom decoder plugin",
                path=where(ds)) from exc
        raise FormatError(f"cannot decode pixel data ({exc})", path=where(ds)) from exc


_ABSENT = object()


def _tag_text(keyword: str) -> str:
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(keyword)
    return f" ({tag >> 16:04X},{tag & 0xFFFF:04X})" if tag is not None else ""


def numbers(ds: Any, keyword: str, n: int | None = None, *, path: Any = None) -> list[float]:
    """The values of a numeric attribute (DS, IS, FD, US, ...) as finite floats.

    Raises
    ------
    MissingTagError
        The attribute is absent or empty.
    FormatError
        A value is not a number (corrupt DS/IS text), is NaN or infinite, or there are not ``n`` of them;
        the message names the attribute, its tag and the file.
    """
    where_ = path or where(ds)
    try:
        value = getattr(ds, keyword, None)
    except Exception as exc:  # pydicom converts lazily and raises what the value's parser raises
        raise FormatError(f"{keyword}{_tag_text(keyword)} cannot be read ({exc})", path=where_) from None
    if value is None or (isinstance(value, (str, bytes, list)) and len(value) == 0):
        raise MissingTagError(f"missing {keyword}{_tag_text(keyword)}", path=where_)
    items = [value] if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") else list(value)
    try:
        out = [float(v) for v in items]
    except (TypeError, ValueError, OverflowError, AttributeError):
        raise FormatError(f"{keyword}{_tag_text(keyword)} is not a number: {str(value)[:40]!r}", path=where_) from None
    if not all(np.isfinite(out)):
        raise FormatError(f"{keyword}{_tag_text(keyword)} is not finite: {str(value)[:40]!r}", path=where_)
    if n is not None and len(out) != n:
        raise FormatError(f"{keyword}{_tag_text(keyword)} must have {n} values, got {len(out)}", path=where_)
    return out


def number(ds: Any, keyword: str, default: Any = _ABSENT, *, path: Any = None, positive: bool = False) -> float:
    """One numeric attribute as a finite float (``default`` when absent, if given); ``positive``: > 0.

    Raises :class:`MissingTagError` / :class:`FormatError` as :func:`numbers` does.
    """
    try:
        present = getattr(ds, keyword, None) not in (None, "", b"")
    except Exception:  # noqa: BLE001 - unreadable: numbers() says why
        present = True
    if not present and default is not _ABSENT:
        return default
    values = numbers(ds, keyword, path=path)
    if len(values) != 1:
        raise FormatError(f"{keyword}{_tag_text(keyword)} must be one value, got {len(values)}",
                          path=path or where(ds))
    if positive and not values[0] > 0:
        raise FormatError(f"{keyword}{_tag_text(keyword)} must be positive, got {values[0]:g}", path=path or where(ds))
    return values[0]


def text(ds: Any, keyword: str, default: str = "", *, path: Any = None) -> str:
    """A string attribute (stripped); unreadable values raise :class:`FormatError` naming the attribute."""
    try:
        value = getattr(ds, keyword, None)
    except Exception as exc:  # noqa: BLE001
        raise FormatError(f"{keyword}{_tag_text(keyword)} cannot be read ({exc})", path=path or where(ds)) from None
    if value is None:
        return default
    return str(value).strip()
