"""Registration benchmark: rigid SPECT/CT and PET/CT re-registration, and learned vs rigid deformable recovery.

Usage::

    .venv/bin/python benchmarks/bench_registration.py [--voxel-mm 6] [--shape 20 56 56] [--subjects 5]
                                                      [--pairs 24] [--epochs 30] [--seed 0] [--image-weight 200]
                                                      [--fixed ct|mr] [--save-model DIR]

Quick size (about 15 min on a shared 2-core CPU; BENCHMARKS.md's figures)::

    .venv/bin/python benchmarks/bench_registration.py --voxel-mm 8 --shape 24 40 40 --subjects 14 --pairs 8

The learned network generalises across subjects only when it sees many (with 4 training subjects it learns
their anatomy by heart): prefer more subjects with fewer pairs each.

All data are simulated from torso phantoms (:func:`petspect.phantoms.base.make_phantom`), so the truth is
known; no vendor SPECT/CT ships with the repository.

* Rigid: on each held-out subject, (a) a SPECT-like image (Tc-99m MDP activity, 12 mm FWHM blur, Poisson
  noise) against its CT shifted by (6.5, -4.0, 8.5) mm; (b) a PET-like image (FDG, 6 mm blur) rotated by
  (2, -1.5, 3) degrees and shifted (5, -3, 6) mm against its CT. Target registration error (TRE) of the organ
  centroids after Mattes-MI rigid registration (:func:`petspect.registration.rigid.register`: the metric on
  the CT's / MR's voxels, every voxel, 64 bins, the anatomical image blurred to the emission image's FWHM
  for the metric; ``--no-match-resolution`` skips the blur, ``--legacy-rigid`` runs the earlier settings:
  the emission grid sampled, a random half of its voxels, 50 bins); (c) the same moved PET against the
  phantom's T1-weighted MR (``mr_t1``: the phantom's MR contrast, on the CT's grid).
* Deformable: PET-like images deformed by random respiratory-like fields (amplitude 5-15 mm, with a
  <= 3 mm shift) against the undeformed CT. The learned network (:mod:`petspect.registration.learned`) is
  trained on the first subjects' pairs, its epoch chosen on the next subject's, and tested on the last
  subject's pairs (``--test-subjects K``: the last K subjects', with means and bootstrap 95 % intervals
  over those subjects and paired learned - rigid differences) against no registration and the rigid registration: TRE at the organ centroids,
  end-point error inside the body, and the Dice of liver, spleen and kidneys. ``--fixed mr`` makes the
  fixed image the phantom's T1 MR instead of the CT (PET -> MR); ``--save-model DIR`` keeps the trained
  network for ``petspect register MOVING FIXED --method learned --model DIR``.

Prints one line per figure; copy them into BENCHMARKS.md under "## Segmentation and registration".
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def _phantom(seed: int, voxel_mm: float, shape: tuple[int, int, int], tracer: str):
    from petspect.phantoms.base import make_phantom

    return make_phantom("torso", voxel_mm=voxel_mm, seed=seed, shape=shape, tracer=tracer).volumes


def rigid_part(subjects: list[int], voxel_mm: float, shape, seed: int, match_resolution: bool = True,
               legacy: dict | None = None) -> None:
    from petspect.registration.learned import emission_like
    from petspect.registration.rigid import map_points, register
    from petspect.registration.simulate import (move_rigidly, organ_landmarks, rigid_matrix,
                                                target_registration_error)

    legacy = legacy or {}
    rng = np.random.default_rng(seed)
    for name, tracer, fwhm, counts in (("SPECT/CT (CT shifted)", "mdp", 12.0, 60.0),
                                       ("PET/CT (PET rotated+shifted)", "fdg", 6.0, 400.0),
                                       ("PET/MR T1 (PET rotated+shifted)", "fdg-mr", 6.0, 400.0)):
        tres, times, before = [], [], []
        for s in subjects:
            v = _phantom(s, voxel_mm, shape, tracer.split("-")[0])
            emis = emission_like(v["activity"], fwhm_mm=fwhm, counts_at_max=counts, rng=rng)
            lm = np.array(list(organ_landmarks(v["labels"]).values()))
            t = time.perf_counter()
            blur = fwhm if match_resolution else 0.0  # the anatomical image blurred to the emission's FWHM
            if tracer == "mdp":
                motion = rigid_matrix(translation_mm=(6.5, -4.0, 8.5))
                res = register(move_rigidly(v["ct"], motion), emis, transform="rigid", seed=seed,
                               moving_fwhm_mm=blur, **legacy)
            else:
                c = v["ct"].voxel_to_world((np.array(v["ct"].shape) - 1) / 2.0)
                motion = rigid_matrix((2.0, -1.5, 3.0), (5.0, -3.0, 6.0), c)
                res = register(move_rigidly(emis, motion), v["mr_t1" if tracer.endswith("mr") else "ct"],
                               transform="rigid", seed=seed, fixed_fwhm_mm=blur, **legacy)
            times.append(time.perf_counter() - t)
            tres.append(target_registration_error(map_points(motion, lm), res.map_points(lm)))
            before.append(target_registration_error(map_points(motion, lm), lm))
        allt = np.concatenate(tres)
        print(f"rigid {name}: {len(subjects)} subjects, {len(allt)} organ landmarks: TRE mean {allt.mean():.2f} mm, "
              f"max {allt.max():.2f} mm (before registration: mean {np.concatenate(before).mean():.1f} mm); "
              f"{np.mean(times):.1f} s per registration")


def deformable_part(subjects: list[int], voxel_mm: float, shape, pairs: int, epochs: int, seed: int,
                    image_weight: float = 200.0, fixed: str = "ct", save_model: str | None = None,
                    rigid_fwhm_mm: float = 0.0, test_subjects: int = 1) -> None:
    from petspect.registration.learned import end_point_error, make_pairs, predict_field, train_learned_registration
    from petspect.registration.rigid import register
    from petspect.registration.simulate import organ_dice, organ_landmarks, warp

    if not 1 <= test_subjects <= len(subjects) - 2:
        raise SystemExit(f"--test-subjects {test_subjects}: needs 1 <= K <= subjects - 2 (one validation subject and "
                         f"at least one training subject), have {len(subjects)} subjects")
    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    data = {s: _phantom(s, voxel_mm, shape, "fdg") for s in subjects}
    fixed_key = {"ct": "ct", "mr": "mr_t1"}[fixed]
    sets = {s: make_pairs(v["activity"], v["ct"], pairs if i < len(subjects) - 1 - test_subjects else max(pairs // 3, 4), rng,
                          labels=v["labels"], fixed=v[fixed_key]) for i, (s, v) in enumerate(data.items())}
    print(f"deformable data (PET -> {fixed_key}): {len(subjects)} phantoms {shape} at {voxel_mm} mm, pairs "
          f"{[len(p) for p in sets.values()]}, {time.perf_counter() - t:.0f} s")
    # subjects in order: training, then one validation subject, then the K test subjects (K = 1: as before)
    val_subject, test_ids = subjects[-1 - test_subjects], subjects[-test_subjects:]
    train = [p for s in subjects[:-1 - test_subjects] for p in sets[s]]
    val = sets[val_subject]
    test = [(s, p) for s in test_ids for p in sets[s]]
    t = time.perf_counter()
    model = train_learned_registration(train, val, epochs=epochs, batch_size=4, seed=seed, image_weight=image_weight,
                                       fixed_kind=fixed)
    if save_model:
        from petspect.registration.learned import save_learned_registration

        print(f"saved the model to {save_learned_registration(save_model, model, overwrite=True)}")
    print(f"learned registration: trained {epochs} epochs on {len(train)} pairs in {time.perf_counter() - t:.0f} s; "
          f"best epoch {model.record['best_epoch']} (validation end-point error "
          f"{min(model.record['val_epe_mm']):.2f} mm)")
    print("validation end-point error per epoch (mm): " + " ".join(f"{v:.2f}" for v in model.record["val_epe_mm"]))
    print("training loss per epoch: " + " ".join(f"{v:.3f}" for v in model.record["train_loss"]))
    organs = [9, 10, 11]  # liver, spleen, kidney cortex
    rows = {"none": [], "rigid": [], "learned": []}
    times = {"rigid": [], "learned": []}
    subject_of = []
    for s, p in test:
        lm = np.array(list(organ_landmarks(p.labels_fixed).values()))
        k = np.round(p.fixed.world_to_voxel(lm)).astype(int)
        subject_of.append(s)
        true_at = p.field_mm[k[:, 0], k[:, 1], k[:, 2]]
        fields = {"none": np.zeros_like(p.field_mm)}
        t = time.perf_counter()
        res = register(p.moving, p.fixed, transform="rigid", seed=seed, fixed_fwhm_mm=rigid_fwhm_mm)
        times["rigid"].append(time.perf_counter() - t)
        from petspect.registration.simulate import _world_grid

        w = _world_grid(p.fixed)
        fields["rigid"] = w @ res.matrix[:3, :3].T + res.matrix[:3, 3] - w
        t = time.perf_counter()
        fields["learned"] = predict_field(model, p.moving, p.fixed)
        times["learned"].append(time.perf_counter() - t)
        for name, f in fields.items():
            tre = np.linalg.norm(f[k[:, 0], k[:, 1], k[:, 2]] - true_at, axis=-1)
            d = organ_dice(warp(p.labels_moving, f, mode="nearest"), p.labels_fixed, organs)
            rows[name].append((tre.mean(), end_point_error(f, p.field_mm, p.body), np.nanmean(list(d.values()))))
    where = "held-out subject" if test_subjects == 1 else f"{test_subjects} held-out subjects"
    for name, r in rows.items():
        a = np.asarray(r)
        extra = f"; {np.mean(times[name]):.2f} s per pair" if name in times else ""
        print(f"deformable PET -> {fixed_key} test ({len(test)} pairs, {where}): {name}: organ-centroid TRE "
              f"{a[:, 0].mean():.2f} mm, "
              f"end-point error {a[:, 1].mean():.2f} mm, mean Dice liver/spleen/kidney {a[:, 2].mean():.3f}{extra}")
    if test_subjects > 1:
        _subject_intervals(rows, subject_of, test_ids, fixed_key, seed)


def _subject_intervals(rows: dict, subject_of: list[int], test_ids: list[int], fixed_key: str, seed: int) -> None:
    """Print per-subject means, bootstrap 95 % intervals over test subjects and paired learned - rigid deltas.

    Each subject's value is the mean over its pairs; the subjects are the bootstrap units (pairs of one
    subject share its anatomy and are not independent).
    """
    from petspect.evaluation import paired_delta_ci, summarise_methods

    metrics = ("tre_mm", "epe_mm", "dice")
    owner = np.asarray(subject_of)
    per_subject = []
    for s in test_ids:
        sel = owner == s
        per_subject.append({name: dict(zip(metrics, np.asarray(r)[sel].mean(axis=0).tolist()))
                            for name, r in rows.items()})
        print(f"  subject {s}: " + "; ".join(
            f"{name} TRE {v['tre_mm']:.2f} mm, EPE {v['epe_mm']:.2f} mm, Dice {v['dice']:.3f}"
            for name, v in per_subject[-1].items()))
    summary = summarise_methods(per_subject, comparator="rigid", delta_for=["learned"], metrics=metrics, seed=seed)
    print(f"deformable PET -> {fixed_key}, {len(test_ids)} test subjects (mean over subjects, bootstrap 95 % "
          f"interval over subjects, 2000 resamples, seed {seed}):")
    for name, row in summary.items():
        print(f"  {name}: " + "; ".join(f"{m} {row[m]:.3f} [{row[m + '_ci95'][0]:.3f}, {row[m + '_ci95'][1]:.3f}]"
                                        for m in metrics))
    for ref in ("rigid", "none"):
        parts = []
        for m in metrics:
            d = paired_delta_ci([p["learned"][m] for p in per_subject], [p[ref][m] for p in per_subject], seed=seed)
            better = (d.high < 0) if m != "dice" else (d.low > 0)
            parts.append(f"{m} {d.value:+.3f} [{d.low:+.3f}, {d.high:+.3f}]"
                         f"{' (learned better, excludes 0)' if d.excludes_zero() and better else ''}"
                         f"{' (learned worse, excludes 0)' if d.excludes_zero() and not better else ''}")
        print(f"  paired learned - {ref}: " + "; ".join(parts))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--voxel-mm", type=float, default=6.0)
    ap.add_argument("--shape", type=int, nargs=3, default=[20, 56, 56])
    ap.add_argument("--subjects", type=int, default=5)
    ap.add_argument("--pairs", type=int, default=24)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--image-weight", type=float, default=200.0,
                    help="weight of the warp-consistency term of the learned registration's loss")
    ap.add_argument("--skip-deformable", action="store_true")
    ap.add_argument("--skip-rigid", action="store_true")
    ap.add_argument("--no-match-resolution", action="store_true",
                    help="rigid: do not blur the CT/MR to the emission image's FWHM for the metric")
    ap.add_argument("--legacy-rigid", action="store_true",
                    help="rigid: the settings before 2026-12-05 evening (sample the SPECT's grid, a random half of "
                         "its voxels, 50 bins, no blur) for a before/after comparison")
    ap.add_argument("--fixed", choices=("ct", "mr"), default="ct", help="the deformable case's fixed image")
    ap.add_argument("--deformable-rigid-fwhm-mm", type=float, default=0.0,
                    help="deformable part: blur the CT/MR to this FWHM for the rigid comparator's metric "
                         "(default 0: no blur, as in BENCHMARKS.md's figures; 6 = the PET's resolution)")
    ap.add_argument("--test-subjects", type=int, default=1,
                    help="deformable part: hold out the last K subjects for testing (the subject before them "
                         "validates, the rest train) and print bootstrap 95 %% intervals over test subjects "
                         "(default 1: the single held-out subject of BENCHMARKS.md's earlier figures)")
    ap.add_argument("--save-model", default=None, help="folder to keep the learned registration model in")
    a = ap.parse_args(argv)
    torch.set_num_threads(int(__import__("os").environ.get("OMP_NUM_THREADS", "1") or 1))
    shape = tuple(a.shape)
    subjects = list(range(100, 100 + a.subjects))
    if not a.skip_rigid:
        legacy = dict(sample_on="fixed", sampling=0.5, bins=50) if a.legacy_rigid else {}
        rigid_part(subjects[-2:], a.voxel_mm, shape, a.seed, not (a.no_match_resolution or a.legacy_rigid), legacy)
    if not a.skip_deformable:
        deformable_part(subjects, a.voxel_mm, shape, a.pairs, a.epochs, a.seed, a.image_weight, a.fixed,
                        a.save_model, a.deformable_rigid_fwhm_mm, a.test_subjects)


if __name__ == "__main__":
    main()
