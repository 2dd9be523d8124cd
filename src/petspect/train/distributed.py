"""Helpers for multi-GPU / multi-node training through ``torchrun`` (DistributedDataParallel).

``torchrun`` sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init_from_env` starts the process group from them (NCCL on CUDA, gloo on the CPU). The trainer
then shards data with ``DistributedSampler``, wraps its networks in DDP, and only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Rank, world size and local rank of this process (0, 1, 0 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def dist_info() -> DistInfo:
    """The current process group's rank and size (non-distributed: rank 0 of 1)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return DistInfo()


def init_from_env(backend: str | None = None) -> DistInfo:
    """Initialise the default process group from torchrun's environment variables.

    Parameters
    ----------
    backend : {"nccl", "gloo"}, optional
        Default: NCCL when CUDA is available, else gloo.

    Returns
    -------
    DistInfo
        Does nothing (rank 0 of 1) when ``WORLD_SIZE`` is unset or 1.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or (dist.is_initialized()):
        return dist_info()
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    return dist_info()


def barrier() -> None:
    """Wait for every rank (no-op when not distributed)."""
    if dist_info().enabled:
        dist.barrier()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (returns it unchanged when not distributed)."""
    if dist_info().enabled:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def default_device(info: DistInfo) -> torch.device:
    """``cuda:local_rank`` when CUDA is available, else the CPU."""
    return torch.device(f"cuda:{info.local_rank}") if torch.cuda.is_available() else torch.device("cpu")
