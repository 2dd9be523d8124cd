"""Data-parallel training with two CPU processes on the gloo backend (what torchrun does on GPUs with NCCL)."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

pytestmark = [pytest.mark.ddp, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, config: dict, out: str) -> None:
    """One rank: join the group as torchrun would (environment variables), train, save this rank's weights."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), PETSPECT_NO_PROGRESS="1")
    torch.set_num_threads(1)
    import torch.distributed as dist

    from petspect.train import TrainConfig, Trainer, init_from_env

    info = init_from_env("gloo")
    assert info.world_size == world and info.rank == rank
    trainer = Trainer(TrainConfig.from_dict(config), device="cpu")
    trainer.fit()
    torch.save(trainer.step.raw("generator").state_dict(), os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_two_ranks_end_identical(tiny_dataset, tmp_path):
    """Both ranks end with identical weights (DDP averages gradients), each saw half the patches, and only rank 0
    wrote the run folder (model, checkpoint, log)."""
    from petspect.train import TrainConfig

    cfg = TrainConfig(dataset=str(tiny_dataset), input_key="recon_d010", target_key="recon_d100",
                      out_dir=str(tmp_path / "run"), mode="2d", patch_size=(8, 8), channels=(4, 8), batch_size=2,
                      epochs=2, patches_per_volume=2, seed=3, tensorboard=False, val_split="none",
                      normalization={"kind": "suv_scaling", "factor": 2000.0})
    mp.start_processes(_worker, args=(2, _free_port(), json.loads(json.dumps(cfg.to_dict())), str(tmp_path)),
                       nprocs=2, join=True, start_method="spawn")
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    model = torch.load(tmp_path / "run" / "model" / "model.pt", weights_only=True)
    card = json.loads((tmp_path / "run" / "model" / "model_card.json").read_text())
    assert card["training"]["world_size"] == 2
    assert card["weights"] == "last epoch"  # no validation split: the final weights are saved
    assert all(torch.equal(model[k], w0[k]) for k in model)
    assert (tmp_path / "run" / "checkpoint.pt").is_file() and (tmp_path / "run" / "log.csv").is_file()
    assert not list(tmp_path.glob("run/.*tmp*"))  # no leftovers of atomic writes
