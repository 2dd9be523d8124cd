"""``petspect detector``: monolithic-detector positioning and coincidence timing studies."""

from __future__ import annotations

from pathlib import Path

import typer

from petspect.cli._common import get_device, handle_errors

PRESET_HELP = ("Study preset: quick (about a minute, used by the tests), realistic (benchmark), hf-readout "
               "(realistic with state-of-the-art high-frequency SiPM timing readout) or bgo-cherenkov (hf-readout "
               "with a BGO timing pair and prompt Cherenkov emission) or labr3-hf (hf-readout with a LaBr3:Ce "
               "timing pair, whose slow rise a single threshold crossing cannot use) or berg-cherry-2018 (the PMT-read LYSO "
               "pair of Berg and Cherry, PMB 2018; berg-cherry-2018-stepped: with their stepped-source protocol). "
               "quick and realistic also run the joint network (position, energy and time from one network).")


#: Memory ``detector limits`` may use (bytes). It keeps every photon time of every pair (float64) and its
#: sorting and partition copies: peak RSS measured at about 6 x 8 bytes per photon (quick preset, 2026-12-05:
#: 0.83 GB at 2000 pairs, 2.4 GB at 8000, 5500 photons a pair).
LIMITS_MAX_BYTES = 8e9
LIMITS_BYTES_PER_PHOTON = 48.0

#: model folders ``detector evaluate`` reads from ``--models`` (``detector train`` writes them)
EVALUATED_MODELS = ("mlp", "cnn", "cnn_fan", "timing_cnn")
#: what it reads besides for a preset with a joint study (the joint network and the separate models)
JOINT_MODELS = ("joint", "joint_separate_cnn", "joint_separate_timing_cnn", "joint_separate_energy.json")


def _made_with(path: Path) -> str | None:
    """The preset named in a detector dataset.json or model config.json (``None`` when it names none)."""
    import json

    from petspect.errors import FormatError

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"unreadable JSON: {exc}", path=path) from exc
    if not isinstance(doc, dict):
        raise FormatError("not a JSON object", path=path)
    if path.name == "dataset.json":
        name = doc.get("name")
        return name[len("detector-"):] if isinstance(name, str) and name.startswith("detector-") else None
    preset = (doc.get("data") or {}).get("preset") if isinstance(doc.get("data"), dict) else None
    return preset if isinstance(preset, str) else None


def _check_inputs(preset: str, data: Path | None, models: Path | None = None, *, joint: bool = False) -> None:
    """Refuse, before any output folder is made, a data folder that ``detector simulate`` did not write, a
    models folder without the models ``evaluate`` reads (``joint``: the joint study's too, when the data hold
    joint events), and data or models made with another preset (they would be used with this preset's detector
    and timing settings and labelled with its name)."""
    from petspect.errors import ConfigError, DataNotFoundError

    checks = []
    if data is not None:
        if not (Path(data) / "dataset.json").is_file():
            raise DataNotFoundError("not a detector data folder (dataset.json missing)", path=data)
        checks.append(("data were simulated", Path(data) / "dataset.json", "simulate"))
    if models is not None:
        missing = [m for m in EVALUATED_MODELS if not (Path(models) / m / "config.json").is_file()]
        if joint and (data is None or (Path(data) / "joint_test.npz").is_file()):  # evaluate reads the joint study's
            missing += [m for m in JOINT_MODELS if not (Path(models) / m).exists()]
        if missing:
            raise DataNotFoundError(f"not a detector models folder: {', '.join(missing)} missing (petspect "
                                    "detector train writes them)", path=models)
        checks.append(("models were trained", Path(models) / "mlp" / "config.json", "train"))
    for what, path, cmd in checks:
        made = _made_with(path)
        if made is not None and made != preset:
            raise ConfigError(f"the {what} with preset {made!r}, not {preset!r}: give --preset {made} (or run "
                              f"`petspect detector {cmd} --preset {preset}` first)", path=path.parent)


def _check_limits_memory(preset, pairs: int) -> None:
    """Refuse a ``--pairs`` whose photon times would not fit in :data:`LIMITS_MAX_BYTES` (the process was killed
    by the system instead), from the photons a pair registers in this preset (200 drawn pairs)."""
    import numpy as np

    from petspect.detector.timing_limits import draw_interactions
    from petspect.errors import InputError

    _, n_pe, n_ch = draw_interactions(preset.timing, 200, np.random.default_rng(0))
    photons = float((n_pe + (0 if n_ch is None else n_ch)).sum(axis=1).mean())
    per_pair = LIMITS_BYTES_PER_PHOTON * photons
    if pairs * per_pair > LIMITS_MAX_BYTES:
        raise InputError(f"--pairs {pairs} needs about {pairs * per_pair / 1e9:.0f} GB ({photons:.0f} photon times a "
                         f"pair in preset {preset.name!r}); at most {int(LIMITS_MAX_BYTES // per_pair)} pairs fit in "
                         f"{LIMITS_MAX_BYTES / 1e9:.0f} GB")


