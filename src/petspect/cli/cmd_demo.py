"""``petspect demo`` (the main job, minutes on a CPU), ``petspect bench`` (the same at clinical size, about an hour
on a 2-core CPU) and ``petspect study denoise`` (the same study under the name every AI task's study command will
share)."""

from __future__ import annotations

from pathlib import Path

import typer

from petspect.cli._common import get_device, handle_errors
from petspect.cli._study import study_app


#: ``petspect study <task> --preset`` names -> the denoising study's settings (tasks.demo.DEMO_PRESETS).
STUDY_PRESETS = {"quick": "demo", "quick-4mm": "quick-4mm", "quick-6mm": "quick-6mm", "full": "bench",
                 "tiny": "tiny"}


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
    app.command("bench")(bench)
    study_app.command("denoise")(study_denoise)


@handle_errors
def study_denoise(
    ctx: typer.Context,
    preset: str = typer.Option("quick", "--preset", help="quick (the demo: 4 mm voxels, minutes on a CPU; also "
                               "called quick-4mm), quick-6mm (the same at 6 mm), full (the bench's "
                               "clinical size, about an hour on a 2-core CPU) or tiny (seconds; for checks)."),
    out: Path = typer.Option(..., "--out", help="Output folder (new or empty)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace this study's outputs in a non-empty OUT."),
    dataset: Path = typer.Option(None, "--dataset", help="Use an existing simulated dataset instead."),
) -> None:
    """Low-dose PET denoising: U-Net against the tuned Gaussian, NLM, CT-guided filter and MAP-RDP."""
    from petspect.errors import ConfigError

    kind = STUDY_PRESETS.get(str(preset).lower())
    if kind is None:
        raise ConfigError(f"unknown study preset {preset!r}; choose one of {sorted(STUDY_PRESETS)}")
    _run(ctx, kind, out, overwrite, None, None, dataset)


def _run(ctx: typer.Context, kind: str, out: Path, overwrite: bool, epochs: int | None, subjects: int | None,
         dataset: Path | None) -> None:
    import dataclasses

    from petspect.tasks.demo import demo_settings, run_demo

    settings = demo_settings(kind)
    if epochs is not None:
        settings.denoise = dataclasses.replace(settings.denoise, epochs=int(epochs))
    if subjects is not None:
        settings.subjects = int(subjects)
    device = get_device(ctx)
    if device.type != "cpu" and dataset is None:
        typer.echo(f"note: the cohort is simulated on the CPU (cohort simulation has no {device.type} path); "
                   f"training and evaluation run on {device}")
    summary = run_demo(out, settings=settings, overwrite=overwrite, device=device, dataset=dataset,
                       log=lambda line: typer.echo(line))
    model = summary["model"]
    for method, row in summary["metrics"].items():
        if "psnr_db" in row:
            typer.echo(f"{method:16s} PSNR {row['psnr_db']:.2f} dB  SSIM {row['ssim']:.4f}  "
                       f"organ SUVmean bias {row.get('suvmean_bias_pct', float('nan')):+.2f} %  "
                       f"lesion SUVmax bias {row.get('suvmax_bias_pct', float('nan')):+.2f} %")
    for check in summary["checks"]:
        state = {True: "passed", False: "FAILED", None: "not evaluated"}[check["passed"]]
        typer.echo(f"check {check['check']}: {state} {check.get('detail') or ''}".rstrip())
    typer.echo(f"{model}: test_scored {summary['test_scored']}, inverse_crime {summary['inverse_crime']}")
    typer.echo(f"metrics: {Path(out) / 'metrics.json'}  report: {Path(out) / 'report' / 'index.html'}")


def _command(kind: str, default_out: str, epochs_help: str, subjects_help: str, doc: str):
    """A Typer command running the demo with the named settings (``demo`` or ``bench``)."""

    @handle_errors
    def command(
        ctx: typer.Context,
        out: Path = typer.Option(Path(default_out), "--out", help="Output folder (new or empty)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace the demo outputs in a non-empty OUT."),
        epochs: int = typer.Option(None, "--epochs", help=epochs_help),
        subjects: int = typer.Option(None, "--subjects", help=subjects_help),
        dataset: Path = typer.Option(None, "--dataset", help="Use an existing simulated dataset instead."),
    ) -> None:
        _run(ctx, kind, out, overwrite, epochs, subjects, dataset)

    command.__doc__ = doc
    command.__name__ = kind
    return command


demo = _command("demo", "petspect_demo", "Training epochs (default 60).",
                "Simulated subjects (default: the quick preset's).",
                "Simulate the quick 4 mm cohort, train a 2.5D U-Net denoiser, compare it with the baselines, write a report.")
bench = _command("bench", "petspect_bench", "Training epochs (default 60).",
                 "Simulated subjects (default 20; the bench cohort preset has 40).",
                 "The demo at clinical size: whole chest-abdomen torsos (128 x 100 x 100 voxels of 4 mm); about an hour "
                 "on a 2-core CPU (cohort simulation runs on the CPU, training and scoring on --device).")
