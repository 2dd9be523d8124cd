"""Shared test configuration: the device matrix and seeded generators (nothing seeds the global RNG)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("PETSPECT_NO_PROGRESS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

# Test sizes are small: one intra-op thread avoids OpenMP spin contention on the 2-core CI machine
# (measured here: the reconstruction tests take 12 s with one thread and 170 s with two under load).
# Results never depend on it; speed is judged by the benchmarks, which set their own thread counts.
torch.set_num_threads(1)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Every available device: the CPU, and CUDA when present."""
    return torch.device(request.param)


@pytest.fixture
def rng() -> torch.Generator:
    """A seeded torch generator on the CPU."""
    return torch.Generator().manual_seed(1234)
