"""Progress bars for long work (rich), silent when disabled or not attached to a terminal."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress_enabled() -> bool:
    """False when ``PETSPECT_NO_PROGRESS`` is set (tests, CI logs)."""
    return not os.environ.get("PETSPECT_NO_PROGRESS")


def track(iterable: Iterable[T], description: str, *, total: int | None = None, enabled: bool | None = None) -> Iterator[T]:
    """Iterate with a rich progress bar (description, bar, count, elapsed and ETA).

    Parameters
    ----------
    iterable : iterable
        Items to iterate.
    description : str
        Text in front of the bar.
    total : int, optional
        Number of items when ``len(iterable)`` is not defined.
    enabled : bool, optional
        Force the bar on or off; default: :func:`progress_enabled`.
    """
    if enabled is None:
        enabled = progress_enabled()
    if not enabled:
        yield from iterable
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), transient=False) as prog:
        task = prog.add_task(description, total=total)
        for item in iterable:
            yield item
            prog.advance(task)


def note(message: str, *, enabled: bool | None = None) -> None:
    """Print one status line (e.g. an epoch's figures) on stderr, when progress output is enabled.

    Parameters
    ----------
    message : str
        The line (plain text; rich markup is not interpreted).
    enabled : bool, optional
        Force on or off; default: :func:`progress_enabled`.
    """
    if enabled is None:
        enabled = progress_enabled()
    if not enabled:
        return
    from rich.console import Console

    Console(stderr=True, highlight=False).print(message, markup=False)
