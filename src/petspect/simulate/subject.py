"""One simulated subject: phantom -> acquisition at full dose -> thinned levels -> reconstructions.

The chain (all in physical units, all seeded from the subject's seed):

1. the phantom generator makes the true activity (Bq/mL), attenuation map (1/mm), CT, MR and labels;
2. the scanner's system model (:mod:`petspect.simulate.systems`) gives expected counts of the
   full-dose scan (trues, with attenuation and normalisation) and the additive randoms and scatter;
3. the full-dose prompts are one Poisson draw; every lower dose level is a binomial thinning of them
   (paired with the full dose); independent realisations at a level (for noise2noise) are disjoint
   multinomial splits of the full-dose counts, which are independent Poisson data (splitting theorem);
   fast-scan (time-window) levels keep each count with the window's share of the decays, which for a
   static tracer distribution is exactly what cutting a list-mode stream to that window does;
4. each level is reconstructed with the configured algorithms, with and without attenuation
   correction. Reconstructions at every level are in **full-dose-equivalent Bq/mL**: the dose (or
   time) fraction is divided out, as SUV normalisation by the injected activity does, so levels are
   directly comparable and a denoiser maps low-dose images onto the full-dose scale;
5. every level is also kept as an acquisition in the one folder format (``acquisition.json`` with its
   levels, ``docs/acquisition-format.md``), reconstructed through the same
   :func:`petspect.recon.reconstruct.reconstruct` with the same settings, so ``petspect recon
   DATASET/sub-NNN --level d010`` gives the stored image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

import petspect
from petspect.io import save
from petspect.phantoms.base import Phantom, make_phantom
from petspect.physics.counts import poisson_sample, thin_counts
from petspect.simulate.config import DatasetConfig
from petspect.simulate.layout import (projection_key, recon_key, sha256_file, subject_id, time_point_suffix,
                                      write_json)
from petspect.simulate.systems import CohortScan, pet_system, recon_spec
from petspect.simulate.systems_spect import spect_system
from petspect.systems.acquisition import ACQUISITION_JSON, Level, acquisition_document
from petspect.volume import Volume

#: phantom volumes copied into every subject (when the phantom has them)
PHANTOM_KEYS = ("activity", "labels", "lesions", "ct", "mu_511", "mu_140", "mu_208", "mr_t1", "mr_t2")


@dataclass
class SubjectResult:
    """Everything simulated for one subject, before writing."""

    subject: str
    index: int
    seed: int
    volumes: dict[str, Volume] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    #: JSON documents written beside the arrays (``acquisition.json``: the subject's acquisitions)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)


def make_subject_phantom(config: DatasetConfig, seed: int, *, hours: float | None = None) -> Phantom:
    """The phantom of a subject, from the configuration and the subject's seed (at ``hours`` p.i.)."""
    pc = config.phantom
    kwargs = dict(pc.params)
    if hours is not None:
        kwargs["uptake_time_s"] = float(hours) * 3600.0
    kwargs.setdefault("voxel_mm", pc.voxel_mm)
    if pc.tracer is not None:
        kwargs.setdefault("tracer", pc.tracer)
    return make_phantom(pc.kind, seed=int(seed), **kwargs)


def build_system(config: DatasetConfig, phantom: Phantom):
    """The cohort system of one subject: PET or SPECT by ``config.scanner.modality``."""
    if config.scanner.modality == "pet":
        return pet_system(config, phantom)
    return spect_system(config, phantom)


def dose_levels(config: DatasetConfig) -> list[tuple[str, float]]:
    """(kind, percent) of every level: dose levels (highest first), then time windows."""
    doses = sorted({float(p) for p in config.dose_percents}, reverse=True)
    times = sorted({float(p) for p in config.time_percents if float(p) < 100.0}, reverse=True)
    return [("dose", p) for p in doses] + [("time", p) for p in times]


def planned_outputs(config: DatasetConfig, shape: tuple[int, int, int] | None = None) -> tuple[int, int, tuple[int, int, int]]:
    """(number of image volumes, number of projection values, image shape) written per subject."""
    phantom = make_subject_phantom(config, seed=int(config.seed))
    if shape is None:
        shape = phantom["activity"].shape
    system = build_system(config, phantom)
    levels = dose_levels(config)
    n_real = sum(config.realisations if (k == "dose" and p < 100) else 1 for k, p in levels)
    per_level = len(config.recon.algorithms) + (1 if config.recon.nac else 0)
    n_tp = max(1, len(config.time_points_h))
    n_vol = sum(1 for k in PHANTOM_KEYS if k in phantom.volumes) + n_tp * (1 + n_real * per_level)
    n_real *= n_tp
    # prompts of every level; PET: an additive term per scan, attenuation and normalisation once (each of the
    # data's size at most); SPECT: the attenuation map once (the image's size)
    if system.energy_windows is None:
        n_proj = (n_real + n_tp + 2) * math.prod(system.data_shape)
    else:
        n_proj = n_real * math.prod(system.data_shape) + math.prod(shape)
    return n_vol, n_proj, tuple(shape)


