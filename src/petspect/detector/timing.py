"""Time pick-off from digitised waveforms: leading edge, constant fraction and a CNN on the pair.

Leading-edge discrimination (LED) timestamps the first crossing of a fixed threshold (in
single-photoelectron amplitudes); digital constant-fraction discrimination (CFD) the first crossing
of a fixed fraction of the pulse's own maximum, which makes it independent of the amplitude. Both
interpolate linearly between samples after subtracting the baseline (mean of the first
``baseline_samples``). The coincidence estimate is ``t_a - t_b`` minus a constant offset calibrated
on the validation set; settings are scanned and the best one on the validation set is kept.
The CNN (:class:`CNNTimer`) regresses ``t_a - t_b`` from both waveforms (Berg and Cherry, PMB 2018),
trained on labels from the source positions. Its default form (``arch="aligned"``) cuts a short
window around each pulse's own constant-fraction crossing (:func:`aligned_input`) and learns a
per-pulse correction to that crossing; it cannot learn where in the record the pulses lie nor the
distribution of the training sources, information a biased estimator would turn into an apparently
better resolution (BENCHMARKS.md, "Detector").
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch

from petspect.detector.metrics import timing_metrics
from petspect.detector.models import (AlignedPulseCNN, PulseTimingCNN, TimingCNN, TrainSettings, fit_regressor,
                                      load_model_folder, predict, restore, save_model_folder)
from petspect.detector.waveforms import Coincidences, TimingConfig, crop_windows
from petspect.errors import InputError
from petspect.metrics.distribution import width_at_fraction

DT_SCALE_PS = 1000.0
RESIDUAL_SCALE_PS = 100.0  # target unit of the aligned network's correction
AMPLITUDE_SCALE_SPE = 430.0  # aligned input's pulse-maximum normalisation (spe): the `realistic` LYSO maximum


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


LED_THRESHOLDS_SPE = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 20, 30, 50)
CFD_FRACTIONS = (0.005, 0.0075, 0.01, 0.01125, 0.0125, 0.01375, 0.015, 0.01625, 0.0175, 0.02, 0.0225, 0.025, 0.03,
                 0.04, 0.05, 0.08, 0.12, 0.2, 0.3, 0.5)


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


def aligned_input(windows: np.ndarray, fraction: float, sample_ps: float, *, pre: int, post: int,
                  baseline_samples: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Per-pulse feature rows of :class:`~petspect.detector.models.AlignedPulseCNN` and trigger times.

    Parameters
    ----------
    windows : numpy.ndarray, shape (n, 2, n_samples)
        Digitised waveforms (spe).
    fraction : float
        Constant fraction of the trigger.
    sample_ps : float
    pre, post : int
        Samples kept before and from the sample preceding the crossing (window ``W = pre + post``).
    baseline_samples : int

    Returns
    -------
    rows : numpy.ndarray, shape (n, 2, 2 W + 2), float32
        ``w / max(w)`` and ``asinh(w / 2) / 6`` over the window (samples ``i0 - pre .. i0 + post - 1``
        with ``i0`` the sample before the crossing, edge samples repeated beyond the record), then the
        crossing's sub-sample position minus 0.5 and ``log(max / AMPLITUDE_SCALE_SPE)`` (430 spe).
    trigger_ps : numpy.ndarray, shape (n, 2)
        Constant-fraction times (ps from the first sample); a pulse that never crosses is put at the
        middle of the record.
    """
    w = _baseline(windows, baseline_samples)
    amp = np.maximum(w.max(axis=-1), 1.0)
    t = crossing_times(w, fraction * amp, sample_ps)
    t = np.where(np.isfinite(t), t, 0.5 * w.shape[-1] * sample_ps)
    i0 = np.floor(t / sample_ps).astype(np.int64)
    idx = np.clip(i0[..., None] + np.arange(-pre, post), 0, w.shape[-1] - 1)
    win = np.take_along_axis(w, idx, axis=-1)
    scalars = np.stack([t / sample_ps - i0 - 0.5, np.log(amp / AMPLITUDE_SCALE_SPE)], axis=-1)
    rows = np.concatenate([win / amp[..., None], np.arcsinh(win / 2.0) / 6.0, scalars], axis=-1)
    return rows.astype(np.float32), t


