"""Safe writing: outputs are written atomically and never overwrite inputs or unasked-for files."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from petspect.errors import OutputExistsError


def check_output_path(
    out: str | os.PathLike, *, overwrite: bool = False, inputs: Iterable[str | os.PathLike] = ()
) -> Path:
    """Validate an output path before any work is done.

    Raises :class:`~petspect.errors.OutputExistsError` when ``out`` is one of ``inputs`` (or lies
    inside an input folder), or exists and ``overwrite`` is false.
    """
    out_p = Path(out).expanduser().resolve()
    for inp in inputs:
        in_p = Path(inp).expanduser().resolve()
        if out_p == in_p or (in_p.is_dir() and in_p in out_p.parents):
            raise OutputExistsError("output would overwrite an input; choose another path", path=out)
    if out_p.exists() and not overwrite:
        raise OutputExistsError("output exists; pass overwrite=True (CLI: --overwrite) to replace it", path=out)
    return out_p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is moved onto ``path`` atomically.

    The temporary name keeps the file's suffixes (``.nii.gz``) so writers that dispatch on the
    extension still work. On an exception the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    sfx = suffix if suffix is not None else "".join(target.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{sfx}", dir=target.parent)
    os.close(fd)
    tmp_p = Path(tmp)
    try:
        yield tmp_p
        os.replace(tmp_p, target)
    finally:
        if tmp_p.exists():
            tmp_p.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success it replaces ``path`` (which must not exist)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write text to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
