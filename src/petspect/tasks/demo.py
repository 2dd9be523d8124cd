"""The main job, ``petspect demo``: simulate a cohort, train a denoiser, compare it with the baselines, report.

Steps (all seeded; every stage's wall time is recorded in ``summary.json``):

1. simulate the cohort (:func:`petspect.simulate.cohort.simulate_cohort`, the ``quick`` preset: small FDG
   torsos, full and 10 % dose, OSEM and MAP with a relative-difference prior) into ``OUT/dataset``;
2. train a small 2.5D U-Net (:mod:`petspect.tasks.denoise`) on the training subjects, 10 % dose OSEM (with
   the CT as anatomical channel) to full-dose OSEM, with a lesion-aware loss (lesions weighed 4x), in
   ``OUT/run``; the model folder is copied to ``OUT/model``;
3. tune the Gaussian post-filter and non-local means (and BM4D when importable) on the validation subjects;
4. evaluate everything on the held-out test subjects (:mod:`petspect.tasks.compare`), the U-Net averaged over
   in-plane flips and turns (test-time augmentation) and scaled to the input's total activity;
5. write ``OUT/metrics.json`` (method -> metric -> value), ``OUT/summary.json`` (settings, timings, tuned
   parameters, acceptance checks, noise-bias curves, per-subject metrics) and ``OUT/report/index.html``.

``petspect bench`` runs the same at full size (``wholebody-fdg`` preset, larger network, more epochs), meant
for a GPU.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from pathlib import Path
from typing import Any

from petspect._device import cohort_device, require_device
from petspect._registry import Registry
from petspect.errors import OutputExistsError
from petspect.tasks.denoise import DenoiseOptions
from petspect.train.config import TrainOverlay

#: what the demo writes into its folder (removed first with overwrite=True; nothing else is touched)
OUTPUTS = ("dataset", "run", "model", "report", "metrics.json", "summary.json")


@dataclass
class DemoSettings:
    """Sizes of a demo run (see :func:`demo_settings` for the named ones).

    Attributes
    ----------
    preset : str
        Cohort preset of :mod:`petspect.simulate.presets`.
    subjects : int, optional
        Override of the preset's number of subjects.
    dose_percent : float
        Low-dose level of the task (added to the simulated levels when missing).
    only_task_levels : bool
        Simulate only the full dose and ``dose_percent`` (saves reconstructions of unused levels).
    method : str
        Denoising method (:data:`petspect.tasks.denoise.METHODS`).
    denoise : DenoiseOptions
        How the network is trained (:class:`petspect.tasks.denoise.DenoiseOptions`: mode, epochs, channels,
        lesion weight, and a :class:`~petspect.train.config.TrainOverlay` of further training changes).
    add_map : bool
        Also reconstruct with MAP (relative-difference prior), the MAP baseline.
    workers : int
        Simulation worker processes.
    tta : bool
        Evaluate the model with test-time augmentation (in-plane flips and turns averaged,
        :func:`petspect.train.predict_volume`).
    preserve_total : bool
        Scale the model's output to the input's total activity (:func:`petspect.tasks.denoise.denoise_volume`).
    """

    preset: str = "quick"
    subjects: int | None = None
    dose_percent: float = 10.0
    only_task_levels: bool = True
    method: str = "unet"
    denoise: DenoiseOptions = field(default_factory=DenoiseOptions)
    add_map: bool = True
    workers: int = 2
    tta: bool = False
    preserve_total: bool = False


def _demo() -> DemoSettings:
    """Minutes on a 2-core CPU: 20 quick-cohort subjects, a 2.5D U-Net with the CT channel, 150 epochs."""
    return DemoSettings(subjects=20, tta=True, preserve_total=True, denoise=DenoiseOptions(
        epochs=150, mode="2.5d", n_slices=5, patch_size=(64, 64), extra_keys=("ct",), lesion_weight=4.0,
        channels=(32, 64, 128, 256),
        train=TrainOverlay(network_kwargs={"num_res_units": 1}, residual=False, loss={"mse": 1.0},
                           patches_per_volume=24, batch_size=8, lr=2e-3)))


def _bench() -> DemoSettings:
    """Full size, meant for a GPU: the wholebody-fdg cohort, 128x128 patches, early stopping."""
    return DemoSettings(preset="wholebody-fdg", workers=os.cpu_count() or 2, only_task_levels=False, tta=True,
                        preserve_total=True, denoise=DenoiseOptions(
                            epochs=150, mode="2.5d", n_slices=5, patch_size=(128, 128), extra_keys=("ct",),
                            lesion_weight=4.0, channels=(32, 64, 128, 256),
                            train=TrainOverlay(patches_per_volume=64, batch_size=16, lr=5e-4, patience=30,
                                               num_workers=4)))


def _tiny() -> DemoSettings:
    """Seconds, for tests: 4 subjects, one epoch of a small 2D U-Net."""
    return DemoSettings(subjects=4, add_map=False, workers=1, tta=True, denoise=DenoiseOptions(
        epochs=1, mode="2d", patch_size=(32, 32), channels=(8, 16), lesion_weight=4.0,
        train=TrainOverlay(patches_per_volume=2, batch_size=2)))


#: Named demo settings (factories of fresh :class:`DemoSettings`).
DEMO_PRESETS: Registry[Callable[[], DemoSettings]] = Registry("demo preset",
                                                              {"demo": _demo, "bench": _bench, "tiny": _tiny})


def demo_settings(kind: str = "demo") -> DemoSettings:
    """Named settings: ``demo`` (minutes on a 2-core CPU), ``bench`` (full size, GPU), ``tiny`` (tests)."""
    return DEMO_PRESETS.lookup(kind)()


def _prepare(out: Path, overwrite: bool) -> None:
    from petspect._fileio import check_not_protected, is_petspect_output, write_marker

    check_not_protected(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError("exists and is not a folder", path=out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise OutputExistsError("is not empty; choose another folder or pass --overwrite", path=out)
        if not is_petspect_output(out, "demo"):
            raise OutputExistsError("is not a folder `petspect demo` wrote; --overwrite never clears other "
                                    "folders: choose a new or empty folder", path=out)
        for name in OUTPUTS:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, "demo")


def simulate_dataset(settings: DemoSettings, folder: Path, *, device: Any = None) -> Path:
    """Simulate the settings' cohort into ``folder`` on ``device`` (default the CPU; resumes an interrupted
    run); returns the folder."""
    from petspect.simulate.cohort import simulate_cohort
    from petspect.simulate.presets import get_preset

    config = get_preset(settings.preset)
    if settings.subjects is not None:
        config.subjects = int(settings.subjects)
    if settings.add_map and "map" not in config.recon.algorithms:
        config.recon.algorithms = [*config.recon.algorithms, "map"]
    if settings.only_task_levels:
        config.dose_percents, config.time_percents = [100.0, float(settings.dose_percent)], []
    elif float(settings.dose_percent) not in [float(p) for p in config.dose_percents]:
        config.dose_percents = [*config.dose_percents, float(settings.dose_percent)]
    simulate_cohort(config.validate(), folder, workers=settings.workers, device=device)
    return folder


def write_json(path: Path, data: Any) -> None:
    """Write strict JSON atomically (NaN and infinities become null; :mod:`petspect._json`)."""
    from petspect._json import write_json as _write_json

    _write_json(path, data, nonfinite="null")


def run_demo(out: str | os.PathLike, *, settings: DemoSettings | None = None, overwrite: bool = False,
             device: Any = None, dataset: str | os.PathLike | None = None, log: Any = None,
             simulation_device: Any = None) -> dict[str, Any]:
    """Run the whole demo into ``out`` (see the module docstring).

    Parameters
    ----------
    out : path
        Output folder: new or empty, or with ``overwrite`` the demo's own outputs are replaced.
    settings : DemoSettings, optional
        Default :func:`demo_settings` ("demo").
    overwrite : bool
    device : torch.device or str, optional
        Training and inference device (default: CUDA when present, else the CPU).
    dataset : path, optional
        Use this simulated dataset instead of simulating one (it must have the task's keys).
    log : callable(str), optional
        Receives one line per stage (the CLI prints them).
    simulation_device : torch.device or str, optional
        Where the cohort is simulated: the CPU (default); another device is refused with InputError
        (:func:`petspect._device.cohort_device`) before any file is touched.

    Returns
    -------
    dict
        The summary written to ``summary.json`` (plus ``"metrics"``).
    """
    from petspect.tasks.baselines import describe_baselines, tune_baselines
    from petspect.tasks.compare import compare_methods, validation_pairs
    from petspect.tasks.denoise import DenoiseTask, denoise_config, train_denoiser
    from petspect.tasks.denoise_report import judge, write_report
    from petspect.train import load_model

    settings = settings or demo_settings("demo")
    say = log or (lambda s: None)
    out_p = Path(out)
    sim_dev = cohort_device(simulation_device)  # refuse an unusable device before touching any file
    if device is not None:
        require_device(device)
    _prepare(out_p, overwrite)
    times: dict[str, float] = {}
    t_all = t0 = time.perf_counter()
    if dataset is None:
        say(f"simulating the {settings.preset} cohort into {out_p / 'dataset'} on {sim_dev}")
        dataset = simulate_dataset(settings, out_p / "dataset", device=sim_dev)
    times["simulate_s"] = time.perf_counter() - t0
    task = DenoiseTask("dose", settings.dose_percent, "osem")
    name = settings.method
    t0 = time.perf_counter()
    say(f"training {name} ({task.input_key} -> {task.reference_key})")
    config = denoise_config(dataset, out_p / "run", method=name, task=task, options=settings.denoise)
    result = train_denoiser(config, device=device)
    shutil.copytree(result.model_dir, out_p / "model")
    times["train_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    say("tuning the baselines on the validation subjects")
    tuned = tune_baselines(validation_pairs(dataset, task))
    times["tune_baselines_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    say("evaluating on the test subjects")
    model = load_model(out_p / "model", device=device)
    comparison = compare_methods(dataset, task, baselines=tuned, models={name: model}, split="test", device=device,
                                 tta=settings.tta, preserve_total=settings.preserve_total)
    times["evaluate_s"] = time.perf_counter() - t0
    checks = judge(comparison, name)
    tuning = describe_baselines(tuned)
    write_json(out_p / "metrics.json", comparison.metrics)
    t0 = time.perf_counter()
    extras = [f"anatomical channels {', '.join(config.extra_keys)}"] if config.extra_keys else []
    if config.weight_key:
        extras.append(f"lesion-aware loss ({config.weight_key} weighed {config.weight_factor:g}x)")
    if settings.tta:
        extras.append("test-time augmentation (8 in-plane flips/turns averaged)")
    if settings.preserve_total:
        extras.append("output scaled to the input's total activity")
    description = (f"{settings.preset} cohort ({len(comparison.subjects)} test subjects), {settings.dose_percent:g} % "
                   f"dose OSEM -> full-dose OSEM. Model: {name}, {config.mode}"
                   f"{''.join(', ' + e for e in extras)}, trained {len(result.history)} epochs on the training "
                   f"subjects; baselines tuned on the validation subjects.")
    times["total_s"] = time.perf_counter() - t_all
    write_report(out_p / "report" / "index.html", comparison, model=name, title="petspect demo: low-dose PET denoising",
                 description=description, tuning=tuning, history=result.history, checks=checks,
                 facts={"dataset": str(dataset), "test subjects": ", ".join(comparison.subjects),
                        **{k: round(v, 1) for k, v in times.items()}})
    times["report_s"] = time.perf_counter() - t0
    times["total_s"] = time.perf_counter() - t_all
    summary = {"settings": dataclasses.asdict(settings), "task": dataclasses.asdict(task), "model": name,
               "model_dir": str(out_p / "model"), "dataset": str(dataset), "times": times, "checks": checks,
               "baselines": tuning, "curves": comparison.curves, "subjects": comparison.subjects,
               "per_subject": comparison.per_subject, "history": result.history,
               "conventions": "see petspect.tasks.evaluate: generic metrics use data_range = reference range; "
                              "*_challenge the ultra-low-dose PET challenge; biases vs the full-dose reference"}
    write_json(out_p / "summary.json", summary)
    say(f"done in {times['total_s']:.0f} s: {out_p / 'report' / 'index.html'}")
    return {**summary, "metrics": comparison.metrics}
