"""``petspect ac``: attenuation and scatter correction without a CT; ``petspect study ac``."""

from __future__ import annotations

from pathlib import Path

import typer

from petspect.cli._common import handle_errors

ac_app = typer.Typer(help="Attenuation and scatter correction: SSS, segmentation AC, MLAA, synthetic CT.",
                     no_args_is_help=True)


@ac_app.command("sss")
@handle_errors
def sss_cmd(acquisition: Path = typer.Argument(..., help="PET acquisition folder (petspect format)"),
            mu: Path = typer.Option(..., "--mu", help="attenuation map NIfTI on the data's grid (1/mm or 1/cm)"),
            out: Path = typer.Option(..., "--out", help="output NIfTI of the corrected PET"),
            iterations: int = typer.Option(3), subsets: int = typer.Option(6),
            overwrite: bool = typer.Option(False, "--overwrite")) -> None:
    """Reconstruct ACQUISITION with MU: scatter by single-scatter simulation scaled to the sinogram tails."""
    from petspect._fileio import check_output_path
    from petspect.ac.correct import reconstruct_with_mu
    from petspect.io.nifti import read_nifti, write_nifti
    from petspect.physics.attenuation import mu_per_mm_tensor
    from petspect.systems.acquisition import load_acquisition

    out = check_output_path(out, overwrite=overwrite, inputs=[acquisition, mu])
    data = load_acquisition(acquisition)
    mu_t = mu_per_mm_tensor(read_nifti(mu), data.grid.image_grid())
    res = reconstruct_with_mu(data, mu_t, iterations=iterations, subsets=subsets)
    write_nifti(data.image_volume(res.image, unit=data.calibration.unit, modality="PT"), out)
    typer.echo(f"scatter: {res.info}; wrote {out}")


@ac_app.command("seg")
@handle_errors
def seg_cmd(image: Path = typer.Argument(..., help="MR (T1/Dixon-like) or NAC PET NIfTI"),
            out: Path = typer.Option(..., "--out", help="output mu map NIfTI (1/mm)"),
            source: str = typer.Option("mr", help="mr or nac"),
            bone: Path = typer.Option(None, "--bone", help="UTE R2 map NIfTI (1/ms) for a bone class (MR only)"),
            no_lung: bool = typer.Option(False, "--no-lung", help="head scan: no lung class"),
            overwrite: bool = typer.Option(False, "--overwrite")) -> None:
    """Segmentation-based 511 keV mu map from an MR image (air, lung, soft tissue, optionally bone) or a NAC PET (water)."""
    from petspect._fileio import check_output_path
    from petspect.ac.segmentation_ac import MrSegmentation, mr_segmentation_mu, nac_outline_mu
    from petspect.errors import InputError
    from petspect.io.nifti import read_nifti, write_nifti

    out = check_output_path(out, overwrite=overwrite, inputs=[image] + ([bone] if bone else []))
    vol = read_nifti(image)
    if source == "nac":
        mu = nac_outline_mu(vol.data)
    elif source == "mr":
        b = read_nifti(bone).data if bone is not None else None
        mu = mr_segmentation_mu(vol.data, spacing_mm=vol.spacing_mm, bone_image=b,
                                settings=MrSegmentation(lung=not no_lung))[0]
    else:
        raise InputError(f"--source must be 'mr' or 'nac', got {source!r}")
    write_nifti(vol.with_data(mu, unit="1/mm", modality="OT"), out)
    typer.echo(f"wrote {out}")


