"""``petspect study segment``: lesion segmentation networks against the clinics' thresholds, on the protocol.

Protocol (:mod:`petspect.evaluation`):

1. data: the preset's cohort (``quick``: the simulator's FDG torsos at 6 mm, reconstructed by OSEM from data
   simulated on a 2x finer grid with estimated scatter and randoms; ``tiny``: an image-domain toy for tests) or
   ``--dataset``; splits are dataset.json's;
2. every threshold method's free parameters are tuned on the validation subjects by the same
   :func:`~petspect.evaluation.grid_search` with the same :class:`~petspect.evaluation.Budget` (objective:
   mean validation Dice); the 41 % / 50 % fractions, the 2.5 cut-off and PERCIST's 2 SD are the methods'
   definitions and are not tuned. All threshold methods get the same anatomical help the network's CT
   channel gives it: voxels of the organs with physiological FDG uptake (brain, kidneys, bladder,
   myocardium) are excluded, read from the organ labels (a CT segmentation); PERCIST reads the liver there;
3. each network is trained on the training subjects; its epoch is its best validation Dice; its
   post-processing (probability threshold, smallest kept component: :mod:`~petspect.segmentation.postprocess`)
   is chosen on the validation subjects by the same ``grid_search`` and ``Budget`` the threshold methods get,
   and the same physiological-uptake organs are removed from its masks;
4. the best classical method and the main network (judged by the checks) are the ones with the best
   validation Dice, chosen before the test split is read;
5. an organ network (CT in; liver, kidneys, spleen, lungs, bladder, salivary glands as the training subjects
   show them: :mod:`~petspect.segmentation.organs`) is trained on the same subjects' organ labels, its epoch
   chosen on validation (method ``organs_<kind>``, metrics ``organ_dice_<organ>`` and their mean ``organ_dice``);
6. acceptance checks are written, then the test split is read once (:func:`~petspect.evaluation.read_test_split`)
   and every method is scored per subject (autoPET metrics, MTV and TLG bias; organ Dice); means with
   bootstrap 95 % intervals over subjects, and paired differences against the best classical method.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from petspect.errors import ConfigError, DataNotFoundError
from petspect.segmentation.metrics import BETTER, METRIC_NAMES, score_segmentation
from petspect.segmentation.networks import SegNetSpec
from petspect.segmentation.thresholds import (DEFAULT_PARAMS, SEARCH_SPACE, ThresholdMethod, ThresholdParams,
                                              segment_threshold)
from petspect.segmentation.train import Case, TrainSettings

__all__ = ["SegmentStudyPreset", "STUDY_PRESETS", "PHYSIOLOGICAL", "run_segment_study", "load_case"]

#: Organs with physiological FDG uptake excluded from every threshold method (names of the torso labels).
PHYSIOLOGICAL = ("brain", "bladder", "kidney_cortex", "kidney_medulla", "myocardium")
#: the organ network's acceptance mark: mean test Dice over organs (dimensionless; a chosen bar, written
#: before the test split is read)
ORGAN_DICE_PASS = 0.80


@dataclass(frozen=True)
class SegmentStudyPreset:
    """Sizes of one study preset."""

    name: str
    subjects: int
    networks: tuple[tuple[str, SegNetSpec, TrainSettings], ...]
    budget_trials: int = 8
    image_key: str = "recon_d100_osem_ac"
    notes: tuple[str, ...] = ()
    cohort: dict[str, Any] = field(default_factory=dict)
    organ_network: tuple[str, SegNetSpec, TrainSettings] | None = None
    #: Lesion networks average their softmax over y/x flips at inference (test-time augmentation).
    flips: bool = False


def _quick_cohort(subjects: int, seed: int, cohort: dict[str, Any] | None = None) -> Any:
    """The quick preset's cohort; ``cohort`` may set ``seed`` (base of the cohort seed, default 4300) and the
    ``train`` / ``validation`` split fractions (default 0.6 / 0.15)."""
    from petspect.simulate.presets import get_preset

    c = cohort or {}
    cfg = get_preset("quick")
    cfg.name, cfg.subjects, cfg.seed = "segment-quick", subjects, int(c.get("seed", 4300)) + seed
    cfg.description = "petspect segmentation study: FDG torsos with lesions, 2D-ring PET, full dose, OSEM"
    cfg.dose_percents = [100.0]
    cfg.recon.algorithms = ["osem"]
    tr, va = float(c.get("train", 0.6)), float(c.get("validation", 0.15))
    cfg.split.train, cfg.split.validation, cfg.split.test = tr, va, 1.0 - tr - va
    return cfg.validate()


def _full_cohort(subjects: int, seed: int) -> Any:
    from petspect.simulate.presets import get_preset

    cfg = get_preset("wholebody-fdg")
    cfg.name, cfg.subjects, cfg.seed = "segment-full", subjects, 4200 + seed
    cfg.dose_percents, cfg.time_percents, cfg.realisations = [100.0], [], 1
    cfg.recon.algorithms = ["osem"]
    return cfg.validate()


def _organ_spec(filters: tuple[int, ...], z_strides: tuple[int, ...], patch: tuple[int, int, int]) -> SegNetSpec:
    """Organ network template (classes are set from the training subjects by the study); the CT in two windows
    (``ct_windows``: organs differ by 10-30 HU, invisible at the lesion networks' HU / 1000 scale)."""
    return SegNetSpec(in_channels=2, inputs="ct_windows", filters=filters, z_strides=z_strides, patch_zyx=patch,
                      classes=("background", "organ"))


STUDY_PRESETS: dict[str, SegmentStudyPreset] = {
    "tiny": SegmentStudyPreset(
        "tiny", 8, (("dynunet", SegNetSpec(filters=(4, 8, 16), z_strides=(1, 1), patch_zyx=(8, 16, 16)),
                     TrainSettings(epochs=2, patches_per_case=4, batch_size=2)),),
        budget_trials=2, image_key="image", flips=True,
        organ_network=("organs_dynunet", _organ_spec((4, 8, 16), (1, 1), (8, 16, 16)),
                       TrainSettings(epochs=1, patches_per_case=2, batch_size=2)),
        notes=("tiny: an image-domain toy (ellipsoid body, liver, bladder, ball lesions; PET = blur + noise, no "
               "reconstruction) for tests; its figures mean nothing",)),
    "quick": SegmentStudyPreset(
        "quick", 72, (("dynunet", SegNetSpec(filters=(8, 16, 32, 64), z_strides=(1, 2, 2), patch_zyx=(12, 32, 32)),
                       TrainSettings(epochs=30, patches_per_case=8, batch_size=4, lr=3e-3)),),
        cohort={"seed": 4400, "train": 0.55, "validation": 0.15}, flips=True,
        organ_network=("organs_dynunet", _organ_spec((16, 32, 64, 128), (1, 2, 2), (12, 64, 64)),
                       TrainSettings(epochs=40, patches_per_case=1, batch_size=2, lr=5e-3)),
        notes=("quick: 72 torsos of 12 x 64 x 64 voxels of 6 mm (72 mm axial), 40/11/21 subjects, cohort seed 4400 "
               "(earlier versions: 16 subjects 8/3/5, then 40 subjects 24/6/10 at seed 4300); one network (DynUNet "
               "8-16-32-64, 2400 steps of 12 x 32 x 32 patches, softmax averaged over y/x flips): chosen on the "
               "validation subjects (4 levels beat 3 levels 0.674 to 0.647 after post-processing); the full preset "
               "is the realistic size",
               "quick organ network: whole 12 x 64 x 64 volumes (shifted by up to 1 x 4 x 4 voxels, no flips), "
               "DynUNet 16-32-64-128 on the CT in two windows, 40 epochs of one volume per training subject, batch 2 "
               "(800 steps with the 40 training subjects; the schedule was chosen at 24 training subjects = 480 steps "
               "on validation with benchmarks/bench_organs.py, BENCHMARKS.md)")),
    "full": SegmentStudyPreset(
        "full", 60, (("dynunet", SegNetSpec(filters=(32, 64, 128, 256, 320), z_strides=(1, 2, 2, 2),
                                            patch_zyx=(64, 128, 128)),
                      TrainSettings(epochs=200, patches_per_case=64, batch_size=2, lr=1e-3)),
                     ("segresnet", SegNetSpec(kind="segresnet", filters=(32,), patch_zyx=(64, 128, 128)),
                      TrainSettings(epochs=200, patches_per_case=64, batch_size=2, lr=1e-3))),
        budget_trials=16,
        organ_network=("organs_dynunet", _organ_spec((32, 64, 128, 256, 320), (1, 2, 2, 2), (64, 128, 128)),
                       TrainSettings(epochs=100, patches_per_case=32, batch_size=2, lr=1e-3, lesion_fraction=0.8)),
        notes=("full: whole-body TOF PET at 4 mm; for a GPU",)),
}


# ----------------------------------------------------------------------------------------------------- data
def _toy_dataset(folder: Path, subjects: int, seed: int) -> Path:
    """An image-domain toy cohort in the dataset layout (see the tiny preset's note)."""
    import torch
    from scipy import ndimage

    from petspect.io import save
    from petspect.volume import Volume

    rng = np.random.default_rng(seed)
    shape, sp = (12, 32, 32), (6.0, 6.0, 6.0)
    z, y, x = np.indices(shape).astype(float)
    labels_names = {"0": "background", "1": "soft_tissue", "9": "liver", "15": "bladder"}
    entries = []
    for i in range(subjects):
        sid = f"sub-{i:03d}"
        body = ((y - 16) / 13) ** 2 + ((x - 16) / 14) ** 2 <= 1
        liver = body & (((y - 15) / 6) ** 2 + ((x - 10) / 5) ** 2 <= 1) & (z < 8)
        bladder = body & (((y - 18) / 3) ** 2 + ((x - 22) / 3) ** 2 + ((z - 1) / 2) ** 2 <= 1)
        labels = np.where(body, 1, 0)
        labels[liver], labels[bladder] = 9, 15
        suv = np.where(body, 0.8, 0.0)
        suv[liver], suv[bladder] = 2.2, 12.0
        les = np.zeros(shape, np.int16)
        for k in range(1, int(rng.integers(1, 4)) + 1):
            c = rng.uniform([3, 8, 8], [9, 24, 24])
            r = rng.uniform(1.2, 2.5)
            ball = body & (((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) <= r * r) & (les == 0)
            les[ball] = k
            suv[ball] = rng.uniform(3.0, 9.0)
        pet = ndimage.gaussian_filter(suv, 6.0 / 2.3548 / 6.0) + rng.normal(0, 0.15, shape) * (suv > 0)
        factor = 4e-4  # SUV per Bq/mL
        ct = np.where(body, 40.0, -1000.0) + rng.normal(0, 10, shape)
        d = folder / sid
        vol = lambda a, **kw: Volume.centered(torch.from_numpy(np.ascontiguousarray(a)), sp, **kw)  # noqa: E731
        save(vol((suv / factor).astype(np.float32), unit="Bq/mL", modality="PT", meta={"suv_factor": factor}),
             d / "activity.nii.gz", overwrite=True)
        save(vol(np.clip(pet, 0, None).astype(np.float32) / factor, unit="Bq/mL", modality="PT"),
             d / "image.nii.gz", overwrite=True)
        save(vol(ct.astype(np.float32), unit="HU", modality="CT"), d / "ct.nii.gz", overwrite=True)
        save(vol(labels.astype(np.int16), unit="label", modality="SEG"), d / "labels.nii.gz", overwrite=True)
        save(vol(les, unit="label", modality="SEG"), d / "lesions.nii.gz", overwrite=True)
        entries.append({k: f"{sid}/{k}.nii.gz" for k in ("activity", "image", "ct", "labels", "lesions")}
                       | {"subject": sid, "label": f"{sid}/labels.nii.gz"})
    n_tr, n_va = subjects // 2, max(1, subjects // 4)
    doc = {"name": "segment-tiny", "description": "image-domain toy cohort (tests only)", "tensorImageSize": "3D",
           "modality": {"0": "PT"}, "labels": labels_names, "training": entries[:n_tr],
           "validation": entries[n_tr:n_tr + n_va], "test": entries[n_tr + n_va:],
           "numTraining": n_tr, "numTest": subjects - n_tr - n_va,
           "petspect": {"simulation": {"inverse_crime": None, "note": "no reconstruction: blur and noise"}}}
    (folder / "dataset.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return folder


def load_case(root: Path, entry: dict[str, str], image_key: str) -> Case:
    """One subject of a dataset as a :class:`Case` (PET in SUVbw from the activity's recorded factor)."""
    from petspect.io import load

    key = image_key if image_key in entry else "image"
    for k in (key, "ct", "lesions"):
        if k not in entry:
            raise DataNotFoundError(f"subject {entry.get('subject')} has no {k!r} entry", path=root / "dataset.json")
    pet = load(root / entry[key])
    factor = None
    if "activity" in entry:
        factor = load(root / entry["activity"]).meta.get("suv_factor")
    if factor is None:
        factor = (pet.meta.get("suv_factors") or {}).get("bw")
    if factor is None:
        raise DataNotFoundError(f"subject {entry.get('subject')}: no SUV factor recorded (activity meta "
                                "'suv_factor' or the image's 'suv_factors')", path=root / entry[key])
    ct = load(root / entry["ct"])
    lab = load(root / entry["labels"]).numpy() if "labels" in entry else None
    return Case(str(entry.get("subject")), pet.numpy().astype(np.float64) * float(factor), ct.numpy(),
                load(root / entry["lesions"]).numpy().astype(np.int32), pet.spacing_mm, lab,
                {"affine": pet.affine.tolist()})


def _label_ids(meta: dict[str, Any]) -> dict[str, int]:
    return {str(v): int(k) for k, v in (meta.get("labels") or {}).items()}


def _masks(case: Case, ids: dict[str, int]) -> tuple[np.ndarray | None, np.ndarray | None]:
    if case.labels is None:
        return None, None
    liver = case.labels == ids["liver"] if "liver" in ids else None
    ex = np.isin(case.labels, [ids[n] for n in PHYSIOLOGICAL if n in ids])
    return liver, ex


def _threshold(method: ThresholdMethod, case: Case, params: ThresholdParams, ids: dict[str, int]) -> np.ndarray:
    liver, ex = _masks(case, ids)
    return segment_threshold(method, case.suv, case.spacing_mm, params=params, liver=liver, exclude=ex)


# ----------------------------------------------------------------------------------------------------- study
def _score(pred: np.ndarray, case: Case) -> dict[str, float]:
    s = score_segmentation(pred, case.lesions, case.suv, case.spacing_mm)
    return {k: float(getattr(s, k)) for k in METRIC_NAMES}


def _organ_scores(seg: Any, case: Case, ids: dict[str, int], organs: tuple[str, ...]) -> dict[str, float]:
    from petspect.segmentation.organs import organ_dice, organ_target

    d = organ_dice(seg.labels(case.ct_hu), organ_target(case.labels, ids, organs), organs)
    vals = [v for v in d.values() if not math.isnan(v)]
    return {f"organ_dice_{o}": v for o, v in d.items()} | {"organ_dice": float(np.mean(vals)) if vals else math.nan}


def _mean_dice(masks: list[np.ndarray], cases: list[Case]) -> float:
    from petspect.segmentation.metrics import dice

    vals = [dice(m, c.lesions > 0) for m, c in zip(masks, cases)]
    vals = [v for v in vals if not math.isnan(v)]
    return float(np.mean(vals)) if vals else math.nan


def _figure(report: Any, case: Case, preds: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = int(np.argmax((case.lesions > 0).sum(axis=(1, 2))))
    fig, axes = plt.subplots(1, len(preds) + 1, figsize=(3 * (len(preds) + 1), 3.2))
    vmax = float(np.percentile(case.suv, 99.5))
    for ax, (name, m) in zip(axes, [("truth", case.lesions > 0), *preds.items()]):
        ax.imshow(case.suv[k], cmap="gray_r", vmin=0, vmax=vmax)
        if m[k].any():
            ax.contour(m[k].astype(float), levels=[0.5], colors="r", linewidths=1)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    report.figure(fig, f"Test subject {case.subject}, slice {k}: SUV with each method's lesion contour (red).")
    plt.close(fig)


def run_segment_study(out: str | os.PathLike, *, preset: str = "quick", dataset: str | os.PathLike | None = None,
                      seed: int = 0, device: Any = "cpu", overwrite: bool = False) -> str:
    """Run the segmentation study into ``out`` (see the module docstring); returns a one-line summary."""
    from petspect.evaluation import (Budget, epoch_choice, paired_delta_ci, read_splits, read_test_split,
                                     summarise_methods)
    from petspect.evaluation.study import Check, StudySummary, claim_study_folder, write_study
    from petspect.evaluation.tuning import grid_search
    from petspect.report import HtmlReport
    from petspect.evaluation.study import check_metrics
    from petspect.segmentation.networks import save_segmenter
    from petspect.segmentation.postprocess import POST_SEARCH_SPACE, PostProcess, lesion_mask
    from petspect.segmentation.train import train_segmenter

    if preset not in STUDY_PRESETS:
        raise ConfigError(f"unknown segmentation study preset {preset!r}; choose one of {sorted(STUDY_PRESETS)}")
    p = STUDY_PRESETS[preset]
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    t0, c0, load0 = time.perf_counter(), time.process_time(), os.getloadavg()
    out_p = claim_study_folder(out, overwrite=overwrite, inputs=[dataset] if dataset is not None else [])
    data_info: dict[str, Any]
    if dataset is None:
        root = out_p / "data"
        if preset == "tiny":
            _toy_dataset(root, p.subjects, seed)
            data_info = {"source": "image-domain toy (tiny preset)", "subjects": p.subjects}
        else:
            from petspect.simulate.cohort import simulate_cohort
            from petspect.simulate.no_inverse_crime import describe

            cfg = _quick_cohort(p.subjects, seed, p.cohort) if preset == "quick" else _full_cohort(p.subjects, seed)
            simulate_cohort(cfg, root, workers=1, overwrite=True)
            data_info = {"source": "petspect.simulate", "config": cfg.to_dict(), **describe(cfg)}
    else:
        root = Path(dataset)
        data_info = {"source": str(root)}
    wall["data"] = time.perf_counter() - t0
    cpu["data"] = time.process_time() - c0
    splits = read_splits(root)
    sim = (splits.meta.get("petspect") or {}).get("simulation") or {}
    inverse_crime = data_info.get("inverse_crime", sim.get("inverse_crime"))
    ids = _label_ids(splits.meta)
    train = [load_case(root, e, p.image_key) for e in splits.training]
    val = [load_case(root, e, p.image_key) for e in splits.validation]
    if not train or not val:
        raise ConfigError("the study needs training and validation subjects", path=root / "dataset.json")

    # 1. classical methods tuned on validation, one search and budget each
    t = time.perf_counter()
    budget = Budget(max_trials=p.budget_trials, seed=seed)
    tuned: dict[str, Any] = {}
    params: dict[str, ThresholdParams] = {}
    val_dice: dict[str, float] = {}
    for m in ThresholdMethod:
        base = DEFAULT_PARAMS[m]

        def objective(prm: dict[str, float], m=m, base=base) -> float:
            q = replace(base, **prm)
            return _mean_dice([_threshold(m, c, q, ids) for c in val], val)

        res = grid_search(m.value, objective, SEARCH_SPACE[m], budget, objective_name="mean validation Dice")
        params[m.value] = replace(base, **res.best)
        val_dice[m.value] = res.best_score
        tuned[m.value] = res.to_dict()
    comparator = max(val_dice, key=lambda k: val_dice[k])
    wall["tune_classical"] = time.perf_counter() - t

    # 2. networks: epoch chosen on validation Dice, then the post-processing on validation (same budget)
    nets = {}
    val_ex = [_masks(c, ids)[1] for c in val]
    for name, spec, settings in p.networks:
        t, c_t = time.perf_counter(), time.process_time()
        seg = train_segmenter(train, val, spec, replace(settings, seed=seed), name=name, device=device)
        seg.flips = p.flips
        hist = [{"epoch": i + 1, "val_dice": v} for i, v in enumerate(seg.record["val_dice"])]
        probs = [seg.probability(c.suv, c.ct_hu).numpy() for c in val]

        def post_objective(prm: dict[str, float], probs=probs) -> float:
            return _mean_dice([lesion_mask(q, c.spacing_mm, PostProcess(**prm), exclude=e)
                               for q, c, e in zip(probs, val, val_ex)], val)

        post = grid_search(f"{name} post-processing", post_objective, POST_SEARCH_SPACE, budget,
                           objective_name="mean validation Dice")
        seg.threshold, seg.min_component_ml = float(post.best["threshold"]), float(post.best["min_component_ml"])
        tuned[name] = {**epoch_choice(name, hist, "val_dice").to_dict(), "post_processing": post.to_dict(),
                       "spec": spec.to_dict(), "settings": settings.__dict__,
                       "train_loss": seg.record["train_loss"], "flips": seg.flips,
                       "weights": seg.record.get("weights", "best epoch"),
                       "val_dice_average": seg.record.get("val_dice_average")}
        val_dice[name] = post.best_score
        save_segmenter(out_p / f"model_{name}", seg, overwrite=True)
        nets[name] = seg
        wall[f"train_{name}"] = time.perf_counter() - t
        cpu[f"train_{name}"] = time.process_time() - c_t
    net_names = list(nets)
    main_net = max(net_names, key=lambda k: val_dice[k])

    # 3. the organ network (CT in), epoch chosen on validation
    organ_net, organs = None, ()
    if p.organ_network is not None and all(c.labels is not None for c in (*train, *val)):
        from petspect.segmentation.organs import organs_present, train_organ_segmenter

        organs = organs_present([c.labels for c in train], ids)
        if organs:
            t = time.perf_counter()
            oname, ospec, osettings = p.organ_network
            ospec = replace(ospec, classes=("background", *organs))
            organ_net = train_organ_segmenter(train, val, ids, ospec, replace(osettings, seed=seed), name=oname,
                                              device=device)
            hist = [{"epoch": i + 1, "val_dice": v} for i, v in enumerate(organ_net.record["val_dice"])]
            tuned[oname] = {**epoch_choice(oname, hist, "val_dice").to_dict(), "spec": ospec.to_dict(),
                            "settings": osettings.__dict__, "organs": list(organs),
                            "val_organ_dice": organ_net.record.get("val_organ_dice")}
            save_segmenter(out_p / f"model_{oname}", organ_net, overwrite=True)
            wall[f"train_{oname}"] = time.perf_counter() - t

    # 4. checks, written before the test split is read
    checks = [Check(f"{main_net} (the network with the best validation Dice) Dice above the best threshold "
                    f"method's ({comparator}, chosen on validation), paired 95 % interval above 0"),
              Check(f"{main_net} false-positive volume below suv25's, paired 95 % interval below 0"),
              Check("every method scored on every test subject")]
    if organ_net is not None:
        checks.append(Check(f"{organ_net.name}: mean test Dice over organs ({', '.join(organs)}) >= "
                            f"{ORGAN_DICE_PASS:.2f}"))

    # 5. the test split, read once
    t = time.perf_counter()
    config = {"task": "segment", "preset": preset, "seed": seed, "image_key": p.image_key,
              "classical": {k: v.__dict__ for k, v in params.items()},
              "networks": {n: {"spec": tuned[n]["spec"], "settings": tuned[n]["settings"],
                               "post": tuned[n]["post_processing"]["best"]} for n in net_names},
              "organ_network": tuned[organ_net.name]["spec"] if organ_net is not None else None,
              "exclude": list(PHYSIOLOGICAL)}
    entries, scoring = read_test_split(root, config, f"segment: {len(params) + len(nets)} methods")
    test = [load_case(root, e, p.image_key) for e in entries]
    per_subject: list[dict[str, dict[str, float]]] = []
    organ_rows: list[dict[str, dict[str, float]]] = []
    fig_preds: dict[str, np.ndarray] = {}
    for i, c in enumerate(test):
        row: dict[str, dict[str, float]] = {}
        for m in ThresholdMethod:
            pred = _threshold(m, c, params[m.value], ids)
            row[m.value] = _score(pred, c)
            if i == 0 and m.value in (comparator, "suv25"):
                fig_preds[m.value] = pred
        ex = _masks(c, ids)[1]
        for n, seg in nets.items():
            pred = lesion_mask(seg.probability(c.suv, c.ct_hu), c.spacing_mm,
                               PostProcess(seg.threshold, seg.min_component_ml), exclude=ex)
            row[n] = _score(pred, c)
            if i == 0:
                fig_preds[n] = pred
        per_subject.append(row)
        if organ_net is not None:
            organ_rows.append({organ_net.name: _organ_scores(organ_net, c, ids, organs)})
    wall["test"] = time.perf_counter() - t
    metrics = summarise_methods(per_subject, comparator=comparator, metrics=list(METRIC_NAMES), seed=seed)
    check_metrics(metrics, required=METRIC_NAMES)
    organ_metric_names = [f"organ_dice_{o}" for o in organs] + ["organ_dice"]
    if organ_net is not None:
        metrics.update(summarise_methods(organ_rows, metrics=organ_metric_names, seed=seed))
        orow = metrics[organ_net.name]
        od = orow.get("organ_dice")
        checks[3].passed = bool(od is not None and od >= ORGAN_DICE_PASS)
        parts = [f"{o} {orow[f'organ_dice_{o}']:.3f}" if f"organ_dice_{o}" in orow
                 else f"{o} n/a (in no test subject)" for o in organs]
        checks[3].detail = "; ".join(parts) + (f"; mean {od:.3f}" if od is not None else "; no organ in any test subject")

    d_dice = metrics[main_net].get("delta_dice_ci95")
    checks[0].passed = bool(d_dice is not None and d_dice[0] > 0)
    checks[0].detail = f"delta Dice {metrics[main_net].get('delta_dice', float('nan')):+.3f}, 95 % CI {d_dice}"
    fp_d = paired_delta_ci([r[main_net]["fp_volume_ml"] for r in per_subject],
                           [r["suv25"]["fp_volume_ml"] for r in per_subject], seed=seed)
    checks[1].passed = bool(fp_d.high < 0)
    checks[1].detail = f"delta FP volume {fp_d.value:+.2f} mL, 95 % CI {fp_d.as_list()}"
    checks[2].passed = all(len(r) == len(params) + len(nets) for r in per_subject) and (
        organ_net is None or len(organ_rows) == len(per_subject))
    checks[2].detail = f"{len(per_subject)} test subjects x {len(params) + len(nets)} lesion methods" + (
        f" and {organ_net.name}" if organ_net is not None else "")

    notes = list(p.notes) + [
        f"networks' post-processing (probability threshold, smallest component) chosen on validation: " + "; ".join(
            f"{n} {tuned[n]['post_processing']['best']}" for n in net_names),
        f"main network (best validation Dice): {main_net}",
        f"classical methods exclude the physiological-uptake organs {list(PHYSIOLOGICAL)} read from the organ "
        "labels (anatomy for them as the CT channel is for the networks); PERCIST reads the liver there",
        f"best classical method on validation: {comparator} (validation Dice {val_dice[comparator]:.3f})",
        "Dice is undefined for a scan without lesions (autoPET): such scans are left out of the Dice mean",
        "tracer: FDG only (no PSMA or other tracer in this study)"]
    summary = StudySummary(task="segment", preset=preset, seed=seed, data=data_info, inverse_crime=inverse_crime,
                           test_scored=scoring.test_scored, splits={"training": len(train), "validation": len(val),
                                                                    "test": len(test)},
                           tuned=tuned, checks=checks, wall_s=wall, device=str(device), notes=notes,
                           extra={"comparator": comparator, "validation_dice": val_dice,
                                  "test_scoring": scoring.to_dict(), "per_subject": per_subject,
                                  "per_subject_organs": organ_rows,
                                  "cpu_s": cpu, "load_average_start": list(load0),
                                  "subjects_test": [c.subject for c in test]})
    report = HtmlReport("petspect study segment", f"preset {preset}, seed {seed}")
    report.heading("Lesion segmentation on held-out subjects")
    report.paragraph(f"{len(test)} test subjects; means with bootstrap 95 % intervals; deltas are paired "
                     f"differences against {comparator} (the best classical method on validation).")
    report.metrics_table({m: {k: r[k] for k in METRIC_NAMES if k in r} for m, r in metrics.items()
                          if m != getattr(organ_net, "name", None)},
                         better=BETTER, caption="autoPET metrics, MTV and TLG bias (test split)")
    if organ_net is not None:
        report.heading("Organ segmentation on CT (test split)")
        report.metrics_table({organ_net.name: {k: metrics[organ_net.name][k] for k in organ_metric_names
                                               if k in metrics[organ_net.name]}},
                             better={k: "higher" for k in organ_metric_names},
                             caption="Dice per organ; organ_dice is the mean over organs per subject")
    report.heading("Training curves (validation Dice per epoch)")
    report.table([{"network": n, "best epoch": str(tuned[n].get("best", {}).get("epoch")),
                   "validation Dice": " ".join(f"{v:.2f}" for v in seg.record["val_dice"]),
                   "training loss": " ".join(f"{v:.2f}" for v in seg.record["train_loss"])}
                  for n, seg in [*nets.items(), *([(organ_net.name, organ_net)] if organ_net is not None else [])]])
    report.heading("Acceptance checks (written before the test split was read)")
    report.table([{"check": c.check, "passed": {True: "PASSED", False: "FAILED", None: "not run"}[c.passed],
                   "detail": c.detail} for c in checks])
    report.heading("Tuned on validation")
    report.table([{"method": k, "chosen": json.dumps(v.get("best") if "post_processing" not in v else
                                                      {**v["best"], **v["post_processing"]["best"]}),
                   "validation Dice": f"{val_dice.get(k, v.get('best_score')):.3f}",
                   "trials": len(v.get("trials", []))} for k, v in tuned.items()])
    if test:
        _figure(report, test[0], fig_preds)
    report.heading("Notes")
    for n in notes:
        report.paragraph(n)
    wall["total"] = time.perf_counter() - t0
    cpu["total"] = time.process_time() - c0
    summary.extra["load_average_end"] = list(os.getloadavg())
    write_study(out_p, metrics, summary, report)
    verdict = "PASSED" if checks[0].passed else "FAILED"
    return (f"segment study ({preset}): {main_net} Dice {metrics[main_net]['dice']:.3f} vs {comparator} "
            f"{metrics[comparator]['dice']:.3f} (delta CI {d_dice}); check {verdict}; wrote {out_p}")
