"""``petspect simulate`` and ``petspect dataset check|import|rebuild``: reproducible simulated cohorts."""

from __future__ import annotations

from pathlib import Path

import typer

from petspect.cli._common import fail, handle_errors

dataset_app = typer.Typer(help="Verify, import and rebuild datasets.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.add_typer(dataset_app, name="dataset")


def _config(preset_or_toml: str, subjects: int | None, seed: int | None):
    from petspect.simulate.config import load_config
    from petspect.simulate.presets import get_preset

    cfg = load_config(preset_or_toml) if preset_or_toml.endswith(".toml") else get_preset(preset_or_toml)
    if subjects is not None:
        cfg.subjects = subjects
    if seed is not None:
        cfg.seed = seed
    return cfg.validate()


@handle_errors
def simulate(
    ctx: typer.Context,
    preset_or_config: str = typer.Argument(..., help="Preset (quick, brain-fdg, wholebody-fdg, spect-tc99m, "
                                                    "lu177-spect) or a TOML configuration file."),
    out: Path = typer.Option(None, "--out", help="Dataset folder (new, empty, or an interrupted run to resume)."),
    subjects: int = typer.Option(None, "--subjects", min=1, help="Number of subjects (overrides the preset)."),
    seed: int = typer.Option(None, "--seed", help="Cohort seed (overrides the preset)."),
    workers: int = typer.Option(None, "--workers", min=1, help="Worker processes (default: all cores)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a dataset made with another configuration."),
    executor: str = typer.Option("local", "--executor", help="local (process pool) or ray (Ray tasks; needs "
                                                             "the ray extra); same files either way."),
    ray_address: str = typer.Option(None, "--ray-address", help="Ray cluster (auto, HOST:6379); default: a local "
                                                                "Ray with --workers CPUs, stopped at the end."),
    show_config: bool = typer.Option(False, "--show-config", help="Print the configuration as TOML and exit."),
) -> None:
    """Simulate a cohort: phantoms, acquisitions at every dose level, reconstructions, dataset.json.

    Cohorts are simulated on the CPU; a global --device naming another device is refused (not ignored).
    """
    from petspect._device import cohort_device, device_name, simulation_device

    device = cohort_device(simulation_device(device_name(ctx)))
    cfg = _config(preset_or_config, subjects, seed)
    if show_config:
        from petspect.simulate.config import config_to_toml

        typer.echo(config_to_toml(cfg))
        return
    if out is None:
        fail("--out is required")
    from petspect.simulate.cohort import estimate_disk_bytes, simulate_cohort

    est = estimate_disk_bytes(cfg)
    typer.echo(f"{cfg.name}: {cfg.subjects} subjects, levels {cfg.dose_percents} % dose"
               f"{', ' + str(cfg.time_percents) + ' % time' if cfg.time_percents else ''}; "
               f"estimated size <= {est / 1e6:.1f} MB (uncompressed); simulating on {device}")
    path = simulate_cohort(cfg, out, workers=workers, overwrite=overwrite, executor=executor, ray_address=ray_address,
                           device=device)
    typer.echo(f"wrote {path}")


@dataset_app.command("check")
@handle_errors
def check(folder: Path = typer.Argument(..., help="Dataset folder.")) -> None:
    """Re-verify every file against the checksums and shapes recorded when it was written."""
    from petspect.simulate.layout import check_dataset

    problems = check_dataset(folder)
    for p in problems:
        typer.echo(f"problem: {p}")
    if problems:
        fail(f"{len(problems)} problem(s) in {folder}", code=1)
    typer.echo(f"{folder}: all files match their recorded checksums and shapes")


@dataset_app.command("import")
@handle_errors
def import_(
    source: Path = typer.Argument(..., help="Folder with one sub-folder per case (NIfTI files / DICOM series)."),
    out: Path = typer.Option(..., "--out", help="New dataset folder."),
    reference_key: str = typer.Option(..., "--reference-key", help="Key whose grid the other images are resampled onto."),
    suv: str = typer.Option(None, "--suv", help="Convert DICOM PET to SUV of this kind (bw, bsa, lbm_james, ...)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Allow a non-empty output folder."),
) -> None:
    """Import a user's own cases into the dataset layout (dataset.json, checksums)."""
    from petspect.simulate.importer import import_cases

    path = import_cases(source, out, reference_key=reference_key, suv=suv, overwrite=overwrite)
    typer.echo(f"wrote {path}")


@dataset_app.command("rebuild")
@handle_errors
def rebuild(
    folder: Path = typer.Argument(..., help="Dataset folder."),
    subject: str = typer.Argument(..., help="Subject to rebuild, e.g. sub-003."),
    out: Path = typer.Option(..., "--out", help="Folder to rebuild into (must not hold that subject)."),
) -> None:
    """Rebuild one simulated case from dataset.json and compare it bit for bit with the stored files."""
    from petspect.simulate.cohort import rebuild_subject

    same = rebuild_subject(folder, subject, out)
    bad = [name for name, ok in same.items() if not ok]
    typer.echo(f"{subject}: {len(same) - len(bad)}/{len(same)} files identical")
    if bad:
        fail("differ: " + ", ".join(bad), code=1)
