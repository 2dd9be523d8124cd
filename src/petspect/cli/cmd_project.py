"""``petspect project``: simulate a PET or SPECT acquisition of an activity image into a data folder."""

from __future__ import annotations

from pathlib import Path

import typer

from petspect.cli._common import fail, handle_errors


def register(app: typer.Typer) -> None:
    app.command("project")(project)


def _load_activity(path: Path, unit: str | None = None):
    from petspect.io import load
    from petspect.io.stated_units import state_unit

    vol = state_unit(load(path), unit, path=path)
    if vol.unit == "a.u.":
        typer.secho(f"note: {path} carries no unit; taking its values as Bq/mL (state it with --unit)", err=True)
        vol = vol.with_data(vol.data, unit="Bq/mL")
    return _axial(vol, path, "activity image")


def _axial(vol, path: Path, what: str):
    """The volume in the axial orientation (a lossless reordering of any axis-aligned grid), with the record
    that puts results back on the input's grid."""
    from petspect.orientation import to_axial

    axial, view = to_axial(vol, what=f"{what} {path}")
    if not view.identity:
        typer.secho(f"note: {path} is not in petspect's axial orientation; its voxels are reordered (no "
                    "interpolation) and reconstructions are written back in its orientation", err=True)
    return axial, view


def _mu_per_mm(path: Path, unit: str | None, system: str):
    """The attenuation map in 1/mm at the system's photon energy (HU converted), axial orientation."""
    import torch

    from petspect.io import load
    from petspect.io.stated_units import state_mu_unit
    from petspect.materials import hu_to_mu_per_mm

    vol = state_mu_unit(load(path), unit, path=path)
    if vol.unit == "HU":
        from petspect.geometry.spect import get_spect_system, spect_system_names

        energy = get_spect_system(system).photopeak.centre_kev if system.lower() in spect_system_names() else 511.0
        vol = vol.with_data(hu_to_mu_per_mm(vol.data.to(torch.float32), energy), unit="1/mm")
    return _axial(vol, path, "attenuation map")[0]


def _pet_binning(act, system, two_d, tof, span, max_ring_diff, view_mashing, n_radial):
    """The preset's default sinogram binning (overridden by the options given); prints size and time."""
    from petspect.geometry.pet import ImageGrid, get_pet_scanner
    from petspect.geometry.sinogram import SinogramDefinition
    from petspect.projectors.pet_estimate import pet_job_summary

    scanner = get_pet_scanner(system, single_ring=two_d)
    sd = SinogramDefinition.preset_default(scanner, span=span, max_ring_diff=max_ring_diff,
                                           view_mashing=view_mashing, n_radial=n_radial)
    if tof and scanner.is_tof:
        typer.echo(pet_job_summary(sd, ImageGrid.from_volume(act), tof=True, n_forward=2, n_back=0,
                                   job="projection (TOF data and attenuation factors)"))
    elif not tof:
        typer.echo(pet_job_summary(sd, ImageGrid.from_volume(act), tof=False, n_forward=2, n_back=0,
                                   job="projection (data and attenuation factors)"))
    return sd.span, sd.max_ring_diff, sd.view_mashing, sd.n_radial


@handle_errors
def project(
    activity: Path = typer.Argument(..., help="Activity image in Bq/mL (NIfTI or any format petspect.io reads)."),
    out: Path = typer.Option(..., "--out", help="New acquisition folder."),
    system: str = typer.Option(..., "--system", help="wholebody, brain, small-animal (PET); spect-lehr, spect-me."),
    mu: Path = typer.Option(None, "--mu", help="Attenuation map (1/mm, 1/cm, or CT in HU) at 511 keV (PET) or "
                                              "the photopeak energy (SPECT); resampled onto the activity grid."),
    unit: str = typer.Option(None, "--unit", help="Unit of an activity image that carries none (e.g. Bq/mL)."),
    mu_unit: str = typer.Option(None, "--mu-unit", help="Unit of an attenuation map that carries none: 1/mm, "
                                                        "1/cm or HU."),
    tof: bool = typer.Option(False, "--tof", help="Time-of-flight sinograms (wholebody)."),
    counts: float = typer.Option(None, "--counts", help="Expected number of true counts (scales the data)."),
    activity_mbq: float = typer.Option(None, "--activity-mbq", help="Rescale the image to this total activity."),
    scan_s: float = typer.Option(None, "--scan-s", help="Scan duration in s (use the image's activity)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the Poisson draw (and of simulated efficiencies)."),
    two_d: bool = typer.Option(False, "--2d", help="PET: one ring (2D); the image is projected in that plane."),
    max_ring_diff: int = typer.Option(None, "--max-ring-diff", help="PET: largest ring difference kept (default: "
                                                                   "the preset's)."),
    span: int = typer.Option(None, "--span", help="PET: axial compression (odd; default: the preset's)."),
    view_mashing: int = typer.Option(None, "--view-mashing", help="PET: neighbouring views summed (default: "
                                                                 "the preset's)."),
    n_radial: int = typer.Option(None, "--radial-bins", help="PET: radial bins (even; default: the preset's)."),
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
    from petspect.simulate.acquisition import PET_PRESETS, save_acquisition, simulate_acquisition

    if (counts is None) == (scan_s is None):
        fail("give either --counts N or --scan-s T (with the image's activity or --activity-mbq A)")
    inputs = [activity] + ([mu] if mu is not None else [])
    check_output_path(out, overwrite=overwrite, inputs=inputs)
    act, view = _load_activity(activity, unit)
    mu_vol = _mu_per_mm(mu, mu_unit, system) if mu is not None else None
    if system.lower() in PET_PRESETS:  # the preset's vendor-like compression, and what the job will cost
        span, max_ring_diff, view_mashing, n_radial = _pet_binning(act, system, two_d, tof, span, max_ring_diff,
                                                                   view_mashing, n_radial)
    data = simulate_acquisition(
        act, system, mu=mu_vol, tof=tof, n_counts=counts, scan_s=scan_s, activity_mbq=activity_mbq, seed=seed,
        nuclide=nuclide, single_ring=two_d, span=span, max_ring_diff=max_ring_diff, view_mashing=view_mashing,
        n_radial=n_radial, psf_fwhm_mm=psf_fwhm_mm, normalisation=normalisation, n_views=views,
        radius_mm=radius_mm, scatter_fraction=scatter_fraction, randoms_fraction=randoms_fraction,
        provenance={"command": "petspect project", "activity": str(activity), "mu": None if mu is None else str(mu),
                    **({} if view.identity else {"input_orientation": _view_record(view)})})
    path = save_acquisition(data, out, overwrite=overwrite)
    cal = data.calibration
    typer.echo(f"{getattr(data.modality, 'value', data.modality)} {system}{' TOF' if tof else ''}: prompts {tuple(data.prompts.shape)}, "
               f"{float(data.prompts.sum()):.4g} counts (expected trues {cal.expected_true_counts:.4g}, "
               f"additive {cal.expected_additive_counts:.4g}); wrote {path}")


def _view_record(view) -> dict:
    """The input grid of an AxialView as JSON (``petspect recon`` writes its image back on that grid)."""
    return {"perm": list(view.perm), "flip": list(view.flip), "shape": list(view.shape),
            "spacing_mm": list(view.spacing_mm), "origin_mm": list(view.origin_mm),
            "direction": [list(r) for r in view.direction]}
