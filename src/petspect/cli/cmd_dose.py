"""``petspect dose``: voxel S-value kernels and the dosimetry workflow; ``petspect study dose``."""

from __future__ import annotations

from pathlib import Path

import typer

from petspect.cli._common import fail, handle_errors

dose_app = typer.Typer(help="Internal dosimetry for radionuclide therapy: S-value kernels, dose maps from "
                            "quantitative SPECT/CT time points.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    from petspect.cli._study import study_app

    dose_app.command("kernel")(kernel)
    dose_app.command("run")(run)
    app.add_typer(dose_app, name="dose")
    study_app.command("dose")(study_dose)


@handle_errors
def kernel(
    nuclide: str = typer.Option(..., "--nuclide", help="Lu-177, Y-90 or I-131."),
    voxel_mm: float = typer.Option(..., "--voxel-mm", help="Cubic voxel size (mm), 0.5-20."),
    out: Path = typer.Option(..., "--out", help="Output kernel (.nii.gz, .nii or .hv); provenance goes into its "
                                                "metadata."),
    density: float = typer.Option(1.03, "--density", help="Medium density (g/mL); default ICRP soft tissue."),
    half_width: int = typer.Option(None, "--half-width", help="Kernel spans 2n+1 voxels per axis "
                                                              "(default: 50 mm, at least 5 voxels)."),
    beta_only: bool = typer.Option(False, "--beta-only", help="Leave out conversion and Auger electrons "
                                                              "(the emission set of Lanconelli et al 2012)."),
    electrons: int = typer.Option(None, "--electrons", help="Recompute the point kernels with this many "
                                                            "electrons (default: the shipped 400 000)."),
    seed: int = typer.Option(None, "--seed", help="Seed when recomputing (with --electrons; default 0)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
) -> None:
    """Compute a voxel S-value kernel (mGy per MBq s in the source voxel, source in the middle) and write it."""
    import numpy as np

    from petspect._fileio import check_output_path
    from petspect.dosimetry.kernels import voxel_kernel
    from petspect.io import save
    from petspect.volume import Volume

    from petspect.io._meta import full_suffix

    if full_suffix(out) not in (".nii.gz", ".nii", ".hv"):
        # a DICOM series (a path without extension) would lose the unit mGy/(MBq s) and the provenance
        fail(f"{out}: write the kernel as .nii.gz, .nii or .hv (they keep its unit and provenance)")
    if seed is not None and electrons is None:
        fail("--seed applies when the point kernels are recomputed: give --electrons N too (the shipped kernels "
             "were computed with seed 0)")
    check_output_path(out, overwrite=overwrite)
    n_ph = None if electrons is None else max(electrons // 2, 1000)
    k = voxel_kernel(nuclide, voxel_mm, half_width=half_width, density_g_per_ml=density,
                     n_electrons=electrons, n_photons=n_ph, seed=seed or 0,
                     discrete_electrons=not beta_only)
    vol = Volume.centered(np.asarray(k.values, dtype=np.float32), (voxel_mm,) * 3)
    vol = vol.with_data(vol.data, unit="mGy/(MBq s)", meta={"dose_kernel": k.info.to_dict()})
    path = save(vol, out, overwrite=overwrite)
    typer.echo(f"{k.info.nuclide} kernel {k.values.shape} of {voxel_mm} mm at {density} g/mL: "
               f"S(0,0,0) = {k.centre:.4g}, S(1,0,0) = {k.at(1, 0, 0):.4g} mGy/(MBq s); wrote {path}")


@handle_errors
def run(
    spect: list[Path] = typer.Option(..., "--spect", help="Quantitative SPECT (or PET) images, one per time point "
                                                         "(DICOM folder, NIfTI, Interfile); repeat the option."),
    hours: list[float] = typer.Option(..., "--hours", help="Time of each image after administration (h); "
                                                          "repeat in the same order."),
    ct: list[Path] = typer.Option(None, "--ct", help="CT of each time point (or one CT for all); HU."),
    spect_unit: str = typer.Option(None, "--spect-unit", help="Unit of --spect files that carry none (a NIfTI "
                                                              "from another tool): Bq/mL, kBq/mL, MBq/mL or counts "
                                                              "(with --calibration-bq-per-count)."),
    ct_unit: str = typer.Option(None, "--ct-unit", help="HU: states the unit of a CT file that carries none (a "
                                                        "NIfTI from another tool) when its values alone cannot "
                                                        "show it (no air in the image)."),
    nuclide: str = typer.Option("Lu-177", "--nuclide", help="Lu-177, Y-90 or I-131."),
    out: Path = typer.Option(..., "--out", help="Output folder: dose.nii.gz, RTDOSE DICOM, regions.csv, dose.json."),
    labels: Path = typer.Option(None, "--labels", help="Organ/lesion label image (any grid; resampled nearest)."),
    calibration: float = typer.Option(None, "--calibration-bq-per-count", help="Sensitivity: Bq per count of "
                                                                               "the images when they are in counts."),
    method: str = typer.Option("kernel_density", "--method", help="local_deposition, kernel_water, kernel_density "
                                                                  "or monte_carlo."),
    voxel_mm: float = typer.Option(None, "--voxel-mm", help="Dose grid voxel (mm); default the first image's "
                                                           "smallest spacing."),
    register: bool = typer.Option(True, "--register/--no-register", help="Rigidly register later CTs to the "
                                                                         "first (SimpleITK) and move the SPECTs."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an output folder petspect wrote."),
) -> None:
    """Dose map from one or more quantitative SPECT/CT time points (DICOM in; NIfTI, DICOM RT Dose and a table out)."""
    from petspect.dosimetry.workflow import DoseRequest, run_dose_workflow

    if len(spect) != len(hours):
        fail(f"{len(spect)} --spect images but {len(hours)} --hours values")
    if ct_unit is not None and not ct:
        fail("--ct-unit states the unit of a --ct file; give --ct too (or drop --ct-unit)")
    req = DoseRequest(spect=list(spect), hours=list(hours), ct=list(ct or []), nuclide=nuclide, labels=labels,
                      calibration_bq_per_count=calibration, method=method, voxel_mm=voxel_mm, register=register,
                      ct_unit=ct_unit, spect_unit=spect_unit)
    result = run_dose_workflow(req, out, overwrite=overwrite)
    for line in result.summary_lines():
        typer.echo(line)


@handle_errors
def study_dose(
    preset: str = typer.Option("quick", "--preset", help="tiny (seconds), quick (<= ~10 min on 2 CPU cores), full."),
    out: Path = typer.Option(..., "--out", help="Study folder: metrics.json, summary.json, report/index.html."),
    seed: int = typer.Option(0, "--seed", help="Cohort seed."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a study folder petspect wrote."),
) -> None:
    """Dosimetry study: local deposition, water and density-scaled kernels, DL kernels and DL dose vs Monte Carlo."""
    from petspect.cli._study import study_preset
    from petspect.dosimetry.study import run_dose_study

    summary = run_dose_study(study_preset(preset), out, seed=seed, overwrite=overwrite)
    for line in summary:
        typer.echo(line)
