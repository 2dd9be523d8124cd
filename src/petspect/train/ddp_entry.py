"""Entry point for multi-process training: ``torchrun --nproc_per_node=N -m petspect.train.ddp_entry CONFIG``.

CONFIG is a TOML or JSON :class:`~petspect.train.config.TrainConfig`. Each process joins the process
group from torchrun's environment (NCCL on CUDA, gloo on the CPU, or ``--backend``), trains its shard,
and rank 0 writes the run folder. Multi-node: run torchrun on every node with ``--nnodes``,
``--node_rank`` and a shared ``--rdzv_endpoint``.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, initialise the process group, train, and tear the group down."""
    import torch.distributed as dist

    from petspect.errors import PetspectError
    from petspect.train.config import load_config
    from petspect.train.distributed import init_from_env
    from petspect.train.trainer import Trainer

    parser = argparse.ArgumentParser(prog="python -m petspect.train.ddp_entry", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="TrainConfig as TOML or JSON")
    parser.add_argument("--backend", choices=("nccl", "gloo"), default=None, help="default: nccl with CUDA, else gloo")
    parser.add_argument("--device", default=None, help="cpu, or cuda (the local rank's GPU); default: auto")
    parser.add_argument("--no-resume", action="store_true", help="fail if a checkpoint exists instead of resuming")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        info = init_from_env(args.backend)
        device = None
        if args.device == "cpu":
            device = "cpu"
        elif args.device and args.device.startswith("cuda"):
            device = f"cuda:{info.local_rank}"
        result = Trainer(config, device=device).fit(resume=not args.no_resume)
        if info.is_main:
            print(f"model written to {result.model_dir}")
    except PetspectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