def _level_data(full: torch.Tensor, kind: str, percent: float, n_real: int, scan_fraction: float,
                gen: torch.Generator) -> list[torch.Tensor]:
    """Counts of one level: thinned (paired) from the full-dose counts; disjoint splits for realisations."""
    if kind == "dose" and percent >= 100.0:
        return [full]
    fraction = percent / 100.0 if kind == "dose" else scan_fraction
    if n_real == 1:
        return [thin_counts(full, fraction, gen)]
    # multinomial split of every count into n_real parts of probability `fraction` and a remainder
    parts, remaining, p_left = [], full.clone(), 1.0
    for _ in range(n_real):
        part = thin_counts(remaining, min(fraction / p_left, 1.0), gen)
        parts.append(part)
        remaining = remaining - part
        p_left -= fraction
    return parts


def _simulate_scan(config: DatasetConfig, phantom: Phantom, gen: torch.Generator, result: SubjectResult,
                   suffix: str) -> dict[str, Any]:
    """One scan of the subject: full dose, thinned levels, reconstructions; keys end in ``suffix``."""
    system = build_system(config, phantom)
    # h4 -- no inverse crime (simulate/no_inverse_crime.py): truth on a finer grid with detector blur, a delayed
    # window, and scatter + randoms estimated per level for the reconstructions
    from petspect.simulate import no_inverse_crime as nic
    truth = nic.truth_scan(config, phantom, system, build_system)
    full = poisson_sample(system.expected_full_dose() if truth is None else truth.expected, gen)
    # SPECT levels are reconstructed with their own triple-energy-window estimate (CohortScan), PET with this
    estimate = truth is not None and config.acquisition.additive_estimate and config.scanner.modality == "pet"
    delayed_full = poisson_sample(truth.randoms, gen) if estimate and float(truth.randoms.sum()) > 0 else None
    if truth is not None:
        result.volumes["activity" + suffix] = truth.activity
    counts: dict[str, float] = {}
    levels: list[Level] = []
    additive_name = None if system.additive is None else "additive_d100" + suffix
    for kind, pct in dose_levels(config):
        n_real = config.realisations if (kind == "dose" and pct < 100.0) else 1
        scan_fraction = system.time_window_fraction(pct / 100.0) if kind == "time" else pct / 100.0
        for r, data in enumerate(_level_data(full, kind, pct, n_real, scan_fraction, gen)):
            pkey = projection_key(kind, pct, r) + suffix
            counts[pkey] = float(data.sum())
            result.arrays[pkey] = data.to(torch.float32).numpy()
            add = None
            if estimate:  # h4: the scanner's estimate of this level's scatter + randoms, stored with the level
                delayed = None if delayed_full is None else (
                    delayed_full if scan_fraction >= 1.0 else thin_counts(delayed_full, scan_fraction, gen))
                add, _ = nic.estimate_additive(system, phantom, data, delayed, scan_fraction, config)
                result.arrays[pkey.replace("prompts_", "additive_est_", 1)] = add.numpy()
            add_file = (f"{pkey.replace('prompts_', 'additive_est_', 1)}.npy", 1.0) if add is not None else (
                None if additive_name is None else f"{additive_name}.npy", scan_fraction)
            levels.append(Level(pkey.removeprefix("prompts_"), f"{pkey}.npy",
                                system.calibration.time_scale_s * scan_fraction, scan_fraction, *add_file))
            extra = {} if add is None else {"additive": add}
            for algo in config.recon.algorithms:
                img = system.reconstruct(data, scan_fraction, algo, attenuation_correction=True, **extra)
                result.volumes[recon_key(kind, pct, algo, True, r) + suffix] = img
            if config.recon.nac:
                img = system.reconstruct(data, scan_fraction, "osem", attenuation_correction=False, **extra)
                result.volumes[recon_key(kind, pct, "osem", False, r) + suffix] = img
    if additive_name is not None:
        result.arrays[additive_name] = system.additive.to(torch.float32).numpy()
    return {"counts_per_level": counts, "system": {**system.describe(), **({"truth": truth.info} if truth else {})},
            "levels": levels, "scan": system, "full_key": projection_key("dose", 100.0) + suffix,
            "additive_key": additive_name}


