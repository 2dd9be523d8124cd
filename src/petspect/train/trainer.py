"""The trainer: supervised, pix2pix and CycleGAN image-to-image training with checkpoints, resume and DDP.

A run folder (``config.out_dir``) holds ``checkpoint.pt`` (written atomically after every epoch),
``log.csv``, ``tensorboard/`` (SummaryWriter events) and, at the end, ``model/`` (see
:mod:`petspect.train.model_io`). ``Trainer(config).fit()`` resumes from ``checkpoint.pt`` when it exists,
and a resumed run ends with exactly the weights of an uninterrupted one: the checkpoint keeps networks,
optimisers, gradient scaler, RNG states, history and early-stopping state, and every epoch's data order,
patches and augmentations depend only on ``(seed, epoch, item)``.

Randomness: nothing here seeds or advances the caller's global RNG. Patches, augmentations and the data
order come from generators seeded with ``(config.seed, epoch, item)``; DataLoader workers get their base
seed from a ``torch.Generator`` seeded with ``config.seed``. Network initialisation and any randomness
inside the training steps (e.g. dropout) use the run's own torch RNG state: it starts from ``config.seed``
(``torch.Generator().manual_seed(seed).get_state()``), is installed only inside
``torch.random.fork_rng`` (so the global state is restored when the run's code returns), is carried from
epoch to epoch and is saved in the checkpoint, so a resumed run continues the same random stream.
"""

from __future__ import annotations

import contextlib
import dataclasses
import csv
import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler

import petspect
from petspect._fileio import atomic_path, atomic_write_text
from petspect.errors import ConfigError
from petspect.metrics.image import nrmse, psnr, ssim
from petspect.nn import build_discriminator, build_network
from petspect.progress import note, progress_enabled, track
from petspect.train.config import VAL_METRICS, TrainConfig
from petspect.train.data import EpochSampler, PairedVolumeDataset, read_dataset
from petspect.train.distributed import all_reduce_sum, barrier, default_device, dist_info
from petspect.train.loop import BestTracker
from petspect.train.losses import GANLoss, build_loss
from petspect.train.model_io import save_model
from petspect.train.normalization import Identity, normalization_from_dict
from petspect.train.steps import CycleGANStep, Pix2PixStep, SupervisedStep, TrainStep

Callback = Callable[["Trainer", int, dict[str, float]], None]


@dataclass
class TrainResult:
    """Outcome of :meth:`Trainer.fit`: model folder, per-epoch history, best epoch, early stop flag."""

    model_dir: Path
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_value: float | None = None
    stopped_early: bool = False


def _patch_ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float) -> float:
    """SSIM of one patch with the 7-voxel window, or the largest odd window that fits a smaller patch."""
    side = min(target.shape)
    win = min(7, side if side % 2 else side - 1)
    return ssim(pred, target, data_range=data_range, win_size=win) if win >= 3 else math.nan


def epoch_line(record: dict[str, float], epochs: int) -> str:
    """One line per epoch for the terminal: ``epoch 3/20  train_loss 0.0123  val_psnr 31.20  lr 1e-03  4.2 s``.

    The training terms and the validation figures are those of the record written to ``log.csv``.
    """
    parts = [f"epoch {int(record['epoch']) + 1}/{epochs}"]
    for key, value in record.items():
        if key.startswith(("train_", "val_")):
            parts.append(f"{key} {value:.4g}")
    parts.append(f"lr {record['lr']:.1e}")
    parts.append(f"{record['seconds']:.1f} s")
    return "  ".join(parts)


