"""Helpers shared by the command modules: device choice and turning errors into clean exits."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import typer

from petspect.errors import PetspectError

F = TypeVar("F", bound=Callable[..., Any])


def get_device(ctx: typer.Context | None):
    """The torch device chosen with the global ``--device`` option (auto: CUDA when present)."""
    from petspect._device import resolve_device

    name = "auto"
    if ctx is not None:
        obj = ctx.find_root().obj or {}
        name = obj.get("device", "auto")
    return resolve_device(name)


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` to stderr and exit with ``code``."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=code)


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Turn a :class:`PetspectError` raised inside the block into a clean message and exit code 2."""
    try:
        yield
    except PetspectError as exc:
        fail(str(exc))


def handle_errors(func: F) -> F:
    """Decorator form of :func:`cli_errors` for command functions."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with cli_errors():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
