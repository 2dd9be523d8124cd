"""Safe writing: outputs are written atomically and never overwrite inputs or files petspect did not write.

Rules (the contract every command that writes follows):

- :func:`check_output_path` runs before any work. It refuses an output that is an input, lies inside an
  input folder, *holds* an input (a parent folder of one), is the current folder or a folder above it
  (or the home folder), or is not a regular file or folder (a FIFO, a device). Without ``overwrite`` an
  existing output is refused.
- Folders petspect writes with :func:`atomic_dir` carry a marker file (:data:`MARKER_NAME`) that names the
  kind of output and lists every file written. ``overwrite`` replaces such a folder only when the marker is
  of the same kind and the folder holds nothing but the files it lists; a folder without the marker (or
  with anything else in it) is never removed.
- Temporary files and folders get the permissions of ordinary new files (``0o666`` / ``0o777`` less the
  process umask), not the ``0o600`` / ``0o700`` of :mod:`tempfile`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from petspect.errors import FormatError, OutputExistsError

MARKER_NAME = ".petspect-output.json"
"""File that marks a folder written by petspect (JSON: ``written_by``, ``kind``, ``files``)."""


# --------------------------------------------------------------------------------------------- permissions
def current_umask() -> int:
    """The process umask (read from ``/proc`` where available, so no other thread sees it change)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _usual_mode(path: Path, *, folder: bool) -> None:
    """Give ``path`` the permissions a plain ``open``/``mkdir`` would have given it."""
    with contextlib.suppress(OSError):
        os.chmod(path, (0o777 if folder else 0o666) & ~current_umask())


# --------------------------------------------------------------------------------------------- input checks
def require_regular(path: str | os.PathLike, *, what: str = "input") -> Path:
    """``path`` as a Path; refuses FIFOs, sockets and devices *before* anything opens them (a FIFO blocks).

    Folders and regular files (and symbolic links to them) pass; a missing path passes too (the caller
    decides whether that is an error).
    """
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except FileNotFoundError:
        return p
    except OSError as exc:
        raise FormatError(f"cannot access the {what}: {exc.strerror or exc}", path=p) from exc
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device" if (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) else "not a regular file")
        raise FormatError(f"the {what} is {kind}; petspect reads regular files and folders only", path=p)
    return p


# --------------------------------------------------------------------------------------------- markers
def read_marker(folder: str | os.PathLike) -> dict | None:
    """The marker of a folder petspect wrote (``None`` when there is none or it is unreadable)."""
    p = Path(folder) / MARKER_NAME
    try:
        if not p.is_file():
            return None
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("written_by") != "petspect":
        return None
    if not (doc.get("files") is None or isinstance(doc.get("files"), list)):
        return None
    return doc


def is_petspect_output(folder: str | os.PathLike, kind: str | None = None) -> bool:
    """True when ``folder`` carries petspect's marker (of ``kind``, when given)."""
    doc = read_marker(folder)
    return doc is not None and (kind is None or doc.get("kind") == kind)


def _listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if not p.is_dir() and p.name != MARKER_NAME)


def write_marker(folder: str | os.PathLike, kind: str, *, owned: bool = False) -> None:
    """Mark ``folder`` as written by petspect (kind ``kind``), listing the files it holds now.

    ``owned``: the folder is one a command writes files into over time (no list of files; see
    :func:`claim_output_folder`).
    """
    folder = Path(folder)
    doc = {"written_by": "petspect", "kind": kind, "files": None if owned else _listing(folder)}
    path = folder / MARKER_NAME
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    _usual_mode(path, folder=False)


def _check_replaceable(folder: Path, kind: str, *, shown: str | os.PathLike) -> None:
    """Raise unless ``folder`` is empty or is a petspect output of ``kind`` holding only the files it lists."""
    if not folder.is_dir():
        raise OutputExistsError("exists and is not a folder; choose another path", path=shown)
    if not any(folder.iterdir()):
        return
    doc = read_marker(folder)
    if doc is None:
        raise OutputExistsError(f"is a folder petspect did not write (no {MARKER_NAME}); petspect never removes "
                                "such a folder: choose a new or empty folder, or remove it yourself", path=shown)
    if doc.get("kind") != kind:
        raise OutputExistsError(f"holds a petspect output of another kind ({doc.get('kind')!r}, not {kind!r}); "
                                "--overwrite replaces only what the same command wrote", path=shown)
    if doc["files"] is None:  # a folder the command writes into: it owns what is there
        return
    extra = sorted(set(_listing(folder)) - set(map(str, doc["files"])))
    if extra:
        raise OutputExistsError(f"holds files petspect did not write ({', '.join(extra[:5])}"
                                f"{', ...' if len(extra) > 5 else ''}); move them out first or choose another "
                                "folder", path=shown)


# --------------------------------------------------------------------------------------------- the check
def _protected_folders() -> list[Path]:
    out = []
    with contextlib.suppress(OSError):
        cwd = Path.cwd().resolve()
        out += [cwd, *cwd.parents]
    with contextlib.suppress(RuntimeError, OSError):
        out.append(Path.home().resolve())
    return out


