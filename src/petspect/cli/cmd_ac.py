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
              input_: Path = typer.Option(..., "--input", help="NAC PET: DICOM series folder (or file) or NIfTI"),
              mr: Path = typer.Option(None, "--mr", help="MR T1: DICOM series or NIfTI (mr_sct models)"),
              ute: Path = typer.Option(None, "--ute", help="UTE R2 map (1/ms): DICOM series or NIfTI (mr_sct models)"),
              raw: Path = typer.Option(None, "--raw", help="PET acquisition folder: also write the corrected PET"),
              out: Path = typer.Option(..., "--out", help="output folder"),
              overwrite: bool = typer.Option(False, "--overwrite")) -> None:
    """Synthetic CT from NAC PET or MR: NIfTI (HU) and its 511 keV mu map, a DICOM CT series beside a DICOM input
    (same patient, study, frame of reference and geometry); with --raw the PET reconstructed again with it."""
    from petspect._fileio import check_output_path, claim_output_folder
    from petspect.ac.apply import apply_sct, corrected_pet, read_sct_inputs, write_sct_outputs
    from petspect.ac.networks import load_model
    from petspect.io.nifti import write_nifti

    inputs = [p for p in (model, input_, mr, ute, raw) if p]
    check_output_path(out, overwrite=overwrite, inputs=inputs, kind="ac-apply")
    m = load_model(model)
    images = read_sct_inputs(m, input_, mr_path=mr, ute_path=ute)  # every refusal before the folder is made
    _require_usable(images, input_, mr, ute)
    ct, mu = apply_sct(m, images)
    pet_ac = None if raw is None else corrected_pet(raw, mu)  # a bad --raw is refused before anything is written
    out_p = claim_output_folder(out, kind="ac-apply", overwrite=overwrite, inputs=inputs, outputs=AC_APPLY_FILES)
    if overwrite:
        _remove_earlier_series(out_p / "synthetic_ct_dicom")
    written = write_sct_outputs(out_p, ct, mu, images)
    if pet_ac is not None:
        written["pet_ac"] = write_nifti(pet_ac, out_p / "pet_ac.nii.gz")
    for k, p in written.items():
        typer.echo(f"{k}: {p}")


#: every file ``ac apply`` / ``ac spect-scatter`` can write into their folder (an --overwrite rerun removes them
#: first, so that an earlier run's file cannot stay beside the new ones as if it belonged to them)
AC_APPLY_FILES = ("synthetic_ct.nii.gz", "mu_511.nii.gz", "pet_ac.nii.gz")
SPECT_SCATTER_FILES = ("scatter_dl.npy", "scatter_tew.npy", "scatter.json", "spect_dl_scatter.nii.gz",
                       "spect_tew_scatter.nii.gz")


def _remove_earlier_series(folder: Path) -> None:
    """Remove an earlier run's DICOM series folder (only one petspect wrote, holding only its own files)."""
    import shutil

    from petspect._fileio import check_output_path
    from petspect.io.dicom_write import DICOM_KIND

    if folder.is_dir() and not folder.is_symlink():
        check_output_path(folder, overwrite=True, kind=DICOM_KIND)  # refuses a folder with anything else in it
        shutil.rmtree(folder)


def _require_usable(images, nac_path: Path, mr_path: Path | None, ute_path: Path | None) -> None:
    """Refuse network inputs with NaN/inf voxels (they make the whole synthetic CT NaN) and a NAC PET without
    positive activity (the network would draw a CT from nothing)."""
    import torch

    from petspect.errors import InputError

    for vol, path, what in ((images.nac, nac_path, "the NAC PET"), (images.mr, mr_path, "the MR"),
                            (images.ute, ute_path, "the UTE map")):
        if vol is None:
            continue
        bad = int((~torch.isfinite(vol.data)).sum())
        if bad:
            raise InputError(f"{what} holds {bad} NaN or infinite voxels", path=path)
    if not bool((images.nac.data > 0).any()):
        raise InputError("the NAC PET has no positive activity (all voxels zero or negative)", path=nac_path)


def _require_counts(counts, path: Path) -> None:
    """Refuse projections with NaN/inf or negative counts, or without photopeak counts (every window is read)."""
    import torch

    from petspect.errors import InputError

    c = torch.as_tensor(counts)
    bad = int((~torch.isfinite(c)).sum())
    if bad:
        raise InputError(f"the projections hold {bad} NaN or infinite counts", path=path)
    if bool((c < 0).any()):
        raise InputError(f"the projections hold negative counts (minimum {float(c.min()):g}); counts are >= 0",
                         path=path)


