"""The main job, ``petspect demo``: simulate a cohort, train a denoiser, compare it with the baselines, report.

Steps (all seeded; every stage's wall time is recorded in ``summary.json``), on the evaluation protocol of
:mod:`petspect.evaluation`:

1. simulate the cohort (:func:`petspect.simulate.cohort.simulate_cohort`, the ``quick`` preset: small FDG
   torsos, full and 10 % dose, OSEM) into ``OUT/dataset``;
2. write the acceptance checks (``OUT/acceptance_checks.json``) before anything reads the test split;
3. train a small 2.5D U-Net (:mod:`petspect.tasks.denoise`) on the training subjects, 10 % dose OSEM (with
   the CT as anatomical channel) to full-dose OSEM, lesion-aware loss, best epoch on validation; the model
   folder is copied to ``OUT/model``;
4. tune every classical method (Gaussian, NLM, CT-guided filter, MAP-RDP re-reconstructed from the prompts,
   BM4D when importable) on the validation subjects with one search and one budget, and the network's
   options (test-time augmentation, total-activity preservation) on the same subjects;
5. score everything once on the test subjects (:func:`petspect.tasks.compare.compare_methods`): intervals
   over subjects, paired differences against the best classical method, CHO detectability from
   lesion-absent twins, the network's TTA uncertainty map and its calibration;
6. write ``OUT/metrics.json`` (method -> metric -> value, with ``<metric>_ci95``), ``OUT/summary.json``
   (settings, timings, tuned parameters, checks, ``inverse_crime``, ``test_scored``, curves, per-subject
   metrics) and ``OUT/report/index.html``.

``petspect bench`` runs the same study at clinical size (whole chest-abdomen torsos at 4 mm, the ``bench``
cohort preset), about an hour on a 2-core CPU.
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
OUTPUTS = ("dataset", "run", "model", "report", "metrics.json", "summary.json", "acceptance_checks.json")


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
        Include the MAP-RDP baseline (re-reconstructed from the prompts with beta and gamma tuned on validation).
    workers : int
        Simulation worker processes.
    budget_trials : int
        Tuning budget of every classical method (configurations scored on validation).
    tune_subjects : int, optional
        Validation subjects used for tuning (default all), the same for every method.
    detectability : bool
        Compute the CHO detectability from lesion-absent twins of the test subjects.
    detectability_subjects : int, optional
        Simulate lesion-absent twins for the first test subjects only (each twin is a whole simulation).
    """

    preset: str = "quick"
    subjects: int | None = None
    dose_percent: float = 10.0
    only_task_levels: bool = True
    method: str = "unet"
    denoise: DenoiseOptions = field(default_factory=DenoiseOptions)
    add_map: bool = True
    workers: int = 2
    budget_trials: int = 6
    tune_subjects: int | None = None
    detectability: bool = True
    detectability_subjects: int | None = None


def _demo() -> DemoSettings:
    """Minutes on a 2-core CPU (7 min idle): 20 subjects of the ``quick-4mm`` cohort (4 mm voxels), a 2.5D U-Net
    with the CT channel, 60 epochs.

    Every test subject gets its lesion-absent twin for the CHO: the first three of the six hold 3 lesion ROIs,
    fewer than the 2 x 5 channels the observer needs, and all six hold 14 (counted on the lesion maps alone).
    """
    return DemoSettings(preset="quick-4mm", subjects=20, tune_subjects=2, detectability_subjects=None,
                        denoise=DenoiseOptions(
        epochs=60, mode="2.5d", n_slices=5, patch_size=(64, 64), extra_keys=("ct",), lesion_weight=4.0,
        channels=(32, 64, 128, 256),
        train=TrainOverlay(network_kwargs={"num_res_units": 1}, residual=False, loss={"mse": 1.0},
                           patches_per_volume=24, batch_size=8, lr=2e-3)))


def _bench() -> DemoSettings:
    """Clinical size: the ``bench`` cohort (whole chest-abdomen torsos, 128 x 100 x 100 voxels of 4 mm), 20 subjects
    by default (``--subjects 40`` for the preset's full cohort on a many-core machine), the demo's network and
    training schedule with twice the patches per volume (the volumes are 7x longer), lesion-absent twins for the
    first 3 test subjects (128 slices hold many more lesion ROIs than the demo's 18).

    Sized so that the whole study runs on a 2-core CPU in about an hour (BENCHMARKS.md gives the measured time);
    cohort simulation has no GPU path, training and scoring follow ``--device``.
    """
    settings = _demo()
    settings.preset, settings.subjects, settings.workers = "bench", 20, os.cpu_count() or 2
    settings.detectability_subjects = 3
    settings.denoise = dataclasses.replace(
        settings.denoise, train=dataclasses.replace(settings.denoise.train, patches_per_volume=48))
    return settings


