"""``petspect train CONFIG``: train an image-to-image network from a TrainConfig file (TOML or JSON).

The file holds the sections of :class:`petspect.train.TrainConfig` (``data``, ``model``, ``loss``, ``optim``,
``schedule``) and the run's own fields, typed as there, for example::

    out_dir = "runs/unet_d010"
    seed = 0

    [data]
    dataset = "data/quick"
    input_key = "recon_d010_osem_ac"
    target_key = "recon_d100_osem_ac"
    mode = "2.5d"
    n_slices = 3
    patch_size = [64, 64]
    normalization = { kind = "suv_scaling", factor = 5000.0, unit = "Bq/mL" }

    [model]
    channels = [16, 32, 64, 128]

    [loss]
    terms = { l1 = 1.0, ssim = 0.2 }

    [optim]
    lr = 2e-4

    [schedule]
    epochs = 30

Flat files (one table of the old field names, e.g. ``lr = 2e-4``) written by earlier versions are read too.
``--show-config`` prints the full configuration as sectioned JSON.

For several GPUs or nodes use ``torchrun --nproc_per_node=N -m petspect.train.ddp_entry CONFIG``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from petspect.cli._common import get_device, handle_errors


def register(app: typer.Typer) -> None:
    app.command("train")(train)


@handle_errors
def train(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="TrainConfig file (.toml or .json)."),
    resume: bool = typer.Option(True, "--resume/--no-resume",
                                help="Continue from OUT_DIR/checkpoint.pt when it exists (default), or refuse."),
    show_config: bool = typer.Option(False, "--show-config", help="Print the full configuration as JSON and exit."),
) -> None:
    """Train a network (supervised, pix2pix or CycleGAN) and write OUT_DIR/model; resumes an interrupted run."""
    import json

    from petspect.train import Trainer, load_config

    cfg = load_config(config)
    if show_config:
        typer.echo(json.dumps(cfg.to_dict(), indent=2))
        return
    result = Trainer(cfg, device=get_device(ctx)).fit(resume=resume)
    last = result.history[-1] if result.history else {}
    summary = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k.startswith(("train_loss", "val_")))
    typer.echo(f"trained {len(result.history)} epochs{' (stopped early)' if result.stopped_early else ''}: {summary}")
    typer.echo(f"model written to {result.model_dir}")
