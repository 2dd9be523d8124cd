"""``petspect recon``: reconstruct an acquisition folder (from ``petspect project``) or measured SPECT projections
(DICOM NM TOMO / GATED TOMO, Interfile ``.hs``) into an image."""

from __future__ import annotations

from pathlib import Path

import typer

from petspect.cli._common import get_device, handle_errors
from petspect.errors import InputError


def register(app: typer.Typer) -> None:
    app.command("recon")(recon)


@handle_errors
def recon(
    ctx: typer.Context,
    data: Path = typer.Argument(..., help="Acquisition folder written by `petspect project`, or measured SPECT "
                                          "projections (DICOM NM TOMO file or folder, Interfile .hs)."),
    out: Path = typer.Option(..., "--out", help="Output image (.nii.gz, .nii, .hv, or a DICOM folder)."),
    algorithm: str = typer.Option("osem", "--algorithm", help="fbp, mlem, osem or map (BSREM)."),
    iterations: int = typer.Option(4, "--iterations", min=0, help="Iterations (each visits every subset)."),
    subsets: int = typer.Option(8, "--subsets", min=1, help="Ordered subsets (osem, map)."),
    beta: float = typer.Option(0.0, "--beta", min=0.0, help="Prior strength (map)."),
    prior: str = typer.Option("rdp", "--prior", help="rdp (relative difference) or quadratic (map)."),
    gamma: float = typer.Option(2.0, "--gamma", min=0.0, help="RDP edge-preservation parameter."),
    no_ac: bool = typer.Option(False, "--no-ac", help="No attenuation correction."),
    post_filter_mm: float = typer.Option(None, "--post-filter-mm", help="Gaussian post-filter FWHM in mm."),
    fbp_filter: str = typer.Option("hann", "--filter", help="FBP window: ramp, shepp-logan, cosine, hamming, hann."),
    cutoff: float = typer.Option(1.0, "--cutoff", help="FBP cut-off as a fraction of Nyquist."),
    objective: bool = typer.Option(False, "--objective", help="Print the (penalised) log-likelihood per iteration."),
    gate: int = typer.Option(None, "--gate", min=1, help="Measured gated SPECT: this time slot (default: all)."),
    system: str = typer.Option(None, "--system", help="Measured SPECT: collimator preset (spect-lehr, spect-me; "
                                                      "default from the nuclide)."),
    scatter: str = typer.Option("tew", "--scatter", help="Measured SPECT: tew (triple energy window) or none."),
    sensitivity: float = typer.Option(None, "--sensitivity-cps-per-mbq", min=0.0,
                                      help="Measured SPECT: camera sensitivity for an image in Bq/mL."),
    mu: Path = typer.Option(None, "--mu", help="Measured SPECT: attenuation map (1/mm, 1/cm or HU) already registered "
                                               "to the reconstruction grid (rows x cols x cols detector pixels)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
) -> None:
    """Reconstruct DATA with FBP, MLEM, OSEM or MAP; the image is in Bq/mL on the activity image's grid.

    Measured SPECT projections: a grid of the detector's pixels centred
    on the rotation axis, collimator response and TEW scatter; attenuation
    corrected only with --mu (a map registered to that grid); Bq/mL with
    --sensitivity-cps-per-mbq, else arbitrary units."""
    from petspect._fileio import check_output_path
    from petspect.io import save
    from petspect.io.convert import is_projection_data, read_any
    from petspect.simulate.acquisition import ACQUISITION_JSON, load_acquisition, reconstruct_acquisition

    check_output_path(out, overwrite=overwrite, inputs=[data])
    folder = data.is_dir() and (data / ACQUISITION_JSON).is_file()
    if not folder and data.exists() and is_projection_data(data):
        from petspect.simulate.measured import spect_acquisition

        from petspect.io import load

        acq = spect_acquisition(read_any(data, gate=gate), system=system, scatter=scatter,
                                sensitivity_cps_per_mbq=sensitivity, mu=None if mu is None else load(mu), source=data)
    else:
        if gate is not None or system is not None or sensitivity is not None or mu is not None:
            raise InputError("--gate, --system, --sensitivity-cps-per-mbq and --mu apply to measured SPECT projections")
        acq = load_acquisition(data)

    def print_objective(it, _image, value):
        typer.echo(f"iteration {it}: objective {value:.10g}")

    callback = print_objective if objective else None
    dev = get_device(ctx)
    vol = reconstruct_acquisition(acq, algorithm, n_iter=iterations, n_subsets=subsets, beta=beta, prior=prior,
                                  gamma=gamma, attenuation=not no_ac, post_filter_fwhm_mm=post_filter_mm,
                                  fbp_window=fbp_filter, fbp_cutoff=cutoff, callback=callback, device=dev,
                                  compute_objective=objective)
    path = save(vol, out, overwrite=overwrite)
    typer.echo(f"{algorithm}: {vol.shape} image in {vol.unit}, mean {float(vol.data.mean()):.4g}; wrote {path}")
