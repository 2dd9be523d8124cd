"""``petspect recon``: reconstruct an acquisition folder (from ``petspect project``) or measured SPECT projections
(DICOM NM TOMO / GATED TOMO, Interfile ``.hs``) into an image."""

from __future__ import annotations

from pathlib import Path

import typer

from petspect.cli._common import get_device, handle_errors
from petspect.errors import InputError


def register(app: typer.Typer) -> None:
    app.command("recon")(recon)


def _announce_pet(acq, iterations: int, device) -> None:
    """Print the sinogram size and the estimated time of the iterations (one forward + back each, and the
    sensitivity image) before a PET reconstruction starts."""
    from petspect.projectors.pet_estimate import pet_job_summary

    sino = acq.system.sinogram.definition(acq.system.scanner)
    typer.echo(pet_job_summary(sino, acq.grid.image_grid(), tof=bool(acq.system.tof), n_forward=iterations,
                               n_back=iterations + 1, job=f"reconstruction ({iterations} iterations)", device=device))


@handle_errors
def recon(
    ctx: typer.Context,
    data: Path = typer.Argument(..., help="Acquisition folder (from `petspect project`, or a cohort subject "
                                          "DATASET/sub-NNN from `petspect simulate`), or measured SPECT "
                                          "projections (DICOM NM TOMO file or folder, Interfile .hs)."),
    out: Path = typer.Option(..., "--out", help="Output image (.nii.gz, .nii, .hv, or a DICOM folder)."),
    level: str = typer.Option(None, "--level", help="Cohort subject: the level to reconstruct, e.g. d010 (10 % dose), "
                                                    "t050 (first 50 % of the scan), d010_r1, d100_h024."),
    algorithm: str = typer.Option(None, "--algorithm", help="fbp, mlem, osem or map (BSREM); default osem, or the "
                                                            "cohort's first algorithm."),
    iterations: int = typer.Option(None, "--iterations", min=0, help="Iterations (each visits every subset); "
                                                                     "default 4 or the cohort's."),
    subsets: int = typer.Option(None, "--subsets", min=1, help="Ordered subsets (osem, map); default 8 or the cohort's."),
    beta: float = typer.Option(None, "--beta", min=0.0, help="MAP prior strength relative to the data's scale "
                                                              "(times the mean sensitivity; same value at any count "
                                                              "level); default 0 or the cohort's."),
    prior: str = typer.Option(None, "--prior", help="rdp (relative difference) or quadratic (map)."),
    gamma: float = typer.Option(None, "--gamma", min=0.0, help="RDP edge-preservation parameter (default 2)."),
    no_ac: bool = typer.Option(False, "--no-ac", help="No attenuation correction."),
    post_filter_mm: float = typer.Option(None, "--post-filter-mm", help="Gaussian post-filter FWHM in mm "
                                                                        "(default none, or the cohort's)."),
    fbp_filter: str = typer.Option("hann", "--filter", help="FBP window: ramp, shepp-logan, cosine, hamming, hann."),
    cutoff: float = typer.Option(1.0, "--cutoff", help="FBP cut-off as a fraction of Nyquist."),
    objective: bool = typer.Option(False, "--objective", help="Print the (penalised) log-likelihood per iteration."),
    gate: int = typer.Option(None, "--gate", min=1, help="Measured gated SPECT: this time slot (default: all)."),
    system: str = typer.Option(None, "--system", help="Measured SPECT: spect-lehr or spect-me (Siemens LEHR / ME "
                                                      "collimator); prefer --collimator."),
    collimator: str = typer.Option(None, "--collimator", help="Measured SPECT: collimator preset (ge-lehr, ge-megp, "
                                                              "ge-hegp, siemens-lehr, siemens-me, siemens-he, "
                                                              "philips-..., see the error list); default: the one "
                                                              "the DICOM header names."),
    window: str = typer.Option(None, "--window", help="Measured SPECT: photopeak window by name (as `petspect info` "
                                                      "lists it), #INDEX, or energy in keV (e.g. 208)."),
    scatter: str = typer.Option("tew", "--scatter", help="Measured SPECT: tew (triple energy window) or none."),
    sensitivity: float = typer.Option(None, "--sensitivity-cps-per-mbq", min=0.0,
                                      help="Measured SPECT: camera sensitivity for an image in Bq/mL."),
    mu: Path = typer.Option(None, "--mu", help="Measured SPECT: the study's CT (DICOM folder, may be the NM's own "
                                               "folder, or NIfTI) in the same frame of reference, resampled and "
                                               "converted HU -> mu at the photopeak; or a map (1/mm, 1/cm, HU) on "
                                               "the reconstruction grid (rows x cols x cols detector pixels)."),
    mu_unit: str = typer.Option(None, "--mu-unit", help="Measured SPECT: unit of a --mu file that carries none "
                                                        "(1/mm, 1/cm or HU)."),
    mu_same_frame: bool = typer.Option(False, "--mu-same-frame", help="Measured SPECT: use a --mu CT whose "
                                                                      "frame of reference UID differs from the "
                                                                      "NM's (patient not moved between them)."),
    anonymize: bool = typer.Option(False, "--anonymise", "--anonymize",
                                   help="DICOM output of measured DICOM: de-identify the patient and study (PS3.15 "
                                        "basic profile, keyed pseudonyms)."),
    secret_file: Path = typer.Option(None, "--secret-file", help="--anonymise: key of the pseudonyms (default: "
                                                                 "OUT.petspect-anon-key, made if absent)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    model: Path = typer.Option(None, "--model", help="A learned reconstruction model folder (`petspect study recon` "
                                                     "writes them in OUT/models): projection-domain, unrolled or "
                                                     "direct, on an acquisition folder or measured NM TOMO; refused, "
                                                     "with the reason, for data of another system, window, matrix, "
                                                     "grid or count level. Writes OUT's data-consistency beside it."),
) -> None:
    """Reconstruct DATA with FBP, MLEM, OSEM or MAP; the image is in Bq/mL on the activity image's grid.

    A cohort subject with --level is reconstructed with the settings the
    cohort used for that algorithm (each can be overridden), so the image
    matches the stored recon_<level>_<algorithm>_ac file.

    Measured SPECT projections: a grid of the detector's pixels centred
    on the rotation axis (placed in the patient from the NM header),
    collimator response (--collimator, else the header's) and TEW scatter
    around the photopeak (--window); attenuation corrected with --mu (the
    study's CT or a registered map); Bq/mL with --sensitivity-cps-per-mbq,
    else arbitrary units. A folder with several NM TOMO instances (bed
    positions) gives one image, the beds joined with overlap weighting."""
    from petspect._fileio import check_output_path
    from petspect.io import save
    from petspect.io.convert import is_projection_data
    from petspect.recon.reconstruct import ReconSpec, reconstruct_image
    from petspect.systems.acquisition import ACQUISITION_JSON, load_acquisition, stored_recon_specs

    from petspect.io import output_kind

    check_output_path(out, overwrite=overwrite, inputs=[data] + ([mu] if mu is not None else []),
                      kind=output_kind(out))
    folder = data.is_dir() and (data / ACQUISITION_JSON).is_file()
    stored: dict = {}
    if not folder and data.exists() and is_projection_data(data):
        from petspect.simulate.measured import load_attenuation, spect_acquisition

        if level is not None:
            raise InputError("--level picks a level of a cohort subject's acquisition folder, not of measured data")
        beds = _measured_beds(data, gate)
        from petspect.io.stated_units import state_mu_unit

        mu_vol = None if mu is None else state_mu_unit(load_attenuation(mu), mu_unit, path=mu)
        acqs = [spect_acquisition(p, system=system, scatter=scatter, sensitivity_cps_per_mbq=sensitivity, mu=mu_vol,
                                  source=data, collimator=collimator, window=window, mu_same_frame=mu_same_frame)
                for p in beds]
        acq = acqs[0]
        prov = acq.provenance
        typer.echo(f"{len(acqs)} bed position(s); photopeak {prov['photopeak']}; {prov['collimator']}; scatter: "
                   f"{_scatter_note(prov['scatter'])}; attenuation: {prov['attenuation']}")
    else:
        if gate is not None or system is not None or sensitivity is not None or mu is not None or \
                collimator is not None or window is not None or mu_unit is not None:
            raise InputError("--gate, --system, --collimator, --window, --sensitivity-cps-per-mbq, --mu and --mu-unit "
                             "apply to measured SPECT projections")
        acqs = None
        acq = load_acquisition(data, level=level)
        stored = stored_recon_specs(data) if level is not None else {}
    algo = (algorithm or next(iter(stored), "osem")).lower()
    base = stored.get(algo, {})
    given = {"iterations": iterations, "subsets": subsets, "beta": beta, "prior": prior, "gamma": gamma,
             "post_filter_fwhm_mm": post_filter_mm}
    settings = {**{"iterations": 4, "subsets": 8}, **base, **{k: v for k, v in given.items() if v is not None}}
    spec = ReconSpec.from_dict({**settings, "algorithm": algo, "fbp_window": fbp_filter, "fbp_cutoff": cutoff})

    def print_objective(it, _image, value):
        typer.echo(f"iteration {it}: objective {value:.10g}")

    def run(one):
        if one.modality.value == "PET" and spec.algorithm.value != "fbp" and spec.iterations > 0:
            _announce_pet(one, spec.iterations, get_device(ctx))
        return reconstruct_image(one, spec, attenuation=not no_ac, device=get_device(ctx),
                                 callback=print_objective if objective else None, compute_objective=objective)

    if model is not None:
        from petspect.learned_recon.models import recon_with_model_cli

        if acqs is not None and len(acqs) > 1:
            raise InputError("--model reconstructs one bed position; give one NM TOMO instance")
        if no_ac or any(v is not None for v in (algorithm, iterations, subsets, beta, prior, gamma, post_filter_mm)):
            raise InputError("--model reconstructs with the model's own settings (attenuation corrected): drop --no-ac, "
                             "--algorithm, --iterations, --subsets, --beta, --prior, --gamma and --post-filter-mm")
        vol = recon_with_model_cli(acq, model, out, overwrite=overwrite, device=get_device(ctx), echo=typer.echo)
        algo = f"model {model.name}"
    elif acqs is not None and len(acqs) > 1:
        from petspect.recon.beds import join_beds

        images = [run(a) for a in acqs]
        factors, note = _decay_to_first_bed(beds)
        typer.echo(note)
        if factors is not None:
            images = [v.with_data(v.data * f) for v, f in zip(images, factors)]
        vol = join_beds(images)
    else:
        vol = run(acq)
    vol = _back_to_input_orientation(vol, acq.provenance.get("input_orientation"))
    sources = _dicom_sources(data) if acqs is not None and _is_dicom_folder_output(out) else None
    if sources:  # a reconstruction of a real study: its patient, study and frame of reference, a new series
        from petspect.io.dicom_write import write_dicom_series

        write_dicom_series(vol, out, source=sources, overwrite=overwrite, anonymize=anonymize,
                           secret_file=secret_file,
                           series_description=f"petspect {algo} recon of {len(sources)} NM TOMO")
        path = out
    else:
        if anonymize:
            raise InputError("--anonymize applies to DICOM output (a folder) of measured DICOM data")
        path = save(vol, out, overwrite=overwrite)
    typer.echo(f"{algo}: {vol.shape} image in {vol.unit}, mean {float(vol.data.mean()):.4g}; wrote {path}")


def _measured_beds(data: Path, gate: int | None) -> list:
    """The SpectProjections of measured data: one per bed for a folder of several NM TOMO instances."""
    from petspect.io.convert import read_any
    from petspect.io.nm import read_nm_beds

    if data.is_dir():
        beds = read_nm_beds(data)
        if len(beds) > 1 and gate is not None:
            raise InputError("--gate applies to one gated acquisition, not to several bed positions")
        if len(beds) > 1 or gate is None:
            return beds
    return [read_any(data, gate=gate)]


def _scatter_note(record: dict) -> str:
    if record.get("method") == "none":
        return "none"
    upper = record.get("upper")
    return f"TEW from {record.get('lower')!r}" + (f" and {upper!r}" if upper else " (no upper window)")


def _back_to_input_orientation(vol, record: dict | None):
    """The image on the grid of the activity image it was projected from (``petspect project`` reorders an
    axis-aligned input losslessly and records its orientation)."""
    if not record:
        return vol
    from petspect.orientation import AxialView, from_axial

    view = AxialView(tuple(record["perm"]), tuple(record["flip"]), tuple(record["shape"]),
                     tuple(record["spacing_mm"]), tuple(record["origin_mm"]),
                     tuple(tuple(r) for r in record["direction"]))
    return from_axial(vol, view)


def _is_dicom_folder_output(out: Path) -> bool:
    from petspect.io._meta import full_suffix

    return full_suffix(out) == ""


def _dicom_sources(data: Path) -> list:
    """Headers of the NM TOMO instances of measured DICOM data (none for Interfile)."""
    import pydicom

    from petspect.io._paths import is_dicom_file
    from petspect.io.nm import _tomo_files

    from petspect.io._guard import reading

    files = _tomo_files(data) if data.is_dir() else ([data] if is_dicom_file(data) else [])
    out = []
    for f in files:
        with reading(f, "DICOM NM file"):
            out.append(pydicom.dcmread(f, stop_before_pixels=True))
    return out


def _decay_to_first_bed(beds: list) -> tuple[list[float] | None, str]:
    """Decay factors to the first bed's start (NM AcquisitionDateTime and the nuclide), and a sentence."""
    from datetime import datetime

    from petspect.errors import PetspectError
    from petspect.recon.beds import bed_decay_factors

    from petspect.io.interfile import dicom_nuclide_name
    from petspect.nuclides import canonical_name, half_life_s

    nuclide = beds[0].nuclide
    try:
        half = half_life_s(canonical_name(dicom_nuclide_name(str(nuclide)))) if nuclide else None
    except PetspectError:
        half = None
    stamps = [b.meta.get("acquisition_datetime") for b in beds]
    times = [None if s is None else datetime.fromisoformat(s).timestamp() for s in stamps]
    factors = bed_decay_factors(times, half)
    if factors is None:
        return None, (f"beds joined without decay correction between them (nuclide {nuclide!r}, "
                      f"start times {'known' if None not in times else 'unknown'})")
    return factors, ("beds decay-corrected to the first bed's start: factors "
                     + ", ".join(f"{f:.4f}" for f in factors))
