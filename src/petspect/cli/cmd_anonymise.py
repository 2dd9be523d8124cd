"""``petspect anonymise IN OUT``: de-identify a folder of DICOM files (PS3.15 basic profile, keyed pseudonyms)."""

from __future__ import annotations

from pathlib import Path

import typer

from petspect.cli._common import handle_errors


def register(app: typer.Typer) -> None:
    app.command("anonymise")(anonymise)
    app.command("anonymize", hidden=True)(anonymise)


@handle_errors
def anonymise(
    src: Path = typer.Argument(..., help="DICOM file or folder (searched recursively)."),
    out: Path = typer.Argument(..., help="New folder for the de-identified files (<series>/<n>.dcm)."),
    secret_file: Path = typer.Option(None, "--secret-file",
                                     help="Key of the pseudonyms and UIDs (default: OUT.petspect-anon-key beside "
                                          "OUT, created with mode 0600 if absent)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a folder this command wrote before."),
) -> None:
    """Remove or replace identifying attributes, remap UIDs consistently, keep SUV facts and full dates.

    Names and IDs become HMAC-SHA256 pseudonyms under a secret key: the same key gives the same pseudonym
    (follow-up studies still match), and without the key they cannot be traced back."""
    from petspect.io.anonymise import anonymise_folder

    res = anonymise_folder(src, out, secret_file=secret_file, overwrite=overwrite)
    typer.echo(f"wrote {res.n_files} de-identified files to {res.out}")
    if res.skipped:
        typer.echo(f"skipped {len(res.skipped)} non-DICOM file(s): {', '.join(res.skipped[:5])}"
                   f"{', ...' if len(res.skipped) > 5 else ''}")
    if res.new_secret_file is not None:
        typer.echo(f"new pseudonym key: {res.new_secret_file} (mode 0600; keep it private and beside no copy of "
                   "the output you share; pass it with --secret-file to reuse it)")
