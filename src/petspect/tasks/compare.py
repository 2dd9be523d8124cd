"""The denoising study on the evaluation protocol: every method tuned on validation, scored once on test.

Methods, all evaluated against the full-dose reference of each subject (:mod:`petspect.tasks.evaluate`):

* ``osem_low_dose`` -- the low-count input itself;
* the classical methods of :mod:`petspect.tasks.baselines` (``gaussian``, ``nlm``, ``ct_guided`` when the
  dataset has a CT, ``map_rdp`` re-reconstructed from the prompts of simulated datasets, ``bm4d`` when
  importable), each tuned on the validation split with the same budget;
* every trained network, with its test-time augmentation and total-activity choice made on validation
  (:func:`tune_network`) and its uncertainty map (TTA spread, :mod:`petspect.tasks.uncertainty`);
* ``osem_full_dose`` -- the reference itself (noise, contrast and bias against the truth only).

The test split is read once per call through :func:`petspect.evaluation.read_test_split`, which records
the scoring in the dataset's ledger (``test_scored``). Metrics get 95 % bootstrap intervals over the test
subjects, and every method a paired difference against the best classical method *on validation*.
Lesion detectability (``cho_dprime``) uses lesion-absent twins of the test subjects: the same subject
(same seed, anatomy and noise generator) simulated without lesions, or ``<input_key>_lesion_absent`` entries
when the dataset ships them.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from petspect.errors import ConfigError
from petspect.progress import track
from petspect.tasks.baselines import Case, TunedMethod, gaussian_filter, nlm_filter, preserve_total
from petspect.tasks.denoise import DenoiseTask
from petspect.tasks.evaluate import (Subject, evaluate_image, extract_rois, lesion_roi_positions, mean_curve,
                                     noise_bias_points, total_activity_ratio)

LOW = "osem_low_dose"
REFERENCE = "osem_full_dose"
MAP = "map_rdp"
CLASSICAL = ("gaussian", "nlm", "ct_guided", "map_rdp", "bm4d")
CURVE_GRIDS = {"gaussian": (0.0, 4.0, 6.0, 8.0, 10.0, 13.0, 16.0), "nlm": (0.05, 0.1, 0.2, 0.3, 0.45, 0.7, 1.0),
               "model": (0.0, 3.0, 5.0, 7.0, 10.0), REFERENCE: (0.0, 4.0, 8.0)}
#: CHO: Laguerre-Gauss channel width (mm) and number of channels; the ROI spans +-1.5 widths
CHO_WIDTH_MM = 15.0
CHO_CHANNELS = 5
#: cohort systems kept in memory for MAP re-reconstructions (a tuning search revisits every validation subject)
SYSTEM_CACHE = 8


@dataclass
class StudyData:
    """A dataset as the study reads it.

    Attributes
    ----------
    root : Path
    meta : dict
        dataset.json.
    task : DenoiseTask
    label_names : dict int -> str
    config : DatasetConfig or None
        The simulation configuration (None for imported data: no MAP re-reconstruction, no simulated twins).
    """

    root: Path
    meta: dict[str, Any]
    task: DenoiseTask
    label_names: dict[int, str]
    config: Any = None
    _systems: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def simulated_pet(self) -> bool:
        return self.config is not None and self.config.scanner.modality == "pet"

    def describe(self) -> dict[str, Any]:
        sim = (self.meta.get("petspect") or {}).get("simulation") or {}
        return {"dataset": str(self.root), "inverse_crime": sim.get("inverse_crime", True if self.config else None),
                "simulation": sim or None}


def study_data(dataset: str | os.PathLike, task: DenoiseTask) -> StudyData:
    """Read ``dataset.json`` (and the simulation configuration when it has one)."""
    from petspect.evaluation.protocol import read_splits

    sp = read_splits(dataset)
    meta = sp.meta
    config = None
    cfg = (meta.get("petspect") or {}).get("config")
    if cfg:
        from petspect.simulate.config import config_from_dict

        config = config_from_dict(cfg)
    names = {int(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    return StudyData(sp.root, meta, task, names, config)


def load_subject(entry: Mapping[str, str], data: StudyData) -> Subject:
    """The evaluation :class:`Subject` of a dataset entry (reference, truth, labels and lesions when present)."""
    from petspect.io import load

    key = data.task.reference_key
    if key not in entry:
        raise ConfigError(f"subject {entry.get('subject')} has no reference {key!r}", path=data.root)
    opt = {k: load(data.root / entry[k]) if k in entry else None for k in ("activity", "labels", "lesions")}
    return Subject(str(entry.get("subject", "?")), load(data.root / entry[key]), opt["activity"], opt["labels"],
                   opt["lesions"], dict(data.label_names))


def _fraction(system: Any, task: DenoiseTask) -> float:
    p = float(task.percent) / 100.0
    return system.time_window_fraction(p) if task.source == "time" else p


def map_reconstruct(system: Any, prompts: Any, additive: Any, fraction: float, beta: float, gamma: float,
                    config: Any) -> Any:
    """MAP-RDP (BSREM) of ``prompts`` with relative ``beta`` and ``gamma`` on a cohort scan.

    The iterations and subsets are the cohort's (:func:`petspect.simulate.systems.recon_spec`); ``additive``
    is the level's stored estimate (counts) or None for the scan's own expectation; the image is in
    full-dose-equivalent Bq/mL like every cohort reconstruction.
    """
    from dataclasses import replace

    import torch

    from petspect.simulate.systems import recon_spec

    spec = replace(recon_spec(config, "map"), beta=float(beta), gamma=float(gamma))
    y = torch.as_tensor(np.asarray(prompts), dtype=torch.float32)
    add = None if additive is None else torch.as_tensor(np.asarray(additive), dtype=torch.float32)
    img = system.reconstruct(y, fraction, "map", additive=add, spec=spec)
    img.meta = {**img.meta, "algorithm": "map", "beta": float(beta), "gamma": float(gamma)}
    return img


def _map_callable(data: StudyData, subject: str, make_system: Callable[[], Any], prompts: Callable[[], Any],
                  additive: Callable[[Any], Any]) -> Callable[[float, float], Any]:
    def run(beta: float, gamma: float) -> Any:
        if subject not in data._systems:
            if len(data._systems) >= SYSTEM_CACHE:  # keep the latest few subjects' systems (memory)
                data._systems.pop(next(iter(data._systems)))
            data._systems[subject] = make_system()
        system = data._systems[subject]
        return map_reconstruct(system, prompts(), additive(system), _fraction(system, data.task), beta, gamma,
                               data.config)
    return run


def _level_tag(task: DenoiseTask) -> str:
    from petspect.simulate.layout import level_tag

    return level_tag(task.source, float(task.percent))


def make_case(entry: Mapping[str, str], data: StudyData) -> Case:
    """The :class:`Case` of a dataset entry: input, reference, CT, and MAP re-reconstruction when simulated."""
    from petspect.io import load

    task = data.task
    if task.input_key not in entry:
        raise ConfigError(f"subject {entry.get('subject')} has no input {task.input_key!r}", path=data.root)
    sub = str(entry.get("subject", "?"))
    low = load(data.root / entry[task.input_key])
    ref = load(data.root / entry[task.reference_key]) if task.reference_key in entry else None
    ct = load(data.root / entry["ct"]) if "ct" in entry else None
    recon = None
    tag = _level_tag(task)
    prompts_p = data.root / sub / f"prompts_{tag}.npy"
    records = (data.meta.get("petspect") or {}).get("subjects") or {}
    if data.simulated_pet and prompts_p.is_file() and sub in records:
        from petspect.simulate.subject import make_subject_phantom
        from petspect.simulate.subject import build_system

        seed = int(records[sub]["seed"])
        est_p = data.root / sub / f"additive_est_{tag}.npy"

        def additive(system: Any) -> Any:  # the scanner's estimate when stored, else the scan's expectation
            return np.load(est_p) if est_p.is_file() else None

        recon = _map_callable(data, sub, lambda: build_system(data.config, make_subject_phantom(data.config, seed)),
                              lambda: np.load(prompts_p), additive)
    return Case(sub, low, ref, ct, recon)


def lesion_absent_case(entry: Mapping[str, str], data: StudyData) -> Case | None:
    """The lesion-absent twin of a test subject (module docstring); None when it cannot be made."""
    from petspect.io import load

    task = data.task
    key = f"{task.input_key}_lesion_absent"
    sub = str(entry.get("subject", "?"))
    if key in entry:
        ct = load(data.root / entry["ct"]) if "ct" in entry else None
        return Case(sub + "_lesion_absent", load(data.root / entry[key]), None, ct, None)
    records = (data.meta.get("petspect") or {}).get("subjects") or {}
    if data.config is None or sub not in records or data.config.phantom.kind != "torso":
        return None
    from petspect.simulate.layout import projection_key, recon_key
    from petspect.simulate.subject import make_subject_phantom, simulate_subject

    cfg = copy.deepcopy(data.config)
    cfg.phantom.params = {**cfg.phantom.params, "lesions": False}
    cfg.recon.algorithms = [task.algorithm]
    cfg.recon.nac = False
    cfg.time_points_h = []
    rec = records[sub]
    result = simulate_subject(cfg, int(rec["index"]), int(rec["seed"]))
    low = result.volumes[recon_key(task.source, float(task.percent), task.algorithm, True)]
    recon = None
    if data.simulated_pet:
        from petspect.simulate.subject import build_system

        pkey = projection_key(task.source, float(task.percent))
        tag = _level_tag(task)
        prompts = result.arrays[pkey]
        est = result.arrays.get(f"additive_est_{tag}")
        recon = _map_callable(
            data, sub + "_lesion_absent",
            lambda: build_system(cfg, make_subject_phantom(cfg, int(rec["seed"]))), lambda: prompts,
            lambda system: est)
    return Case(sub + "_lesion_absent", low, None, result.volumes.get("ct"), recon)


@dataclass
class NetworkChoice:
    """A network's options chosen on validation (mean PSNR): test-time augmentation and total preservation."""

    tta: bool = True
    preserve_total: bool = False
    scores: dict[str, float] = field(default_factory=dict)


