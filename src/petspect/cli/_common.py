"""Helpers shared by the command modules: device choice and turning errors into clean exits."""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click
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


REPORT_LINE = ("this is a bug in petspect {version}, not a problem with your input; please report it in the "
               "project's issue tracker with the command you ran, `petspect --version` and the traceback above")


def report_unexpected(exc: BaseException) -> None:
    """Print the traceback of an unexpected exception and one line saying how to report it."""
    import traceback

    import petspect

    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    typer.secho(f"internal error: {REPORT_LINE.format(version=petspect.__version__)}", fg=typer.colors.RED, err=True)


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Clean exits for everything a user can cause; a traceback only for a genuine bug.

    - :class:`PetspectError` (bad input, existing output, ...): ``error: ...``, exit 2;
    - ``OSError`` (permission denied, disk full, a path that vanished): ``error: ...``, exit 2;
    - Ctrl-C: ``interrupted``, exit 130 (outputs are atomic: nothing half-written is left);
    - anything else is a bug: its traceback and a line saying how to report it, exit 1.
    """
    try:
        yield
    except (typer.Exit, typer.Abort, click.exceptions.ClickException, click.exceptions.Exit):
        raise
    except PetspectError as exc:
        fail(str(exc))
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        fail(f"{where}{exc.strerror or exc}")
    except KeyboardInterrupt:
        typer.secho("interrupted", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=130) from None
    except Exception as exc:  # noqa: BLE001 - a bug: say so, with the traceback
        report_unexpected(exc)
        raise typer.Exit(code=1) from None


def handle_errors(func: F) -> F:
    """Decorator form of :func:`cli_errors` for command functions."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with cli_errors():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
