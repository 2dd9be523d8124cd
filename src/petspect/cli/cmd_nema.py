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


@handle_errors
def nema(
    image: Path = typer.Argument(..., help="Reconstructed IEC phantom image: NIfTI, DICOM folder/file, Interfile."),
    ratio: float = typer.Option(None, "--ratio", help="True sphere:background activity ratio (default: image "
                                                        "metadata, else 4)."),
    hot_spheres: int = typer.Option(None, "--hot-spheres", help="Number of hot spheres, smallest first "
                                                                "(default: decided from the image)."),
    json_out: Path = typer.Option(None, "--json", help="Write the full results as JSON here."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --json file."),
) -> None:
    """Find the spheres and report Q_H / Q_C, background variability N, lung residual and background CV."""
    import json

    from rich.console import Console

    from petspect._fileio import atomic_write_text, check_output_path
    from petspect.io import load
    from petspect.phantoms.nema_analysis import analyse_iec

    if json_out is not None:
        check_output_path(json_out, overwrite=overwrite, inputs=[image])
    res = analyse_iec(load(image), activity_ratio=ratio, hot_spheres=hot_spheres)
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
