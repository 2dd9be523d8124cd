"""``petspect version``: version and environment (torch build, devices)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("version")(version)


def version() -> None:
    """Print petspect's version, torch's version and the compute devices seen."""
    import torch

    import petspect

    typer.echo(f"petspect {petspect.__version__}")
    typer.echo(f"torch {torch.__version__} (CUDA build: {torch.version.cuda or 'no'})")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            typer.echo(f"cuda:{i} {torch.cuda.get_device_name(i)}")
    else:
        typer.echo("devices: cpu")
