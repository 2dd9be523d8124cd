"""Phantom tests run torch with one thread: the voxelisation kernels are small and on a shared 2-core
machine two spinning OpenMP threads make them several times slower. The setting is restored after."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
