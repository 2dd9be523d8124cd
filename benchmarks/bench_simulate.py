"""Dataset-engine throughput: simulated cases per minute per preset (CPU).

Runs ``simulate_cohort`` for a few subjects of each preset into a temporary folder and reports the
wall time per case (phantom, full-dose acquisition, thinned levels, all reconstructions, writing).

    python benchmarks/bench_simulate.py --presets quick --subjects 2 --workers 2
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--presets", nargs="+", default=["quick"])
    ap.add_argument("--subjects", type=int, default=2)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    os.environ.setdefault("PETSPECT_NO_PROGRESS", "1")
    import torch

    from petspect.simulate.cohort import estimate_disk_bytes, simulate_cohort
    from petspect.simulate.presets import get_preset

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    print("| preset | subjects | workers | s per case | cases per minute | dataset size (MB) |")
    print("|---|---|---|---|---|---|")
    for name in args.presets:
        cfg = get_preset(name)
        cfg.subjects = args.subjects
        with tempfile.TemporaryDirectory() as tmp:
            est = estimate_disk_bytes(cfg)
            t0 = time.perf_counter()
            simulate_cohort(cfg, Path(tmp) / name, workers=args.workers, show_progress=False)
            dt = time.perf_counter() - t0
            size = sum(f.stat().st_size for f in (Path(tmp) / name).rglob("*") if f.is_file())
        print(f"| {name} | {cfg.subjects} | {args.workers} | {dt / cfg.subjects:.1f} | {60 * cfg.subjects / dt:.2f} | "
              f"{size / 1e6:.1f} (estimate <= {est / 1e6:.1f} uncompressed) |")


if __name__ == "__main__":
    main()