def run_network(model: Any, case: Case, choice: NetworkChoice, device: Any = None) -> tuple[Any, Any]:
    """(output, uncertainty SD or None) of a network on a case, with its validated options."""
    from petspect.tasks.denoise import denoise_volume
    from petspect.tasks.uncertainty import denoise_with_uncertainty

    extra = _extra_channels(model, case)
    if choice.tta:
        return denoise_with_uncertainty(model, case.low, extra, device=device, preserve_total=choice.preserve_total)
    out = denoise_volume(model, case.low, extra, device=device, tta=False)
    return (preserve_total(out, case.low) if choice.preserve_total else out), None


def _extra_channels(model: Any, case: Case) -> list[Any]:
    keys = list(model.input_keys[1:])
    if not keys:
        return []
    if keys != ["ct"] or case.ct is None:
        raise ConfigError(f"the model takes channels {keys}; the study provides the CT only")
    return [case.ct]


def tune_network(model: Any, cases: Sequence[Case], device: Any = None) -> NetworkChoice:
    """Choose TTA (on/off) and total preservation (on/off) for a network on the validation cases (mean PSNR)."""
    from petspect.tasks.baselines import _psnr, psnr_preserved
    from petspect.tasks.denoise import denoise_volume
    from petspect.tasks.uncertainty import denoise_with_uncertainty

    scores: dict[str, list[float]] = {}
    for c in cases:
        extra = _extra_channels(model, c)
        plain = denoise_volume(model, c.low, extra, device=device, tta=False)
        tta, _ = denoise_with_uncertainty(model, c.low, extra, device=device)
        for name, img in (("plain", plain), ("tta", tta)):
            scores.setdefault(name, []).append(_psnr(img, c.reference))
            scores.setdefault(name + "+preserve_total", []).append(psnr_preserved(img, c))
    mean = {k: float(np.mean(v)) for k, v in scores.items()}
    best = max((k for k in mean if math.isfinite(mean[k])), key=lambda k: mean[k])
    return NetworkChoice(tta=best.startswith("tta"), preserve_total=best.endswith("preserve_total"), scores=mean)


