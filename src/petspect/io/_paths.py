"""Path checks shared by the readers."""

from __future__ import annotations

import os
from pathlib import Path

from petspect._fileio import require_regular
from petspect.errors import DataNotFoundError, FormatError


def require_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path; :class:`DataNotFoundError` if missing, :class:`FormatError` if a folder."""
    p = require_regular(path)
    if not p.exists():
        raise DataNotFoundError("no such file", path=p)
    if p.is_dir():
        raise FormatError("expected a file, found a folder", path=p)
    return p


def require_exists(path: str | os.PathLike) -> Path:
    """``path`` as a Path; :class:`DataNotFoundError` if neither a file nor a folder exists there."""
    p = require_regular(path)
    if not p.exists():
        raise DataNotFoundError("no such file or folder", path=p)
    return p


def is_dicom_file(path: Path) -> bool:
    """True when the file starts with a DICOM Part 10 preamble (``DICM`` at byte 128)."""
    try:
        if not Path(path).is_file():  # never open a FIFO or device (a FIFO blocks forever)
            return False
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"
