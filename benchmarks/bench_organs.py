"""Organ network on CT: train on a cohort's training subjects, report the validation curve (never the test split).

Usage::

    .venv/bin/python benchmarks/bench_organs.py --dataset DIR [--epochs 40] [--repeats 1] [--lr 5e-3]
        [--filters 16 32 64 128] [--z-strides 1 2 2] [--patch 12 64 64] [--batch 2] [--shift 1 4 4]
        [--inputs ct|ct_windows] [--seed 0] [--save-model DIR] [--json OUT.json] [--score-dataset OTHER]
    .venv/bin/python benchmarks/bench_organs.py --simulate DIR [--subjects 40] ...
    .venv/bin/python benchmarks/bench_organs.py --dataset DIR --load-model MODEL --score-dataset OTHER

``--score-dataset OTHER`` scores the model on every subject of another cohort (simulated with another seed,
never used for training or for choosing anything): a held-out estimate that leaves the study's test split unread.

``--dataset`` reads an existing cohort in the dataset layout (``petspect study segment``'s quick cohort, e.g.
``STUDY/data``); ``--simulate DIR`` first simulates the segmentation study's quick cohort there
(:func:`petspect.segmentation.study._quick_cohort`: FDG torsos of 12 x 64 x 64 voxels of 6 mm, splits
24/6/10 for 40 subjects; about 7 s per subject on an idle core). Only the ``training`` and ``validation``
entries of dataset.json are loaded: the test subjects are never read here, so this benchmark can choose the
study's organ schedule without touching what the study judges.

Defaults are the ``quick`` preset's ``organ_network`` entry (:data:`petspect.segmentation.study.STUDY_PRESETS`),
so a run without options reproduces the preset's validation curve. Prints one line per epoch (training loss,
mean validation Dice, Dice per organ), the best epoch and the training wall time; ``--json`` writes them.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path


def main() -> None:
    from petspect.segmentation.study import STUDY_PRESETS

    _, qspec, qset = STUDY_PRESETS["quick"].organ_network
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", type=Path, help="existing cohort folder (dataset.json)")
    src.add_argument("--simulate", type=Path, help="simulate the study's quick cohort into this new folder")
    ap.add_argument("--subjects", type=int, default=STUDY_PRESETS["quick"].subjects)
    ap.add_argument("--epochs", type=int, default=qset.epochs)
    ap.add_argument("--repeats", type=int, default=qset.patches_per_case, help="windows per subject and epoch")
    ap.add_argument("--lr", type=float, default=qset.lr)
    ap.add_argument("--batch", type=int, default=qset.batch_size)
    ap.add_argument("--filters", type=int, nargs="+", default=list(qspec.filters))
    ap.add_argument("--z-strides", type=int, nargs="+", default=list(qspec.z_strides))
    ap.add_argument("--patch", type=int, nargs=3, default=list(qspec.patch_zyx))
    ap.add_argument("--shift", type=int, nargs=3, default=[1, 4, 4], help="max window shift (voxels, z y x)")
    ap.add_argument("--train-subjects", type=int, default=0, help="use only the first N training subjects")
    ap.add_argument("--inputs", default=qspec.inputs, choices=("ct", "ct_windows"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-model", type=Path)
    ap.add_argument("--load-model", type=Path, help="skip training: score this model folder (with --score-dataset)")
    ap.add_argument("--score-dataset", type=Path,
                    help="also score the model on EVERY subject of this other cohort (e.g. a freshly simulated one, "
                         "never seen in training or model choice): a test-free estimate of held-out Dice")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()

    from petspect.evaluation import read_splits
    from petspect.segmentation.networks import save_segmenter
    from petspect.segmentation.organs import organs_present, train_organ_segmenter
    from petspect.segmentation.study import _label_ids, _quick_cohort, load_case

    t0 = time.perf_counter()
    if a.simulate is not None:
        from petspect.simulate.cohort import simulate_cohort

        simulate_cohort(_quick_cohort(a.subjects, a.seed), a.simulate, workers=1)
        root = a.simulate
        print(f"simulated {a.subjects} subjects in {time.perf_counter() - t0:.0f} s")
    else:
        root = a.dataset
    splits = read_splits(root)  # reads dataset.json; the test entries are not loaded below
    ids = _label_ids(splits.meta)
    key = STUDY_PRESETS["quick"].image_key
    train = [load_case(root, e, key) for e in splits.training]
    if a.train_subjects:
        train = train[:a.train_subjects]
    val = [load_case(root, e, key) for e in splits.validation]
    organs = organs_present([c.labels for c in train], ids)
    spec = replace(qspec, inputs=a.inputs, in_channels={"ct": 1, "ct_windows": 2}[a.inputs],
                   filters=tuple(a.filters), z_strides=tuple(a.z_strides), patch_zyx=tuple(a.patch),
                   classes=("background", *organs))
    settings = replace(qset, epochs=a.epochs, patches_per_case=a.repeats, lr=a.lr, batch_size=a.batch, seed=a.seed)
    print(f"{len(train)} training, {len(val)} validation subjects of {train[0].ct_hu.shape} voxels "
          f"{train[0].spacing_mm} mm; organs {organs}; spec {spec.to_dict()}; settings {settings.__dict__}")
    if a.load_model is not None:
        from petspect.segmentation.networks import load_segmenter

        seg = load_segmenter(a.load_model)
        _score_other(seg, a.score_dataset, root, key)
        return
    t = time.perf_counter()
    seg = train_organ_segmenter(train, val, ids, spec, settings, name="organs_dynunet", shift_zyx=tuple(a.shift))
    train_s = time.perf_counter() - t
    rec = seg.record
    for i, (loss, v) in enumerate(zip(rec["train_loss"], rec["val_dice"])):
        per = " ".join(f"{o} {rec['val_organ_dice'][o][i]:.3f}" for o in organs)
        print(f"epoch {i + 1:3d} loss {loss:.3f} val mean Dice {v:.3f} | {per}")
    b = rec["best_epoch"]
    print(f"best epoch {b + 1} of {a.epochs}: validation mean Dice {rec['val_dice'][b]:.3f} ("
          + ", ".join(f"{o} {rec['val_organ_dice'][o][b]:.3f}" for o in organs)
          + f"); training {train_s:.0f} s for {a.epochs * a.repeats * len(train) // a.batch} steps")
    if a.save_model is not None:
        save_segmenter(a.save_model, seg, overwrite=True)
    if a.score_dataset is not None:
        _score_other(seg, a.score_dataset, root, key)
    if a.json is not None:
        a.json.write_text(json.dumps({"spec": spec.to_dict(), "settings": settings.__dict__, "shift_zyx": a.shift,
                                      "n_train": len(train), "n_validation": len(val), "train_s": train_s,
                                      "record": rec}, indent=1, default=str) + "\n")


def _score_other(seg, other: Path | None, root: Path, key: str) -> None:
    """Dice per organ of ``seg`` on every subject (all splits) of another cohort, mean and range."""
    import numpy as np

    from petspect.evaluation import read_splits
    from petspect.segmentation.organs import organ_dice, organ_target
    from petspect.segmentation.study import _label_ids, load_case

    if other is None:
        raise SystemExit("--load-model needs --score-dataset")
    if Path(other).resolve() == Path(root).resolve():
        raise SystemExit("--score-dataset must be another cohort: scoring every subject of the training cohort "
                         "would read its test split")
    meta = json.loads((Path(other) / "dataset.json").read_text())
    entries = meta["training"] + meta["validation"] + meta.get("test", [])
    ids = _label_ids(read_splits(other).meta)
    organs = seg.spec.classes[1:]
    rows = []
    for e in entries:
        c = load_case(Path(other), e, key)
        d = organ_dice(seg.labels(c.ct_hu), organ_target(c.labels, ids, organs), organs)
        rows.append(d)
        print(f"{c.subject}: " + " ".join(f"{o} {v:.3f}" for o, v in d.items()))
    per_subject = [np.nanmean(list(d.values())) for d in rows]
    print(f"other cohort {other} ({len(rows)} subjects, never seen): mean organ Dice {np.mean(per_subject):.3f} "
          f"(subjects {min(per_subject):.3f}-{max(per_subject):.3f}); "
          + ", ".join(f"{o} {np.nanmean([d[o] for d in rows]):.3f}" for o in organs))


if __name__ == "__main__":
    main()
