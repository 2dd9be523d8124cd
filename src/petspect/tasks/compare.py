"""Compare trained denoisers with the classical baselines on the subjects of one dataset split.

Methods, all evaluated against the full-dose reference of each subject (:mod:`petspect.tasks.evaluate`):

* ``osem_low_dose`` -- the low-count input itself (low dose or fast scan, whichever the task says);
* every tuned baseline filter (``gaussian``, ``nlm``, ``bm4d`` when importable), tuned on validation;
* ``map_rdp`` -- the dataset's MAP reconstruction with a relative-difference prior at the same level, when
  the dataset has it;
* every trained model, by name;
* ``osem_full_dose`` -- the reference itself: only its noise, contrast and bias against the truth.

Noise-bias curves sweep one smoothing parameter per method: the Gaussian FWHM, the NLM strength, and a
Gaussian post-filter of the model's output (0 mm first), so each method is a curve of lesion contrast
recovery against liver noise. The filters' grids run from almost no smoothing to strong smoothing (lesion
contrast recovery well under the models'), so a model's points fall inside the filters' contrast range.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from petspect.errors import ConfigError
from petspect.progress import track
from petspect.tasks.baselines import TunedFilter, apply_filter, gaussian_filter
from petspect.tasks.denoise import DenoiseTask, denoise_volume
from petspect.tasks.evaluate import Subject, evaluate_image, mean_curve, mean_metrics, noise_bias_points

LOW = "osem_low_dose"
REFERENCE = "osem_full_dose"
MAP = "map_rdp"
CURVE_GRIDS = {"gaussian": (0.0, 4.0, 6.0, 8.0, 10.0, 13.0, 16.0), "nlm": (0.05, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.2, 1.6),
               "model": (0.0, 3.0, 5.0, 7.0, 10.0), REFERENCE: (0.0, 4.0, 8.0)}


@dataclass
class Comparison:
    """Result of :func:`compare_methods`.

    Attributes
    ----------
    metrics : dict method -> metric -> float
        Means over the subjects.
    per_subject : list of dict
        ``{method: {metric: value}}`` per subject, in split order.
    subjects : list of str
    curves : dict method -> list of points
        Noise-bias points averaged over subjects (``setting``, ``liver_cov_pct``, ``lesion_cr_pct``, ...).
    example : dict name -> Volume
        The images of the first subject (methods, reference, input), for figures.
    """

    metrics: dict[str, dict[str, float]]
    per_subject: list[dict[str, dict[str, float]]]
    subjects: list[str]
    curves: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    example: dict[str, Any] = field(default_factory=dict)


def _label_names(meta: Mapping[str, Any]) -> dict[int, str]:
    return {int(k): str(v) for k, v in (meta.get("labels") or {}).items()}


def load_subject(entry: Mapping[str, str], root: Path, task: DenoiseTask, label_names: Mapping[int, str]) -> Subject:
    """The evaluation :class:`Subject` of a dataset entry (reference, truth, labels and lesions when present)."""
    from petspect.io import load

    if task.reference_key not in entry:
        raise ConfigError(f"subject {entry.get('subject')} has no reference {task.reference_key!r}", path=root)
    opt = {k: load(root / entry[k]) if k in entry else None for k in ("activity", "labels", "lesions")}
    return Subject(str(entry.get("subject", "?")), load(root / entry[task.reference_key]), opt["activity"],
                   opt["labels"], opt["lesions"], dict(label_names))


def _method_images(entry: Mapping[str, str], root: Path, task: DenoiseTask, baselines: Mapping[str, TunedFilter],
                   models: Mapping[str, Any], device: Any, tta: bool = False,
                   preserve_total: bool = False) -> tuple[Any, dict[str, Any]]:
    from petspect.io import load

    if task.input_key not in entry:
        raise ConfigError(f"subject {entry.get('subject')} has no input {task.input_key!r}", path=root)
    low = load(root / entry[task.input_key])
    images = {LOW: low}
    images.update({name: tf(low) for name, tf in baselines.items()})
    if task.map_key() in entry:
        images[MAP] = load(root / entry[task.map_key()])
    for name, model in models.items():
        extra = [load(root / entry[k]) for k in model.input_keys[1:]]
        images[name] = denoise_volume(model, low, extra, device=device, tta=tta, preserve_total=preserve_total)
    return low, images


def _curves(low: Any, images: Mapping[str, Any], subject: Subject, baselines: Mapping[str, TunedFilter],
            models: Mapping[str, Any]) -> dict[str, list[dict[str, float]]]:
    out = {}
    for name in baselines:
        grid = CURVE_GRIDS.get(name)
        if grid:
            out[name] = noise_bias_points({v: apply_filter(name, low, v) for v in grid}, subject)
    for name in models:
        out[name] = noise_bias_points({f: gaussian_filter(images[name], f) for f in CURVE_GRIDS["model"]}, subject)
    if MAP in images:
        out[MAP] = noise_bias_points({"map": images[MAP]}, subject)
    out[REFERENCE] = noise_bias_points({f: gaussian_filter(subject.reference, f) for f in CURVE_GRIDS[REFERENCE]},
                                       subject)
    return out


def compare_methods(dataset: str | os.PathLike, task: DenoiseTask, *, baselines: Mapping[str, TunedFilter],
                    models: Mapping[str, Any], split: str = "test", curves: bool = True, device: Any = None,
                    max_subjects: int | None = None, tta: bool = False, preserve_total: bool = False) -> Comparison:
    """Evaluate the low-count input, baselines, MAP, models and reference on every subject of ``split``.

    Parameters
    ----------
    dataset : path
        Dataset folder (dataset.json).
    task : DenoiseTask
        Input level and reference.
    baselines : mapping name -> TunedFilter
        Tuned on the validation split (:func:`petspect.tasks.baselines.tune_baselines`).
    models : mapping name -> TrainedModel
    split : str
    curves : bool
        Also compute noise-bias curves.
    device : torch.device or str, optional
        Where the networks run.
    max_subjects : int, optional
        Evaluate only the first subjects.
    tta : bool
        Run the models with test-time augmentation (in-plane flips and turns averaged).
    preserve_total : bool
        Scale each model output to the input's total activity (:func:`petspect.tasks.denoise.denoise_volume`).

    Returns
    -------
    Comparison
    """
    from petspect.train import read_dataset
    from petspect.train.data import read_json

    entries, root = read_dataset(dataset, split)
    if not entries:
        raise ConfigError(f"split {split!r} of the dataset is empty", path=root)
    entries = entries[:max_subjects] if max_subjects else entries
    names = _label_names(read_json(root / "dataset.json"))
    per_subject, curve_sets, example = [], [], {}
    for entry in track(entries, f"evaluating {len(entries)} {split} subjects"):
        subject = load_subject(entry, root, task, names)
        low, images = _method_images(entry, root, task, baselines, models, device, tta, preserve_total)
        row = {name: evaluate_image(img.data, subject) for name, img in images.items()}
        row[REFERENCE] = evaluate_image(subject.reference.data, subject, reference=True)
        per_subject.append(row)
        if curves:
            curve_sets.append(_curves(low, images, subject, baselines, models))
        if not example:
            example = {**images, REFERENCE: subject.reference, "labels": subject.labels, "lesions": subject.lesions}
    merged = {}
    if curve_sets:
        merged = {m: mean_curve([c[m] for c in curve_sets]) for m in curve_sets[0]}
    return Comparison(mean_metrics(per_subject), per_subject, [str(e.get("subject")) for e in entries], merged, example)


def validation_pairs(dataset: str | os.PathLike, task: DenoiseTask, split: str = "validation",
                     max_subjects: int | None = 4) -> list[tuple[Any, Any]]:
    """(low-count input, full-dose reference) Volumes of the validation subjects, for tuning baselines."""
    from petspect.io import load
    from petspect.train import read_dataset

    entries, root = read_dataset(dataset, split)
    if not entries:
        raise ConfigError(f"split {split!r} is empty: baselines are tuned on it", path=root)
    return [(load(root / e[task.input_key]), load(root / e[task.reference_key])) for e in entries[:max_subjects]]


def summary_rows(metrics: Mapping[str, Mapping[str, float]], columns: Sequence[str]) -> list[dict[str, Any]]:
    """Table rows ``{"method", col...}`` of selected metrics."""
    return [{"method": m, **{c: v[c] for c in columns if c in v}} for m, v in metrics.items()]
