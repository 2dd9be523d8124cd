"""The readers' safety net: any failure that is not already a PetspectError becomes a FormatError naming the file.

The readers check the fields they use and raise errors naming them; this net catches what a damaged file
can still make a parsing library raise (``struct.error``, ``zlib.error``, ``UnicodeDecodeError``, an
unknown VR, ...), so that no reader lets anything but a :class:`~petspect.errors.PetspectError` escape.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from petspect.errors import FormatError, PetspectError

F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def reading(path: str | os.PathLike | None, what: str = "file") -> Iterator[None]:
    """Turn any non-petspect exception raised inside the block into a :class:`FormatError` about ``path``."""
    try:
        yield
    except PetspectError:
        raise
    except MemoryError as exc:
        raise FormatError(f"this {what} asks for more memory than is available (damaged sizes in its header?)",
                          path=path) from exc
    except RecursionError as exc:
        raise FormatError(f"this {what} nests too deeply to be read", path=path) from exc
    except Exception as exc:  # noqa: BLE001 - the point of the net
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise FormatError(f"cannot read this {what}: damaged or unsupported content ({type(exc).__name__}"
                          f"{': ' + detail if detail else ''})", path=path) from exc


def guarded(what: str) -> Callable[[F], F]:
    """Decorator: run a reader whose first argument is the path inside :func:`reading`."""

    def deco(func: F) -> F:
        @functools.wraps(func)
        def wrapper(path: Any, *args: Any, **kwargs: Any) -> Any:
            with reading(path, what):
                return func(path, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return deco