def _quick_4mm() -> DemoSettings:
    """The demo's settings (the demo runs on the ``quick-4mm`` cohort; the name is kept for the study preset)."""
    return _demo()


def _quick_6mm() -> DemoSettings:
    """The demo's study on the 6 mm ``quick`` cohort (the demo before it moved to 4 mm; 4.5 min on an idle VM)."""
    settings = _demo()
    settings.preset = "quick"
    return settings


def _tiny() -> DemoSettings:
    """Seconds, for tests: 4 subjects, one epoch of a small 2D U-Net."""
    return DemoSettings(subjects=4, add_map=False, workers=1, budget_trials=3, detectability=False,
                        denoise=DenoiseOptions(
                            epochs=1, mode="2d", patch_size=(32, 32), channels=(8, 16), lesion_weight=4.0,
                            train=TrainOverlay(patches_per_volume=2, batch_size=2)))


#: Named demo settings (factories of fresh :class:`DemoSettings`).
DEMO_PRESETS: Registry[Callable[[], DemoSettings]] = Registry(
    "demo preset", {"demo": _demo, "quick-4mm": _quick_4mm, "quick-6mm": _quick_6mm, "bench": _bench, "tiny": _tiny})


def demo_settings(kind: str = "demo") -> DemoSettings:
    """Named settings: ``demo`` (minutes on a 2-core CPU), ``bench`` (clinical size, about an hour on a 2-core CPU), ``tiny`` (tests)."""
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
    # MAP is re-reconstructed by the study with beta and gamma tuned on validation, not at the preset's beta
    config.recon.algorithms = [a for a in config.recon.algorithms if a != "map"] or ["osem"]
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



def _model_checksum(model_dir: str | os.PathLike) -> str:
    from petspect.simulate.layout import sha256_file

    p = Path(model_dir) / "model.pt"
    return sha256_file(p)[:16] if p.is_file() else "unknown"


