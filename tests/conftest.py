"""Shared test configuration: the device matrix and seeded generators (nothing seeds the global RNG)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("PETSPECT_NO_PROGRESS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Every available device: the CPU, and CUDA when present."""
    return torch.device(request.param)


@pytest.fixture
def rng() -> torch.Generator:
    """A seeded torch generator on the CPU."""
    return torch.Generator().manual_seed(1234)
