"""The ``petspect`` command-line application.

Command groups live in ``petspect/cli/cmd_*.py``; each defines ``register(app: typer.Typer)`` and is
discovered here, so adding a group touches no other file. Command modules import heavy libraries
inside the command functions, keeping ``petspect --help`` fast.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

import petspect
from petspect.errors import PetspectError

app = typer.Typer(
    name="petspect",
    help="Physics-grounded deep learning for PET and SPECT.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"petspect {petspect.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
    device: str = typer.Option("auto", "--device", help="Compute device: auto, cpu, cuda or cuda:N."),
) -> None:
    """petspect: PET/SPECT physics, reconstruction and AI from one command line."""
    ctx.obj = {"device": device}
    import warnings

    warnings.showwarning = _show_warning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings of a command as one ``warning: ...`` line on stderr (not Python's file/line/source form)."""
    typer.secho(f"warning: {message}", fg=typer.colors.YELLOW, err=True)


def _register_commands() -> None:
    import petspect.cli as cli_pkg

    for info in sorted(pkgutil.iter_modules(cli_pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            module = importlib.import_module(f"petspect.cli.{info.name}")
            module.register(app)
    from petspect.cli._study import study_app

    app.add_typer(study_app, name="study")


_register_commands()


def main() -> None:
    """Console-script entry point: the same clean exits as :func:`petspect.cli._common.cli_errors` for errors
    that escape a command (a PetspectError or OSError: ``error: ...``, exit 2; a bug: traceback and how to
    report it, exit 1)."""
    from petspect.cli._common import report_unexpected

    try:
        app()
    except PetspectError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        typer.secho(f"error: {where}{exc.strerror or exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho("interrupted", fg=typer.colors.RED, err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - a bug: traceback plus how to report it
        report_unexpected(exc)
        sys.exit(1)
