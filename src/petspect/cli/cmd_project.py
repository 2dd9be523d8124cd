"""``petspect project``: simulate a PET or SPECT acquisition of an activity image into a data folder."""

from __future__ import annotations

from pathlib import Path

import typer

from petspect.cli._common import fail, handle_errors


def register(app: typer.Typer) -> None:
    app.command("project")(project)


def _load_activity(path: Path):
    from petspect.io import load

    vol = load(path)
    if vol.unit == "a.u.":
        typer.secho(f"note: {path} carries no unit; taking its values as Bq/mL", err=True)
        vol = vol.with_data(vol.data, unit="Bq/mL")
    return vol


@handle_errors
def project(
    activity: Path = typer.Argument(..., help="Activity image in Bq/mL (NIfTI or any format petspect.io reads)."),
    out: Path = typer.Option(..., "--out", help="New acquisition folder."),
    system: str = typer.Option(..., "--system", help="wholebody, brain, small-animal (PET); spect-lehr, spect-me."),
    mu: Path = typer.Option(None, "--mu", help="Attenuation map (1/mm or 1/cm) on the activity grid, at 511 keV "
                                              "(PET) or the photopeak energy (SPECT)."),
    tof: bool = typer.Option(False, "--tof", help="Time-of-flight sinograms (wholebody)."),
    counts: float = typer.Option(None, "--counts", help="Expected number of true counts (scales the data)."),
    activity_mbq: float = typer.Option(None, "--activity-mbq", help="Rescale the image to this total activity."),
    scan_s: float = typer.Option(None, "--scan-s", help="Scan duration in s (use the image's activity)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the Poisson draw (and of simulated efficiencies)."),
    two_d: bool = typer.Option(False, "--2d", help="PET: one ring (2D); the image is projected in that plane."),
    max_ring_diff: int = typer.Option(None, "--max-ring-diff", help="PET: largest ring difference kept."),
    span: int = typer.Option(1, "--span", help="PET: axial compression (odd)."),
    view_mashing: int = typer.Option(1, "--view-mashing", help="PET: neighbouring views summed."),
    n_radial: int = typer.Option(None, "--radial-bins", help="PET: radial bins (even; default covers the FOV)."),
    psf_fwhm_mm: float = typer.Option(None, "--psf-mm", help="PET: image-space PSF FWHM in mm."),
    normalisation: bool = typer.Option(False, "--normalisation", help="PET: simulate detection efficiencies."),
    scatter_fraction: float = typer.Option(0.0, "--scatter-fraction", help="PET: scatter share of the prompts."),
    randoms_fraction: float = typer.Option(0.0, "--randoms-fraction", help="PET: randoms share of the prompts."),
    views: int = typer.Option(None, "--views", help="SPECT: number of views over 360 degrees."),
    radius_mm: float = typer.Option(None, "--radius-mm", help="SPECT: radius of rotation in mm."),
    nuclide: str = typer.Option(None, "--nuclide", help="Nuclide for decay during the scan (default F-18 / preset)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder."),
) -> None:
    """Project ACTIVITY with a scanner preset and draw Poisson prompts: a self-describing data folder.

    Give either --counts N (expected true counts) or --scan-s T (optionally with --activity-mbq A); in both
    cases `petspect recon` returns Bq/mL.
    """
    from petspect._fileio import check_output_path
    from petspect.io import load
    from petspect.simulate.acquisition import save_acquisition, simulate_acquisition

    if (counts is None) == (scan_s is None):
        fail("give either --counts N or --scan-s T (with the image's activity or --activity-mbq A)")
    inputs = [activity] + ([mu] if mu is not None else [])
    check_output_path(out, overwrite=overwrite, inputs=inputs)
    act = _load_activity(activity)
    mu_vol = load(mu) if mu is not None else None
    data = simulate_acquisition(
        act, system, mu=mu_vol, tof=tof, n_counts=counts, scan_s=scan_s, activity_mbq=activity_mbq, seed=seed,
        nuclide=nuclide, single_ring=two_d, span=span, max_ring_diff=max_ring_diff, view_mashing=view_mashing,
        n_radial=n_radial, psf_fwhm_mm=psf_fwhm_mm, normalisation=normalisation, n_views=views,
        radius_mm=radius_mm, scatter_fraction=scatter_fraction, randoms_fraction=randoms_fraction,
        provenance={"command": "petspect project", "activity": str(activity), "mu": None if mu is None else str(mu)})
    path = save_acquisition(data, out, overwrite=overwrite)
    cal = data.calibration
    typer.echo(f"{data.modality} {system}{' TOF' if tof else ''}: prompts {tuple(data.prompts.shape)}, "
               f"{float(data.prompts.sum()):.4g} counts (expected trues {cal.expected_true_counts:.4g}, "
               f"additive {cal.expected_additive_counts:.4g}); wrote {path}")