def run_study(dataset: str | os.PathLike, task: Any, models: dict[str, tuple[Any, str]], out: Path, *,
              budget_trials: int = 6, tune_subjects: int | None = None, add_map: bool = True,
              detectability: bool = True, detectability_subjects: int | None = None, curves: bool = True,
              device: Any = None, history: Any = (),
              title: str = "petspect denoising study", description: str = "", facts: dict[str, Any] | None = None,
              log: Any = None) -> dict[str, Any]:
    """Tune every method on validation, score once on test, write metrics.json, the report and the checks.

    Parameters
    ----------
    dataset : path
    task : DenoiseTask
    models : dict name -> (TrainedModel, model folder)
    out : Path
        Folder that receives ``acceptance_checks.json``, ``metrics.json`` and ``report/index.html``.
    budget_trials : int
        Tuning budget of every classical method.
    tune_subjects : int, optional
        Validation subjects used for tuning (all by default).
    add_map : bool
        Include MAP-RDP (simulated PET datasets only).
    detectability, curves : bool
    device : optional
    history : sequence of dict
        The first model's training history (its epoch choice on validation goes into the record).
    title, description, facts, log

    Returns
    -------
    dict
        ``summary`` fields: checks, tuning, network choices, test scoring, inverse crime, calibration, metrics.
    """
    from petspect.evaluation import Budget, epoch_choice
    from petspect.tasks.baselines import available_baselines, describe_baselines, tune_baselines
    from petspect.tasks.compare import compare_methods, study_data, tune_network, validation_cases
    from petspect.tasks.denoise_report import acceptance_checks, judge, write_report

    say = log or (lambda s: None)
    times: dict[str, float] = {}
    write_json(out / "acceptance_checks.json", {"written_before_the_test_split_was_read": True,
                                                "checks": acceptance_checks()})
    data = study_data(dataset, task)
    t0 = time.perf_counter()
    say("tuning every method on the validation subjects (same search, same budget)")
    cases = validation_cases(dataset, task, tune_subjects)
    names = available_baselines(with_ct=all(c.ct is not None for c in cases),
                                with_map=add_map and all(c.reconstruct_map is not None for c in cases))
    budget = Budget(max_trials=int(budget_trials))
    tuned = tune_baselines(cases, names, budget=budget)
    choices = {n: tune_network(m, cases, device) for n, (m, _) in models.items()}
    times["tune_s"] = time.perf_counter() - t0
    tuning = describe_baselines(tuned)
    epochs = {}
    if history and any("val_psnr" in h for h in history):
        epochs[next(iter(models))] = epoch_choice(next(iter(models)), history).to_dict()
    scoring_config = {"task": dataclasses.asdict(task), "budget": dataclasses.asdict(budget),
                      "tune_subjects": tune_subjects, "detectability_subjects": detectability_subjects,
                      "baselines": {n: {"params": t.params, "preserve_total": t.preserve_total} for n, t in tuned.items()},
                      "networks": {n: {"model_sha256": _model_checksum(d), **dataclasses.asdict(choices[n])}
                                   for n, (_, d) in models.items()}}
    t0 = time.perf_counter()
    say("scoring every method once on the test subjects")
    comparison = compare_methods(dataset, task, baselines=tuned, models={n: (m, choices[n]) for n, (m, _) in models.items()},
                                 scoring_config=scoring_config, curves=curves, detectability=detectability,
                                 detectability_subjects=detectability_subjects, device=device)
    times["test_s"] = time.perf_counter() - t0
    first = next(iter(models))
    checks = judge(comparison, first)
    write_json(out / "metrics.json", comparison.metrics)
    info = data.describe()
    t0 = time.perf_counter()
    write_report(out / "report" / "index.html", comparison, model=first, title=title, description=description,
                 tuning=tuning, history=history, checks=checks,
                 facts={**(facts or {}), "test subjects": ", ".join(comparison.subjects),
                        "test_scored (this configuration, this test split)": comparison.scoring["test_scored"],
                        "inverse_crime": info["inverse_crime"], "comparator (best classical on validation)":
                        comparison.comparator},
                 network_choices={n: dataclasses.asdict(c) for n, c in choices.items()})
    times["report_s"] = time.perf_counter() - t0
    return {"checks": checks, "acceptance_checks": acceptance_checks(), "baselines": tuning,
            "network_choices": {n: dataclasses.asdict(c) for n, c in choices.items()}, "epoch_choice": epochs,
            "comparator": comparison.comparator, "test_scored": comparison.scoring["test_scored"],
            "test_scoring": comparison.scoring, "inverse_crime": info["inverse_crime"],
            "simulation": info["simulation"], "uncertainty": {"method": "TTA spread", **comparison.calibration},
            "detectability": comparison.cho, "curves": comparison.curves, "subjects": comparison.subjects,
            "per_subject": comparison.per_subject, "times": times, "metrics": comparison.metrics}


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
    from petspect.tasks.denoise import DenoiseTask, denoise_config, train_denoiser
    from petspect.tasks.denoise_report import acceptance_checks
    from petspect.train import load_model

    settings = settings or demo_settings("demo")
    say = log or (lambda s: None)
    out_p = Path(out)
    sim_dev = cohort_device(simulation_device)  # refuse an unusable device before touching any file
    if device is not None:
        require_device(device)
    _prepare(out_p, overwrite)
    write_json(out_p / "acceptance_checks.json", {"written_before_the_test_split_was_read": True,
                                                  "checks": acceptance_checks()})
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
    model = load_model(out_p / "model", device=device)
    extras = [f"anatomical channels {', '.join(config.extra_keys)}"] if config.extra_keys else []
    if config.weight_key:
        extras.append(f"lesion-aware loss ({config.weight_key} weighed {config.weight_factor:g}x)")
    description = (f"{settings.preset} cohort, {settings.dose_percent:g} % dose OSEM -> full-dose OSEM. Model: "
                   f"{name}, {config.mode}{''.join(', ' + e for e in extras)}, trained {len(result.history)} epochs "
                   "on the training subjects (best validation epoch kept); every classical method tuned on the "
                   "validation subjects with the same search and budget; the network's test-time augmentation and "
                   "total-activity preservation chosen on the same subjects; the lesion weight and the CT channel "
                   "are fixed design choices of the demo, not tuned.")
    study = run_study(dataset, task, {name: (model, str(out_p / "model"))}, out_p, budget_trials=settings.budget_trials,
                      tune_subjects=settings.tune_subjects, add_map=settings.add_map,
                      detectability=settings.detectability,
                      detectability_subjects=settings.detectability_subjects, device=device, history=result.history,
                      title="petspect demo: low-dose PET denoising", description=description,
                      facts={"dataset": str(dataset), **{k: round(v, 1) for k, v in times.items()}}, log=say)
    times.update(study.pop("times"))
    times["total_s"] = time.perf_counter() - t_all
    metrics = study.pop("metrics")
    summary = {"settings": dataclasses.asdict(settings), "task": dataclasses.asdict(task), "model": name,
               "model_dir": str(out_p / "model"), "dataset": str(dataset), "times": times, **study,
               "history": result.history,
               "conventions": "see petspect.tasks.evaluate: generic metrics use data_range = reference range; "
                              "*_challenge the ultra-low-dose PET challenge; biases vs the full-dose reference; "
                              "intervals: 95 % percentile bootstrap over test subjects (petspect.evaluation)"}
    write_json(out_p / "summary.json", summary)
    say(f"done in {times['total_s']:.0f} s: {out_p / 'report' / 'index.html'}")
    return {**summary, "metrics": metrics}