@dataclass
class Comparison:
    """Result of :func:`compare_methods`.

    Attributes
    ----------
    metrics : dict method -> metric -> value
        Means over the test subjects with ``<metric>_ci95`` and, against ``comparator``, ``delta_<metric>``
        and ``delta_<metric>_ci95``; ``cho_dprime`` (+ ``_ci95``) over all lesions.
    per_subject : list of {method: {metric: value}}
    subjects : list of str
    comparator : str or None
        The best classical method on validation.
    curves : dict method -> list of noise-bias points
    example : dict name -> Volume
    calibration : dict model -> calibration record of its uncertainty map
    cho : dict
        How the detectability was computed (ROIs, channels) or why not.
    scoring : dict
        The :class:`~petspect.evaluation.TestScoring` record (``test_scored``).
    """

    metrics: dict[str, dict[str, Any]]
    per_subject: list[dict[str, dict[str, float]]]
    subjects: list[str]
    comparator: str | None = None
    curves: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    example: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    cho: dict[str, Any] = field(default_factory=dict)
    scoring: dict[str, Any] = field(default_factory=dict)


def best_classical(baselines: Mapping[str, TunedMethod]) -> str | None:
    """The classical method with the best validation PSNR (after its post-processing choice)."""
    scored = {n: max(v for v in t.post_scores.values() if math.isfinite(v)) for n, t in baselines.items()
              if t.post_scores}
    return max(scored, key=lambda n: scored[n]) if scored else None


