"""``petspect study cad`` (the diagnostic study) and ``petspect cad`` (apply its fitted methods to an image)."""

from __future__ import annotations

from pathlib import Path

import typer

from petspect.cli._common import get_device, handle_errors
from petspect.cli._study import study_app


def register(app: typer.Typer) -> None:
    study_app.command("cad")(study_cad)
    app.command("cad")(cad)


@handle_errors
def study_cad(
    ctx: typer.Context,
    preset: str = typer.Option("quick", "--preset", help="tiny (seconds; checks), quick (<= ~10 min on a 2-core "
                               "CPU) or full (realistic sizes; for a GPU)."),
    out: Path = typer.Option(..., "--out", help="Output folder (new or empty)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace this study's outputs in a non-empty OUT."),
    tasks: str = typer.Option("ad,pd,mpi", "--tasks", help="Comma-separated tasks: ad (FDG PET), pd (DaT SPECT), "
                              "mpi (perfusion SPECT)."),
    seed: int = typer.Option(0, "--seed", help="Master seed of the cohorts, folds and networks."),
) -> None:
    """Diagnosis: CNN vs SUVR / SBR / z-score / summed score / regional SVM, subject-wise cross-validation."""
    import dataclasses

    from petspect.cad.cohort import CadTask
    from petspect.cad.study import run_cad_study, study_settings
    from petspect.cad.study_report import verdict_lines
    from petspect.errors import ConfigError

    names = tuple(t.strip().lower() for t in tasks.split(",") if t.strip())
    valid = [t.value for t in CadTask]
    if not names or any(t not in valid for t in names):
        raise ConfigError(f"--tasks must name some of {valid}, got {tasks!r}")
    settings = dataclasses.replace(study_settings(preset), tasks=names, seed=int(seed))
    device = get_device(ctx)
    res = run_cad_study(out, settings, overwrite=overwrite, device=str(device), log=typer.echo)
    for line in verdict_lines(res["metrics"], list(names)):
        typer.echo(line)
    for check in res["summary"].checks:
        state = {True: "passed", False: "FAILED", None: "not evaluated"}[check.passed]
        typer.echo(f"check {check.check}: {state} {check.detail}".rstrip())
    typer.echo(f"wrote {res['paths']['metrics']} and {res['paths']['report']}")


@handle_errors
def cad(
    ctx: typer.Context,
    image: Path = typer.Argument(..., help="Brain image in the study's template space (NIfTI file or DICOM folder)."),
    task: str = typer.Option(..., "--task", help="ad (FDG PET) or pd (DaT SPECT)."),
    models: Path = typer.Option(..., "--models", help="The models/ folder of a 'petspect study cad' run."),
    method: list[str] = typer.Option(None, "--method", help="suvr, sbr, zscore or cnn (repeatable; default all "
                                                            "that apply to the task)."),
    out: Path = typer.Option(None, "--out", help="Also write the results as JSON here."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
) -> None:
    """Apply the study's SUVR/SBR, z-score and CNN (thresholds and probabilities) to one brain image."""
    from petspect._fileio import check_output_path
    from petspect._json import write_json
    from petspect.cad.apply import APPLY_METHODS, apply_to_image
    from petspect.errors import InputError
    from petspect.io import load

    if out is not None:
        check_output_path(out, overwrite=overwrite, inputs=[image, models])
    vol = load(image)
    try:
        results = apply_to_image(vol, task.strip().lower(), models, methods=tuple(method or APPLY_METHODS),
                                 device=str(get_device(ctx)))
    except InputError as exc:
        raise InputError(f"{image}: {exc}") from exc
    for r in results:
        typer.echo(f"{r.task} {r.method:7s} {r.value:8.4f}  {'POSITIVE' if r.positive else 'negative'} "
                   f"({r.rule})  p(disease) {r.probability:.2f}")
    if out is not None:
        write_json(out, {"image": str(image), "results": [r.to_dict() for r in results]})
        typer.echo(f"wrote {out}")
