"""A tiny synthetic PET cohort in the petspect dataset layout (docs/DEVELOPING.md), shared by the task tests.

Each subject is an elliptical body (soft tissue 2 kBq/mL) with a liver (5 kBq/mL) and two hot lesions
(20 kBq/mL); reconstructions are the activity blurred by a 6 mm Gaussian (the scanner resolution) plus
Poisson noise at a count level per key: full dose, 10 % dose (two independent realisations, ``_r1``),
a 50 % fast scan, and a smoother "MAP" image; ``recon_d010_osem_ac_lesion_absent`` is the 10 % dose image of
the same subject without lesions (for the CHO detectability). Everything is seeded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

SHAPE = (8, 32, 32)
VOXEL_MM = 4.0
BQML_PER_SUV = 2000.0
COUNTS_PER_BQML = {"recon_d100_osem_ac": 0.02, "recon_d010_osem_ac": 0.002, "recon_d010_osem_ac_r1": 0.002,
                   "recon_t050_osem_ac": 0.01, "recon_d010_map_ac": 0.002}


def phantom(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Activity (Bq/mL), organ labels (1 soft tissue, 2 liver) and a lesion instance map."""
    z, y, x = np.indices(SHAPE).astype(float)
    cy, cx = 15.5 + rng.uniform(-1, 1), 15.5 + rng.uniform(-1, 1)
    body = ((y - cy) ** 2 / 13.0**2 + (x - cx) ** 2 / 14.0**2) <= 1.0
    liver = body & (((y - cy - 3) ** 2 / 6.0**2 + (x - cx + 5) ** 2 / 7.0**2) <= 1.0)
    labels = np.where(liver, 2, np.where(body, 1, 0)).astype(np.int16)
    lesions = np.zeros(SHAPE, np.int16)
    for i, (dy, dx) in enumerate([(-6.0, 4.0), (4.0, 8.0)]):
        c = (rng.integers(2, SHAPE[0] - 2), cy + dy, cx + dx)
        lesions[((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) <= 2.3**2] = i + 1
    act = np.where(liver, 5000.0, np.where(body, 2000.0, 0.0))
    act[lesions > 0] = 20000.0
    return {"activity": act, "labels": labels, "lesions": lesions}


def recon(act: np.ndarray, counts_per_bqml: float, rng: np.random.Generator, smooth_mm: float = 6.0) -> np.ndarray:
    """Blurred activity with Poisson noise at ``counts_per_bqml`` (then blurred by ``smooth_mm`` more for MAP)."""
    from scipy.ndimage import gaussian_filter

    sigma = 6.0 / 2.3548 / VOXEL_MM
    mean = gaussian_filter(act, sigma)
    noisy = rng.poisson(np.clip(mean, 0, None) * counts_per_bqml) / counts_per_bqml
    return noisy if smooth_mm == 0 else gaussian_filter(noisy, smooth_mm / 2.3548 / VOXEL_MM * 0.4)


def make_dataset(root: Path, n_train: int = 2, n_val: int = 1, n_test: int = 1, seed: int = 0) -> Path:
    """Write the cohort's NIfTI volumes and dataset.json under ``root``; returns the dataset folder."""
    from petspect.io import save
    from petspect.volume import Volume

    rng = np.random.default_rng(seed)
    splits = {"training": [], "validation": [], "test": []}
    order = ["training"] * n_train + ["validation"] * n_val + ["test"] * n_test
    for i, split in enumerate(order):
        sub = f"sub-{i:03d}"
        ph = phantom(rng)
        vols = {"activity": Volume.centered(ph["activity"].astype(np.float32), (VOXEL_MM,) * 3, unit="Bq/mL",
                                            modality="PT", meta={"suv_factor": 1.0 / BQML_PER_SUV}),
                "labels": Volume.centered(torch.as_tensor(ph["labels"]), (VOXEL_MM,) * 3, unit="label"),
                "lesions": Volume.centered(torch.as_tensor(ph["lesions"]), (VOXEL_MM,) * 3, unit="label"),
                "ct": Volume.centered(np.where(ph["labels"] > 0, 40.0, -1000.0).astype(np.float32), (VOXEL_MM,) * 3,
                                      unit="HU", modality="CT")}
        for key, c in COUNTS_PER_BQML.items():
            img = recon(ph["activity"], c, rng, smooth_mm=6.0 if "map" in key else 0.0)
            vols[key] = Volume.centered(img.astype(np.float32), (VOXEL_MM,) * 3, unit="Bq/mL", modality="PT")
        # the lesion-absent twin of the 10 % dose input (lesions at their organ's uptake; own noise stream)
        twin_act = np.where(ph["lesions"] > 0, np.where(ph["labels"] == 2, 5000.0, 2000.0), ph["activity"])
        twin = recon(twin_act, COUNTS_PER_BQML["recon_d010_osem_ac"], np.random.default_rng(10_000 + seed + i), 0.0)
        vols["recon_d010_osem_ac_lesion_absent"] = Volume.centered(twin.astype(np.float32), (VOXEL_MM,) * 3,
                                                                   unit="Bq/mL", modality="PT")
        entry = {"subject": sub}
        for key, vol in vols.items():
            rel = f"{sub}/{key}.nii.gz"
            save(vol, root / rel)
            entry[key] = rel
        entry["image"], entry["label"] = entry["recon_d010_osem_ac"], entry["labels"]
        splits[split].append(entry)
    meta = {"name": "tiny-tasks", "tensorImageSize": "3D", "modality": {"0": "PT"},
            "labels": {"0": "background", "1": "soft_tissue", "2": "liver"},
            "numTraining": n_train, "numValidation": n_val, "numTest": n_test, **splits}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> Path:
    """The shared read-only tiny dataset (2 training, 1 validation, 1 test subjects)."""
    return make_dataset(tmp_path_factory.mktemp("tiny_cohort"))


def tiny_train_options(**kw) -> dict:
    """TrainConfig fields for a seconds-long training run on the tiny cohort."""
    return {"mode": "2d", "patch_size": (16, 16), "channels": (4, 8), "epochs": 1, "patches_per_volume": 2,
            "batch_size": 2, "val_patches_per_volume": 1, **kw}


@pytest.fixture(scope="session")
def tiny_model(tiny_cohort, tmp_path_factory) -> Path:
    """A U-Net trained for one epoch on the tiny cohort (10 % dose -> full dose); its model folder."""
    from petspect.tasks.denoise import denoise_config, train_denoiser

    run = tmp_path_factory.mktemp("tiny_run")
    cfg = denoise_config(tiny_cohort, run, method="unet", **tiny_train_options())
    return train_denoiser(cfg).model_dir
