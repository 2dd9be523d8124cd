"""Time pick-off from digitised waveforms: leading edge, constant fraction and a CNN on the pair.

Leading-edge discrimination (LED) timestamps the first crossing of a fixed threshold (in
single-photoelectron amplitudes); digital constant-fraction discrimination (CFD) the first crossing
of a fixed fraction of the pulse's own maximum, which makes it independent of the amplitude. Both
interpolate linearly between samples after subtracting the baseline (mean of the first
``baseline_samples``). The coincidence estimate is ``t_a - t_b`` minus a constant offset calibrated
on the validation set; settings are scanned and the best one on the validation set is kept.
The CNN (:class:`CNNTimer`) regresses ``t_a - t_b`` from both waveforms (Berg and Cherry, PMB 2018),
trained on labels from the source positions and augmented by digital whole-sample shifts.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch

from petspect.detector.metrics import timing_metrics, width_at_fraction
from petspect.detector.models import (PulseTimingCNN, TimingCNN, TrainSettings, fit_regressor, load_model_folder, predict, restore,
                                      save_model_folder)
from petspect.detector.waveforms import Coincidences, TimingConfig, crop_windows
from petspect.errors import InputError

DT_SCALE_PS = 1000.0


def _baseline(w: np.ndarray, baseline_samples: int) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    if w.ndim < 1 or w.shape[-1] <= baseline_samples:
        raise InputError("waveforms must be (..., n_samples) with more samples than the baseline")
    return w - w[..., :baseline_samples].mean(axis=-1, keepdims=True)


def crossing_times(waveforms: np.ndarray, threshold: np.ndarray, sample_ps: float) -> np.ndarray:
    """First upward crossing of ``threshold`` (ps from the first sample), linearly interpolated.

    Parameters
    ----------
    waveforms : numpy.ndarray, shape (..., n_samples)
        Baseline-subtracted waveforms.
    threshold : numpy.ndarray, broadcastable to ``waveforms.shape[:-1]``
    sample_ps : float

    Returns
    -------
    numpy.ndarray, shape ``waveforms.shape[:-1]``
        NaN where the waveform never crosses (or is above the threshold at the first sample).
    """
    thr = np.broadcast_to(np.asarray(threshold, dtype=np.float64), waveforms.shape[:-1])[..., None]
    above = waveforms >= thr
    first = np.argmax(above, axis=-1)
    valid = above.any(axis=-1) & (first > 0)
    i1 = np.clip(first, 1, None)[..., None]
    w1 = np.take_along_axis(waveforms, i1, axis=-1)[..., 0]
    w0 = np.take_along_axis(waveforms, i1 - 1, axis=-1)[..., 0]
    frac = (thr[..., 0] - w0) / np.where(w1 > w0, w1 - w0, 1.0)
    return np.where(valid, (i1[..., 0] - 1 + frac) * sample_ps, np.nan)


def leading_edge(waveforms: np.ndarray, threshold_spe: float, sample_ps: float, *, baseline_samples: int = 8) -> np.ndarray:
    """Leading-edge timestamps (ps) at a fixed threshold (single-photoelectron amplitudes)."""
    return crossing_times(_baseline(waveforms, baseline_samples), threshold_spe, sample_ps)


def constant_fraction(waveforms: np.ndarray, fraction: float, sample_ps: float, *, baseline_samples: int = 8) -> np.ndarray:
    """Digital constant-fraction timestamps (ps): first crossing of ``fraction`` times the maximum."""
    if not 0 < fraction < 1:
        raise InputError("fraction must lie in (0, 1)")
    w = _baseline(waveforms, baseline_samples)
    return crossing_times(w, fraction * w.max(axis=-1), sample_ps)


@dataclasses.dataclass
class ScanResult:
    """Best setting of a discriminator scan.

    Attributes
    ----------
    method : str
    best : float
        Best threshold (spe) or fraction.
    offset_ps : float
        Constant offset subtracted from ``t_a - t_b``.
    scan : dict
        Setting -> validation CTR FWHM (ps).
    """

    method: str
    best: float
    offset_ps: float
    scan: dict

    def estimate(self, waveforms: np.ndarray, sample_ps: float) -> np.ndarray:
        """Time differences ``t_a - t_b`` (ps) of waveforms (n, 2, n_samples) at the chosen setting."""
        t = _PICKOFF[self.method](waveforms, self.best, sample_ps)
        return t[:, 0] - t[:, 1] - self.offset_ps


_PICKOFF = {"led": leading_edge, "cfd": constant_fraction}


def scan_discriminator(method: str, waveforms: np.ndarray, dt_ps: np.ndarray, settings, sample_ps: float) -> ScanResult:
    """Pick the LED threshold or CFD fraction that gives the smallest CTR FWHM on these (validation) data.

    Parameters
    ----------
    method : {"led", "cfd"}
    waveforms : numpy.ndarray, shape (n, 2, n_samples)
    dt_ps : numpy.ndarray, shape (n,)
        True time differences (ps).
    settings : sequence of float
        Thresholds (spe) or fractions to try.
    sample_ps : float
    """
    if method not in _PICKOFF:
        raise InputError(f"unknown discriminator {method!r}; choose led or cfd")
    scan, offsets = {}, {}
    for s in settings:
        t = _PICKOFF[method](waveforms, s, sample_ps)
        err = t[:, 0] - t[:, 1] - dt_ps
        ok = np.isfinite(err)
        if ok.mean() < 0.95:  # the setting misses events (threshold above the pulse or in the noise)
            continue
        offsets[s] = float(np.median(err[ok]))
        scan[s] = width_at_fraction(err[ok] - offsets[s])
    if not scan:
        raise InputError(f"no {method} setting triggered on 95 % of the events")
    best = min(scan, key=scan.get)
    return ScanResult(method, float(best), offsets[best], {float(k): v for k, v in scan.items()})


def timing_input(windows: torch.Tensor, baseline_samples: int = 8, scale_spe: float = 2.0) -> torch.Tensor:
    """Network input of ``(n, 2, L)`` waveforms in spe units: ``asinh((w - baseline) / scale_spe) / 6``.

    The logarithmic compression keeps the first few photoelectrons of the leading edge (where the
    timing information is) on the same footing as the pulse maximum (~500 spe -> ~1).
    """
    w = windows - windows[..., :baseline_samples].mean(dim=-1, keepdim=True)
    return torch.asinh(w / scale_spe) / 6.0


class CNNTimer:
    """CNN estimate of ``t_a - t_b`` (ps) from a pair of waveforms.

    Parameters
    ----------
    config : TimingConfig
    settings : TrainSettings
    device : torch.device or str
    channels : int
    arch : {"pair", "siamese"}
        ``"pair"``: :class:`TimingCNN` on the two waveforms stacked as channels (default);
        ``"siamese"``: :class:`PulseTimingCNN`, one shared network times each pulse at full sampling
        and the estimate is the difference (antisymmetric under swapping the detectors). On the
        ``realistic`` preset it was not better (validation CTR 164-171 ps vs 155 ps, BENCHMARKS.md).
    """

    name = "cnn"
    ARCHS = ("pair", "siamese")

    def __init__(self, config: TimingConfig, *, settings: TrainSettings = TrainSettings(),
                 device: torch.device | str = "cpu", channels: int = 32, arch: str = "pair") -> None:
        if arch not in self.ARCHS:
            raise InputError(f"unknown timing CNN architecture {arch!r}; choose one of {self.ARCHS}")
        self.config, self.settings, self.channels, self.arch = config, settings, channels, arch
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG state
            torch.manual_seed(settings.seed)
            net = PulseTimingCNN if arch == "siamese" else TimingCNN
            self.model = net(config.n_samples, channels=channels).to(self.device)
        self.history_: dict | None = None

    def _crop(self, long: torch.Tensor, dt: torch.Tensor, shifts: torch.Tensor):
        k, n = self.config.max_shift, self.config.n_samples
        idx = torch.arange(n)[None, None, :] + k + shifts[:, :, None]
        windows = torch.gather(long, 2, idx)
        new_dt = dt - (shifts[:, :1] - shifts[:, 1:]).to(dt.dtype) * (self.config.sample_ps / DT_SCALE_PS)
        return timing_input(windows), new_dt

    def fit(self, data: Coincidences) -> CNNTimer:
        """Train on coincidences (labels from the source positions, random digital shifts per batch)."""
        long = torch.from_numpy(np.ascontiguousarray(data.waveforms, dtype=np.float32))
        dt = torch.from_numpy((data.dt_ps / DT_SCALE_PS).astype(np.float32))[:, None]
        k = self.config.max_shift

        def augment(x, y, gen):
            return self._crop(x, y, torch.randint(-k, k + 1, (len(x), 2), generator=gen))

        def centre(x, y):
            return self._crop(x, y, torch.zeros(len(x), 2, dtype=torch.long))

        self.history_ = fit_regressor(self.model, long, dt, settings=self.settings, augment=augment,
                                      eval_transform=centre, description="training timing cnn")
        return self

    def estimate(self, data: Coincidences, *, shift_average: bool = True) -> np.ndarray:
        """``t_a - t_b`` (ps) for the central windows of ``data``.

        With ``shift_average`` the pair is also read through windows shifted together by
        ``k = -max_shift .. max_shift`` samples (a common shift leaves ``t_a - t_b`` unchanged) and the
        estimates are averaged: test-time augmentation that averages out the network's own
        sub-sample interpolation error (it does not use the labels).
        """
        ks = range(-self.config.max_shift, self.config.max_shift + 1) if shift_average else (0,)
        out = []
        for k in ks:
            windows, _ = crop_windows(data.waveforms, data.dt_ps, np.full((len(data), 2), k, dtype=int), self.config)
            x = timing_input(torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)))
            out.append(predict(self.model, x).numpy()[:, 0].astype(np.float64) * DT_SCALE_PS)
        return np.mean(out, axis=0)

    def save(self, folder: str | os.PathLike, record: dict | None = None) -> None:
        """Save as a model folder (weights.pt, config.json, model_card.md)."""
        cfg = {"kind": "timing_cnn", "channels": self.channels, "arch": self.arch,
               "timing": dataclasses.asdict(self.config),
               "settings": dataclasses.asdict(self.settings), "dt_scale_ps": DT_SCALE_PS,
               "input": "pair of windows (2, n_samples) in spe, baseline-subtracted, asinh(w / 2) / 6",
               "history": self.history_, "data": record or {}}
        card = (f"# petspect coincidence timing CNN\n\nEstimates t_a - t_b (ps) from two digitised SiPM "
                f"waveforms ({self.config.n_samples} samples at {self.config.sample_ps} ps) of "
                f"{self.config.crystal} crystals {self.config.length_mm} mm long. Trained on simulated "
                "coincidences with labels from the source positions and digital whole-sample shifts "
                "(see config.json). Valid only for the recorded set-up. Not for clinical use.\n")
        save_model_folder(folder, self.model, cfg, card)

    @classmethod
    def load(cls, folder: str | os.PathLike, device: torch.device | str = "cpu") -> CNNTimer:
        """Rebuild a saved timing CNN (weights loaded with ``weights_only=True``)."""
        state, cfg = load_model_folder(folder)
        obj = cls(TimingConfig(**cfg["timing"]), settings=TrainSettings(**cfg["settings"]), device=device,
                  channels=cfg["channels"], arch=cfg.get("arch", "pair"))
        restore(obj, state, cfg)
        return obj


def evaluate_timing(val: Coincidences, test: Coincidences, config: TimingConfig, cnn: CNNTimer | None,
                    *, thresholds_spe=(1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 30, 50),
                    fractions=(0.005, 0.0075, 0.01, 0.0125, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.08, 0.12,
                               0.2, 0.3, 0.5)) -> dict:
    """Scan LED and CFD on ``val``, apply the best settings and the CNN to ``test``.

    Returns
    -------
    dict
        ``{"led": metrics, "cfd": metrics, "cnn": metrics}`` (:func:`timing_metrics` plus the scan
        and the chosen setting for the discriminators) and ``"estimates"``: method -> (n,) ps.
    """
    zero = np.zeros((len(val), 2), dtype=int)
    wv, dtv = crop_windows(val.waveforms, val.dt_ps, zero, config)
    wt, dtt = crop_windows(test.waveforms, test.dt_ps, np.zeros((len(test), 2), dtype=int), config)
    out: dict = {"estimates": {}}
    for method, settings in (("led", thresholds_spe), ("cfd", fractions)):
        res = scan_discriminator(method, wv, dtv, settings, config.sample_ps)
        est = res.estimate(wt, config.sample_ps)
        ok = np.isfinite(est)
        out[method] = {**timing_metrics(est[ok], dtt[ok]), "best_setting": res.best,
                       "setting_unit": "spe" if method == "led" else "fraction of maximum",
                       "scan_val_fwhm_ps": res.scan, "triggered_fraction": float(ok.mean())}
        out["estimates"][method] = est
    if cnn is not None:
        est = cnn.estimate(test)
        out["cnn"] = timing_metrics(est, dtt)
        out["estimates"]["cnn"] = est
        out["cnn_single_window"] = timing_metrics(cnn.estimate(test, shift_average=False), dtt)
    out["true_dt_ps"] = dtt
    return out
