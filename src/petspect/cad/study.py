"""``petspect study cad``: the diagnostic tasks, every method on the same subject-wise folds.

For each task (``ad``, ``pd``, ``mpi``) a cohort is simulated (:mod:`petspect.cad.cohort`), every method is
cross-validated on the same stratified folds (:mod:`petspect.cad.crossval`) and scored on its out-of-fold
predictions. ``metrics.json`` keys are ``<task>/<method>``:

* ``ad/suvr``, ``ad/zscore``, ``ad/svm_regional``, ``ad/cnn``;
* ``pd/sbr``, ``pd/zscore``, ``pd/svm_regional``, ``pd/cnn``;
* ``mpi/sss``, ``mpi/zscore`` (polar-map extent x severity against normals), ``mpi/svm_regional``, ``mpi/cnn``;

each with ``auc``, ``auc_ci95``, ``sensitivity``, ``specificity``, ``brier`` (with ``_ci95``), and, for
every method but the task's best classical one (highest out-of-fold AUC among the non-CNN methods),
``delta_auc`` / ``delta_auc_ci95`` against it (``delta_vs`` names it). Choosing the comparator on the
same out-of-fold results favours the classical side, so a CNN "win" is conservative.

Acceptance checks are written before any method is scored; a failed check is reported as FAILED.
There is no held-out test split: every subject is scored exactly once, out of fold, and the cohort is
regenerated from its seed on each run (``test_scored`` = 1; nothing is stored between runs).

The folder also holds ``subjects.csv`` (truth and every method's out-of-fold score and probability per
subject), ``reliability.json`` (reliability tables) and ``models/<task>.npz`` + ``models/<task>_cnn.pt``
(the normal database, thresholds and Platt maps fitted on all subjects, and the CNN trained on all
subjects), which ``petspect cad`` applies to new images.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from petspect.cad.cnn import CnnSettings
from petspect.cad.cohort import CadTask, CohortConfig
from petspect.errors import ConfigError

__all__ = ["CadStudySettings", "study_settings", "run_cad_study", "CLASSICAL_METHODS"]

#: the classical methods of each task, in report order
CLASSICAL_METHODS = {CadTask.AD: ("suvr", "zscore", "svm_regional"), CadTask.PD: ("sbr", "zscore", "svm_regional"),
                     CadTask.MPI: ("sss", "zscore", "svm_regional")}


@dataclass
class CadStudySettings:
    """One preset of the study: cohort sizes and grids per task, folds, the CNN, bootstrap resamples."""

    preset: str
    tasks: tuple[str, ...] = ("ad", "pd", "mpi")
    n_per_class: int = 24
    brain_fine_voxel_mm: float = 2.5
    mpi_fine_voxel_mm: float = 3.0
    factor: int = 2
    n_folds: int = 4
    cnn: CnnSettings = field(default_factory=CnnSettings)
    n_boot: int = 2000
    occlusion_subjects: int = 4
    seed: int = 0
    reference: str = "cerebellum"


def study_settings(preset: str) -> CadStudySettings:
    """The settings of ``tiny`` (seconds: tests), ``quick`` (<= ~10 min, 2-core CPU) or ``full`` (a GPU).

    ``quick``: 40 subjects per class and task, brain phantoms at 2.5 mm imaged at 5 mm, MPI at 3 mm imaged at
    6 mm, 4 folds, a DenseNet of 3 blocks x 2 layers (growth 8, ~26 k weights), 40 epochs (the first
    version, 24 per class and 20 epochs, left the CNN under-trained: see BENCHMARKS.md). ``full``: 100 per
    class, 1.5 mm -> 3 mm brain and 2 mm -> 4 mm MPI, 5 folds, MONAI DenseNet121's block layout, 60 epochs.
    """
    name = str(preset).strip().lower()
    if name not in ("tiny", "quick", "full"):
        raise ConfigError(f"unknown study preset {preset!r}; choose one of ['tiny', 'quick', 'full']")
    if name == "tiny":
        return CadStudySettings("tiny", n_per_class=6, brain_fine_voxel_mm=4.0, mpi_fine_voxel_mm=4.0, n_folds=2,
                                cnn=CnnSettings(epochs=2, init_features=4, growth_rate=4, block_config=(1, 1),
                                                val_fraction=0.34), n_boot=200, occlusion_subjects=1)
    if name == "quick":
        return CadStudySettings("quick", n_per_class=40, n_folds=4, cnn=CnnSettings(epochs=40))
    return CadStudySettings("full", n_per_class=100, brain_fine_voxel_mm=1.5, mpi_fine_voxel_mm=2.0, n_folds=5,
                            cnn=CnnSettings(epochs=60, init_features=64, growth_rate=32, block_config=(6, 12, 24, 16),
                                            batch_size=16, lr=1e-3))  # DenseNet121


def _methods(task: CadTask, s: CadStudySettings, device: str) -> dict[str, Callable[[], Any]]:
    from petspect.cad.baselines import FixedScore, RegionalSVM, SummedScoreMethod, ZScoreMethod
    from petspect.cad.cnn import CnnMethod

    zt = 2.5 if task is CadTask.MPI else 2.0
    first = {CadTask.AD: ("suvr", lambda: FixedScore("suvr")), CadTask.PD: ("sbr", lambda: FixedScore("sbr")),
             CadTask.MPI: ("sss", SummedScoreMethod)}[task]
    return {first[0]: first[1], "zscore": lambda: ZScoreMethod(zt), "svm_regional": lambda: RegionalSVM(s.seed),
            "cnn": lambda: CnnMethod(dataclasses.replace(s.cnn, seed=s.seed), device=device)}


def _checks() -> list:
    from petspect.evaluation.study import Check

    return [Check("every method of every task has an AUC with a 95 % bootstrap interval"),
            Check("AD: the CNN's AUC is not below the best classical AUC by more than 0.05 (point estimates)"),
            Check("PD: the CNN's AUC is not below the best classical AUC by more than 0.05 (point estimates)"),
            Check("MPI: the CNN's AUC is not below the best classical AUC by more than 0.05 (point estimates)"),
            Check("the CNN beats the best classical method (paired delta_auc_ci95 above 0) in at least one task"),
            Check("every classical method's out-of-fold AUC exceeds 0.5 with its interval's lower bound "
                  "(the baselines detect disease)")]


def _evaluate_checks(checks: list, metrics: dict[str, dict[str, Any]], tasks: list[CadTask]) -> None:
    checks[0].passed = all(r.get("auc_ci95") is not None and r.get("auc") is not None for r in metrics.values())
    cnn_wins = []
    for i, t in enumerate((CadTask.AD, CadTask.PD, CadTask.MPI)):
        c = checks[1 + i]
        if t not in tasks:
            c.passed, c.detail = None, "task not run in this preset"
            continue
        best = max(CLASSICAL_METHODS[t], key=lambda m: metrics[f"{t.value}/{m}"]["auc"])
        cnn = metrics[f"{t.value}/cnn"]
        c.passed = bool(cnn["auc"] >= metrics[f"{t.value}/{best}"]["auc"] - 0.05)
        c.detail = (f"cnn {cnn['auc']:.3f} vs {best} {metrics[f'{t.value}/{best}']['auc']:.3f}; delta "
                    f"{cnn['delta_auc']:+.3f} [{cnn['delta_auc_ci95'][0]:+.3f}, {cnn['delta_auc_ci95'][1]:+.3f}]")
        cnn_wins.append(cnn["delta_auc_ci95"][0] > 0)
    checks[4].passed = any(cnn_wins)
    lows = {k: r["auc_ci95"][0] for k, r in metrics.items() if not k.endswith("/cnn")}
    checks[5].passed = all(v > 0.5 for v in lows.values())
    checks[5].detail = "lower bounds: " + ", ".join(f"{k} {v:.2f}" for k, v in lows.items())


def _fit_final(task: CadTask, feats: Any, oofs: dict, s: CadStudySettings, device: str, models_dir: Path,
               grid: Any) -> dict:
    """Methods fitted on all subjects for ``petspect cad``: normal database, thresholds, Platt maps, the CNN."""
    import torch

    from petspect.cad.baselines import NormalDatabase
    from petspect.cad.cnn import CnnMethod
    from petspect.cad.roc import youden_threshold

    y = feats.labels
    db = NormalDatabase(feats.maps[y == 0])
    save: dict[str, Any] = {"task": task.value, "db_mean": db.mean, "db_sd": db.sd, "db_floor": db._floor,
                            "target": feats.target, "z_threshold": 2.5 if task is CadTask.MPI else 2.0,
                            "reference": feats.info.get("reference", ""), "grid_shape": np.asarray(grid.shape),
                            "grid_spacing_mm": np.asarray(grid.spacing_mm), "grid_origin_mm": np.asarray(grid.origin_mm),
                            "methods": np.asarray(list(oofs))}
    for name, oof in oofs.items():  # thresholds and Platt maps on the out-of-fold scores of all subjects
        from sklearn.linear_model import LogisticRegression

        mu, sd = float(oof.score.mean()), float(oof.score.std()) or 1.0
        lr = LogisticRegression(C=100.0).fit(((oof.score - mu) / sd)[:, None], y)
        save[f"{name}_threshold"] = youden_threshold(y, oof.score)
        save[f"{name}_platt"] = np.array([mu, sd, float(lr.coef_[0, 0]), float(lr.intercept_[0])])
    from petspect._fileio import atomic_path

    with atomic_path(models_dir / f"{task.value}.npz") as tmp:
        np.savez_compressed(tmp, **save)
    cnn = CnnMethod(dataclasses.replace(s.cnn, seed=s.seed), device=device)
    cnn.fit(feats, np.arange(y.size))
    with atomic_path(models_dir / f"{task.value}_cnn.pt") as tmp:
        torch.save({"state_dict": cnn.model.state_dict(), "settings": dataclasses.asdict(cnn.settings),
                    "input_shape": list(feats.cnn_inputs.shape[1:]), "task": task.value}, tmp)
    return {"cnn_best_epoch_all_subjects": cnn.best_epoch}


def run_cad_study(out: str | Path, settings: CadStudySettings, *, overwrite: bool = False, device: str = "cpu",
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the study into ``out`` (claimed first); returns ``{"metrics", "summary", "paths"}``."""
    from petspect.cad.baselines import task_features
    from petspect.cad.cohort import make_cohort
    from petspect.cad.crossval import cross_validate, method_metrics, stratified_folds
    from petspect.cad.study_report import build_report, severity_table, write_tables
    from petspect.evaluation.study import StudySummary, claim_study_folder, write_study

    out_p = claim_study_folder(out, overwrite=overwrite)
    tasks = [CadTask(t) for t in settings.tasks]
    if not tasks:
        raise ConfigError("the study needs at least one task")
    checks = _checks()  # written before any method is scored
    (out_p / "models").mkdir(exist_ok=True)
    for old in CadTask:  # a rerun (--overwrite) with fewer tasks must not leave an earlier run's fitted models
        for f in (out_p / "models" / f"{old.value}.npz", out_p / "models" / f"{old.value}_cnn.pt"):
            if f.is_file() and not f.is_symlink():
                f.unlink()
    metrics: dict[str, dict[str, Any]] = {}
    per_task: dict[str, Any] = {}
    data, tuned, wall = {}, {}, {}
    for task in tasks:
        t0 = time.perf_counter()
        fine = settings.mpi_fine_voxel_mm if task is CadTask.MPI else settings.brain_fine_voxel_mm
        cfg = CohortConfig(n_normal=settings.n_per_class, n_disease=settings.n_per_class, fine_voxel_mm=fine,
                           factor=settings.factor, seed=settings.seed)
        log(f"cad {task.value}: simulating {2 * settings.n_per_class} subjects")
        cohort = make_cohort(task, cfg)
        feats = task_features(cohort, reference=settings.reference)
        wall[f"{task.value}_simulate"] = time.perf_counter() - t0
        folds = stratified_folds(feats.labels, settings.n_folds, settings.seed)
        oofs, models = {}, {}
        for name, make in _methods(task, settings, device).items():
            t1 = time.perf_counter()
            kept: list = []

            def factory(make=make, kept=kept):
                m = make()
                kept.append(m)
                return m

            oofs[name] = cross_validate(name, factory, feats, folds)
            models[name] = kept
            wall[f"{task.value}_{name}"] = time.perf_counter() - t1
            log(f"cad {task.value}: {name} done ({wall[f'{task.value}_{name}']:.0f} s)")
        best = max(CLASSICAL_METHODS[task], key=lambda m: _auc(feats.labels, oofs[m]))
        rel = {}
        for name, oof in oofs.items():
            row = method_metrics(feats.labels, oof, comparator=None if name == best else oofs[best],
                                 n_boot=settings.n_boot, seed=settings.seed)
            rel[name] = row.pop("reliability")
            metrics[f"{task.value}/{name}"] = row
        tuned[f"{task.value}/svm_regional"] = {"C_per_fold": [m.C for m in models["svm_regional"]],
                                               "search": "inner stratified 3-fold CV, ROC AUC, C in "
                                                         "{0.01, 0.1, 1, 10}, training folds only"}
        tuned[f"{task.value}/cnn"] = {"best_epoch_per_fold": [m.best_epoch for m in models["cnn"]],
                                      "epochs": settings.cnn.epochs, "selection": "lowest validation BCE, "
                                      f"{settings.cnn.val_fraction:.0%} of each training fold"}
        t2 = time.perf_counter()
        tuned[f"{task.value}/final"] = _fit_final(task, feats, oofs, settings, device, out_p / "models",
                                                 cohort.volumes[0])
        wall[f"{task.value}_final_models"] = time.perf_counter() - t2
        data[task.value] = {**cohort.describe(), **feats.info, "folds": settings.n_folds, "comparator": best}
        per_task[task.value] = {"cohort": cohort, "feats": feats, "oofs": oofs, "models": models, "best": best,
                                "reliability": rel, "folds": folds}
    _evaluate_checks(checks, metrics, tasks)
    summary = StudySummary(
        task="cad", preset=settings.preset, seed=settings.seed, data=data, inverse_crime=None, test_scored=1,
        splits={"cv_folds": settings.n_folds, "subjects": int(sum(2 * settings.n_per_class for _ in tasks))},
        tuned=tuned, checks=checks, wall_s={k: round(v, 2) for k, v in wall.items()}, device=str(device),
        notes=["cross-validation: every subject is scored once, out of fold, by a model that never saw it; the "
               "cohort is regenerated from its seed on every run (no ledger across runs)",
               "images come from an image-domain resolution + noise model (petspect.cad.cohort), not from "
               "projection and reconstruction: no inverse crime question arises, and no reconstruction "
               "artefacts or scatter are present (inverse_crime: null)",
               "brain analyses use template-space regions without registering the subject (the phantom's "
               "deformation acts as residual misregistration); MPI analyses use the phantom's LV frame "
               "perturbed by 3 mm / 5 deg",
               "the CNN's threshold and Platt map come from its validation subjects only (a quarter of each "
               "training fold); the baselines use all training subjects' honest scores",
               "comparator of delta_auc: the classical method with the highest out-of-fold AUC of the task "
               "(chosen on the same data: conservative for the CNN)"],
        extra={"methods": {t.value: list(per_task[t.value]["oofs"]) for t in tasks},
               "metric_keys": "<task>/<method>",
               "auc_by_severity": {t.value: severity_table(per_task[t.value]) for t in tasks}})
    write_tables(out_p, per_task)
    report = build_report(per_task, metrics, summary, settings, device)
    paths = write_study(out_p, metrics, summary, report, required=("auc", "sensitivity", "specificity", "brier"))
    return {"metrics": metrics, "summary": summary, "paths": paths}


def _auc(labels: np.ndarray, oof: Any) -> float:
    from petspect.cad.roc import roc_auc

    return roc_auc(labels, oof.score)