class Trainer:
    """Train an image-to-image network from a :class:`TrainConfig`.

    Parameters
    ----------
    config : TrainConfig
    device : torch.device or str, optional
        Default: ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU.
    callbacks : sequence of callables ``(trainer, epoch, record) -> None``
        Called on every rank after each epoch's checkpoint (e.g. to stop or report).

    Notes
    -----
    Under ``torchrun`` (process group initialised, e.g. with
    :func:`petspect.train.distributed.init_from_env`) data are sharded with ``DistributedSampler``, the
    networks are wrapped in DistributedDataParallel, validation sums are all-reduced, and only rank 0
    writes files. Mixed precision (float16 autocast and GradScaler) is used on CUDA when ``config.amp``.
    """

    def __init__(self, config: TrainConfig, *, device: torch.device | str | None = None,
                 callbacks: Sequence[Callback] = ()) -> None:
        self.config = config
        self.dist = dist_info()
        self.device = torch.device(device) if device is not None else default_device(self.dist)
        self.callbacks = list(callbacks)
        self.out_dir = Path(config.out_dir)
        self.use_amp = bool(config.amp) and self.device.type == "cuda"
        if config.adversarial == "cyclegan" and (config.extra_keys or config.mode == "2.5d"):
            raise ConfigError("cyclegan maps single-channel images: no extra_keys and no 2.5D")

    # ------------------------------------------------------------------ setup
    def _normalizations(self) -> dict[str, Any]:
        c = self.config
        pet = normalization_from_dict(c.data.normalization)
        norms = {k: normalization_from_dict(c.data.extra_normalizations.get(k)) for k in c.data.extra_keys}
        norms[c.data.input_key] = pet
        norms[c.data.target_key] = pet
        return norms

    def _datasets(self) -> tuple[PairedVolumeDataset, PairedVolumeDataset | None]:
        c = self.config
        d = c.data
        common = dict(input_key=d.input_key, target_key=d.target_key, extra_keys=d.extra_keys,
                      patch_size=d.patch_size, mode=d.mode, n_slices=d.n_slices, normalizations=self.norms,
                      foreground_fraction=d.foreground_fraction, foreground_threshold=d.foreground_threshold,
                      foreground_key=d.foreground_key, weight_key=d.weight_key, weight_factor=d.weight_factor,
                      weight_dilate_voxels=d.weight_dilate_voxels)
        entries, root = read_dataset(d.dataset, d.train_split)
        train = PairedVolumeDataset(entries, root, patches_per_volume=d.patches_per_volume, seed=c.seed,
                                    augmentation=d.augment, unpaired=c.loss.adversarial == "cyclegan", **common)
        val_entries, _ = read_dataset(d.dataset, d.val_split)
        val = None
        if val_entries:
            val = PairedVolumeDataset(val_entries, root, patches_per_volume=c.data.val_patches_per_volume,
                                      seed=c.seed + 1, augmentation=None, **common)
        return train, val

    def network_spec(self, in_channels: int, pet_channel: int) -> dict[str, Any]:
        """``build_network`` arguments of the generator (saved in the model's config.json)."""
        c = self.config
        m = c.model
        return {"name": m.network, "spatial_dims": 3 if c.data.mode == "3d" else 2, "in_channels": in_channels,
                "out_channels": 1, "channels": list(m.channels), "residual": m.residual,
                "nonnegative": m.nonnegative, "pet_channel": pet_channel, "kwargs": dict(m.kwargs)}

    def _wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        module = module.to(self.device)
        if not self.dist.enabled:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)

    def _adam(self, modules: Sequence[torch.nn.Module]) -> torch.optim.Optimizer:
        c = self.config
        params = [p for m in modules for p in m.parameters()]
        return torch.optim.AdamW(params, lr=c.optim.lr, betas=c.optim.betas, weight_decay=c.optim.weight_decay)

    @contextlib.contextmanager
    def _run_rng(self):
        """Install the run's own torch RNG state inside ``fork_rng``; keep what the run drew on exit.

        The caller's global generators (CPU and this run's CUDA device) are restored when the block ends.
        """
        cuda = [self.device.index if self.device.index is not None else torch.cuda.current_device()] \
            if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.set_rng_state(self._rng_cpu)
            if cuda and self._rng_cuda is not None:
                torch.cuda.set_rng_state(self._rng_cuda, cuda[0])
            try:
                yield
            finally:
                self._rng_cpu = torch.get_rng_state()
                if cuda:
                    self._rng_cuda = torch.cuda.get_rng_state(cuda[0])

    def _seed_run_rng(self) -> None:
        """The run's RNG states from ``config.seed`` (explicit generators; the global RNG is untouched)."""
        self._rng_cpu = torch.Generator().manual_seed(self.config.seed).get_state()
        self._rng_cuda = (torch.Generator(device=self.device).manual_seed(self.config.seed).get_state()
                          if self.device.type == "cuda" else None)

    def _build_step(self, spec: dict[str, Any]) -> TrainStep:
        with self._run_rng():  # the weights' initialisation draws from the run's own stream
            return self._new_step(spec)

    def _new_step(self, spec: dict[str, Any]) -> TrainStep:
        c = self.config
        s = dict(spec)
        gen = build_network(s.pop("name"), **{k: v for k, v in s.items() if k != "kwargs"}, **s["kwargs"])
        gen = self._wrap(gen)
        dims = spec["spatial_dims"]
        if c.loss.adversarial is None:
            return SupervisedStep(gen, self.loss, self._adam([gen]))
        gan = GANLoss(c.loss.gan_loss)
        disc_args = dataclasses.asdict(c.loss.discriminator)
        if c.loss.adversarial == "pix2pix":
            disc = self._wrap(build_discriminator(spatial_dims=dims, in_channels=spec["in_channels"] + 1, **disc_args))
            return Pix2PixStep(gen, disc, self.loss, gan, self._adam([gen]), self._adam([disc]),
                               c.loss.adversarial_weight)
        m = c.model
        g_ba = self._wrap(build_network(m.network, spatial_dims=dims, in_channels=1, channels=m.channels,
                                        residual=m.residual, nonnegative=m.nonnegative, **m.kwargs))
        d_a, d_b = (self._wrap(build_discriminator(spatial_dims=dims, in_channels=1, **disc_args))
                    for _ in range(2))
        return CycleGANStep(gen, g_ba, d_a, d_b, gan, self._adam([gen, g_ba]), self._adam([d_a, d_b]),
                            c.loss.adversarial_weight, c.loss.cycle_weight)

    def _loader(self, ds: PairedVolumeDataset, shuffle: bool) -> tuple[DataLoader, EpochSampler]:
        """A loader over this rank's shard; the sampler passes the epoch to (persistent) workers."""
        sampler = EpochSampler(DistributedSampler(ds, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                                  shuffle=shuffle, seed=self.config.seed))
        workers = self.config.num_workers
        worker_seeds = torch.Generator().manual_seed(self.config.seed)  # workers' base seeds, not the global RNG
        loader = DataLoader(ds, batch_size=self.config.optim.batch_size, sampler=sampler, num_workers=workers,
                            pin_memory=self.device.type == "cuda", persistent_workers=workers > 0,
                            generator=worker_seeds)
        return loader, sampler

    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp)

    # ------------------------------------------------------------------ epochs
    def _train_epoch(self, epoch: int) -> dict[str, float]:
        self.train_sampler.set_epoch(epoch)
        for opt in self.step.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = self.config.lr_at(epoch)
        self.step.train(True)
        sums: dict[str, float] = {}
        n = 0
        show = self.dist.is_main and progress_enabled()
        for batch in track(self.train_loader, f"epoch {epoch + 1}/{self.config.schedule.epochs}", enabled=show):
            x = batch["input"].to(self.device, non_blocking=True)
            y = batch["target"].to(self.device, non_blocking=True)
            w = batch["weight"].to(self.device, non_blocking=True) if "weight" in batch else None
            terms = self.step.step(x, y, self.scaler, self._autocast, w)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            n += 1
        return {f"train_{k}": v / max(n, 1) for k, v in sums.items()}

    @torch.no_grad()
    def _validate(self) -> dict[str, float]:
        """Mean loss, PSNR, SSIM and NRMSE over the validation patches (physical units; all ranks)."""
        if self.val_loader is None:
            return {}
        gen = self.step.raw("generator")
        gen.eval()
        inv = self.norms[self.config.data.target_key].inverse
        sums = torch.zeros(5, dtype=torch.float64)  # loss, psnr, ssim, nrmse, count
        for batch in self.val_loader:
            x, y = batch["input"].to(self.device), batch["target"].to(self.device)
            with self._autocast():
                pred = gen(x).float()
            w = batch["weight"].to(self.device) if "weight" in batch else None
            sums[0] += float(self.loss(pred, y, w)) * len(x)
            for p, t in zip(inv(pred), inv(y)):
                drange = float(t.max() - t.min()) or 1.0
                sums[1] += min(psnr(p[0], t[0], data_range=drange), 200.0)  # cap: identical patches give inf
                sums[2] += _patch_ssim(p[0], t[0], drange)
                sums[3] += nrmse(p[0], t[0], data_range=drange)
                sums[4] += 1
        sums = all_reduce_sum(sums.to(self.device)).cpu()
        count = max(float(sums[4]), 1.0)
        return {"val_loss": float(sums[0]) / count, "val_psnr": float(sums[1]) / count,
                "val_ssim": float(sums[2]) / count, "val_nrmse": float(sums[3]) / count}

    # ------------------------------------------------------------------ checkpoints and logs
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def _save_checkpoint(self, epoch: int, finished: bool) -> None:
        if self.dist.is_main:
            state = {"epoch": epoch, "finished": finished, "step": self.step.state_dict(),
                     "scaler": self.scaler.state_dict(), "history": self.history, "best": self.best,
                     "best_state": self.best_state, "rng_cpu": self._rng_cpu,
                     "rng_cuda": [self._rng_cuda] if self._rng_cuda is not None else [],
                     "config": self.config.to_dict()}
            with atomic_path(self.checkpoint_path) as tmp:
                torch.save(state, tmp)
        barrier()

    def _load_checkpoint(self) -> int:
        """Restore the run; returns the next epoch to train."""
        state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
        if TrainConfig.from_dict(state["config"]).to_dict() != self.config.to_dict():  # flat (v1) ones too
            raise ConfigError("checkpoint was written with another configuration; use a new out_dir",
                              path=self.checkpoint_path)
        self.step.load_state_dict(state["step"])
        self.scaler.load_state_dict(state["scaler"])
        self.history, self.best, self.best_state = state["history"], state["best"], state["best_state"]
        self._rng_cpu = state["rng_cpu"].cpu()
        if self.device.type == "cuda" and state["rng_cuda"]:
            self._rng_cuda = state["rng_cuda"][0].cpu()
        self._finished = bool(state["finished"])
        return int(state["epoch"]) + 1

    def _log(self, record: dict[str, float]) -> None:
        if not self.dist.is_main:
            return
        keys = list(dict.fromkeys(k for r in self.history for k in r))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self.history)
        atomic_write_text(self.out_dir / "log.csv", buf.getvalue())
        if self.tb is not None:
            for k, v in record.items():
                if k != "epoch" and isinstance(v, (int, float)) and math.isfinite(v):
                    self.tb.add_scalar(k, v, int(record["epoch"]))
            self.tb.flush()

    # ------------------------------------------------------------------ early stopping
    def _improved(self, record: dict[str, float]) -> bool:
        key = f"val_{self.config.schedule.val_metric}"
        if key not in record:
            return False
        tracker = BestTracker(VAL_METRICS[self.config.schedule.val_metric], min_delta=self.config.schedule.min_delta)
        tracker.load_state_dict(self.best)
        improved = tracker.update(record[key], int(record["epoch"]))
        self.best = tracker.state_dict()
        return improved

    # ------------------------------------------------------------------ public
    def fit(self, *, resume: bool = True) -> TrainResult:
        """Train (or resume) to the last epoch or an early stop, then write ``out_dir/model``.

        Parameters
        ----------
        resume : bool
            Continue from ``out_dir/checkpoint.pt`` when it exists (its configuration must be equal);
            with False an existing checkpoint raises :class:`~petspect.errors.ConfigError`.
        """
        c = self.config
        if self.dist.is_main:
            from petspect._fileio import check_not_protected

            check_not_protected(self.out_dir)  # never write a run into the current or home folder
            self.out_dir.mkdir(parents=True, exist_ok=True)
        barrier()
        if self.checkpoint_path.exists() and not resume:
            raise ConfigError("a checkpoint exists: resume, or choose a new out_dir", path=self.checkpoint_path)
        self.norms = self._normalizations()
        self.train_ds, val_ds = self._datasets()
        self.train_loader, self.train_sampler = self._loader(self.train_ds, shuffle=True)
        self.val_loader = self._loader(val_ds, shuffle=False)[0] if val_ds is not None else None
        self.loss = build_loss(c.loss.terms, spatial_dims=3 if c.data.mode == "3d" else 2).to(self.device)
        spec = self.network_spec(self.train_ds.in_channels, self.train_ds.pet_channel)
        self._seed_run_rng()
        self.step = self._build_step(spec)
        self.step.grad_clip_norm = c.optim.grad_clip_norm
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.use_amp)
        self.history: list[dict[str, float]] = []
        self.best: dict[str, Any] = {}
        self.best_state: dict[str, torch.Tensor] | None = None
        self._finished = False
        start = self._load_checkpoint() if self.checkpoint_path.exists() else 0
        self.tb = None
        if c.tensorboard and self.dist.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(log_dir=str(self.out_dir / "tensorboard"), purge_step=start)
        try:
            for epoch in range(start, c.schedule.epochs if not self._finished else start):
                t0 = time.perf_counter()
                with self._run_rng():
                    trained = self._train_epoch(epoch)
                record = {"epoch": epoch, **trained, **self._validate(),
                          "lr": c.lr_at(epoch), "seconds": time.perf_counter() - t0}
                if self._improved(record):
                    self.best_state = {k: v.detach().cpu().clone()
                                       for k, v in self.step.raw("generator").state_dict().items()}
                self.history.append(record)
                stop = c.schedule.patience is not None and self.best.get("bad_epochs", 0) >= c.schedule.patience
                self._finished = stop or epoch + 1 == c.schedule.epochs
                self._save_checkpoint(epoch, self._finished)
                self._log(record)
                if self.dist.is_main:
                    note(epoch_line(record, c.schedule.epochs))
                for cb in self.callbacks:
                    cb(self, epoch, record)
                if stop:
                    break
        finally:
            if self.tb is not None:
                self.tb.close()
        return self._finish(spec)

    def _finish(self, spec: dict[str, Any]) -> TrainResult:
        c = self.config
        model_dir = self.out_dir / "model"
        stopped = c.schedule.patience is not None and self.best.get("bad_epochs", 0) >= c.schedule.patience
        if self.dist.is_main:
            keys = (c.data.input_key, *c.data.extra_keys)
            d = c.data
            data = {"mode": d.mode, "n_slices": d.n_slices if d.mode == "2.5d" else 1, "input_key": d.input_key,
                    "extra_keys": list(d.extra_keys), "target_key": d.target_key, "patch_size": list(d.patch_size)}
            save_model(model_dir, self.step.raw("generator"), network_spec=spec, data=data,
                       input_normalizations=[self.norms.get(k, Identity()) for k in keys],
                       target_normalization=self.norms[c.data.target_key], training=c.to_dict(),
                       card=self._card(stopped), state_dict=self.best_state)
        barrier()
        return TrainResult(model_dir, self.history, self.best.get("epoch"), self.best.get("value"), stopped)

    def _card(self, stopped: bool) -> dict[str, Any]:
        c, d = self.config, self.config.data
        last = self.history[-1] if self.history else {}
        best_epoch = self.best.get("epoch")
        best_rec = next((r for r in self.history if r["epoch"] == best_epoch), last)
        return {
            "petspect_version": petspect.__version__, "torch_version": torch.__version__,
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "task": "image-to-image", "intended_use": c.card.get("intended_use", "research only; not for clinical use"),
            "data": {"dataset": str(d.dataset), "train_split": d.train_split, "val_split": d.val_split,
                     "n_train": len(self.train_ds.entries), "input_key": d.input_key, "target_key": d.target_key,
                     "extra_keys": list(d.extra_keys), **{k: v for k, v in c.card.items() if k != "intended_use"}},
            "metrics": {k: v for k, v in best_rec.items() if k.startswith("val_")},
            "weights": "best validation epoch" if self.best_state is not None else "last epoch",
            "training": {"scheme": c.loss.adversarial or "supervised", "network": c.model.network, "mode": d.mode,
                         "loss": c.loss.terms, "epochs_run": len(self.history), "epochs_max": c.schedule.epochs,
                         "best_epoch": best_epoch, "stopped_early": stopped, "seed": c.seed,
                         "seeded_global_rng": False, "rng": "run-local torch state from the seed (fork_rng)",
                         "optimizer": "AdamW", "lr": c.optim.lr, "lr_schedule": c.schedule.lr_schedule,
                         "batch_size": c.optim.batch_size,
                         "world_size": self.dist.world_size, "device": self.device.type, "amp": self.use_amp},
        }
