"""``petspect resample``: put an image on an axial grid (oblique inputs) or on another image's grid."""

from __future__ import annotations

from pathlib import Path

import typer

from petspect.cli._common import fail, handle_errors


def register(app: typer.Typer) -> None:
    app.command("resample")(resample)


@handle_errors
def resample(
    image: Path = typer.Argument(..., help="Image to resample (NIfTI, DICOM series, Interfile .hv)."),
    out: Path = typer.Option(..., "--out", help="Output image (.nii.gz, .nii, .hv, or a DICOM folder)."),
    axial: bool = typer.Option(False, "--axial", help="Onto an axial grid covering the image (lossless reordering "
                                                      "when the image is already axis-aligned)."),
    like: Path = typer.Option(None, "--like", help="Onto the grid of this image (e.g. a CT onto a SPECT image)."),
    voxel_mm: float = typer.Option(None, "--voxel-mm", min=0.0, help="--axial: isotropic voxel size (default: the "
                                                                     "image's smallest spacing)."),
    nearest: bool = typer.Option(False, "--nearest", help="Nearest-neighbour (label maps) instead of trilinear."),
    fill: float = typer.Option(0.0, "--fill", help="Value outside the image (e.g. -1000 for a CT in HU)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
) -> None:
    """Resample IMAGE onto an axial grid (--axial) or onto another image's grid (--like REF); values keep their unit."""
    from petspect._fileio import check_output_path
    from petspect.io import load, save
    from petspect.orientation import axial_grid_covering, is_axis_aligned, to_axial

    if axial == (like is not None):
        fail("give either --axial or --like REF")
    check_output_path(out, overwrite=overwrite, inputs=[image] + ([like] if like is not None else []))
    vol = load(image)
    mode = "nearest" if nearest else "linear"
    if like is not None:
        result = vol.resample_to(load(like), mode=mode, fill_value=fill)
        how = f"onto the grid of {like}"
    elif is_axis_aligned(vol) and voxel_mm is None:
        result, _ = to_axial(vol)
        how = "reordered to the axial orientation (no interpolation)"
    else:
        result = vol.resample_to(axial_grid_covering(vol, voxel_mm), mode=mode, fill_value=fill)
        how = f"{mode} onto an axial grid"
    path = save(result.with_data(result.data, unit=vol.unit), out, overwrite=overwrite)
    typer.echo(f"{how}: {tuple(result.shape)} voxels of {tuple(round(v, 4) for v in result.spacing_mm)} mm; "
               f"wrote {path}")
