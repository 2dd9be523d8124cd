"""``petspect consistency IMAGE DATA`` and ``petspect study recon``: deep learning inside reconstruction
(see :mod:`petspect.learned_recon`)."""

from __future__ import annotations

from pathlib import Path

import typer

from petspect.cli._common import get_device, handle_errors


def register(app: typer.Typer) -> None:
    from petspect.cli._study import study_app

    app.command("consistency")(consistency)
    study_app.command("recon")(study_recon)


@handle_errors
def consistency(
    ctx: typer.Context,
    image: Path = typer.Argument(..., help="Image on the acquisition's grid (NIfTI, DICOM, Interfile), in the "
                                           "calibration's unit (Bq/mL for simulated or calibrated data)."),
    data: Path = typer.Argument(..., help="Acquisition folder (acquisition.json), e.g. a cohort subject."),
    level: str = typer.Option(None, "--level", help="Cohort subject: the level the image was reconstructed from "
                                                    "(e.g. d010); its own additive estimate is used."),
    no_ac: bool = typer.Option(False, "--no-ac", help="The image is not attenuation corrected."),
    out: Path = typer.Option(None, "--out", help="Folder for consistency.json and consistency_map.npy "
                                                 "(planes x views)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a consistency folder written before."),
) -> None:
    """Poisson deviance of IMAGE's forward projection (plus the additive term) against DATA's measured counts,
    with the acquisition's own corrections: lower is more consistent; about 1 per bin is the noise floor. No
    ground truth is needed, so a hallucinated or erased lesion shows as a higher deviance and in the map."""
    from petspect.errors import InputError
    from petspect.io import load
    from petspect.learned_recon.consistency import check_image_on_grid, data_consistency, write_consistency
    from petspect.systems.acquisition import load_acquisition

    from petspect._fileio import claim_output_folder

    folder = None
    if out is not None:
        folder = claim_output_folder(out, kind="consistency", overwrite=overwrite, inputs=[image, data])
    acq = load_acquisition(data, level=level)
    vol = load(image)
    unit = acq.calibration.unit
    if vol.unit and unit and vol.unit != unit and vol.unit not in ("", "1"):
        raise InputError(f"{image}: image unit {vol.unit!r} differs from the acquisition's {unit!r}; the deviance "
                         "compares counts, so the image must be in the unit the system model maps from")
    check_image_on_grid(vol.data, acq, spacing_mm=vol.spacing_mm, where=image, volume=vol)
    import torch

    n_bad = int((~torch.isfinite(vol.data)).sum())
    if n_bad:
        raise InputError(f"{image}: the image holds {n_bad} NaN or infinite voxels")
    res = data_consistency(vol.data.to("cpu"), acq, attenuation=not no_ac, device=get_device(ctx))
    typer.echo(f"Poisson deviance {res.deviance:.6g} over {res.n_bins} bins ({res.deviance_per_bin:.4f} per bin); "
               f"expected / measured counts {res.expected_counts / max(res.measured_counts, 1e-300):.4f}")
    if res.deviance == float("inf"):
        typer.secho("the deviance is infinite: some bins hold counts where the image's forward projection (plus the "
                    "additive term) is zero or negative, which a Poisson model cannot explain (a negative or empty "
                    "image, or an image from another acquisition)", fg=typer.colors.YELLOW, err=True)
    worst = int(res.per_view.argmax())
    typer.echo(f"worst view {worst} ({float(res.per_view[worst]):.4g}); worst plane {int(res.per_plane.argmax())} "
               f"({float(res.per_plane.max()):.4g})")
    if folder is not None:
        paths = write_consistency(res, folder, facts={"image": str(image), "data": str(data), "level": level,
                                                      "attenuation_corrected": not no_ac})
        typer.echo(f"wrote {paths['json']} and {paths['map']}")


@handle_errors
def study_recon(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Study folder (metrics.json, summary.json, report/index.html)."),
    preset: str = typer.Option("quick", "--preset", help="tiny (seconds, tests), quick (<= ~10 min on a 2-core "
                                                         "CPU), full (GPU)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a study folder written before."),
) -> None:
    """Deep learning inside reconstruction, every method on the evaluation protocol: OSEM, tuned MAP-RDP, image-
    and projection-domain U-Nets, direct (DeepPET-style), EM-unrolled, deep image prior (PET), and sparse-view
    OSEM against synthesised-view OSEM (SPECT), with the data consistency of every output."""
    from petspect.cli._study import study_preset
    from petspect.learned_recon.study import run_recon_study

    name = study_preset(preset)
    result = run_recon_study(out, preset=name, overwrite=overwrite, device=get_device(ctx), log=typer.echo)
    for check in result["checks"]:
        state = {True: "PASSED", False: "FAILED", None: "NOT EVALUATED"}[check["passed"]]
        typer.echo(f"{state}: {check['check']} ({check['detail']})")
    typer.echo(f"wrote {result['paths']['metrics']} and {result['paths']['report']}")