def _acquisition_record(config: DatasetConfig, result: SubjectResult, scans: dict[str, Any]) -> dict[str, Any]:
    """``acquisition.json`` of the subject: the first scan's record, every level of every scan, and the
    reconstruction settings by algorithm (docs/acquisition-format.md); stores the shared arrays."""
    first = scans[next(iter(scans))]
    scan: CohortScan = first["scan"]
    full = torch.from_numpy(result.arrays[first["full_key"]])
    record = replace(scan.level_data(full, 1.0), calibration=scan.calibration,
                     provenance={"petspect_version": petspect.__version__, "subject": result.subject,
                                 "seed": result.seed, "made_by": "petspect simulate (cohort)"})
    files: dict[str, Any] = {"prompts": {"file": f"{first['full_key']}.npy", "shape": list(full.shape)}}
    if first["additive_key"] is not None:
        files["additive"] = {"file": f"{first['additive_key']}.npy", "shape": list(full.shape)}
    for name in ("attenuation", "normalisation", "mu_per_mm"):
        t = getattr(scan, name)
        if t is not None:
            key = name if name == "mu_per_mm" else f"multiplicative_{name}"
            result.arrays[key] = t.to(torch.float32).numpy()
            files[name] = {"file": f"{key}.npy", "shape": list(t.shape)}
    windows = None if scan.energy_windows is None else [
        {"name": w.name, "lower_kev": w.lower_kev, "upper_kev": w.upper_kev} for w in scan.energy_windows]
    algorithms = list(dict.fromkeys(list(config.recon.algorithms) + (["osem"] if config.recon.nac else [])))
    return acquisition_document(record, files, levels=[lv for s in scans.values() for lv in s["levels"]],
                                energy_windows=windows, additive_model=scan.additive_model,
                                reconstructions=[recon_spec(config, a).to_dict() for a in algorithms])


def simulate_subject(config: DatasetConfig, index: int, seed: int, *, device: Any = None) -> SubjectResult:
    """Simulate subject ``index`` with its ``seed`` (see the module docstring for the chain).

    With ``config.time_points_h`` the subject is scanned at each time point (same anatomy, activity
    from the tracer's kinetics); the true activity and every scan's keys end in ``_h<HHH>`` (hours, e.g. ``_h024``).
    ``device``: the CPU (default); others are refused (:func:`petspect._device.cohort_device`).
    """
    from petspect._device import cohort_device

    cohort_device(device)
    result = SubjectResult(subject_id(index), index, int(seed))
    gen = torch.Generator().manual_seed(int(seed) ^ 0x5EED)
    scans: dict[str, Any] = {}
    first: Phantom | None = None
    for hours in (config.time_points_h or [None]):
        phantom = make_subject_phantom(config, seed, hours=hours)
        suffix = time_point_suffix(hours)
        if first is None:
            first = phantom
            for key in PHANTOM_KEYS:
                if key in phantom.volumes and (key != "activity" or not suffix):
                    result.volumes[key] = phantom.volumes[key]
        if suffix:
            result.volumes["activity" + suffix] = phantom.volumes["activity"]
        scans[suffix or "scan"] = _simulate_scan(config, phantom, gen, result, suffix)
    assert first is not None
    result.documents[ACQUISITION_JSON] = _acquisition_record(config, result, scans)
    result.record = {
        "subject": result.subject, "index": index, "seed": int(seed),
        "phantom_record": first.record,
        "label_names": {str(k): v for k, v in first.label_names.items()},
        "tables": first.tables,
        "counts_per_level": {k: v for scan in scans.values() for k, v in scan["counts_per_level"].items()},
        "system": scans[next(iter(scans))]["system"],
        "time_points_h": list(config.time_points_h),
        # the decathlon "image": the lowest dose level's first algorithm, attenuation corrected, first scan
        "image_key": recon_key("dose", min(float(p) for p in config.dose_percents), config.recon.algorithms[0])
        + time_point_suffix(config.time_points_h[0] if config.time_points_h else None),
        "petspect_version": petspect.__version__,
    }
    return result


def write_subject(result: SubjectResult, folder: Path) -> dict[str, Any]:
    """Write a subject's volumes (NIfTI), arrays (.npy), ``acquisition.json`` and ``subject.json`` into ``folder``."""
    files: dict[str, dict[str, Any]] = {}
    entry: dict[str, str] = {}
    for key, vol in result.volumes.items():
        name = f"{key}.nii.gz"
        save(vol, folder / name, overwrite=True)
        files[name] = {"sha256": sha256_file(folder / name), "shape": list(vol.shape), "unit": vol.unit}
        entry[key] = f"{result.subject}/{name}"
    for key, arr in result.arrays.items():
        name = f"{key}.npy"
        np.save(folder / name, arr, allow_pickle=False)
        files[name] = {"sha256": sha256_file(folder / name), "shape": list(arr.shape), "unit": "counts"}
    for name, doc in result.documents.items():
        write_json(folder / name, doc)
        files[name] = {"sha256": sha256_file(folder / name)}
    entry.setdefault("image", entry[result.record["image_key"]])
    if "labels" in result.volumes:
        entry["label"] = entry["labels"]
    record = {**result.record, "files": files, "entry": entry}
    write_json(folder / "subject.json", record)
    return record
