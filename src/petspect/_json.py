"""The one JSON encoder of petspect: NumPy, torch, paths, dataclasses and Enums become plain JSON.

Every record petspect writes (``dataset.json``, ``subject.json``, acquisition records, model cards,
demo summaries, NIfTI metadata) goes through :func:`to_jsonable` or :func:`json_default`, so a value
type is taught to JSON once. Values it does not know raise :class:`TypeError` naming the type (never a
silent ``str()``), so a record never holds ``"<object at 0x...>"``.

Conversions
-----------
* ``numpy`` scalars -> Python numbers/bools; ``numpy.ndarray`` and ``torch.Tensor`` -> nested lists
  (tensors are detached and copied to the CPU);
* ``torch.dtype`` / ``torch.device`` / ``numpy.dtype`` -> their names (``"float32"``, ``"cuda:0"``);
* ``os.PathLike`` -> ``str``; ``Enum`` -> its value; ``datetime``/``date`` -> ISO 8601;
* dataclass instances -> dicts of their fields (recursively); tuples and sets -> lists (sets sorted);
* dict keys -> ``str``;
* non-finite floats: kept (``NaN``, ``Infinity``, Python's JSON extension) or, with ``nonfinite="null"``,
  written as ``null`` so the file is strict JSON.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import json
import math
import os
from pathlib import Path
from typing import Any, Literal

__all__ = ["json_default", "to_jsonable", "dumps", "write_json"]

NonFinite = Literal["keep", "null"]


def _leaf(obj: Any) -> tuple[bool, Any]:
    """Convert one non-container value; ``(False, None)`` when it is not a known leaf type."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return True, obj
    if isinstance(obj, enum.Enum):
        return True, obj.value
    if isinstance(obj, os.PathLike):
        return True, os.fspath(obj)
    if isinstance(obj, (_dt.datetime, _dt.date, _dt.time)):
        return True, obj.isoformat()
    module = type(obj).__module__.split(".")[0]
    if module == "numpy":
        import numpy as np

        if isinstance(obj, np.generic):
            return True, obj.item()
        if isinstance(obj, np.ndarray):
            return True, obj.tolist()
        if isinstance(obj, np.dtype):
            return True, str(obj)
    if module == "torch":
        import torch

        if isinstance(obj, torch.Tensor):
            return True, obj.detach().cpu().tolist()
        if isinstance(obj, torch.dtype):
            return True, str(obj).removeprefix("torch.")
        if isinstance(obj, torch.device):
            return True, str(obj)
    return False, None


def json_default(obj: Any) -> Any:
    """``default=`` hook of :func:`json.dumps` for the types listed in the module docstring.

    Raises
    ------
    TypeError
        For any other type (the message names it).
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    known, value = _leaf(obj)
    if known:
        return value
    raise TypeError(f"{type(obj).__module__}.{type(obj).__qualname__} is not JSON-serialisable")


def to_jsonable(obj: Any, *, nonfinite: NonFinite = "keep") -> Any:
    """A copy of ``obj`` made only of dict, list, str, int, float, bool and None.

    Parameters
    ----------
    obj : any
        Nested containers of the types listed in the module docstring.
    nonfinite : {"keep", "null"}
        What NaN and infinities become: themselves, or ``None`` (strict JSON).

    Raises
    ------
    TypeError
        For a value of an unknown type.
    """
    if nonfinite not in ("keep", "null"):
        raise ValueError(f"nonfinite must be 'keep' or 'null', got {nonfinite!r}")
    if isinstance(obj, dict):
        return {str(k.value if isinstance(k, enum.Enum) else k): to_jsonable(v, nonfinite=nonfinite)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, nonfinite=nonfinite) for v in obj]
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value, nonfinite=nonfinite)
    if isinstance(obj, float):
        value = float(obj)
        return None if nonfinite == "null" and not math.isfinite(value) else value
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    return to_jsonable(json_default(obj), nonfinite=nonfinite)


def dumps(obj: Any, *, indent: int | None = 2, sort_keys: bool = False, nonfinite: NonFinite = "keep") -> str:
    """JSON text of ``obj`` (see :func:`to_jsonable`); strict JSON with ``nonfinite="null"``."""
    return json.dumps(to_jsonable(obj, nonfinite=nonfinite), indent=indent, sort_keys=sort_keys,
                      allow_nan=nonfinite == "keep")


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2, sort_keys: bool = False,
               nonfinite: NonFinite = "keep") -> Path:
    """Write ``obj`` as JSON (trailing newline) atomically; returns the path."""
    from petspect._fileio import atomic_write_text

    p = Path(path)
    atomic_write_text(p, dumps(obj, indent=indent, sort_keys=sort_keys, nonfinite=nonfinite) + "\n")
    return p
