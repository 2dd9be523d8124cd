"""Denoising benchmark: whole-body inference time, training throughput, baseline filter times.

Usage::

    .venv/bin/python benchmarks/bench_denoise.py [--dataset DATASET] [--shape Z Y X] [--epochs N] [--device cpu]

* Inference: the demo's 2.5D U-Net (:func:`petspect.tasks.demo.demo_settings`: widths 16-32-64-128, 5 slices,
  64 x 64 windows, overlap 0.25) over a whole-body volume (default 150 x 128 x 128 voxels: 60 x 51 x 51 cm at 4 mm), through
  :func:`petspect.tasks.denoise.denoise_volume` (MONAI sliding windows). Untrained weights: the time does not
  depend on them.
* Training throughput: patches per second of :class:`petspect.train.Trainer` on ``DATASET`` (default: the
  demo's ``petspect_demo/dataset``, else a small synthetic cohort) with the demo's configuration.
* Baselines: Gaussian (8 mm) and NLM (scikit-image, fast mode) on the same whole-body volume.

Prints one line per figure; copy them into BENCHMARKS.md under "## Denoising".
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch


def _model(device: str):
    """An untrained network with the demo's architecture and data layout (PET + CT channels), as a TrainedModel."""
    from petspect.nn import build_network
    from petspect.tasks.demo import demo_settings
    from petspect.tasks.denoise import EXTRA_NORMALIZATIONS
    from petspect.train import SuvScaling, TrainedModel, normalization_from_dict

    opts = demo_settings("demo").denoise
    n, extra = int(opts.n_slices), list(opts.extra_keys)
    net = build_network("unet", spatial_dims=2, in_channels=n * (1 + len(extra)), channels=opts.channels,
                        residual=bool(opts.train.residual), pet_channel=n // 2,
                        **(opts.train.network_kwargs or {})).to(device).eval()
    config = {"data": {"mode": "2.5d", "n_slices": n, "patch_size": list(opts.patch_size),
                       "input_key": "recon_d010_osem_ac", "extra_keys": extra, "target_key": "recon_d100_osem_ac"}}
    norm = SuvScaling(5000.0, "Bq/mL")
    extra_norms = [normalization_from_dict(EXTRA_NORMALIZATIONS[k]) for k in extra]
    return TrainedModel(net, config, [norm, *extra_norms], norm, {})


def bench_inference(shape: tuple[int, int, int], device: str) -> float:
    from petspect.tasks.denoise import denoise_volume
    from petspect.volume import Volume

    g = torch.Generator().manual_seed(0)
    vol = Volume.centered(5000.0 * torch.rand(shape, generator=g), (4.0, 4.0, 4.0), unit="Bq/mL", modality="PT")
    model = _model(device)
    extra = [vol.with_data(1000.0 * torch.rand(shape, generator=g) - 500.0, unit="HU", modality="CT")
             for _ in model.input_keys[1:]]
    denoise_volume(model, vol.crop(z=slice(0, 4)), [e.crop(z=slice(0, 4)) for e in extra], device=device)  # warm-up
    dt = 0.0
    for tta in (False, True):
        t0 = time.perf_counter()
        out = denoise_volume(model, vol, extra, device=device, tta=tta)
        dt = time.perf_counter() - t0
        assert out.shape == vol.shape
        what = "with test-time augmentation (8 passes)" if tta else "one pass"
        print(f"inference 2.5D U-Net (PET + {len(extra)} anatomical), {shape[0]}x{shape[1]}x{shape[2]} voxels on "
              f"{device}, {what}: {dt:.1f} s")
    return dt


def bench_baselines(shape: tuple[int, int, int]) -> None:
    from petspect.tasks.baselines import gaussian_filter, nlm_filter
    from petspect.volume import Volume

    g = torch.Generator().manual_seed(1)
    vol = Volume.centered(5000.0 * torch.rand(shape, generator=g), (4.0, 4.0, 4.0), unit="Bq/mL", modality="PT")
    for name, fn, p in (("gaussian 8 mm", gaussian_filter, 8.0), ("nlm h_rel 0.3", nlm_filter, 0.3)):
        t0 = time.perf_counter()
        fn(vol, p)
        print(f"baseline {name}, {shape[0]}x{shape[1]}x{shape[2]} voxels: {time.perf_counter() - t0:.2f} s")


def _synthetic_dataset(folder: Path) -> Path:
    import importlib.util

    spec = importlib.util.spec_from_file_location("cohort", Path(__file__).parents[1] / "tests" / "tasks" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make_dataset(folder, n_train=3, n_val=1, n_test=0)


def bench_training(dataset: Path | None, steps_epochs: int, device: str) -> None:
    import dataclasses

    from petspect.tasks.demo import demo_settings
    from petspect.tasks.denoise import denoise_config, train_denoiser

    with tempfile.TemporaryDirectory() as tmp:
        opts = dataclasses.replace(demo_settings("demo").denoise, epochs=steps_epochs)
        if dataset is None:
            default = Path("petspect_demo") / "dataset"
            dataset = default if (default / "dataset.json").is_file() else None
        if dataset is None:  # the synthetic cohort has no CT: PET channels only
            dataset = _synthetic_dataset(Path(tmp) / "data")
            opts = dataclasses.replace(opts, extra_keys=())
        cfg = denoise_config(dataset, Path(tmp) / "run", options=opts)
        t0 = time.perf_counter()
        result = train_denoiser(cfg, device=device)
        total = time.perf_counter() - t0
        secs = sum(h["seconds"] for h in result.history)
        from petspect.train import read_dataset

        n_train = len(read_dataset(dataset, "training")[0])
        patches = n_train * cfg.patches_per_volume * steps_epochs
        print(f"training 2.5D U-Net on {device}: {patches} patches of {cfg.patch_size} in {secs:.1f} s of epochs "
              f"({patches / secs:.1f} patches/s, batch {cfg.batch_size}); {total:.1f} s with set-up; dataset {dataset}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, default=None)
    ap.add_argument("--shape", type=int, nargs=3, default=(150, 128, 128))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    os.environ.setdefault("PETSPECT_NO_PROGRESS", "1")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    bench_inference(tuple(args.shape), args.device)
    bench_baselines(tuple(args.shape))
    bench_training(args.dataset, args.epochs, args.device)


if __name__ == "__main__":
    main()
