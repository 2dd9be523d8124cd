"""``petspect info`` and ``petspect convert``: inspect and convert NIfTI, DICOM and Interfile data."""

from __future__ import annotations

from pathlib import Path

import typer

from petspect.cli._common import handle_errors


def register(app: typer.Typer) -> None:
    app.command("info")(info)
    app.command("convert")(convert)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    return str(value)


@handle_errors
def info(
    path: Path = typer.Argument(..., help="NIfTI file, DICOM folder/file, or Interfile header (.hv/.hs)."),
    as_json: bool = typer.Option(False, "--json", help="Print the description as JSON."),
    allow_outside_data: bool = typer.Option(False, "--allow-outside-data",
                                            help="Let an Interfile header name a data file outside its folder."),
) -> None:
    """Geometry, units, modality and (PET) the SUV factors of every kind; no patient identifiers."""
    import json

    from petspect.io.convert import describe

    d = describe(path, allow_outside_data=allow_outside_data)
    if as_json:
        typer.echo(json.dumps(d, indent=2))
        return
    suv = d.pop("suv_factors", None)
    missing = d.pop("suv_missing", {})
    for key, value in d.items():
        typer.echo(f"{key:28s} {_fmt(value)}")
    if suv is not None:
        typer.echo("SUV factors (multiply the values above):")
        for kind, f in suv.items():
            if f is None:
                text = f"n/a ({missing.get(kind, 'unknown')})"
            elif isinstance(f, list):
                text = f"per slice {min(f):.6g} .. {max(f):.6g}"
            else:
                text = f"{f:.6g}"
            typer.echo(f"  {kind:26s} {text}")


@handle_errors
def convert(
    src: Path = typer.Argument(..., help="Input: NIfTI, DICOM folder/file, Interfile .hv/.hs."),
    dst: Path = typer.Argument(..., help="Output: .nii, .nii.gz, .hv, .hs, or a folder (DICOM series)."),
    suv: str = typer.Option(None, "--suv", help="Convert PET to SUV: bw, bsa, lbm_james, lbm_janmahasatian, ibw."),
    gate: int = typer.Option(None, "--gate", min=1,
                             help="Gated SPECT (DICOM NM GATED TOMO): keep this time slot (default: sum of all)."),
    unit: str = typer.Option(None, "--unit", help="Unit of an image that carries none (e.g. Bq/mL for a PET series "
                                                  "without Units, a NIfTI)."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace an output this command wrote before (never an input, the current "
                                        "folder or a folder petspect did not write)."),
    anonymise: bool = typer.Option(False, "--anonymise", "--anonymize",
                                   help="DICOM output: de-identify (PS3.15 basic profile, keyed pseudonyms)."),
    secret_file: Path = typer.Option(None, "--secret-file",
                                     help="Key of the pseudonyms (default: DST.petspect-anon-key, made if absent)."),
    allow_outside_data: bool = typer.Option(False, "--allow-outside-data",
                                            help="Let an Interfile header name a data file outside its folder."),
) -> None:
    """Convert between formats (the output format follows DST's extension).

    A folder holding several NM TOMO instances (bed positions) converted to NAME.hs gives one
    NAME_bedK.hs per bed, from the superior bed down."""
    from petspect.io.convert import convert as run

    if _convert_beds(src, dst, overwrite=overwrite):
        return
    out = run(src, dst, suv=suv, gate=gate, overwrite=overwrite, allow_outside_data=allow_outside_data,
              anonymise=anonymise, secret_file=secret_file, unit=unit)
    typer.echo(f"wrote {out}")
    if anonymise:
        from petspect.io.anonymise import SECRET_SUFFIX

        if out.suffix or out.is_file():
            typer.echo("note: NIfTI and Interfile outputs hold no patient identifiers; nothing to anonymise")
        elif secret_file is None:
            typer.echo(f"pseudonym key: {out.parent / (out.name + SECRET_SUFFIX)} (keep it private; pass it with "
                       "--secret-file to give the same patients the same pseudonyms elsewhere)")


def _convert_beds(src: Path, dst: Path, *, overwrite: bool) -> bool:
    """Write each bed of a multi-bed NM folder to ``<dst stem>_bed<k>.hs``; False when ``src`` is not one."""
    from petspect.io._meta import full_suffix

    if not (src.is_dir() and full_suffix(dst) == ".hs"):
        return False
    from petspect.io.nm import _tomo_files, read_nm_beds

    if len(_tomo_files(src)) < 2:
        return False
    from petspect.io.interfile import write_interfile_projections

    stem = dst.name[: -len(".hs")]
    for k, bed in enumerate(read_nm_beds(src), start=1):
        path = write_interfile_projections(bed, dst.with_name(f"{stem}_bed{k}.hs"), overwrite=overwrite)
        typer.echo(f"wrote {path} (bed {k})")
    return True
