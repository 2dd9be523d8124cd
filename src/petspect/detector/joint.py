"""One network for position, energy and time: monolithic-block events read by a SiPM array with a fast timing channel.

The events are coincidences of two identical monolithic blocks (:class:`~petspect.detector.simulate.DetectorConfig`)
facing each other across a point source on the line between them. Each block sees a flood irradiation at normal
incidence (gamma transport, scintillation, mirror-source light transport, SiPM response as in
:func:`~petspect.detector.simulate.simulate_events`, every energy deposit kept, Compton events included); its
fast timing channel is the summed output of the array, simulated with the photon registration times of
:func:`~petspect.detector.waveforms.photon_times_ps` for the block's thickness, the event's first-interaction depth
and as many photoelectrons as the array's summed signal (the same photons make the light distribution and the
pulse), then shaped, sampled and digitised as the preset's timing pair (:func:`~petspect.detector.waveforms.render_waveforms`).
Approximations: the light of every interaction leaves from the first one's depth for the pulse (the light
distribution uses all of them), and the arrival-time transport is that of a pixel (direct or front-face-reflected
photons within the escape cone), not of the block's lateral reflections.

:class:`JointNet` reads both: a residual 2D CNN on the normalised light map (+ log summed signal) and a 1D CNN on
a window cut around the pulse's own constant-fraction crossing (as :class:`~petspect.detector.models.AlignedPulseCNN`),
joined in a shared trunk with three heads: ``(x, y, doi)``, the deposited energy, and a correction to the pulse's
constant-fraction time. It is trained on pairs (:func:`petspect.train.loop.fit_tensors`): smooth-L1 position and
energy losses on both events and a squared loss on ``(g_a - g_b)`` against the label ``t_a - t_b`` from the source
position (the timing CNN's label), weighted ``L = L_pos + w_E L_E + w_t L_t``; the weights are chosen on the
validation pairs (:func:`petspect.evaluation.grid_search`) by :mod:`petspect.detector.joint_study`.

The interaction time it returns is on the record's clock, up to one constant common to every event (only
``t_a - t_b`` is measurable; the constant is calibrated so that it is unbiased on the training pairs).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from petspect.detector.models import (TrainSettings, _ResBlock, load_model_folder, masked_smooth_l1,
                                      save_model_folder)
from petspect.detector.photodetector import SiPMArray
from petspect.detector.positioning import normalised_features
from petspect.detector.simulate import DetectorConfig, flood, simulate_events
from petspect.detector.timing import CFD_FRACTIONS, aligned_input, scan_discriminator
from petspect.detector.waveforms import Coincidences, TimingConfig, crop_windows, render_waveforms
from petspect.errors import ConfigError, DataNotFoundError, FormatError, InputError
from petspect.train.loop import LoopSettings, fit_tensors
from petspect.units import C_MM_PER_PS

ENERGY_SCALE_KEV = 511.0
TIME_SCALE_PS = 100.0  # unit of the time head's correction


@dataclasses.dataclass(frozen=True)
class JointConfig:
    """Sizes and training of the joint study of a preset.

    Parameters
    ----------
    pairs : (int, int, int)
        Training, validation and test coincidences (two blocks each).
    training : TrainSettings
        Optimisation of the joint network (and of the separate positioner and timing CNN trained on the same
        events, which use their own preset settings' loss).
    energy_weights, time_weights : tuple of float
        Candidate loss weights ``w_E`` and ``w_t``, searched on validation. The terms differ in scale: the
        position and energy smooth-L1 losses are ~0.05 (errors of ~1 mm over a half face, ~10 % of 511 keV) and
        the squared timing residual ~1.5 (~300 ps CTR in 100 ps units), so ``w_t`` ~0.03-0.15 balances them; on
        ``realistic`` the first grid, ``w_t`` 0.5 / 2, let the timing term dominate (position FWHM 2.0-3.0 mm
        against the separate CNN's 0.95 mm on validation; BENCHMARKS.md).
    max_trials : int
        Tuning budget (configurations trained and scored on validation).
    window : (int, int)
        Samples before and from the constant-fraction crossing in the pulse window.
    train_source_range_mm : float
        Training sources uniform within +-this (mm); validation and test use the timing preset's range.
    channels : int
        Feature channels of both trunks.
    """

    pairs: tuple[int, int, int] = (5000, 2500, 2500)
    training: TrainSettings = TrainSettings(epochs=30, batch_size=256, lr=2e-3, average_last=10)
    energy_weights: tuple[float, ...] = (1.0, 2.0)
    time_weights: tuple[float, ...] = (0.03, 0.15)
    max_trials: int = 4
    window: tuple[int, int] = (6, 16)
    train_source_range_mm: float = 150.0
    channels: int = 32

    def __post_init__(self) -> None:
        if len(self.pairs) != 3 or min(self.pairs) < 20:
            raise ConfigError("joint pairs must be (train, validation, test), each >= 20")
        if not self.energy_weights or not self.time_weights or min(self.energy_weights + self.time_weights) <= 0:
            raise ConfigError("joint loss weights must be positive and non-empty")
        if self.max_trials < 1 or min(self.window) < 1 or self.channels < 1 or self.train_source_range_mm <= 0:
            raise ConfigError("max_trials, window, channels and train_source_range_mm must be positive")


@dataclasses.dataclass
class JointEvents:
    """Coincidences of two monolithic blocks: light distributions, timing waveforms and truth.

    Attributes
    ----------
    signals : numpy.ndarray, shape (n, 2, n_y, n_x), float32
        Fired SiPM cells per pixel of blocks a and b.
    waveforms : numpy.ndarray, shape (n, 2, n_samples + 2 max_shift), float32
        Summed fast timing channel (spe).
    position_mm : numpy.ndarray, shape (n, 2, 3)
        True first-interaction ``(x, y, doi)`` (mm).
    edep_kev : numpy.ndarray, shape (n, 2)
        Deposited energy (keV).
    dt_ps : numpy.ndarray, shape (n,)
        True ``t_a - t_b`` (ps) of the central window.
    source_mm : numpy.ndarray, shape (n,)
    n_pe : numpy.ndarray, shape (n, 2)
        Photoelectrons in the timing channel.
    """

    signals: np.ndarray
    waveforms: np.ndarray
    position_mm: np.ndarray
    edep_kev: np.ndarray
    dt_ps: np.ndarray
    source_mm: np.ndarray
    n_pe: np.ndarray

    def __len__(self) -> int:
        return len(self.dt_ps)

    def subset(self, index) -> JointEvents:
        """Coincidences selected by a mask or index array."""
        return JointEvents(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})

    def coincidences(self) -> Coincidences:
        """The timing part as :class:`~petspect.detector.waveforms.Coincidences` (for LED, CFD, timing CNN)."""
        return Coincidences(self.waveforms, self.dt_ps, self.source_mm, self.position_mm[..., 2], self.n_pe)

    def save(self, path: str | os.PathLike) -> None:
        """Write to ``path`` (.npz)."""
        from petspect._fileio import atomic_path

        with atomic_path(Path(path)) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    @classmethod
    def load(cls, path: str | os.PathLike) -> JointEvents:
        """Read a file written by :meth:`save`."""
        path = Path(path)
        if not path.exists():
            raise DataNotFoundError("joint event file not found", path=path)
        try:
            with np.load(path) as z:
                return cls(**{f.name: z[f.name] for f in dataclasses.fields(cls)})
        except (KeyError, ValueError, OSError) as exc:
            raise FormatError(f"not a petspect joint event file ({exc})", path=path) from exc


def block_timing(detector: DetectorConfig, timing: TimingConfig) -> TimingConfig:
    """The timing set-up of the block: the preset's SiPM pulse and electronics, the block's crystal and thickness."""
    return dataclasses.replace(timing, crystal=detector.crystal, length_mm=detector.thickness_mm)


def _block_events(detector: DetectorConfig, n: int, generator: np.random.Generator, device):
    """``n`` flood events of one block that deposited energy (more gammas are drawn until there are enough)."""
    parts, have = [], 0
    while have < n:
        entry, mask = flood(detector, int(1.7 * (n - have)) + 20, generator)
        ev = simulate_events(detector, entry, mask, generator, device=device)
        parts.append(ev)
        have += len(ev)
    sig = np.concatenate([p.signals for p in parts])[:n]
    pos = np.concatenate([p.position_mm for p in parts])[:n]
    edep = np.concatenate([p.edep_kev for p in parts])[:n]
    return sig, pos, edep


def simulate_joint(detector: DetectorConfig, timing: TimingConfig, n: int, generator: np.random.Generator, *,
                   source_range_mm: float | None = None, device="cpu") -> JointEvents:
    """Simulate ``n`` coincidences of two monolithic blocks with their light distributions and timing waveforms.

    Parameters
    ----------
    detector : DetectorConfig
        Both blocks.
    timing : TimingConfig
        SiPM pulse, electronics, sampling, trigger jitter and source range of the timing channel
        (:func:`block_timing` puts the block's crystal and thickness in).
    n : int
        Coincidences.
    generator : numpy.random.Generator
    source_range_mm : float, optional
        Sources uniform within +-this (mm); default ``timing.source_range_mm``.
    device : str or torch.device
        Where the light transport runs.
    """
    if n < 1:
        raise InputError("n must be >= 1")
    cfg = block_timing(detector, timing)
    rng_mm = cfg.source_range_mm if source_range_mm is None else float(source_range_mm)
    blocks = [_block_events(detector, n, generator, device) for _ in range(2)]
    signals = np.stack([b[0] for b in blocks], axis=1)
    position = np.stack([b[1] for b in blocks], axis=1)
    edep = np.stack([b[2] for b in blocks], axis=1)
    source = generator.uniform(-rng_mm, rng_mm, n)
    dt = 2.0 * source / C_MM_PER_PS
    jitter = cfg.sample_ps if cfg.trigger_jitter_ps is None else cfg.trigger_jitter_ps
    t0 = cfg.onset_ns * 1e3 + cfg.max_shift * cfg.sample_ps + generator.uniform(0.0, jitter, n)
    arrival = np.stack([t0 + dt / 2.0, t0 - dt / 2.0], axis=1)
    n_pe = np.rint(signals.reshape(n, 2, -1).sum(axis=-1)).astype(np.int64)
    doi = np.clip(position[..., 2], 0.0, detector.thickness_mm)
    waves = render_waveforms(cfg, arrival.ravel(), doi.ravel(), n_pe.ravel(), generator).reshape(n, 2, -1)
    return JointEvents(signals.astype(np.float32), waves, position, edep, dt, source, n_pe)


def light_maps(signals: np.ndarray, sipm: SiPMArray) -> torch.Tensor:
    """Light-map input ``(m, 2, n_y, n_x)``: pixel signals over their sum (x pixel count) and the log summed signal."""
    s = np.asarray(signals, dtype=np.float32)
    if s.ndim != 3 or s.shape[1:] != (sipm.n_y, sipm.n_x):
        raise InputError(f"signals must be (m, {sipm.n_y}, {sipm.n_x}), got {s.shape}")
    feats = torch.from_numpy(normalised_features(s))
    m = len(s)
    maps = feats[:, :-1].reshape(m, 1, sipm.n_y, sipm.n_x) * (sipm.n_x * sipm.n_y)
    energy = feats[:, -1].reshape(m, 1, 1, 1).expand(m, 1, sipm.n_y, sipm.n_x)
    return torch.cat([maps, energy], dim=1).contiguous()


class JointNet(nn.Module):
    """Light map + aligned pulse window -> ``(x, y, doi, energy, time correction)`` (scaled units).

    ``forward(maps (B, 2, n_y, n_x), rows (B, 2 W + 2)) -> (B, 5)``.

    Parameters
    ----------
    n_y, n_x : int
        SiPM array.
    window : int
        Samples ``W`` of the pulse window (rows: two channels of ``W`` samples and two scalars, as
        :func:`~petspect.detector.timing.aligned_input`).
    channels : int
    """

    def __init__(self, n_y: int, n_x: int, window: int, *, channels: int = 32) -> None:
        super().__init__()
        if n_y < 2 or n_x < 2 or window < 4 or channels < 1:
            raise ConfigError("JointNet needs a map of at least 2x2, window >= 4 and channels >= 1")
        self.window = window
        self.light = nn.Sequential(nn.Conv2d(2, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
                                   _ResBlock(channels, 2), _ResBlock(channels, 2), nn.Flatten(),
                                   nn.Linear(channels * n_y * n_x, 128), nn.ReLU())
        self.pulse = nn.Sequential(nn.Conv1d(2, channels, 3, padding=1), nn.GELU(),
                                   nn.Conv1d(channels, channels, 3, padding=1), nn.GELU(),
                                   nn.Conv1d(channels, channels, 3, padding=1), nn.GELU(),
                                   nn.Conv1d(channels, 4, 1), nn.Flatten())
        self.pulse_fc = nn.Sequential(nn.Linear(4 * window + 2, 128), nn.GELU())
        self.trunk = nn.Sequential(nn.Linear(256, 128), nn.GELU())
        self.position = nn.Linear(128, 3)
        self.energy = nn.Linear(128, 1)
        self.time = nn.Sequential(nn.Linear(128 + 128, 64), nn.GELU(), nn.Linear(64, 1))

    def forward(self, maps: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        w = self.window
        if maps.ndim != 4 or maps.shape[1] != 2 or rows.ndim != 2 or rows.shape[1] != 2 * w + 2:
            raise InputError(f"JointNet expects maps (B, 2, n_y, n_x) and rows (B, {2 * w + 2}), got "
                             f"{tuple(maps.shape)} and {tuple(rows.shape)}")
        f_light = self.light(maps)
        f_pulse = self.pulse_fc(torch.cat([self.pulse(rows[:, :2 * w].reshape(-1, 2, w)), rows[:, 2 * w:]], dim=1))
        h = self.trunk(torch.cat([f_light, f_pulse], dim=1))
        return torch.cat([self.position(h), self.energy(h), self.time(torch.cat([h, f_pulse], dim=1))], dim=1)


class JointModel:
    """Train and apply a :class:`JointNet` on :class:`JointEvents`.

    Parameters
    ----------
    detector : DetectorConfig
    timing : TimingConfig
        The preset's timing set-up (the block's is derived with :func:`block_timing`).
    settings : TrainSettings
    energy_weight, time_weight : float
        Loss weights ``w_E``, ``w_t``.
    window : (int, int)
    channels : int
    fractions : sequence of float
        Constant fractions scanned on the training pairs for the pulse windows' trigger.
    device : str or torch.device
    """

    name = "joint"

    def __init__(self, detector: DetectorConfig, timing: TimingConfig, *, settings: TrainSettings = TrainSettings(),
                 energy_weight: float = 1.0, time_weight: float = 1.0, window: tuple[int, int] = (6, 16),
                 channels: int = 32, fractions=CFD_FRACTIONS, device="cpu") -> None:
        if energy_weight <= 0 or time_weight <= 0:
            raise ConfigError("loss weights must be positive")
        self.detector, self.timing = detector, block_timing(detector, timing)
        self.settings, self.energy_weight, self.time_weight = settings, float(energy_weight), float(time_weight)
        self.window, self.channels = (int(window[0]), int(window[1])), channels
        self.fractions = tuple(float(f) for f in fractions)
        self.device = torch.device(device)
        sipm = detector.sipm
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG state
            torch.manual_seed(settings.seed)
            self.model = JointNet(sipm.n_y, sipm.n_x, sum(self.window), channels=channels).to(self.device)
        self.trigger_fraction_, self.offset_ps_ = None, 0.0
        self.history_: dict | None = None

    @property
    def _pos_scale(self) -> np.ndarray:
        d = self.detector
        return np.array([d.size_mm[0] / 2, d.size_mm[1] / 2, d.thickness_mm / 2])

    @property
    def _pos_shift(self) -> np.ndarray:
        return np.array([0.0, 0.0, self.detector.thickness_mm / 2])

    def _inputs(self, events: JointEvents):
        """Maps (n, 2, 2, n_y, n_x), rows (n, 2, 2 W + 2) and the constant-fraction ``t_a - t_b`` (ps)."""
        n = len(events)
        windows, _ = crop_windows(events.waveforms, events.dt_ps, np.zeros((n, 2), dtype=int), self.timing)
        rows, t = aligned_input(windows, self.trigger_fraction_, self.timing.sample_ps, pre=self.window[0],
                                post=self.window[1])
        sipm = self.detector.sipm
        maps = light_maps(events.signals.reshape(2 * n, sipm.n_y, sipm.n_x), sipm).reshape(n, 2, 2, sipm.n_y, sipm.n_x)
        return maps, torch.from_numpy(rows), t[:, 0] - t[:, 1] - self.offset_ps_

    def fit(self, events: JointEvents) -> JointModel:
        """Train on coincidences (labels: first-interaction points, deposited energies, source positions)."""
        n = len(events)
        windows, dt = crop_windows(events.waveforms, events.dt_ps, np.zeros((n, 2), dtype=int), self.timing)
        scan = scan_discriminator("cfd", windows, dt, self.fractions, self.timing.sample_ps)
        self.trigger_fraction_, self.offset_ps_ = scan.best, scan.offset_ps
        maps, rows, base = self._inputs(events)
        pos = (events.position_mm - self._pos_shift) / self._pos_scale
        targets = np.concatenate([pos, events.edep_kev[..., None] / ENERGY_SCALE_KEV], axis=-1).astype(np.float32)
        t_res = ((dt - base) / TIME_SCALE_PS).astype(np.float32)[:, None]
        tensors = (maps, rows, torch.from_numpy(targets), torch.from_numpy(t_res))
        st = self.settings
        gen = torch.Generator().manual_seed(st.seed)
        perm = torch.randperm(n, generator=gen)
        n_val = max(2, int(round(st.val_fraction * n)))
        val_idx, tr_idx = perm[:n_val], perm[n_val:]
        dev = self.device
        w_e, w_t = self.energy_weight, self.time_weight

        def losses(net, batch):
            m, r, y, tt = (b.to(dev) for b in batch)
            b = len(m)
            out = net(m.reshape(2 * b, *m.shape[2:]), r.reshape(2 * b, -1)).reshape(b, 2, 5)
            ones = torch.ones_like(y[..., :3], dtype=torch.bool)
            l_pos = masked_smooth_l1(out[..., :3], y[..., :3], ones)
            l_e = masked_smooth_l1(out[..., 3:4], y[..., 3:4], ones[..., :1])
            l_t = torch.mean((out[:, 0, 4:5] - out[:, 1, 4:5] - tt) ** 2)
            return l_pos, l_e, l_t

        def loss(net, batch):
            l_pos, l_e, l_t = losses(net, batch)
            return l_pos + w_e * l_e + w_t * l_t

        @torch.no_grad()
        def validate(net):
            net.eval()
            parts = [torch.stack(losses(net, tuple(t[val_idx[i:i + 1024]] for t in tensors)))
                     for i in range(0, n_val, 1024)]
            mean = torch.stack(parts).mean(dim=0)
            return float(mean[0] + w_e * mean[1] + w_t * mean[2])

        loop = LoopSettings(epochs=st.epochs, batch_size=st.batch_size, lr=st.lr, weight_decay=st.weight_decay,
                            average_last=st.average_last)
        res = fit_tensors(self.model, tensors, loss=loss, validate=validate, settings=loop, generator=gen,
                          index=tr_idx, description="training joint network")
        self.history_ = {"train_loss": res.train_loss, "val_loss": res.val, "best_epoch": res.best_epoch}
        return self

    def predict(self, events: JointEvents) -> dict:
        """Estimates for both blocks of each coincidence.

        Returns
        -------
        dict
            ``position_mm`` (n, 2, 3), ``energy_kev`` (n, 2), ``time_ps`` (n, 2) (record clock, common constant
            calibrated on the training pairs) and ``dt_ps`` (n,) = ``t_a - t_b``.
        """
        if self.trigger_fraction_ is None:
            raise InputError("JointModel is not fitted")
        n = len(events)
        maps, rows, _ = self._inputs(events)
        out = self._forward(maps.reshape(2 * n, *maps.shape[2:]), rows.reshape(2 * n, -1))
        out = out.numpy().astype(np.float64).reshape(n, 2, 5)
        windows, _ = crop_windows(events.waveforms, events.dt_ps, np.zeros((n, 2), dtype=int), self.timing)
        _, t_cfd = aligned_input(windows, self.trigger_fraction_, self.timing.sample_ps, pre=self.window[0],
                                 post=self.window[1])
        time_ps = t_cfd + out[..., 4] * TIME_SCALE_PS - 0.5 * np.array([self.offset_ps_, -self.offset_ps_])
        return {"position_mm": out[..., :3] * self._pos_scale + self._pos_shift,
                "energy_kev": out[..., 3] * ENERGY_SCALE_KEV, "time_ps": time_ps,
                "dt_ps": time_ps[:, 0] - time_ps[:, 1]}

    @torch.no_grad()
    def _forward(self, maps: torch.Tensor, rows: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        self.model.eval()
        return torch.cat([self.model(maps[i:i + batch_size].to(self.device), rows[i:i + batch_size].to(self.device)).cpu()
                          for i in range(0, len(maps), batch_size)])

    def save(self, folder: str | os.PathLike, record: dict | None = None) -> None:
        """Save as a model folder (weights.pt, config.json, model_card.md)."""
        cfg = {"kind": "joint", "detector": self.detector.to_dict(), "timing": dataclasses.asdict(self.timing),
               "settings": dataclasses.asdict(self.settings), "energy_weight": self.energy_weight,
               "time_weight": self.time_weight, "window": list(self.window), "channels": self.channels,
               "trigger_fraction": self.trigger_fraction_, "offset_ps": self.offset_ps_,
               "energy_scale_kev": ENERGY_SCALE_KEV, "time_scale_ps": TIME_SCALE_PS, "history": self.history_,
               "outputs": "x, y, doi (scaled by half face / half thickness, doi shifted), deposited energy / 511 keV, "
                          "correction to the constant-fraction time in 100 ps", "data": record or {}}
        card = ("# petspect joint detector network\n\nFrom the SiPM light distribution and the summed fast timing "
                f"waveform of a {self.detector.thickness_mm} mm {self.detector.crystal} monolithic block, estimates the "
                "first-interaction point (x, y, depth), the deposited energy (keV) and the interaction time (ps, "
                "record clock, up to a common constant). Trained on simulated coincidences (see config.json). Valid "
                "only for the recorded set-up. Not for clinical use.\n")
        save_model_folder(folder, self.model, cfg, card)

    @classmethod
    def load(cls, folder: str | os.PathLike, device="cpu") -> JointModel:
        """Rebuild a saved joint model (weights loaded with ``weights_only=True``)."""
        state, cfg = load_model_folder(folder)
        if cfg.get("kind") != "joint":
            raise FormatError("not a joint model folder", path=folder)
        obj = cls(DetectorConfig.from_dict(cfg["detector"]), TimingConfig(**cfg["timing"]),
                  settings=TrainSettings(**cfg["settings"]), energy_weight=cfg["energy_weight"],
                  time_weight=cfg["time_weight"], window=tuple(cfg["window"]), channels=cfg["channels"], device=device)
        obj.model.load_state_dict(state)
        obj.model.eval()
        obj.trigger_fraction_, obj.offset_ps_ = cfg["trigger_fraction"], cfg["offset_ps"]
        obj.history_ = cfg.get("history")
        return obj