def _curves(case: Case, images: Mapping[str, Any], subject: Subject, methods: Sequence[str],
            models: Sequence[str]) -> dict[str, list[dict[str, float]]]:
    out = {}
    if "gaussian" in methods:
        out["gaussian"] = noise_bias_points({v: gaussian_filter(case.low, v) for v in CURVE_GRIDS["gaussian"]}, subject)
    if "nlm" in methods:
        out["nlm"] = noise_bias_points({v: nlm_filter(case.low, v) for v in CURVE_GRIDS["nlm"]}, subject)
    for name in models:
        out[name] = noise_bias_points({f: gaussian_filter(images[name], f) for f in CURVE_GRIDS["model"]}, subject)
    for name in ("ct_guided", MAP):
        if name in images:
            out[name] = noise_bias_points({"tuned": images[name]}, subject)
    out[REFERENCE] = noise_bias_points({f: gaussian_filter(subject.reference, f) for f in CURVE_GRIDS[REFERENCE]},
                                       subject)
    return out


def compare_methods(dataset: str | os.PathLike, task: DenoiseTask, *, baselines: Mapping[str, TunedMethod],
                    models: Mapping[str, tuple[Any, NetworkChoice]], scoring_config: Mapping[str, Any],
                    curves: bool = True, detectability: bool = True, device: Any = None,
                    max_subjects: int | None = None, detectability_subjects: int | None = None, n_boot: int = 2000,
                    seed: int = 0) -> Comparison:
    """Score every method once on the test split (see the module docstring).

    Parameters
    ----------
    dataset : path
    task : DenoiseTask
    baselines : mapping name -> TunedMethod
        Tuned on validation (:func:`petspect.tasks.baselines.tune_baselines`).
    models : mapping name -> (TrainedModel, NetworkChoice)
    scoring_config : mapping
        What fixes this configuration (methods, tuned parameters, model checksums): hashed in the ledger.
    curves : bool
        Noise-bias curves.
    detectability : bool
        CHO detectability from lesion-absent twins.
    device, max_subjects, n_boot, seed
    detectability_subjects : int, optional
        Make lesion-absent twins of the first test subjects only (each twin is a full simulation).
    """
    from petspect.evaluation import cho_dprime_ci, read_test_split, summarise_methods, uncertainty_calibration

    data = study_data(dataset, task)
    entries, scoring = read_test_split(data.root, scoring_config,
                                       f"denoise {task.input_key}: {len(baselines)} classical methods, "
                                       f"{len(models)} networks", max_subjects)
    per_subject, curve_sets, example = [], [], {}
    cal_parts: dict[str, list[Any]] = {m: [] for m in models}
    spacing = None
    rois: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    cho_note = "not computed"
    for entry in track(entries, f"scoring {len(entries)} test subjects"):
        case, subject = make_case(entry, data), load_subject(entry, data)
        images: dict[str, Any] = {LOW: case.low}
        images.update({n: tm(case) for n, tm in baselines.items()})
        for name, (model, choice) in models.items():
            images[name], sd = run_network(model, case, choice, device)
            if sd is not None:
                body = subject.labels.numpy() > 0 if subject.labels is not None else None
                cal_parts[name].append((images[name], sd, subject.reference, body))
        row = {}
        for name, img in images.items():
            row[name] = evaluate_image(img.data, subject)
            row[name]["total_activity_ratio"] = total_activity_ratio(img, case.low)
        row[REFERENCE] = evaluate_image(subject.reference.data, subject, reference=True)
        row[REFERENCE]["total_activity_ratio"] = total_activity_ratio(subject.reference, case.low)
        per_subject.append(row)
        spacing = case.low.spacing_mm
        use_twin = detectability_subjects is None or len(rois.get(LOW, ([], []))[0]) < detectability_subjects
        if detectability and subject.lesions is not None and use_twin:
            twin = lesion_absent_case(entry, data)
            if twin is None:
                cho_note = "no lesion-absent twins: the dataset has neither simulation records nor *_lesion_absent keys"
            else:
                width_px = CHO_WIDTH_MM / float(spacing[1])
                size = 2 * int(math.ceil(1.5 * width_px)) + 1
                pos = lesion_roi_positions(subject.lesions, size)
                twin_images = {LOW: twin.low, **{n: tm(twin) for n, tm in baselines.items()
                                                 if n != MAP or twin.reconstruct_map is not None}}
                for name, (model, choice) in models.items():
                    twin_images[name] = run_network(model, twin, choice, device)[0]
                for name, img in twin_images.items():
                    p, a = rois.setdefault(name, ([], []))
                    p.append(extract_rois(images[name], pos, size))
                    a.append(extract_rois(img, pos, size))
                cho_note = (f"CHO, {CHO_CHANNELS} Laguerre-Gauss channels of width {CHO_WIDTH_MM:g} mm, {size}x{size} "
                            "ROIs on each lesion's central slice; lesion-absent ROIs at the same places in the "
                            "subject's lesion-free twin (same seed); interval: bootstrap over subjects")
        if curves:
            curve_sets.append(_curves(case, images, subject, list(baselines), list(models)))
        if not example:
            example = {**images, REFERENCE: subject.reference, "labels": subject.labels, "lesions": subject.lesions}
    comparator = best_classical(baselines)
    metrics = summarise_methods(per_subject, comparator=comparator, n_boot=n_boot, seed=seed)
    if rois and spacing is not None:
        width_px = CHO_WIDTH_MM / float(spacing[1])
        for name, (p, a) in rois.items():
            if sum(len(x) for x in p) >= 2 * CHO_CHANNELS:
                iv = cho_dprime_ci(p, a, width_px=width_px, n_channels=CHO_CHANNELS, n_boot=min(n_boot, 1000), seed=seed)
                metrics.setdefault(name, {}).update({"cho_dprime": iv.value, "cho_dprime_ci95": iv.as_list()})
        if comparator in rois:
            _cho_deltas(metrics, rois, comparator, width_px, n_boot, seed)
    calibration = {}
    for name, parts in cal_parts.items():
        if parts:
            pred = np.concatenate([p[0].numpy().ravel() for p in parts])
            sd = np.concatenate([p[1].numpy().ravel() for p in parts])
            ref = np.concatenate([p[2].numpy().ravel() for p in parts])
            mask = np.concatenate([(p[3] if p[3] is not None else np.ones(p[0].shape, bool)).ravel() for p in parts])
            calibration[name] = {"method": "TTA spread", "region": "body (labelled voxels)",
                                 **uncertainty_calibration(pred, sd, ref, mask).to_dict()}
    merged = {m: mean_curve([c[m] for c in curve_sets]) for m in curve_sets[0]} if curve_sets else {}
    return Comparison(metrics, per_subject, [str(e.get("subject")) for e in entries], comparator, merged, example,
                      calibration, {"method": cho_note}, scoring.to_dict())


