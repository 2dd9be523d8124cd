"""``petspect nuclide`` and ``petspect material``: look up physical data with their sources."""

from __future__ import annotations

import typer

from petspect.cli._common import handle_errors


def register(app: typer.Typer) -> None:
    app.command("nuclide")(nuclide)
    app.command("material")(material)


@handle_errors
def nuclide(name: str = typer.Argument(..., help="Radionuclide, e.g. F-18, Tc-99m, Lu-177.")) -> None:
    """Half-life, photon lines, positron data and mean electron energy of a radionuclide."""
    from rich.console import Console
    from rich.table import Table

    from petspect.nuclides import get_nuclide

    nu = get_nuclide(name)
    con = Console()
    con.print(f"[bold]{nu.name}[/]  half-life {nu.half_life_s:.6g} s ({nu.half_life_s / 3600:.5g} h)")
    if nu.positron_fraction:
        con.print(f"positron fraction {nu.positron_fraction:.4g}, mean range in water "
                  f"{nu.mean_positron_range_mm} mm")
    if nu.mean_electron_energy_mev is not None:
        con.print(f"mean electron energy per decay {nu.mean_electron_energy_mev} MeV")
    table = Table("energy (keV)", "yield per decay")
    for p in nu.photons:
        table.add_row(f"{p.energy_kev:.2f}", f"{p.yield_per_decay:.4g}")
    con.print(table)
    for s in nu.sources:
        con.print(f"[dim]source: {s}[/]")


@handle_errors
def material(
    name: str = typer.Argument(..., help="water, soft_tissue, lung, cortical_bone, adipose, air, pmma, ..."),
    energy_kev: list[float] = typer.Option([140.5, 208.0, 511.0], "--energy-kev", help="Photon energies (keV)."),
) -> None:
    """Density and linear attenuation coefficients (1/cm) of a material at photon energies."""
    from rich.console import Console
    from rich.table import Table

    from petspect import materials as m

    con = Console()
    con.print(f"[bold]{name}[/]  density {m.density_g_per_ml(name):.4g} g/mL, CT number ~{m.material_hu(name):.0f} HU "
              f"(120 kVp)")
    table = Table("energy (keV)", "mu/rho (cm^2/g)", "mu (1/cm)")
    for e in energy_kev:
        table.add_row(f"{e:g}", f"{m.mass_attenuation_cm2_per_g(name, e):.5f}", f"{m.linear_attenuation_per_cm(name, e):.5f}")
    con.print(table)
    if name in m.MATERIALS:
        con.print(f"[dim]composition: {m.MATERIALS[name].source}; cross-sections: xraydb (Elam)[/]")