@ac_app.command("spect-scatter")
@handle_errors
def spect_scatter_cmd(projections: Path = typer.Argument(..., help="SPECT projections with the TEW windows: DICOM NM "
                                                                    "TOMO or Interfile"),
                      model: Path = typer.Option(..., "--model", help="SPECT scatter model folder (study spect-scatter)"),
                      mu: Path = typer.Option(None, "--mu", help="attenuation map or CT on/around the SPECT grid "
                                                                 "(needed by models that take it; also used by --recon)"),
                      collimator: str = typer.Option(None, "--collimator", help="collimator preset (default: header)"),
                      recon: bool = typer.Option(False, "--recon/--no-recon",
                                                 help="also reconstruct OSEM with the network's and with TEW's scatter"),
                      iterations: int = typer.Option(4, min=1), subsets: int = typer.Option(8, min=1),
                      out: Path = typer.Option(..., "--out", help="output folder"),
                      overwrite: bool = typer.Option(False, "--overwrite")) -> None:
    """Photopeak scatter of a SPECT acquisition by a trained network (beside TEW's): scatter_dl.npy, scatter_tew.npy
    (counts, views x rows x cols), scatter.json; with --recon the OSEM images with each estimate (NIfTI)."""
    import json

    import numpy as np
    import torch

    from petspect._fileio import atomic_path, atomic_write_text, check_output_path, claim_output_folder
    from petspect.ac.networks import load_model
    from petspect.ac.spect_scatter import predict_scatter, reconstruct_spect, tew_estimate
    from petspect.errors import InputError
    from petspect.geometry.spect import get_spect_system
    from petspect.geometry.spect_data import SpectProjections
    from petspect.io.convert import read_any
    from petspect.io.nifti import write_nifti
    from petspect.simulate.measured import load_attenuation, spect_acquisition

    inputs = [p for p in (projections, model, mu) if p]
    check_output_path(out, overwrite=overwrite, inputs=inputs, kind="spect-scatter")
    m = load_model(model)
    if m.task != "spect_scatter":
        raise InputError(f"--model is a {m.task!r} model, not a SPECT scatter model (task spect_scatter)", path=model)
    proj = read_any(projections)
    if not isinstance(proj, SpectProjections):
        raise InputError("not SPECT projections (DICOM NM TOMO or Interfile projections with energy windows)",
                         path=projections)
    _require_counts(proj.counts, projections)
    if not float(proj.photopeak.sum()) > 0:
        raise InputError("the projections have no photopeak counts: nothing to estimate the scatter of",
                         path=projections)
    if recon and subsets > len(proj.angles_deg):
        raise InputError(f"--subsets {subsets} exceeds the {len(proj.angles_deg)} views")
    trained = m.trained_on.get("system")
    if trained:
        line = get_spect_system(trained).photon_lines[0][0]
        peak = proj.energy_windows[proj.photopeak_window]
        if abs(peak.centre_kev - line) > 0.1 * line:
            raise InputError(f"the model was trained on {trained} ({line:g} keV); these data's photopeak is "
                             f"{peak.centre_kev:g} keV")
    pixel = m.trained_on.get("pixel_mm")
    if pixel and any(abs(float(p) / float(pixel) - 1.0) > 0.1 for p in proj.pixel_spacing_mm):
        raise InputError(f"the model was trained on {pixel:g} mm detector pixels; these projections have "
                         f"{tuple(round(float(p), 3) for p in proj.pixel_spacing_mm)} mm (the scatter's spread in "
                         "pixels differs): train a model at this pixel size")
    needs_mu = "mu_line_integral" in m.trained_on.get("inputs", [])
    if needs_mu and mu is None:
        raise InputError("this model also takes the attenuation map's projections: give --mu (map or CT)")
    data = spect_acquisition(proj, mu=None if mu is None else load_attenuation(mu), collimator=collimator,
                             scatter="tew")
    if data.mu_per_mm is not None and not bool(torch.isfinite(torch.as_tensor(data.mu_per_mm)).all()):
        raise InputError("the attenuation map holds NaN or infinite values", path=mu)
    est = predict_scatter(m, proj, mu_per_mm=data.mu_per_mm, voxel_mm=data.grid.spacing_mm)
    tew = tew_estimate(proj, m.trained_on.get("tew_smooth_fwhm_mm"))
    record = {"model": str(model), "trained_on": m.trained_on, "photopeak_counts": float(proj.photopeak.sum()),
              "scatter_dl_counts": float(est.sum()), "scatter_tew_counts": float(tew.sum()),
              "tew_smooth_fwhm_mm": m.trained_on.get("tew_smooth_fwhm_mm"), "units": "counts per view pixel"}
    images = {}
    if recon:  # everything is computed before the folder is claimed: a refusal leaves nothing half-written
        kw = {"iterations": iterations, "subsets": subsets, "attenuation": data.mu_per_mm is not None}
        for name, s in (("dl", est), ("tew", tew)):
            img = reconstruct_spect(data, s, **kw)
            images[f"spect_{name}_scatter.nii.gz"] = data.image_volume(img, unit=data.calibration.unit, modality="NM")
        record["recon"] = {**kw, "attenuation_map": None if mu is None else str(mu)}
    out_p = claim_output_folder(out, kind="spect-scatter", overwrite=overwrite, inputs=inputs,
                                outputs=SPECT_SCATTER_FILES)
    for name, arr in (("scatter_dl.npy", est), ("scatter_tew.npy", tew)):
        with atomic_path(out_p / name) as tmp:
            np.save(tmp, arr.numpy())
    for name, vol in images.items():
        write_nifti(vol, out_p / name)
    atomic_write_text(out_p / "scatter.json", json.dumps(record, indent=2, default=str) + "\n")
    typer.echo(f"scatter (counts): network {record['scatter_dl_counts']:.4g}, TEW {record['scatter_tew_counts']:.4g} "
               f"of {record['photopeak_counts']:.4g} photopeak counts; wrote {out_p}")


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