def _cho_deltas(metrics: dict, rois: Mapping[str, Any], comparator: str, width_px: float, n_boot: int,
                seed: int) -> None:
    """Paired bootstrap of ``d'(method) - d'(comparator)`` over subjects (same resamples)."""
    from petspect.evaluation.observer import (channel_outputs, hotelling_dprime, laguerre_gauss_channels,
                                              resample_usable)

    p0, a0 = rois[comparator]
    g = len(p0)
    if g < 2:
        return
    size = p0[0].shape[-1]
    ch = laguerre_gauss_channels(size, width_px, CHO_CHANNELS)
    feats = {n: ([channel_outputs(x, ch) for x in p], [channel_outputs(x, ch) for x in a]) for n, (p, a) in rois.items()}
    rng = np.random.default_rng(seed)
    picks = [rng.integers(0, g, size=g) for _ in range(min(n_boot, 1000))]

    def d(n: str, pick: Sequence[int]) -> float:
        v1 = np.concatenate([feats[n][0][i] for i in pick])
        v0 = np.concatenate([feats[n][1][i] for i in pick])
        return hotelling_dprime(v1, v0) if resample_usable(feats[n][0], feats[n][1], pick) else math.nan

    for n in feats:
        if n == comparator or n not in metrics or "cho_dprime" not in metrics[n]:
            continue
        diffs = np.array([d(n, pk) - d(comparator, pk) for pk in picks])
        diffs = diffs[np.isfinite(diffs)]
        if diffs.size >= 10:
            lo, hi = np.quantile(diffs, [0.025, 0.975])
            metrics[n]["delta_cho_dprime"] = float(metrics[n]["cho_dprime"] - metrics[comparator]["cho_dprime"])
            metrics[n]["delta_cho_dprime_ci95"] = [float(lo), float(hi)]


def validation_cases(dataset: str | os.PathLike, task: DenoiseTask, max_subjects: int | None = None) -> list[Case]:
    """The validation subjects as :class:`Case` records (for tuning every method)."""
    from petspect.evaluation.protocol import read_splits

    sp = read_splits(dataset)
    if not sp.validation:
        raise ConfigError("the validation split is empty: every method is tuned on it", path=sp.root)
    data = study_data(dataset, task)
    return [make_case(e, data) for e in sp.validation[:max_subjects]]


def summary_rows(metrics: Mapping[str, Mapping[str, Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    """Table rows ``{"method", col...}`` of selected metrics."""
    return [{"method": m, **{c: v[c] for c in columns if c in v}} for m, v in metrics.items()]
