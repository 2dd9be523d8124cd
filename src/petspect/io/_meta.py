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
