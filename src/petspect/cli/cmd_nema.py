"""``petspect nema IMAGE``: NEMA NU 2 image-quality analysis of an IEC body phantom image."""

from __future__ import annotations

from pathlib import Path

import typer

from petspect.cli._common import handle_errors


def register(app: typer.Typer) -> None:
    app.command("nema")(nema)


def _table(res: dict):
    from rich.table import Table

    t = Table(title=f"NEMA NU 2 image quality (ratio {res['activity_ratio']:g}:1, {res['activity_ratio_source']})")
    for col in ("sphere (mm)", "kind", "contrast Q (%)", "background variability N (%)",
                f"ROI mean ({res['unit']})", f"background mean ({res['unit']})"):
        t.add_column(col, justify="right")
    for sp in res["spheres"]:
        t.add_row(f"{sp['diameter_mm']:g}", sp["kind"], f"{sp['contrast_pct']:.1f}",
                  f"{sp['background_variability_pct']:.2f}", f"{sp['mean']:.4g}", f"{sp['background_mean']:.4g}")
    return t


def write_roi_png(volume, res: dict, path: Path) -> None:
    """PNG of the sphere-plane slice with the sphere, background (37 mm) and lung ROIs drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    from petspect.phantoms.nema_analysis import to_axial

    ax_vol = to_axial(volume)
    k = int(round(float(ax_vol.world_to_voxel([0.0, 0.0, res["slices_z_mm"][0]])[0])))
    x0, y0, _ = ax_vol.origin_mm
    dz, dy, dx = ax_vol.spacing_mm
    ny, nx = ax_vol.shape[1:]
    fig, ax = plt.subplots(figsize=(7, 7 * ny * dy / (nx * dx)))
    ax.imshow(ax_vol.numpy()[k], cmap="gray", extent=(x0 - dx / 2, x0 + (nx - 0.5) * dx, y0 + (ny - 0.5) * dy, y0 - dy / 2))
    for sp in res["spheres"]:
        ax.add_patch(Circle(sp["centre_mm"][:2], sp["diameter_mm"] / 2, fill=False, color="red" if sp["kind"] == "hot" else "cyan"))
        ax.annotate(f"{sp['diameter_mm']:g}", sp["centre_mm"][:2], color="yellow", fontsize=7, ha="center")
    for c in res["background"]["roi_centres_mm"]:
        ax.add_patch(Circle(c, 18.5, fill=False, color="lime", lw=0.8))
    ax.add_patch(Circle(res["geometry"]["ring_centre_mm"], res["lung"]["roi_diameter_mm"] / 2, fill=False, color="orange"))
    ax.set_title(f"z = {res['slices_z_mm'][0]:.1f} mm: spheres, 12 background ROIs, lung ROI", fontsize=9)
    ax.set_xlabel("x (mm, LPS)")
    ax.set_ylabel("y (mm, LPS)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@handle_errors
def nema(
    image: Path = typer.Argument(..., help="Reconstructed IEC phantom image: NIfTI, DICOM folder/file, Interfile."),
    ratio: float = typer.Option(None, "--ratio", help="True sphere:background activity ratio (default: image "
                                                        "metadata, else 4)."),
    hot_spheres: int = typer.Option(None, "--hot-spheres", help="Number of hot spheres, smallest first "
                                                                "(default: decided from the image)."),
    refine_mm: float = typer.Option(0.0, "--refine-spheres", help="Let each sphere ROI move up to this many mm "
                                                                 "from the rigid ring fit (0: rigid NU 2 template)."),
    json_out: Path = typer.Option(None, "--json", help="Write the full results as JSON here."),
    png_out: Path = typer.Option(None, "--png", help="Write the sphere-plane slice with the ROIs drawn here."),
    unit: str = typer.Option(None, "--unit", help="Unit of an image that carries none (e.g. a PET series "
                                                  "without Units); the analysis needs only ratios."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing --json / --png files."),
) -> None:
    """Find the spheres and report Q_H / Q_C, background variability N, lung residual and background CV."""
    import json

    from rich.console import Console

    from petspect._fileio import atomic_path, atomic_write_text, check_output_path
    from petspect.io import load
    from petspect.phantoms.nema_analysis import analyse_iec

    from petspect.errors import InputError

    if png_out is not None:
        if png_out.suffix.lower() != ".png":
            raise InputError(f"--png writes a PNG image; give a path ending in .png, got {png_out}")
        if json_out is not None and png_out.expanduser().resolve() == json_out.expanduser().resolve():
            raise InputError(f"--png and --json are the same file {png_out}; give two paths")
    for out in (json_out, png_out):
        if out is not None:
            check_output_path(out, overwrite=overwrite, inputs=[image])
    from petspect.io.stated_units import state_unit

    volume = state_unit(load(image), unit, path=image)
    if volume.unit == "a.u.":
        typer.secho(f"note: {image} carries no unit: means are in arbitrary units, contrasts and ratios hold",
                    err=True)
    res = analyse_iec(volume, activity_ratio=ratio, hot_spheres=hot_spheres, refine_spheres_mm=refine_mm)
    console = Console()
    console.print(_table(res))
    g = res["geometry"]
    console.print(f"lung residual {res['lung']['residual_pct']:.2f} %   background mean {res['background']['mean']:.4g} "
                  f"{res['unit']}, CV {res['background']['cv_pct']:.2f} %")
    console.print(f"sphere plane z = {g['plane_z_mm']:.1f} mm, ring centre ({g['ring_centre_mm'][0]:.1f}, "
                  f"{g['ring_centre_mm'][1]:.1f}) mm, 37 mm sphere at {g['angle_37mm_deg']:.1f} deg")
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(res, indent=2))
        console.print(f"wrote {json_out}")
    if png_out is not None:
        with atomic_path(png_out) as tmp:
            write_roi_png(volume, res, tmp)
        console.print(f"wrote {png_out}")