def register(app: typer.Typer) -> None:
    """Add the ``detector`` command group."""
    det = typer.Typer(help="Detector-level AI: event positioning and time-of-flight from waveforms.",
                      no_args_is_help=True)

    @det.command("simulate")
    @handle_errors
    def simulate_cmd(ctx: typer.Context, preset: str = typer.Option("quick", "--preset", help=PRESET_HELP),
                     out: Path = typer.Option(..., "--out", help="Output data folder."),
                     overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing folder.")) -> None:
        """Simulate pencil-beam, fan-beam and coincidence-waveform data."""
        from petspect.detector.pipeline import get_preset, simulate

        folder = simulate(get_preset(preset), out, device=get_device(ctx), overwrite=overwrite)
        typer.echo(f"data written to {folder}")

    @det.command("train")
    @handle_errors
    def train_cmd(ctx: typer.Context, preset: str = typer.Option("quick", "--preset", help=PRESET_HELP),
                  data: Path = typer.Option(..., "--data", help="Data folder from 'detector simulate'."),
                  out: Path = typer.Option(..., "--out", help="Output models folder."),
                  overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing folder.")) -> None:
        """Train the neural positioners (MLP, CNN, fan-beam CNN) and the timing CNN."""
        from petspect.detector.pipeline import get_preset, train

        from petspect._fileio import check_output_path

        check_output_path(out, overwrite=overwrite, inputs=[data], kind="detector-models")  # the output first
        _check_inputs(get_preset(preset).name, data)
        folder = train(get_preset(preset), data, out, device=get_device(ctx), overwrite=overwrite)
        typer.echo(f"models written to {folder}")

    @det.command("evaluate")
    @handle_errors
    def evaluate_cmd(ctx: typer.Context, preset: str = typer.Option("quick", "--preset", help=PRESET_HELP),
                     out: Path = typer.Option(..., "--out", help="Output folder (metrics.json, report.html)."),
                     data: Path = typer.Option(None, "--data", help="Data folder; simulated when absent."),
                     models: Path = typer.Option(None, "--models", help="Models folder; trained when absent."),
                     overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs.")) -> None:
        """Compare Anger logic, kNN, GBT, MLP and CNN positioning, LED/CFD/CNN timing and the joint network."""
        from petspect.detector.pipeline import evaluate, get_preset

        from petspect._fileio import check_output_path

        check_output_path(out, overwrite=overwrite, inputs=[p for p in (data, models) if p is not None],
                          kind="detector-evaluate")  # the output first
        _check_inputs(get_preset(preset).name, data, models, joint=get_preset(preset).joint is not None)
        m = evaluate(get_preset(preset), out, data_dir=data, models_dir=models, device=get_device(ctx),
                     overwrite=overwrite)
        for name in ("anger", "knn", "gbt", "mlp", "cnn", "gbt_fan", "cnn_fan"):
            typer.echo(f"{name:8s} FWHM {m[name]['xy_fwhm_mm']:.2f} mm  MAE {m[name]['xy_mae_mm']:.2f} mm  "
                       f"|edge bias| {m[name]['edge_bias_mm']:.2f} mm")
        for name in ("led", "cfd", "cnn_timing"):
            typer.echo(f"{name:10s} CTR FWHM {m[name]['ctr_fwhm_ps']:.0f} ps")
        for name in ("joint", "joint_separate"):  # presets with a joint study (monolithic pairs)
            if name in m:
                r = m[name]
                typer.echo(f"{name:14s} xy FWHM {r['xy_fwhm_mm']:.2f} mm  DOI MAE {r['doi_mae_mm']:.2f} mm  energy "
                           f"{r['energy_resolution_pct']:.1f} %  CTR FWHM {r['ctr_fwhm_ps']:.0f} ps")
        typer.echo(f"report: {Path(out) / 'report.html'}")

    @det.command("limits")
    @handle_errors
    def limits_cmd(preset: str = typer.Option("quick", "--preset", help=PRESET_HELP),
                   out: Path = typer.Option(..., "--out", help="Output JSON file."),
                   pairs: int = typer.Option(2000, "--pairs", min=200, help="Simulated coincidences."),
                   first: int = typer.Option(None, "--first", min=2,
                                             help="Photons used by the linear and ML estimators (default: those "
                                                  "of the scintillation rise, 20-150)."),
                   seed: int = typer.Option(0, "--seed", help="Seed of the simulation."),
                   overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file.")) -> None:
        """Photon-level timing ceiling of a preset's timing pair (order statistics, linear, maximum likelihood)."""
        import json

        import numpy as np

        from petspect._fileio import atomic_write_text, check_output_path
        from petspect.detector.pipeline import get_preset
        from petspect.detector.timing_limits import photon_level_ctr

        p = get_preset(preset)
        target = check_output_path(out, overwrite=overwrite)
        _check_limits_memory(p, pairs)
        r = photon_level_ctr(p.timing, pairs, np.random.default_rng([seed, 40]), first=first)
        record = {"preset": p.name, "seed": seed, "timing": p.timing.to_dict(), "ctr_fwhm": r,
                  "method": "exact photon registration times, no SiPM pulse, noise or sampling; dt = 0; "
                            "see petspect.detector.timing_limits"}
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, json.dumps(record, indent=2))
        typer.echo(f"first photon {r['first_photon_ps']:.1f} ps, best order statistic "
                   f"{r['best_order_statistic_ps']:.1f} ps (k = {r['best_order_statistic_k']}), best linear "
                   f"{r['best_linear_ps']:.1f} ps, maximum likelihood {r['max_likelihood_ps']:.1f} ps (CTR FWHM); "
                   f"written to {target}")

    app.add_typer(det, name="detector")
