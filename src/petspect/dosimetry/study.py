"""``petspect study dose``: dose-calculation methods against the Monte Carlo reference.

Cohort: Lu-177 PSMA torsos (:func:`petspect.phantoms.torso.make_torso`, 4.8 mm voxels, seeded per subject).
The time-integrated activity (TIA) of every organ comes from the tracer's organ kinetics
(:func:`petspect.phantoms.tracers.time_activity_curves` sampled at 4, 24 and 96 h and fitted with
:func:`petspect.dosimetry.tac.fit_tac`), applied to the phantom's 24 h activity map; lesions decay
physically. No imaging is simulated: the study isolates the dose calculation, so ``inverse_crime`` is
None (no reconstruction) and every method receives the same TIA map and CT.

Methods, each against ``monte_carlo`` (:func:`petspect.dosimetry.montecarlo.monte_carlo_dose`):
``local_deposition``, ``kernel_water``, ``kernel_density``, ``kernel_split`` (electron kernel density-scaled,
photon kernel not, its half-width chosen on the training subjects: the DL dose's physics base alone),
``dl_kernel`` (density-specific kernels from the local CT, trained on Monte Carlo patches), ``dl_dose``
(small CNN correction of ``kernel_split``, trained on the training subjects' Monte Carlo doses; epoch, the
untrained network included, chosen on validation).
Metrics per test subject: ``voxel_dose_error_pct`` (mean |D - D_MC| / D_MC over voxels above 10 % of the
MC maximum), ``organ_dose_bias_pct`` and ``lesion_dose_bias_pct`` (mean over organs/lesions of the
absolute relative error of the mean dose), ``lung_dose_bias_pct`` and ``bone_dose_bias_pct`` (same, for
lung and bone regions), ``wall_s`` and ``cpu_s`` (this process's CPU time; every method and the Monte Carlo
run on one thread, so the CPU-time ratio does not move with the machine's load); intervals by bootstrap
over test subjects. The Monte Carlo's history counts are chosen for a precision target, not for the speed
ratio: standard error of every organ's mean dose about 2 % (organs of at least 100 voxels), measured from
the Monte Carlo's independent batches and reported per subject (data.monte_carlo.subjects; the quick
preset reaches 0.3-0.5 % for the median organ and 1.4-3.2 % for the worst one); photons are cheap, so the
photon histories remove most of the low-uptake organs' noise, and the electrons set the rest.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import numpy as np

from petspect.errors import ConfigError

NUCLIDE = "Lu-177"
TRACER = "lu177-psma"
VOXEL_MM = 4.8
TIMES_H = (4.0, 24.0, 96.0)
METHODS = ("local_deposition", "kernel_water", "kernel_density", "kernel_split", "dl_kernel", "dl_dose")
#: candidate half-widths (voxels) of the photon kernel of the split kernel / DL dose base, chosen on training subjects
PHOTON_HALF_WIDTHS = (8, 12, 16, 24)


@dataclass(frozen=True)
class DosePreset:
    """Sizes of one preset."""

    subjects: tuple[int, int, int]  # training, validation, test
    shape: tuple[int, int, int]
    mc_electrons: int
    mc_photons: int
    kernel_patches: int
    kernel_electrons: int
    kernel_epochs: int
    dose_epochs: int
    kernel_half_width: int
    #: channels of the DL dose network: 8 (not dosimetry.dl's default 12) halves its inference cost, which is
    #: nearly all of the DL dose's time (the two FFT convolutions take ~1/15 of it)
    dose_width: int = 8
    #: candidate half-widths (voxels) of the split kernel's photon kernel, chosen on the training subjects
    photon_half_widths: tuple[int, ...] = PHOTON_HALF_WIDTHS


PRESETS = {
    "tiny": DosePreset((2, 1, 2), (8, 20, 20), 10_000, 2_000, 30, 300, 10, 3, 3, photon_half_widths=(3, 6)),
    "quick": DosePreset((5, 1, 3), (20, 48, 48), 2_000_000, 2_000_000, 240, 1500, 120, 20, 8),
    "full": DosePreset((12, 3, 10), (48, 80, 80), 3_000_000, 6_000_000, 2000, 5000, 200, 150, 10),
}


def _organ_tia_factors(label_names: dict[int, str], seed: int) -> tuple[dict[int, float], dict[str, dict]]:
    """TIA (Bq/mL h) per Bq/mL at 24 h for every organ label, from the tracer kinetics fitted by fit_tac."""
    from petspect.dosimetry.tac import fit_tac
    from petspect.nuclides import half_life_s
    from petspect.phantoms.tracers import time_activity_curves

    t_half_h = half_life_s(NUCLIDE) / 3600.0
    from petspect.errors import InputError
    from petspect.phantoms.tracers import get_tracer

    names = []
    for n in sorted(set(label_names.values())):
        try:
            time_activity_curves(TRACER, [n], np.array([24 * 3600.0]), seed=0)
            names.append(n)
        except InputError:  # tissues without uptake in the tracer model (background, air)
            continue
    get_tracer(TRACER)
    curves = time_activity_curves(TRACER, names, np.array(TIMES_H) * 3600.0, seed=seed)
    factors, fits = {}, {}
    for lab, name in label_names.items():
        c = np.asarray(curves.get(name, np.zeros(3)), dtype=float)
        if c.max() <= 0:
            factors[lab] = 0.0
            continue
        fit = fit_tac(TIMES_H, c, physical_half_life_h=t_half_h)
        factors[lab] = fit.tia / c[1]
        fits[name] = {"model": fit.model, "tia_per_c24_h": fit.tia / c[1]}
    return factors, fits


def make_subject(index: int, seed: int, preset: DosePreset) -> dict:
    """One subject: TIA (MBq s per voxel), HU, density, labels, lesions and label names."""
    from petspect.dosimetry.voxel_dose import hu_to_density
    from petspect.nuclides import half_life_s
    from petspect.phantoms import make_phantom

    s = seed * 1000 + index
    ph = make_phantom("torso", voxel_mm=VOXEL_MM, seed=s, tracer=TRACER, shape=preset.shape,
                      uptake_time_s=24 * 3600.0)
    act = ph.volumes["activity"].numpy().astype(np.float64)
    labels = ph.volumes["labels"].numpy().astype(np.int64)
    lesions = ph.volumes["lesions"].numpy().astype(np.int64)
    hu = ph.volumes["ct"].numpy().astype(np.float64)
    factors, fits = _organ_tia_factors(dict(ph.label_names), s)
    lut = np.zeros(labels.max() + 1)
    for lab, f in factors.items():
        if lab < len(lut):
            lut[lab] = f
    factor = lut[labels]
    lam = math.log(2) / (half_life_s(NUCLIDE) / 3600.0)
    factor = np.where(lesions > 0, math.exp(lam * 24.0) / lam, factor)
    tia_bq_ml_h = act * factor
    tia_mbq_s = tia_bq_ml_h * (VOXEL_MM ** 3 * 1e-3) * 3600.0 / 1e6
    return {"tia": tia_mbq_s, "hu": hu, "density": hu_to_density(hu), "labels": labels, "lesions": lesions,
            "label_names": dict(ph.label_names), "tac_fits": fits, "seed": s}


def _region_bias(dose, ref, masks) -> float:
    vals = []
    for m in masks:
        if m.sum() >= 3 and ref[m].mean() > 0:
            vals.append(abs(dose[m].mean() / ref[m].mean() - 1.0) * 100.0)
    return float(np.mean(vals)) if vals else math.nan


def _organ_masks(subj: dict) -> dict[str, np.ndarray]:
    names, labels = subj["label_names"], subj["labels"]
    return {n: labels == k for k, n in names.items() if k > 0 and n not in ("air", "background")}


def region_map(subj: dict) -> np.ndarray:
    """Integer regions for the DL dose loss: organ labels, lesions as their own labels above them."""
    labels = subj["labels"].astype(np.int64)
    les = subj["lesions"].astype(np.int64)
    return np.where(les > 0, labels.max() + les, labels)


def subject_metrics(dose: np.ndarray, ref: np.ndarray, subj: dict, wall_s: float,
                    cpu_s: float = math.nan) -> dict[str, float]:
    """Metrics of one method on one subject against the Monte Carlo dose."""
    hi = ref > 0.1 * ref.max()
    names = subj["label_names"]
    labels, lesions = subj["labels"], subj["lesions"]
    organ_masks = list(_organ_masks(subj).values())
    lung = [labels == k for k, n in names.items() if "lung" in n]
    bone = [labels == k for k, n in names.items() if "bone" in n or "spine" in n or "rib" in n or "marrow" in n]
    lesion_masks = [lesions == k for k in np.unique(lesions) if k > 0]
    return {"voxel_dose_error_pct": float(np.mean(np.abs(dose[hi] - ref[hi]) / ref[hi]) * 100.0),
            "organ_dose_bias_pct": _region_bias(dose, ref, organ_masks),
            "lesion_dose_bias_pct": _region_bias(dose, ref, lesion_masks),
            "lung_dose_bias_pct": _region_bias(dose, ref, lung),
            "bone_dose_bias_pct": _region_bias(dose, ref, bone),
            "wall_s": float(wall_s), "cpu_s": float(cpu_s)}


def _classical(subj, kernel, em):
    from petspect.dosimetry import voxel_dose as vd
    from petspect.dosimetry.dl import timed

    out = {}
    out["local_deposition"] = timed(vd.local_deposition_dose, subj["tia"], VOXEL_MM, em.mean_electron_energy_mev(),
                                    subj["density"])
    out["kernel_water"] = timed(vd.kernel_dose, subj["tia"], kernel.values)
    out["kernel_density"] = timed(vd.kernel_dose, subj["tia"], kernel.values, density_g_per_ml=subj["density"],
                                  kernel_density_g_per_ml=kernel.info.density_g_per_ml)
    return out


def _choose_photon_half_width(train: list[dict], electron_kernel: np.ndarray, photon_kernels: dict) -> tuple[int, dict]:
    """Photon-kernel half-width of the split kernel with the lowest mean organ bias on the training subjects.

    (A longer photon kernel adds the far photon field of an infinite medium; the body is finite, so the best
    reach is an empirical question, answered on training data only.)
    """
    from petspect.dosimetry.dl import physics_base_dose

    scores = {}
    for hw, pk in photon_kernels.items():
        vals = []
        for subj in train:
            e, ph = physics_base_dose(subj["tia"], subj["density"], electron_kernel, pk)
            vals.append(_region_bias(e + ph, subj["mc"], list(_organ_masks(subj).values())))
        scores[hw] = float(np.mean(vals))
    return min(scores, key=scores.get), scores


def run_dose_study(preset: str, out, *, seed: int = 0, overwrite: bool = False) -> list[str]:
    """Run the study and write metrics.json, summary.json, report/index.html and per-subject data."""
    import torch

    from petspect._fileio import atomic_write_text
    from petspect._json import write_json
    from petspect.dosimetry import dl
    from petspect.dosimetry.kernels import voxel_kernel
    from petspect.dosimetry.montecarlo import monte_carlo_dose
    from petspect.dosimetry.spectra import emissions
    from petspect.evaluation import record_test_scoring, summarise_methods
    from petspect.evaluation.study import Check, StudySummary, claim_study_folder, write_study
    from petspect.progress import track
    from petspect.report import HtmlReport

    if preset not in PRESETS:
        raise ConfigError(f"unknown dose study preset {preset!r}; choose one of {sorted(PRESETS)}")
    p = PRESETS[preset]
    out_dir = claim_study_folder(out, overwrite=overwrite)
    walls: dict[str, float] = {}
    t0 = time.perf_counter()
    em = emissions(NUCLIDE)
    kernel = voxel_kernel(NUCLIDE, VOXEL_MM, half_width=p.kernel_half_width)
    photon_kernel = voxel_kernel(NUCLIDE, VOXEL_MM, half_width=p.kernel_half_width, components=("photons",)).values
    electron_kernel = voxel_kernel(NUCLIDE, VOXEL_MM, half_width=p.kernel_half_width, components=("electrons",)).values
    photon_kernels = {hw: voxel_kernel(NUCLIDE, VOXEL_MM, half_width=hw, components=("photons",)).values
                      for hw in p.photon_half_widths}
    walls["kernels"] = time.perf_counter() - t0
    n_tr, n_va, n_te = p.subjects
    ids = [f"sub-{i:03d}" for i in range(n_tr + n_va + n_te)]
    split = {"training": ids[:n_tr], "validation": ids[n_tr:n_tr + n_va], "test": ids[n_tr + n_va:]}
    subjects, mc_info = {}, {}
    t1 = time.perf_counter()
    for i, sid in enumerate(track(ids, "dose study: phantoms + Monte Carlo")):
        subj = make_subject(i, seed, p)
        mc = monte_carlo_dose(subj["tia"], subj["hu"], VOXEL_MM, NUCLIDE, n_electrons=p.mc_electrons,
                              n_photons=p.mc_photons, n_batches=5, seed=subj["seed"], density_g_per_ml=subj["density"])
        subj["mc"], subj["mc_wall_s"], subj["mc_cpu_s"] = mc.dose_gy, mc.wall_s, mc.cpu_s
        se = {n: 100 * mc.region_relative_se(m) for n, m in _organ_masks(subj).items() if m.sum() >= 100}
        se = {n: v for n, v in se.items() if math.isfinite(v)}
        mc_info[sid] = {"relative_uncertainty": mc.relative_uncertainty(), "wall_s": mc.wall_s, "cpu_s": mc.cpu_s,
                        "organ_mean_se_pct_max": max(se.values()) if se else None,
                        "organ_mean_se_pct_median": float(np.median(list(se.values()))) if se else None,
                        "organ_mean_se_pct": {n: round(v, 2) for n, v in se.items()}}
        subjects[sid] = subj
    walls["phantoms_and_monte_carlo"] = time.perf_counter() - t1
    # DL kernel: trained on Monte Carlo patches only (no subject data)
    t2 = time.perf_counter()
    kmodel = dl.train_kernel_model(NUCLIDE, VOXEL_MM, n_train=p.kernel_patches, n_val=max(p.kernel_patches // 5, 4),
                                   electrons_per_patch=p.kernel_electrons, epochs=p.kernel_epochs, seed=seed)
    walls["dl_kernel_training"] = time.perf_counter() - t2
    # split kernel / DL dose base: photon reach chosen on the training subjects only
    photon_hw, photon_scores = _choose_photon_half_width([subjects[s] for s in split["training"]], electron_kernel,
                                                         photon_kernels)
    split_photon_kernel = photon_kernels[photon_hw]

    def split_dose(tia, density):  # kernel_split's dose, and its two parts (the DL dose's base)
        e, ph = dl.physics_base_dose(tia, density, electron_kernel, split_photon_kernel)
        return e + ph, e, ph

    # DL dose: trained on training subjects, epoch (0 = the physics base itself) chosen on validation
    cases = {}
    for sid, subj in subjects.items():
        subj["classical"] = _classical(subj, kernel, em)
        (total, e, ph), wall_s, cpu_s = dl.timed(split_dose, subj["tia"], subj["density"])
        subj["classical"]["kernel_split"] = (total, wall_s, cpu_s)
        cases[sid] = {"tia": subj["tia"], "density": subj["density"], "electron_dose": e, "photon_dose": ph,
                      "mc": subj["mc"], "regions": region_map(subj)}
    t3 = time.perf_counter()
    dmodel = dl.train_dose_model([cases[s] for s in split["training"]], [cases[s] for s in split["validation"]],
                                 epochs=p.dose_epochs, seed=seed, width=p.dose_width)
    walls["dl_dose_training"] = time.perf_counter() - t3

    def dl_dose_full(tia, density):
        e, ph = dl.physics_base_dose(tia, density, electron_kernel, split_photon_kernel)
        return dl.dl_dose(dmodel, tia, density, e, ph)

    checks = [
        Check("kernel_density closer to Monte Carlo than kernel_water in lung (lung_dose_bias_pct)"),
        Check("kernel_density closer to Monte Carlo than kernel_water in bone (bone_dose_bias_pct)"),
        Check("dl_kernel closer to Monte Carlo than kernel_water in lung and bone"),
        Check("dl_dose organ_dose_bias_pct within 5 % of Monte Carlo"),
        Check("dl_dose at least 100x faster than Monte Carlo in CPU time and in wall time (one thread each; "
              "MC at its stated precision target)"),
    ]
    config = {"task": "dose", "preset": preset, "seed": seed, "nuclide": NUCLIDE, "voxel_mm": VOXEL_MM,
              "shape": list(p.shape), "methods": list(METHODS)}
    scoring = record_test_scoring(out_dir, config, "dose study: test subjects scored against Monte Carlo",
                                  split["test"])
    load_avg = {"before_test_scoring": [round(v, 2) for v in os.getloadavg()]}
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # every timed method on one thread, as the Monte Carlo (numba, serial)
    try:
        per_subject, rows = _score_test(split["test"], subjects, kmodel, photon_kernel, dl_dose_full)
    finally:
        torch.set_num_threads(torch_threads)
    load_avg["after_test_scoring"] = [round(v, 2) for v in os.getloadavg()]
    metrics = summarise_methods(per_subject, comparator="kernel_density",
                                metrics=["voxel_dose_error_pct", "organ_dose_bias_pct", "lesion_dose_bias_pct",
                                         "lung_dose_bias_pct", "bone_dose_bias_pct", "wall_s", "cpu_s"],
                                seed=seed)
    _evaluate_checks(checks, metrics)
    walls["total"] = time.perf_counter() - t0
    summary = StudySummary(
        task="dose", preset=preset, seed=seed,
        data={"phantom": "torso", "tracer": TRACER, "nuclide": NUCLIDE, "voxel_mm": VOXEL_MM, "shape": list(p.shape),
              "tia": "organ kinetics (time_activity_curves at 4/24/96 h, fit_tac) x 24 h activity; lesions decay "
                     "physically; no imaging simulated", "monte_carlo": {"electrons": p.mc_electrons,
                                                                        "photons": p.mc_photons,
                                                                        "subjects": mc_info}},
        inverse_crime=None, test_scored=scoring.test_scored, splits={k: len(v) for k, v in split.items()},
        tuned={"dl_kernel": {"val_loss": kmodel.val_loss, "train_loss": kmodel.train_loss,
                             "patches": p.kernel_patches, "electrons_per_patch": p.kernel_electrons,
                             "epochs": p.kernel_epochs, "selection": "best validation epoch"},
               "kernel_split": {"photon_half_width_voxels": photon_hw,
                                "train_organ_bias_pct_by_half_width": photon_scores,
                                "selection": "lowest mean organ bias on the training subjects"},
               "dl_dose": {"val_loss": dmodel.val_loss, "base_val_loss": dmodel.base_val_loss,
                           "train_loss": dmodel.train_loss, "epochs": p.dose_epochs, "chosen_epoch": dmodel.epoch,
                           "selection": "best validation epoch; epoch 0 = untrained network = kernel_split"}},
        checks=checks, wall_s={k: round(v, 2) for k, v in walls.items()}, device="cpu",
        notes=["The Monte Carlo reference and the DL training targets share petspect's own transport physics "
               "(condensed-history electrons with energy-loss straggling, Compton/photoelectric photons); it is "
               "not an independent Geant4 reference.",
               "organ/lesion/lung/bone biases are means over regions of |mean dose / MC mean dose - 1|.",
               "dl_dose wall and CPU time include its two fixed kernel convolutions (timed end to end after one "
               "untimed warm-up call); dl_kernel includes its photon kernel convolution; training times are in "
               "wall_s (dl_kernel_training, dl_dose_training).",
               f"Monte Carlo precision target: organ-mean standard error about 2 % for organs of >= 100 voxels "
               f"({p.mc_electrons} electrons + {p.mc_photons} photons per subject); the speed ratio is against this "
               f"MC, measured per subject (organ_mean_se_pct in data.monte_carlo).",
               "Timing: every method and the Monte Carlo on one thread (torch pinned to 1 thread while the test "
               "subjects are timed); CPU time is this process's; the machine's load averages are in "
               "extra.timing. Machine: shared 2-core CPU dev VM; wall times are loaded-machine figures."],
        extra={"subjects": split, "tac_fits_example": subjects[ids[0]]["tac_fits"],
               "timing": {"torch_threads_during_test_scoring": 1, "monte_carlo": "numba, serial (one thread)",
                          "load_average_1_5_15_min": load_avg,
                          "dl_dose_inference": "DoseNet through oneDNN convolutions (dl.DoseNet._forward_onednn)"
                          if dl._use_onednn_available() else "DoseNet, PyTorch default convolutions"}})
    report = HtmlReport("petspect dose study", f"preset {preset}, {NUCLIDE}, {VOXEL_MM} mm voxels")
    report.paragraph(__doc__.split("\n\n")[1].replace("\n", " "))
    report.metrics_table({m: {k: v for k, v in r.items() if not isinstance(v, list)} for m, r in metrics.items()})
    report.table([{"check": c.check, "passed": c.passed, "detail": c.detail} for c in checks])
    report.table(rows)
    paths = write_study(out_dir, metrics, summary, report, required=["wall_s"])
    write_json(out_dir / "per_subject.json", rows, nonfinite="null")
    atomic_write_text(out_dir / "README.txt", "petspect study dose: see report/index.html\n")
    lines = [f"{m}: " + ", ".join(f"{k} {r[k]:.3g}" for k in ("voxel_dose_error_pct", "organ_dose_bias_pct",
                                                              "lung_dose_bias_pct", "bone_dose_bias_pct", "wall_s",
                                                              "cpu_s")
                                  if isinstance(r.get(k), float))
             for m, r in metrics.items()]
    lines += [f"check: {c.check}: {'PASSED' if c.passed else 'FAILED' if c.passed is False else 'n/a'} {c.detail}"
              for c in checks]
    lines.append(f"wrote {paths['metrics']} ({walls['total']:.0f} s)")
    return lines


def _score_test(test_ids, subjects, kmodel, photon_kernel, dl_dose_full):
    """Run and time every method on the test subjects; (per-subject metric rows, flat table rows)."""
    from petspect.dosimetry import dl

    per_subject, rows = [], []
    for sid in test_ids:
        subj = subjects[sid]
        res = {m: subj["classical"][m] for m in ("local_deposition", "kernel_water", "kernel_density", "kernel_split")}
        res["dl_kernel"] = dl.timed(dl.dl_kernel_dose, subj["tia"], subj["density"], kmodel, photon_kernel)
        dl.timed(dl_dose_full, subj["tia"], subj["density"])  # warm-up (first call allocates), not scored
        # timed end to end: both kernel convolutions of the physics base and the network, one thread
        res["dl_dose"] = dl.timed(dl_dose_full, subj["tia"], subj["density"])
        row = {m: subject_metrics(d, subj["mc"], subj, w, c) for m, (d, w, c) in res.items()}
        row["monte_carlo"] = {"wall_s": subj["mc_wall_s"], "cpu_s": subj["mc_cpu_s"]}
        per_subject.append(row)
        for m, met in row.items():
            rows.append({"subject": sid, "method": m, **{k: round(v, 4) for k, v in met.items()}})
    return per_subject, rows


def _evaluate_checks(checks, metrics) -> None:
    def val(m, k):
        v = metrics.get(m, {}).get(k)
        return v if isinstance(v, float) and math.isfinite(v) else None

    def compare(c, m, k, ref="kernel_water"):
        a, b = val(m, k), val(ref, k)
        return None if a is None or b is None else a < b, f"{m} {a} vs {ref} {b}"

    for c, (m, k) in zip(checks[:2], [("kernel_density", "lung_dose_bias_pct"), ("kernel_density", "bone_dose_bias_pct")]):
        c.passed, c.detail = compare(c, m, k)
    r1 = compare(checks[2], "dl_kernel", "lung_dose_bias_pct")
    r2 = compare(checks[2], "dl_kernel", "bone_dose_bias_pct")
    checks[2].passed = None if r1[0] is None or r2[0] is None else bool(r1[0] and r2[0])
    checks[2].detail = f"lung: {r1[1]}; bone: {r2[1]}"
    b = val("dl_dose", "organ_dose_bias_pct")
    checks[3].passed = None if b is None else b <= 5.0
    checks[3].detail = f"organ_dose_bias_pct {b}"
    ratios, parts = [], []
    for k in ("cpu_s", "wall_s"):
        t_dl, t_mc = val("dl_dose", k), val("monte_carlo", k)
        r = t_mc / t_dl if t_dl and t_mc else None
        ratios.append(r)
        parts.append(f"{k}: MC {t_mc} / DL {t_dl} = {r if r is not None else float('nan'):.0f}x")
    checks[4].passed = None if None in ratios else all(r >= 100.0 for r in ratios)
    checks[4].detail = "; ".join(parts)
