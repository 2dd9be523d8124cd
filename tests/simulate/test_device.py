"""Devices and cohort simulation: the CPU, or a clear refusal before any work (never a silent CPU run)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from petspect._device import cohort_device, require_device, simulation_device
from petspect.errors import InputError, PetspectError
from petspect.simulate.config import config_from_dict

CUDA = torch.cuda.is_available()


def tiny_config(**over):
    base = {"name": "tiny", "subjects": 1, "seed": 5, "dose_percents": [100, 25],
            "phantom": {"kind": "torso", "voxel_mm": 12.0, "tracer": "fdg",
                        "params": {"shape": [4, 32, 32], "lesions": False}},
            "scanner": {"modality": "pet", "preset": "wholebody", "max_ring_difference": 0, "view_mashing": 10,
                        "params": {"n_rings": 4, "ring_spacing_mm": 12.0}},
            "acquisition": {"scan_s": 60.0, "scatter": False},
            "recon": {"algorithms": ["osem"], "iterations": 2, "subsets": 4, "nac": False}}
    base.update(over)
    return config_from_dict(base)


def test_device_arguments_are_checked():
    assert require_device(None) == torch.device("cpu") == simulation_device("auto") == simulation_device("cpu")
    assert cohort_device(None) == cohort_device("cpu") == torch.device("cpu")
    with pytest.raises(InputError, match="unknown device"):
        require_device("tpu")
    with pytest.raises(InputError):
        cohort_device("cuda")  # not available here, or not a cohort device
    if not CUDA:
        for name in ("cuda", "cuda:1"):
            with pytest.raises(InputError, match="CUDA is not available"):
                require_device(name)
            with pytest.raises(InputError, match="CUDA is not available"):
                simulation_device(name)


def test_a_non_cpu_cohort_is_refused_before_any_work(tmp_path):
    from petspect.simulate.cohort import simulate_cohort
    from petspect.simulate.subject import simulate_subject
    from petspect.tasks.demo import demo_settings, run_demo

    with pytest.raises(PetspectError, match="cuda"):
        simulate_cohort(tiny_config(), tmp_path / "d", device="cuda")
    assert not (tmp_path / "d").exists()
    with pytest.raises(PetspectError, match="cuda"):
        simulate_subject(tiny_config(), 0, 1, device="cuda")
    with pytest.raises(PetspectError, match="cuda"):
        run_demo(tmp_path / "demo", settings=demo_settings("tiny"), simulation_device="cuda")
    assert not (tmp_path / "demo").exists()


def test_an_explicit_cpu_is_the_default_run():
    from petspect.simulate.subject import simulate_subject

    a = simulate_subject(tiny_config(), 0, 11, device="cpu")
    b = simulate_subject(tiny_config(), 0, 11)
    assert a.arrays.keys() == b.arrays.keys() and a.volumes.keys() == b.volumes.keys()
    assert all(np.array_equal(a.arrays[k], b.arrays[k]) for k in a.arrays)
    assert all(torch.equal(a.volumes[k].data, b.volumes[k].data) for k in a.volumes)