@ac_app.command("apply")
@handle_errors
def apply_cmd(model: Path = typer.Option(..., "--model", help="model folder (model.json + model.pt)"),
              input_: Path = typer.Option(..., "--input", help="NAC PET NIfTI"),
              mr: Path = typer.Option(None, "--mr", help="MR T1 NIfTI (mr_sct models)"),
              ute: Path = typer.Option(None, "--ute", help="UTE R2 NIfTI (mr_sct models)"),
              raw: Path = typer.Option(None, "--raw", help="PET acquisition folder: also write the corrected PET"),
              out: Path = typer.Option(..., "--out", help="output folder"),
              overwrite: bool = typer.Option(False, "--overwrite")) -> None:
    """Synthetic CT (NIfTI, HU) from NAC PET or MR; with --raw the PET reconstructed again with its mu map."""
    import torch

    from petspect._fileio import check_output_path
    from petspect.ac.correct import reconstruct_with_mu
    from petspect.ac.networks import load_model, predict_slices
    from petspect.errors import InputError
    from petspect.io.nifti import read_nifti, write_nifti
    from petspect.materials import hu_to_mu_per_mm
    from petspect.volume import Volume

    out = check_output_path(out, overwrite=overwrite, inputs=[p for p in (model, input_, mr, ute, raw) if p])
    m = load_model(model)
    nac = read_nifti(input_)
    if m.task == "direct":
        raise InputError("a direct NAC -> AC model makes no synthetic CT; this command writes synthetic CTs")
    if m.task == "mr_sct":
        if mr is None or ute is None:
            raise InputError("an mr_sct model needs --mr (T1) and --ute (R2 map)")
        t1, r2 = read_nifti(mr).data.float(), read_nifti(ute).data.float()
        x = torch.stack([t1 / torch.quantile(t1.flatten(), 0.99).clamp_min(1e-6), r2.clamp(0, 1.5)], 1)
        like = read_nifti(mr)
    else:
        d = nac.data.float()
        x = (d / torch.quantile(d.flatten(), 0.99).clamp_min(1e-6))[:, None]
        like = nac
    hu = predict_slices(m, x)[:, 0].clamp(-1000, 3000)
    out.mkdir(parents=True, exist_ok=True)
    write_nifti(Volume(hu, like.spacing_mm, like.origin_mm, like.direction, unit="HU", modality="CT"),
                out / "synthetic_ct.nii.gz")
    mu = hu_to_mu_per_mm(hu, 511.0).clamp(0, 0.03)
    write_nifti(Volume(mu, like.spacing_mm, like.origin_mm, like.direction, unit="1/mm"), out / "mu_511.nii.gz")
    if raw is not None:
        from petspect.systems.acquisition import load_acquisition

        data = load_acquisition(raw)
        if tuple(mu.shape) != data.grid.shape:
            raise InputError(f"the synthetic CT's grid {tuple(mu.shape)} differs from the raw data's {data.grid.shape}")
        res = reconstruct_with_mu(data, mu)
        write_nifti(data.image_volume(res.image, unit=data.calibration.unit, modality="PT"), out / "pet_ac.nii.gz")
    typer.echo(f"wrote {out}")


@handle_errors
def study_ac(preset: str = typer.Option("quick", "--preset", help="tiny | quick | full"),
             out: Path = typer.Option(..., "--out", help="study folder"),
             overwrite: bool = typer.Option(False, "--overwrite")) -> None:
    """CT-free AC study: CT-AC, NAC, segmentation AC, MLAA and the networks, PET reconstructed again per method."""
    from petspect.ac.study_report import write_ac_study
    from petspect.ac.study import preset_config, run_ac_study
    from petspect.cli._study import study_preset
    from petspect.evaluation.study import claim_study_folder

    cfg = preset_config(study_preset(preset))
    out_p = claim_study_folder(out, overwrite=overwrite)
    result = run_ac_study(cfg, out_p)
    summary = write_ac_study(out_p, cfg, result)
    for c in summary.checks:
        typer.echo(f"check {'PASSED' if c.passed else 'FAILED' if c.passed is False else 'n/a'}: {c.check} ({c.detail})")
    typer.echo(f"test_scored {summary.test_scored}; wrote {out_p / 'metrics.json'} and {out_p / 'report' / 'index.html'}")


@handle_errors
def study_spect_scatter(preset: str = typer.Option("quick", "--preset", help="tiny | quick | full"),
                        out: Path = typer.Option(..., "--out", help="study folder"),
                        overwrite: bool = typer.Option(False, "--overwrite")) -> None:
    """SPECT scatter: a network against TEW (scatter NRMSE, regional bias of OSEM), and Chang against CT-based AC."""
    from petspect.ac.spect_scatter_report import write_spect_scatter_study
    from petspect.ac.spect_scatter_study import preset_config, run_spect_scatter_study
    from petspect.cli._study import study_preset
    from petspect.evaluation.study import claim_study_folder

    cfg = preset_config(study_preset(preset))
    out_p = claim_study_folder(out, overwrite=overwrite)
    result = run_spect_scatter_study(cfg, out_p, log=typer.echo)
    summary = write_spect_scatter_study(out_p, cfg, result)
    for c in summary.checks:
        typer.echo(f"check {'PASSED' if c.passed else 'FAILED' if c.passed is False else 'n/a'}: {c.check} ({c.detail})")
    typer.echo(f"test_scored {summary.test_scored}; wrote {out_p / 'metrics.json'} and {out_p / 'report' / 'index.html'}")


def register(app: typer.Typer) -> None:
    from petspect.cli._study import study_app

    app.add_typer(ac_app, name="ac")
    study_app.command("ac")(study_ac)
    study_app.command("spect-scatter")(study_spect_scatter)
