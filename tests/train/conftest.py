"""A tiny synthetic PET dataset in the decathlon layout (docs/DEVELOPING.md), shared by the trainer tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

SHAPE = (12, 16, 16)


def _subject(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Activity (Bq/mL): warm body, two hot blobs; low dose: Poisson-like noise at 10 % counts; CT in HU."""
    z, y, x = np.indices(SHAPE).astype(float)
    body = ((y - 7.5) ** 2 / 36 + (x - 7.5) ** 2 / 42) <= 1.0
    act = np.where(body, 2000.0, 0.0)
    for _ in range(2):
        c = rng.uniform([3, 4, 4], [9, 12, 12])
        act += 6000.0 * np.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / 4.0) * body
    counts = 0.05  # counts per Bq/mL in the low-dose image
    low = rng.poisson(act * counts) / counts
    ct = np.where(body, 40.0, -1000.0)
    lesions = (act > 5000.0).astype(np.int16)  # the hot blobs' cores, as a lesion map
    return {"activity": act, "recon_d010": low, "recon_d100": act + rng.normal(0, 50.0, SHAPE) * body, "ct": ct,
            "lesions": lesions}


def make_dataset(root: Path, n_train: int = 3, n_val: int = 1, seed: int = 0) -> Path:
    """Write NIfTI volumes and dataset.json under ``root``; returns the dataset folder."""
    from petspect.io import save
    from petspect.volume import Volume

    rng = np.random.default_rng(seed)
    splits = {"training": [], "validation": []}
    for i in range(n_train + n_val):
        sub = f"sub-{i:03d}"
        entry = {"subject": sub}
        for key, arr in _subject(rng).items():
            unit, modality = {"ct": ("HU", "CT"), "lesions": ("label", "SEG")}.get(key, ("Bq/mL", "PT"))
            arr = arr if key == "lesions" else arr.astype(np.float32)
            rel = f"{sub}/{key}.nii.gz"
            save(Volume.centered(arr, (2.0, 2.0, 2.0), unit=unit, modality=modality), root / rel)
            entry[key] = rel
        splits["training" if i < n_train else "validation"].append(entry)
    meta = {"name": "tiny", "tensorImageSize": "3D", "modality": {"0": "PT"}, "labels": {"0": "background"},
            "numTraining": n_train, "numTest": 0, **splits, "test": []}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("tiny_dataset"))
