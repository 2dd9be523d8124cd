"""Small helpers shared by the readers and writers: JSON-safe metadata and path suffixes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from petspect._json import json_default as _json_default
from petspect.errors import InputError


def meta_to_json(meta: dict[str, Any]) -> str:
    """Serialise ``Volume.meta`` (NumPy scalars/arrays, tensors and paths become plain JSON).

    Raises :class:`~petspect.errors.InputError` naming the offending value for anything else.
    """
    try:
        return json.dumps(meta, default=_json_default, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InputError(f"Volume.meta must be JSON-serialisable: {exc}") from exc


def full_suffix(path: str | os.PathLike) -> str:
    """Lower-case extension of a path, keeping ``.nii.gz`` whole (``""`` when there is none)."""
    name = Path(path).name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return Path(name).suffix


def multi_valued(value: Any) -> list[str]:
    """A DICOM multi-valued attribute as a list of strings.

    pydicom returns a single value as a plain ``str``, so ``list(value)`` would split ``"DECY"`` into
    ``["D", "E", "C", "Y"]``; here a string is one value (or several joined by the DICOM ``\\``).
    """
    if value is None:
        return []
    if isinstance(value, (str, bytes)):
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        return [v.strip() for v in text.split("\\") if v.strip()]
    try:
        return [str(v).strip() for v in value if str(v).strip()]
    except TypeError:
        return [str(value)]
