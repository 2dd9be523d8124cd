"""Deep-learning benchmarks: training throughput and whole-body sliding-window inference time.

Usage::

    python benchmarks/bench_train.py                 # default sizes (whole-body 288 x 192 x 192 at 4 mm)
    python benchmarks/bench_train.py --quick         # small sizes, a smoke run
    python benchmarks/bench_train.py --device cuda   # GPU (AMP on for training)

Figures printed:

* training: optimiser steps per second and patches per second of ``SupervisedStep`` (forward, L1 loss,
  backward, AdamW) for a 3D UNet and a 2.5D UNet at the usual patch sizes, on random tensors (the data
  pipeline is measured separately);
* data: patches per second of :class:`petspect.train.PairedVolumeDataset` (crop, augment, normalise) from
  cached volumes;
* inference: seconds for :func:`petspect.train.predict_volume` on a whole-body-size volume, 3D sliding
  windows (64^3, overlap 0.25) and 2.5D slice-wise windows.

Timings use ``time.perf_counter`` after one warm-up call (CUDA synchronised). No figure is asserted.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_train_step(name: str, mode: str, batch: int, patch: tuple[int, ...], channels: tuple[int, ...],
                     device: torch.device, steps: int, amp: bool) -> dict:
    """Steps/s and patches/s of supervised training on random data."""
    from petspect.nn import build_network
    from petspect.train.losses import build_loss
    from petspect.train.steps import SupervisedStep

    dims = 3 if mode == "3d" else 2
    cin = 3 if mode == "2.5d" else 1
    torch.manual_seed(0)  # benchmark only: parameter initialisation
    net = build_network("unet", spatial_dims=dims, in_channels=cin, channels=channels, residual=True,
                        pet_channel=cin // 2).to(device)
    step = SupervisedStep(net, build_loss({"l1": 1.0}, spatial_dims=dims),
                          torch.optim.AdamW(net.parameters(), lr=1e-4))
    use_amp = amp and device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)

    def autocast():
        return torch.autocast(device.type, dtype=torch.float16, enabled=use_amp)

    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, cin, *patch, generator=g).to(device)
    y = torch.rand(batch, 1, *patch, generator=g).to(device)
    step.step(x, y, scaler, autocast)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step.step(x, y, scaler, autocast)
    _sync(device)
    dt = (time.perf_counter() - t0) / steps
    n_par = sum(p.numel() for p in net.parameters())
    return {"bench": f"train {name}", "patch": list(patch), "batch": batch, "channels": list(channels),
            "params": n_par, "amp": use_amp, "s_per_step": dt, "patches_per_s": batch / dt}


def bench_data(n_items: int) -> dict:
    """Items/s of the patch dataset (2.5D, 3 slices, PET + CT, augmentation) from cached volumes."""
    from petspect.io import save
    from petspect.train import Augmentation, PairedVolumeDataset, SuvScaling
    from petspect.volume import Volume

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        entry = {}
        for key in ("low", "full", "ct"):
            save(Volume.centered(rng.gamma(2.0, 1000.0, (96, 128, 128)).astype(np.float32), (4.0, 4.0, 4.0)),
                 root / f"{key}.nii.gz")
            entry[key] = f"{key}.nii.gz"
        ds = PairedVolumeDataset([entry], root, "low", "full", ("ct",), patch_size=(64, 64), mode="2.5d", n_slices=3,
                                 patches_per_volume=n_items, foreground_fraction=0.5, augmentation=Augmentation(),
                                 normalizations={"low": SuvScaling(2000.0), "full": SuvScaling(2000.0)})
        ds[0]  # loads and caches the volumes
        t0 = time.perf_counter()
        for i in range(n_items):
            ds[i]
        dt = time.perf_counter() - t0
    return {"bench": "data 2.5d (3 slices, PET+CT) 64x64", "items_per_s": n_items / dt}


def bench_inference(mode: str, shape: tuple[int, int, int], roi: tuple[int, ...], channels: tuple[int, ...],
                    device: torch.device, amp: bool) -> dict:
    """Seconds for whole-volume sliding-window inference of a UNet."""
    from petspect.nn import build_network
    from petspect.train import predict_volume

    dims = 3 if mode == "3d" else 2
    cin = 3 if mode == "2.5d" else 1
    torch.manual_seed(0)  # benchmark only
    net = build_network("unet", spatial_dims=dims, in_channels=cin, channels=channels, residual=True,
                        pet_channel=cin // 2).to(device).eval()
    vol = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    kw = dict(mode=mode, n_slices=3 if mode == "2.5d" else 1, roi_size=roi, overlap=0.25, device=device,
              sw_batch_size=8, amp=amp)
    predict_volume(net, vol[: max(roi[0], 8)] if mode == "3d" else vol[:4], **kw)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    out = predict_volume(net, vol, **kw)
    _sync(device)
    dt = time.perf_counter() - t0
    assert out.shape == vol.shape
    return {"bench": f"inference {mode}", "volume": list(shape), "roi": list(roi), "overlap": 0.25,
            "channels": list(channels), "amp": amp and device.type == "cuda", "seconds": dt,
            "mvoxels_per_s": vol.numel() / dt / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per network")
    parser.add_argument("--no-amp", action="store_true", help="float32 on CUDA too")
    args = parser.parse_args()
    device = torch.device(args.device)
    amp = not args.no_amp
    ch3, ch2 = (16, 32, 64, 128), (32, 64, 128, 256)
    if args.quick:
        wb, p3, p2, ch3, ch2 = (64, 96, 96), (32, 32, 32), (64, 64), (8, 16, 32), (8, 16, 32)
    else:
        wb, p3, p2 = (288, 192, 192), (64, 64, 64), (128, 128)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    results = [
        bench_train_step("3d unet", "3d", 2, p3, ch3, device, args.steps, amp),
        bench_train_step("2.5d unet", "2.5d", 8, p2, ch2, device, args.steps, amp),
        bench_data(200 if not args.quick else 50),
        bench_inference("3d", wb, (64, 64, 64) if not args.quick else (32, 32, 32), ch3, device, amp),
        bench_inference("2.5d", wb, (wb[1], wb[2]), ch2, device, amp),
    ]
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