class CNNTimer:
    """CNN estimate of ``t_a - t_b`` (ps) from a pair of waveforms.

    Parameters
    ----------
    config : TimingConfig
    settings : TrainSettings
    device : torch.device or str
    channels : int
    arch : {"aligned", "pair", "siamese"}
        ``"aligned"`` (default): :class:`AlignedPulseCNN` corrects each pulse's constant-fraction time
        from a window cut around that crossing (:func:`aligned_input`); the trigger fraction and the
        constant offset are chosen on the training data. ``"pair"``: :class:`TimingCNN` on the two
        whole windows stacked as channels, trained with digital whole-sample shifts; ``"siamese"``:
        :class:`PulseTimingCNN`, one shared network times each whole window. The last two see where
        the pulses lie in the record and learn the training distribution of ``t_a - t_b``.
    window : tuple of int
        ``(pre, post)`` samples of the aligned window (``arch="aligned"``): 1.2 ns before the crossing
        and 3.2 ns from it at 200 ps, chosen on the validation set of the ``realistic`` preset (three seeds
        each: 170 ps vs 172-173 ps for ``(4, 24)``, BENCHMARKS.md).
    fractions : sequence of float
        Constant fractions scanned on the training data for the trigger of the aligned windows.
    """

    name = "cnn"
    ARCHS = ("aligned", "pair", "siamese")

    def __init__(self, config: TimingConfig, *, settings: TrainSettings = TrainSettings(),
                 device: torch.device | str = "cpu", channels: int = 32, arch: str = "aligned",
                 window: tuple[int, int] = (6, 16), fractions=CFD_FRACTIONS) -> None:
        if arch not in self.ARCHS:
            raise InputError(f"unknown timing CNN architecture {arch!r}; choose one of {self.ARCHS}")
        if min(window) < 1 or sum(window) > config.n_samples:
            raise InputError("window (pre, post) must be positive and fit within n_samples")
        self.config, self.settings, self.channels, self.arch = config, settings, channels, arch
        self.window = (int(window[0]), int(window[1]))
        self.fractions = tuple(float(f) for f in fractions)
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG state
            torch.manual_seed(settings.seed)
            if arch == "aligned":
                self.model = AlignedPulseCNN(sum(self.window), channels=channels).to(self.device)
            else:
                net = PulseTimingCNN if arch == "siamese" else TimingCNN
                self.model = net(config.n_samples, channels=channels).to(self.device)
        self.trigger_fraction_, self.offset_ps_ = None, 0.0
        self.history_: dict | None = None

    def _crop(self, long: torch.Tensor, dt: torch.Tensor, shifts: torch.Tensor):
        k, n = self.config.max_shift, self.config.n_samples
        idx = torch.arange(n)[None, None, :] + k + shifts[:, :, None]
        windows = torch.gather(long, 2, idx)
        new_dt = dt - (shifts[:, :1] - shifts[:, 1:]).to(dt.dtype) * (self.config.sample_ps / DT_SCALE_PS)
        return timing_input(windows), new_dt

    def _central(self, data: Coincidences) -> tuple[np.ndarray, np.ndarray]:
        """The central (unshifted) windows of ``data`` and their labels ``t_a - t_b`` (ps)."""
        return crop_windows(data.waveforms, data.dt_ps, np.zeros((len(data), 2), dtype=int), self.config)

    def _aligned(self, windows: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """Feature rows and the constant-fraction estimate ``t_a - t_b`` (ps) of central windows."""
        rows, t = aligned_input(windows, self.trigger_fraction_, self.config.sample_ps, pre=self.window[0],
                                post=self.window[1])
        return torch.from_numpy(rows), t[:, 0] - t[:, 1] - self.offset_ps_

    def fit(self, data: Coincidences) -> CNNTimer:
        """Train on coincidences (labels from the source positions)."""
        if self.arch == "aligned":
            windows, dt = self._central(data)
            scan = scan_discriminator("cfd", windows, dt, self.fractions, self.config.sample_ps)
            self.trigger_fraction_, self.offset_ps_ = scan.best, scan.offset_ps
            rows, base = self._aligned(windows)
            target = torch.from_numpy(((dt - base) / RESIDUAL_SCALE_PS).astype(np.float32))[:, None]
            self.history_ = fit_regressor(self.model, rows, target, settings=self.settings,
                                          description="training timing cnn")
            return self
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

        With ``shift_average`` (whole-window architectures) the pair is also read through windows
        shifted together by ``k = -max_shift .. max_shift`` samples (a common shift leaves
        ``t_a - t_b`` unchanged) and the estimates are averaged. The aligned network follows the
        pulses, so a common shift does not change its input and ``shift_average`` does nothing.
        """
        if self.arch == "aligned":
            rows, base = self._aligned(self._central(data)[0])
            return base + predict(self.model, rows).numpy()[:, 0].astype(np.float64) * RESIDUAL_SCALE_PS
        ks = range(-self.config.max_shift, self.config.max_shift + 1) if shift_average else (0,)
        out = []
        for k in ks:
            windows, _ = crop_windows(data.waveforms, data.dt_ps, np.full((len(data), 2), k, dtype=int), self.config)
            x = timing_input(torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)))
            out.append(predict(self.model, x).numpy()[:, 0].astype(np.float64) * DT_SCALE_PS)
        return np.mean(out, axis=0)

    def save(self, folder: str | os.PathLike, record: dict | None = None) -> None:
        """Save as a model folder (weights.pt, config.json, model_card.md)."""
        aligned = self.arch == "aligned"
        cfg = {"kind": "timing_cnn", "channels": self.channels, "arch": self.arch, "window": list(self.window),
               "trigger_fraction": self.trigger_fraction_, "offset_ps": self.offset_ps_,
               "timing": dataclasses.asdict(self.config),
               "settings": dataclasses.asdict(self.settings), "dt_scale_ps": DT_SCALE_PS,
               "residual_scale_ps": RESIDUAL_SCALE_PS,
               "input": ("per pulse: window around its constant-fraction crossing (w / max, asinh(w / 2) / 6), "
                         f"sub-sample crossing position - 0.5, log(max / {AMPLITUDE_SCALE_SPE:g} spe); output: "
                         "correction to the constant-fraction t_a - t_b in units of residual_scale_ps") if aligned else
                        "pair of windows (2, n_samples) in spe, baseline-subtracted, asinh(w / 2) / 6",
               "history": self.history_, "data": record or {}}
        how = ("corrections to the constant-fraction times of windows aligned on each pulse" if aligned
               else "digital whole-sample shifts")
        card = (f"# petspect coincidence timing CNN\n\nEstimates t_a - t_b (ps) from two digitised SiPM "
                f"waveforms ({self.config.n_samples} samples at {self.config.sample_ps} ps) of "
                f"{self.config.crystal} crystals {self.config.length_mm} mm long. Trained on simulated "
                f"coincidences with labels from the source positions ({how}; see config.json). Valid only "
                "for the recorded set-up. Not for clinical use.\n")
        save_model_folder(folder, self.model, cfg, card)

    @classmethod
    def load(cls, folder: str | os.PathLike, device: torch.device | str = "cpu") -> CNNTimer:
        """Rebuild a saved timing CNN (weights loaded with ``weights_only=True``)."""
        state, cfg = load_model_folder(folder)
        obj = cls(TimingConfig(**cfg["timing"]), settings=TrainSettings(**cfg["settings"]), device=device,
                  channels=cfg["channels"], arch=cfg.get("arch", "pair"), window=tuple(cfg.get("window", (6, 16))))
        obj.trigger_fraction_, obj.offset_ps_ = cfg.get("trigger_fraction"), cfg.get("offset_ps", 0.0)
        restore(obj, state, cfg)
        return obj


def evaluate_timing(val: Coincidences, test: Coincidences, config: TimingConfig, cnn: CNNTimer | None,
                    *, thresholds_spe=LED_THRESHOLDS_SPE, fractions=CFD_FRACTIONS) -> dict:
    """Scan LED and CFD on ``val``, apply the best settings and the CNN to ``test``.

    Returns
    -------
    dict
        ``{"led": metrics, "cfd": metrics, "cnn": metrics}`` on ``test`` (:func:`timing_metrics`
        plus, for the discriminators, the scan and the chosen setting), the same on ``val`` under
        ``"val"`` (the discriminators' validation figures are those of their best setting), and
        ``"estimates"``: method -> (n,) ps on ``test``.
    """
    wv, dtv = crop_windows(val.waveforms, val.dt_ps, np.zeros((len(val), 2), dtype=int), config)
    wt, dtt = crop_windows(test.waveforms, test.dt_ps, np.zeros((len(test), 2), dtype=int), config)
    out: dict = {"estimates": {}, "val": {}}
    for method, settings in (("led", thresholds_spe), ("cfd", fractions)):
        res = scan_discriminator(method, wv, dtv, settings, config.sample_ps)
        est = res.estimate(wt, config.sample_ps)
        ok = np.isfinite(est)
        out[method] = {**timing_metrics(est[ok], dtt[ok]), "best_setting": res.best,
                       "setting_unit": "spe" if method == "led" else "fraction of maximum",
                       "scan_val_fwhm_ps": res.scan, "triggered_fraction": float(ok.mean())}
        out["estimates"][method] = est
        est_v = res.estimate(wv, config.sample_ps)
        out["val"][method] = timing_metrics(est_v[np.isfinite(est_v)], dtv[np.isfinite(est_v)])
    if cnn is not None:
        est = cnn.estimate(test)
        out["cnn"] = timing_metrics(est, dtt)
        out["estimates"]["cnn"] = est
        single = est if cnn.arch == "aligned" else cnn.estimate(test, shift_average=False)  # aligned: the same
        out["cnn_single_window"] = timing_metrics(single, dtt)
        out["val"]["cnn"] = timing_metrics(cnn.estimate(val), dtv)
    out["true_dt_ps"] = dtt
    return out
