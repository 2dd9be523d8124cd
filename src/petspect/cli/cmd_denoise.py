"""``petspect denoise train | evaluate | apply``: low-count PET/SPECT denoising (see petspect.tasks.denoise)."""

from __future__ import annotations

from pathlib import Path

import typer

from petspect.cli._common import get_device, handle_errors

denoise_app = typer.Typer(help="Low-dose / fast-scan PET and SPECT denoising: train, evaluate, apply.",
                          no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(denoise_app, name="denoise")


def _parse_pairs(items: list[str] | None, what: str) -> dict[str, str]:
    from petspect.errors import InputError

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise InputError(f"{what} must be KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _set_value(text: str):
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


@denoise_app.command("train")
@handle_errors
def train(
    ctx: typer.Context,
    config: Path = typer.Argument(None, help="A TrainConfig file (.toml or .json); or give --dataset and --out."),
    dataset: Path = typer.Option(None, "--dataset", help="Dataset folder (dataset.json)."),
    out: Path = typer.Option(None, "--out", help="Run folder (the model goes to OUT/model)."),
    method: str = typer.Option("unet", "--method", help="unet, resnet, cgan, cyclegan or n2n (noise2noise)."),
    source: str = typer.Option("dose", "--source", help="dose (thinned counts) or time (fast scan)."),
    level: float = typer.Option(10.0, "--level", help="Dose or scan-time percentage of the input."),
    algorithm: str = typer.Option("osem", "--algorithm", help="Reconstruction algorithm of input and target."),
    extra: list[str] = typer.Option(None, "--extra", help="Anatomical channel (ct, mr_t1, mu_511); repeatable."),
    mode: str = typer.Option("2.5d", "--mode", help="2d, 2.5d or 3d."),
    epochs: int = typer.Option(30, "--epochs", help="Training epochs."),
    lesion_weight: float = typer.Option(None, "--lesion-weight",
                                        help="Weigh the dataset's lesion map (dilated 1 voxel) this much in the loss."),
    set_: list[str] = typer.Option(None, "--set", help="Any TrainConfig field, KEY=JSON_VALUE (repeatable)."),
    show_config: bool = typer.Option(False, "--show-config", help="Print the configuration as JSON and exit."),
) -> None:
    """Train a denoiser (a configuration of petspect.train's Trainer); resumes an interrupted run."""
    import json

    from petspect.errors import ConfigError
    from petspect.tasks.denoise import DenoiseTask, denoise_config, train_denoiser
    from petspect.train import load_config

    overrides = {k: _set_value(v) for k, v in _parse_pairs(set_, "--set").items()}
    if config is not None:
        cfg = load_config(config)
        if overrides:
            cfg = cfg.replace(**overrides)
    else:
        if dataset is None or out is None:
            raise ConfigError("give a configuration file, or --dataset and --out")
        cfg = denoise_config(dataset, out, method=method, task=DenoiseTask(source, level, algorithm),
                             extra_keys=tuple(extra or ()), mode=mode, epochs=epochs, lesion_weight=lesion_weight,
                             **overrides)
    if show_config:
        typer.echo(json.dumps(cfg.to_dict(), indent=2))
        return
    result = train_denoiser(cfg, device=get_device(ctx))
    best = f", best epoch {result.best_epoch} ({cfg.val_metric} {result.best_value:.4g})" if result.best_epoch is not None else ""
    typer.echo(f"trained {len(result.history)} epochs{best}; model: {result.model_dir}")


@denoise_app.command("evaluate")
@handle_errors
def evaluate(
    ctx: typer.Context,
    dataset: Path = typer.Option(..., "--dataset", help="Dataset folder (dataset.json), e.g. a cohort with a new seed."),
    model: list[Path] = typer.Option(..., "--model", help="Model folder; repeatable (all for the same task)."),
    out: Path = typer.Option(..., "--out", help="Folder for metrics.json, summary.json and report/index.html."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder's files."),
    budget: int = typer.Option(6, "--budget", help="Tuning budget of every classical method (validation trials)."),
    tune_subjects: int = typer.Option(None, "--tune-subjects", help="Validation subjects used for tuning (all)."),
    no_map: bool = typer.Option(False, "--no-map", help="Leave out MAP-RDP (its tuning re-reconstructs the data)."),
    no_detectability: bool = typer.Option(False, "--no-detectability",
                                          help="Skip the CHO detectability (it simulates lesion-absent twins)."),
) -> None:
    """Score models on a dataset with the evaluation protocol: every baseline tuned on ITS validation split,
    the test split read once (test_scored), intervals over subjects, paired differences, CHO, uncertainty."""
    import dataclasses

    from petspect._fileio import check_output_path
    from petspect.errors import ConfigError
    from petspect.tasks.demo import run_study, write_json
    from petspect.tasks.denoise import task_from_key
    from petspect.train import load_model

    out_p = check_output_path(out, overwrite=overwrite, inputs=[dataset, *model])
    out_p.mkdir(parents=True, exist_ok=True)
    device = get_device(ctx)
    models = {}
    for m in model:
        loaded = load_model(m, device=device)
        models[str(loaded.card.get("data", {}).get("method") or m.name)] = (loaded, str(m))
    tasks = {task_from_key(mm.input_keys[0]) for mm, _ in models.values()}
    if len(tasks) != 1:
        raise ConfigError(f"the models were trained for different inputs: {sorted(t.input_key for t in tasks)}")
    task = tasks.pop()
    study = run_study(dataset, task, models, out_p, budget_trials=budget, tune_subjects=tune_subjects,
                      add_map=not no_map, detectability=not no_detectability, device=device,
                      title="petspect denoising evaluation",
                      description=f"{dataset}: {task.input_key} against {task.reference_key}; every classical method "
                                  "tuned on this dataset's validation split.", log=typer.echo)
    metrics = study.pop("metrics")
    write_json(out_p / "summary.json", {"dataset": str(dataset), "task": dataclasses.asdict(task),
                                        "models": {n: d for n, (_, d) in models.items()}, **study})
    for method, row in metrics.items():
        if "psnr_db" in row:
            ci = row.get("psnr_db_ci95") or [float("nan")] * 2
            typer.echo(f"{method:16s} PSNR {row['psnr_db']:.2f} dB [{ci[0]:.2f}, {ci[1]:.2f}]")
    for check in study["checks"]:
        state = {True: "passed", False: "FAILED", None: "not evaluated"}[check["passed"]]
        typer.echo(f"check {check['check']}: {state} {check.get('detail') or ''}".rstrip())
    typer.echo(f"test_scored {study['test_scored']}; wrote {out_p / 'metrics.json'} and {out_p / 'report' / 'index.html'}")


@denoise_app.command("apply")
@handle_errors
def apply(
    ctx: typer.Context,
    model: Path = typer.Option(..., "--model", help="Model folder."),
    input_: list[Path] = typer.Option(None, "--input", help="DICOM series folder or NIfTI file (Bq/mL or SUV); "
                                                            "repeatable."),
    inputs_file: Path = typer.Option(None, "--inputs", help="File listing the inputs, one per line: "
                                                            "INPUT [KEY=PATH ...] (anatomical channels); # comments."),
    out: Path = typer.Option(..., "--out", help="One input: output .nii/.nii.gz, or a folder for a derived DICOM "
                                                "series. Several: a folder, one output per input named after it."),
    out_format: str = typer.Option("same", "--out-format", help="Several inputs: same (DICOM for DICOM input, "
                                                                "else NIfTI), nifti or dicom."),
    extra: list[str] = typer.Option(None, "--extra", help="Anatomical channel KEY=PATH (e.g. ct=ct_dicom/); "
                                                          "one input only (a list file gives them per line)."),
    overlap: float = typer.Option(0.25, "--overlap", help="Sliding-window overlap in [0, 1)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    tta: bool = typer.Option(False, "--tta", help="Average over in-plane flips and turns (8x the network passes)."),
    preserve_total: bool = typer.Option(False, "--preserve-total", help="Scale the output to the input's total activity."),
    executor: str = typer.Option("local", "--executor", help="local (this process) or ray (a pool of Ray actors; "
                                                             "needs the ray extra)."),
    ray_address: str = typer.Option(None, "--ray-address", help="Ray cluster (auto, HOST:6379); default: a local "
                                                                "Ray with --workers CPUs, stopped at the end."),
    workers: int = typer.Option(None, "--workers", min=1, help="Ray actors (default: one per CPU, at most one "
                                                               "per input)."),
    anonymise: bool = typer.Option(False, "--anonymise", "--anonymize",
                                   help="DICOM outputs: de-identify (PS3.15 basic profile, keyed pseudonyms)."),
    secret_file: Path = typer.Option(None, "--secret-file", help="Key of the pseudonyms (default: beside OUT)."),
    uncertainty: bool = typer.Option(False, "--uncertainty",
                                     help="Also write the TTA standard-deviation map beside the output (X_sd.nii.gz)."),
) -> None:
    """Denoise real images with sliding windows, keeping their geometry, unit and SUV facts."""
    from petspect.errors import InputError
    from petspect.tasks.apply import ApplyOptions, Study, apply_many, read_study_list

    studies = [Study(p) for p in input_ or []] + (read_study_list(inputs_file) if inputs_file is not None else [])
    if not studies:
        raise InputError("give --input (repeatable) or --inputs FILE")
    pairs = {k: Path(v) for k, v in _parse_pairs(extra, "--extra").items()}
    if pairs:
        if len(studies) != 1 or inputs_file is not None:
            raise InputError("--extra goes with one --input; give each study's channels in the --inputs file")
        studies = [Study(studies[0].input, pairs)]
    single = len(studies) == 1 and inputs_file is None
    if uncertainty:  # h4: TTA mean and its spread (petspect.tasks.uncertainty), one input
        from petspect.tasks.uncertainty import apply_with_uncertainty

        if not single or executor != "local" or anonymise:
            raise InputError("--uncertainty takes one --input and the local executor, without --anonymise")
        info = apply_with_uncertainty(model, studies[0].input, out, extra=studies[0].extra, overwrite=overwrite,
                                      overlap=overlap, device=get_device(ctx), preserve_total=preserve_total)
        typer.echo(f"units: {info['conversion']}; uncertainty: {info['uncertainty_method']}")
        typer.echo(f"wrote {info['output']} and {info['uncertainty']} ({info['unit']}, {info['seconds']:.1f} s)")
        return
    secret = None
    if anonymise:  # the key file goes beside OUT: check OUT first
        from petspect._fileio import check_output_path
        from petspect.io import output_kind
        from petspect.io.anonymise import secret_for_output

        check_output_path(out, overwrite=overwrite, inputs=[s.input for s in studies] + [model],
                          kind=output_kind(out) if single else None)
        secret = secret_for_output(out, secret_file)[0].secret
    options = ApplyOptions(overlap=overlap, tta=tta, preserve_total=preserve_total, anonymise_secret=secret)
    infos = apply_many(model, studies, outputs=[out] if single else None, out_dir=None if single else out,
                       out_format=out_format, overwrite=overwrite, options=options, device=get_device(ctx),
                       executor=executor, ray_address=ray_address, workers=workers)
    for info in infos:
        if single:
            typer.echo(f"units: {info['conversion']}")
        typer.echo(f"wrote {info['output']} ({info['unit']}, shape {info['shape']}, {info['seconds']:.1f} s)")