def check_not_protected(out: str | os.PathLike) -> Path:
    """Refuse an output that is the current folder, a folder above it or the home folder; returns it resolved."""
    out_p = Path(out).expanduser().resolve()
    if out_p in _protected_folders():
        raise OutputExistsError("output would be the current folder, a folder above it or the home folder; "
                                "name a new sub-folder instead", path=out)
    return out_p


def check_output_path(
    out: str | os.PathLike, *, overwrite: bool = False, inputs: Iterable[str | os.PathLike] = (),
    kind: str | None = None,
) -> Path:
    """Validate an output path before any work is done; returns it resolved.

    Parameters
    ----------
    out : path
        File or folder to be written.
    overwrite : bool
        Allow replacing an existing output (see the module's rules).
    inputs : iterable of paths
        The command's inputs; ``out`` may be none of them, lie inside none of them, and hold none of them.
    kind : str, optional
        The output is a folder that :func:`atomic_dir` will replace, of this kind: an existing non-empty
        folder is then accepted only when petspect wrote it with the same ``kind`` and nothing was added.

    Raises
    ------
    OutputExistsError
        For every refusal, naming the path and the reason.
    """
    out_p = Path(out).expanduser().resolve()
    for prot in _protected_folders():
        if out_p == prot:
            raise OutputExistsError("output would be the current folder, a folder above it or the home folder; "
                                    "name a new sub-folder instead", path=out)
    for inp in inputs:
        if inp is None:
            continue
        in_p = Path(inp).expanduser().resolve()
        if out_p == in_p or in_p in out_p.parents:
            raise OutputExistsError(f"output would overwrite the input {inp}; choose another path", path=out)
        if out_p in in_p.parents:
            raise OutputExistsError(f"output folder holds the input {inp}; choose a path outside it", path=out)
    if not out_p.exists():
        if out_p.is_symlink():
            raise OutputExistsError("is a dangling symbolic link; remove it or choose another path", path=out)
        return out_p
    require_regular(out_p, what="output")
    if kind is not None and out_p.is_dir() and not any(out_p.iterdir()):
        return out_p  # an empty folder may be filled
    if not overwrite:
        raise OutputExistsError("output exists; pass overwrite=True (CLI: --overwrite) to replace it", path=out)
    if kind is not None:
        _check_replaceable(out_p, kind, shown=out)
    return out_p


def claim_output_folder(out: str | os.PathLike, *, kind: str, overwrite: bool = False,
                        inputs: Iterable[str | os.PathLike] = (), outputs: Iterable[str] = ()) -> Path:
    """For a command that writes files into a folder one by one: check ``out`` (as
    :func:`check_output_path` with ``kind``), create it and mark it as that command's; returns it resolved.

    A rerun with ``overwrite`` may write into a folder so marked; a non-empty folder without the marker is
    refused, so the command never overwrites files of a folder it did not make. ``outputs`` names every
    file the command can write there (some only on some runs, e.g. a DICOM SEG only for a DICOM input):
    with ``overwrite`` those present are removed first, so that an earlier run's file cannot stay beside
    the new ones as if it belonged to them. No other file of the folder is touched.
    """
    out_p = check_output_path(out, overwrite=overwrite, inputs=inputs, kind=kind)
    out_p.mkdir(parents=True, exist_ok=True)
    if read_marker(out_p) is None:
        write_marker(out_p, kind, owned=True)
    elif overwrite:
        for name in outputs:
            old = out_p / name
            if Path(name).name != name:
                raise ValueError(f"outputs must be plain file names, got {name!r}")
            if old.is_file() or old.is_symlink():
                old.unlink()
    return out_p


# --------------------------------------------------------------------------------------------- atomic writes
@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is moved onto ``path`` atomically.

    The temporary name keeps the file's suffixes (``.nii.gz``) so writers that dispatch on the
    extension still work. On an exception the temporary file is removed and ``path`` is untouched.
    The file gets the usual permissions (umask). A folder at ``path`` is never replaced.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir():
        raise OutputExistsError("is a folder; a file cannot replace it", path=target)
    require_regular(target, what="output")
    sfx = suffix if suffix is not None else "".join(target.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{sfx}", dir=target.parent)
    os.close(fd)
    tmp_p = Path(tmp)
    _usual_mode(tmp_p, folder=False)
    try:
        yield tmp_p
        os.replace(tmp_p, target)
    finally:
        if tmp_p.exists():
            tmp_p.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, kind: str = "output") -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success it becomes ``path``, marked as petspect's.

    An existing ``path`` is replaced only when :func:`check_output_path` with ``kind`` would accept it
    (empty, or a petspect output of the same ``kind`` holding only the files its marker lists); it is moved
    aside first and removed only once the new folder is in place. On an exception nothing changes.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    require_regular(target, what="output")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    _usual_mode(tmp, folder=True)
    old: Path | None = None
    try:
        yield tmp
        write_marker(tmp, kind)
        if target.exists() or target.is_symlink():
            if target.is_symlink():
                raise OutputExistsError("is a symbolic link; petspect does not replace it", path=target)
            _check_replaceable(target, kind, shown=target)
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.rmdir(old)
            os.replace(target, old)
        try:
            os.replace(tmp, target)
        except OSError:
            if old is not None:
                os.replace(old, target)
                old = None
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists():
            shutil.rmtree(old, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write text to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
