"""The joint network against the separate models, on the same monolithic-block coincidences.

Separate models (trained on the training pairs of :class:`~petspect.detector.joint.JointEvents`, both blocks):

- positioner: :class:`~petspect.detector.neural.NeuralPositioner` (residual CNN) on the light distribution;
- energy: the summed signal with a position-dependent gain (:class:`SummedSignalCalibration`: the face cut into
  SiPM-pitch regions by the positioner's estimate, each region's photopeak fitted on the training events);
- timing: :class:`~petspect.detector.timing.CNNTimer` on the pairs of timing waveforms, and LED / CFD scanned on
  validation for context.

The joint network's loss weights are chosen on the validation pairs with :func:`petspect.evaluation.grid_search`
(one :class:`~petspect.evaluation.Budget`); the objective is the mean over position FWHM, energy resolution and
CTR of the joint network's validation figure divided by the separate models' (smaller is better). The test pairs
are read once by the caller (:func:`petspect.detector.pipeline.evaluate`).

Figures, every method on the same events: ``xy_fwhm_mm`` and ``doi_mae_mm`` over the blocks' photopeak events,
``energy_resolution_pct`` (Gaussian fit of the 511 keV peak of the estimated spectrum of every event,
:func:`~petspect.detector.metrics.energy_resolution`), ``ctr_fwhm_ps`` over the pairs with both blocks in the
photopeak. The photopeak selection (435-585 keV) is the summed-signal calibration's for every method, so the
events compared are the same; each method's own window is described by ``window_efficiency`` (true full-energy
events it puts in the window) and ``scatter_in_window`` (events that deposited < 435 keV it puts there): an
estimator that draws energies towards 511 keV narrows the peak and lets scatter in.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from petspect._fileio import atomic_write_text
from petspect.detector.joint import JointConfig, JointEvents, JointModel, block_timing
from petspect.detector.metrics import energy_resolution, gaussian_fit, positioning_metrics, timing_metrics
from petspect.detector.models import TrainSettings
from petspect.detector.simulate import DetectorConfig
from petspect.detector.waveforms import TimingConfig
from petspect.errors import DataNotFoundError, InputError

PHOTOPEAK_WINDOW_KEV = (435.0, 585.0)
FIGURES = ("xy_fwhm_mm", "doi_mae_mm", "energy_resolution_pct", "ctr_fwhm_ps")


class SummedSignalCalibration:
    """Energy from the summed SiPM signal with one gain per SiPM-pitch region of the estimated position.

    Parameters
    ----------
    detector : DetectorConfig
    """

    def __init__(self, detector: DetectorConfig) -> None:
        self.detector = detector
        self.peaks_: np.ndarray | None = None
        self.global_peak_: float | None = None

    def _region(self, xy_mm: np.ndarray) -> np.ndarray:
        sipm = self.detector.sipm
        ix = np.clip(np.floor(xy_mm[:, 0] / sipm.pitch_mm + sipm.n_x / 2), 0, sipm.n_x - 1).astype(int)
        iy = np.clip(np.floor(xy_mm[:, 1] / sipm.pitch_mm + sipm.n_y / 2), 0, sipm.n_y - 1).astype(int)
        return iy * sipm.n_x + ix

    @staticmethod
    def _peak(signal: np.ndarray) -> float:
        upper = signal[signal > 0.6 * np.percentile(signal, 95)]  # above the Compton continuum
        return float(gaussian_fit(upper)[0]) if upper.size >= 20 else float(np.median(signal))

    def fit(self, total_signal: np.ndarray, xy_mm: np.ndarray) -> SummedSignalCalibration:
        """Photopeak position of each region (and of all events, for regions with fewer than 50 events)."""
        s = np.asarray(total_signal, dtype=np.float64)
        if s.ndim != 1 or xy_mm.shape != (len(s), 2):
            raise InputError("total_signal must be (n,) and xy_mm (n, 2)")
        self.global_peak_ = self._peak(s)
        region = self._region(xy_mm)
        sipm = self.detector.sipm
        self.peaks_ = np.full(sipm.n_x * sipm.n_y, self.global_peak_)
        for r in np.unique(region):
            m = region == r
            if m.sum() >= 50:
                self.peaks_[r] = self._peak(s[m])
        return self

    def energy_kev(self, total_signal: np.ndarray, xy_mm: np.ndarray) -> np.ndarray:
        """Calibrated energies (keV), shape (n,)."""
        if self.peaks_ is None:
            raise InputError("the summed-signal calibration is not fitted")
        return np.asarray(total_signal, dtype=np.float64) / self.peaks_[self._region(xy_mm)] * 511.0

    def to_dict(self) -> dict:
        """JSON record."""
        return {"peaks": None if self.peaks_ is None else self.peaks_.tolist(), "global_peak": self.global_peak_}

    @classmethod
    def from_dict(cls, detector: DetectorConfig, d: dict) -> SummedSignalCalibration:
        obj = cls(detector)
        obj.peaks_, obj.global_peak_ = np.asarray(d["peaks"], dtype=np.float64), d["global_peak"]
        return obj


def _flat(a: np.ndarray) -> np.ndarray:
    """(n, 2, ...) -> (2n, ...) with block a's events first in each pair (row-major)."""
    return a.reshape(-1, *a.shape[2:])


@dataclasses.dataclass
class Estimates:
    """One method's estimates on coincidences: ``position_mm`` (n, 2, 3), ``energy_kev`` (n, 2), ``dt_ps`` (n,)."""

    position_mm: np.ndarray | None
    energy_kev: np.ndarray | None
    dt_ps: np.ndarray | None


class SeparateModels:
    """The separate positioner, summed-signal energy calibration and timing CNN, trained on the joint events."""

    def __init__(self, positioner, calibration: SummedSignalCalibration, timer) -> None:
        self.positioner, self.calibration, self.timer = positioner, calibration, timer

    @classmethod
    def train(cls, detector: DetectorConfig, timing: TimingConfig, events: JointEvents, *,
              position_settings: TrainSettings, timing_settings: TrainSettings, timing_window=(6, 16),
              fractions=None, device="cpu") -> SeparateModels:
        from petspect.detector.neural import NeuralPositioner
        from petspect.detector.timing import CFD_FRACTIONS, CNNTimer

        pos = NeuralPositioner("cnn", detector.sipm, detector.thickness_mm, settings=position_settings, device=device)
        pos.fit(_flat(events.signals), _flat(events.position_mm))
        xy = pos.predict(_flat(events.signals))[:, :2]
        cal = SummedSignalCalibration(detector).fit(_flat(events.signals).reshape(2 * len(events), -1).sum(axis=1), xy)
        timer = CNNTimer(block_timing(detector, timing), settings=timing_settings, device=device, arch="aligned",
                         window=timing_window, fractions=fractions or CFD_FRACTIONS)
        timer.fit(events.coincidences())
        return cls(pos, cal, timer)

    def estimate(self, events: JointEvents) -> Estimates:
        n = len(events)
        pos = self.positioner.predict(_flat(events.signals))
        total = _flat(events.signals).reshape(2 * n, -1).sum(axis=1)
        energy = self.calibration.energy_kev(total, pos[:, :2])
        return Estimates(pos.reshape(n, 2, 3), energy.reshape(n, 2), self.timer.estimate(events.coincidences()))

    def save(self, folder: str | os.PathLike, record: dict) -> None:
        folder = Path(folder)
        self.positioner.save(folder / "joint_separate_cnn", record)
        self.timer.save(folder / "joint_separate_timing_cnn", record)
        atomic_write_text(folder / "joint_separate_energy.json", json.dumps(self.calibration.to_dict(), indent=1))

    @classmethod
    def load(cls, folder: str | os.PathLike, detector: DetectorConfig, device="cpu") -> SeparateModels:
        from petspect.detector.neural import NeuralPositioner
        from petspect.detector.timing import CNNTimer

        folder = Path(folder)
        cal_path = folder / "joint_separate_energy.json"
        if not cal_path.exists():
            raise DataNotFoundError("models folder lacks the joint study's separate models", path=folder)
        cal = SummedSignalCalibration.from_dict(detector, json.loads(cal_path.read_text()))
        return cls(NeuralPositioner.load(folder / "joint_separate_cnn", device=device), cal,
                   CNNTimer.load(folder / "joint_separate_timing_cnn", device=device))


def photopeak_mask(separate: Estimates) -> np.ndarray:
    """(n, 2) bool: the summed-signal calibration puts the event in the photopeak window (the common selection)."""
    e = separate.energy_kev
    return (e > PHOTOPEAK_WINDOW_KEV[0]) & (e < PHOTOPEAK_WINDOW_KEV[1])


def figures(est: Estimates, events: JointEvents, selection: np.ndarray, detector: DetectorConfig, *,
            edge_mm: float = 2.0) -> dict:
    """The comparison figures of one method (what it estimates) on ``events`` (photopeak ``selection`` (n, 2))."""
    out: dict = {}
    if est.position_mm is not None:
        m = positioning_metrics(est.position_mm[selection], events.position_mm[selection], size_mm=detector.size_mm,
                                edge_mm=edge_mm)
        out.update({k: m[k] for k in ("xy_fwhm_mm", "xy_fwtm_mm", "xy_mae_mm", "doi_mae_mm", "doi_fwhm_mm",
                                      "edge_bias_mm") if k in m})
        out["n_events"] = int(selection.sum())
    if est.energy_kev is not None:
        e, true = est.energy_kev.ravel(), events.edep_kev.ravel()
        out["energy_resolution_pct"] = energy_resolution(e)["energy_resolution_pct"]
        inside = (e > PHOTOPEAK_WINDOW_KEV[0]) & (e < PHOTOPEAK_WINDOW_KEV[1])
        full, scat = true > 510.0, true < PHOTOPEAK_WINDOW_KEV[0]
        out["window_efficiency"] = float(inside[full].mean())
        out["scatter_in_window"] = float(inside[scat].mean()) if scat.any() else float("nan")
        out["energy_error_fwhm_kev_full_absorption"] = float(2.3548 * gaussian_fit(e[full] - 511.0)[1])
        # least-squares slope of the estimate against the deposited energy (1: linear; < 1: drawn towards the peak)
        out["energy_slope"] = float(np.cov(e, true)[0, 1] / np.var(true))
    if est.dt_ps is not None:
        both = selection.all(axis=1)
        t = timing_metrics(est.dt_ps[both], events.dt_ps[both])
        out.update({"ctr_fwhm_ps": t["ctr_fwhm_ps"], "ctr_fwtm_ps": t["ctr_fwtm_ps"], "ctr_slope": t["slope"],
                    "n_pairs": t["n_events"]})
    return out


def tune_joint(config: JointConfig, detector: DetectorConfig, timing: TimingConfig, train: JointEvents,
               val: JointEvents, separate: SeparateModels, *, fractions=None, device="cpu"):
    """Choose ``(w_E, w_t)`` on validation; returns ``(best JointModel, TuningResult, separate validation figures)``."""
    from petspect.detector.timing import CFD_FRACTIONS
    from petspect.evaluation import Budget, grid_search

    sep_est = separate.estimate(val)
    sel = photopeak_mask(sep_est)
    sep_fig = figures(sep_est, val, sel, detector)
    models: dict = {}

    def objective(params: dict) -> float:
        jm = JointModel(detector, timing, settings=config.training, energy_weight=params["energy_weight"],
                        time_weight=params["time_weight"], window=config.window, channels=config.channels,
                        fractions=fractions or CFD_FRACTIONS, device=device).fit(train)
        p = jm.predict(val)
        fig = figures(Estimates(p["position_mm"], p["energy_kev"], p["dt_ps"]), val, sel, detector)
        models[(params["energy_weight"], params["time_weight"])] = (jm, fig)
        return float(np.mean([fig[k] / sep_fig[k] for k in ("xy_fwhm_mm", "energy_resolution_pct", "ctr_fwhm_ps")]))

    result = grid_search("joint", objective, {"energy_weight": config.energy_weights, "time_weight": config.time_weights},
                         Budget(max_trials=config.max_trials, seed=0), maximise=False,
                         objective_name="mean over xy FWHM, energy resolution and CTR of joint / separate (validation)")
    best, val_fig = models[(result.best["energy_weight"], result.best["time_weight"])]
    return best, result, {"separate": sep_fig, "joint": val_fig,
                          "trials": {f"wE={k[0]:g},wt={k[1]:g}": v[1] for k, v in models.items()}}


def compare(joint: JointModel, separate: SeparateModels, val: JointEvents, test: JointEvents, detector: DetectorConfig,
            timing: TimingConfig, *, thresholds_spe, fractions, edge_mm: float = 2.0, seed: int = 0) -> dict:
    """Every figure of the joint network and the separate models on the test pairs (LED / CFD scanned on validation).

    Returns
    -------
    dict
        ``joint`` and ``separate`` (figure -> value; ``separate`` holds the positioner's position figures, the
        summed-signal energy figures and the timing CNN's CTR), ``led`` / ``cfd`` (CTR), ``ratios`` (joint /
        separate per figure), ``ctr_improvement_ci`` (paired bootstrap of the joint CTR against the timing CNN's),
        and the selections.
    """
    from petspect.detector.timing import evaluate_timing
    from petspect.metrics.distribution import fwhm_improvement_ci

    sep_est = separate.estimate(test)
    sel = photopeak_mask(sep_est)
    p = joint.predict(test)
    j_est = Estimates(p["position_mm"], p["energy_kev"], p["dt_ps"])
    out = {"joint": figures(j_est, test, sel, detector, edge_mm=edge_mm),
           "separate": figures(sep_est, test, sel, detector, edge_mm=edge_mm)}
    sel_val = photopeak_mask(separate.estimate(val))
    both_v, both_t = sel_val.all(axis=1), sel.all(axis=1)
    cfg = block_timing(detector, timing)
    tim = evaluate_timing(val.subset(both_v).coincidences(), test.subset(both_t).coincidences(), cfg, None,
                          thresholds_spe=thresholds_spe, fractions=fractions)
    for k in ("led", "cfd"):
        out[k] = {"ctr_fwhm_ps": tim[k]["ctr_fwhm_ps"], "ctr_fwtm_ps": tim[k]["ctr_fwtm_ps"],
                  "best_setting": tim[k]["best_setting"]}
    out["ratios"] = {k: out["joint"][k] / out["separate"][k] for k in FIGURES}
    true = test.dt_ps[both_t]
    out["ctr_improvement_ci"] = fwhm_improvement_ci(sep_est.dt_ps[both_t] - true, j_est.dt_ps[both_t] - true, seed=seed)
    out["selection"] = {"photopeak_window_kev": PHOTOPEAK_WINDOW_KEV, "by": "summed-signal calibration",
                        "events": int(sel.sum()), "pairs_both_photopeak": int(both_t.sum()), "pairs": len(test)}
    return out


def judge(comparison: dict) -> dict:
    """The issue's criteria: position FWHM within 10 % of the separate network's, energy resolution better than the
    summed signal's, CTR not worse than the timing CNN's; and by how much each is traded."""
    r = comparison["ratios"]
    return {"position_within_10pct": bool(r["xy_fwhm_mm"] <= 1.10),
            "energy_better_than_summed_signal": bool(r["energy_resolution_pct"] < 1.0),
            "ctr_not_worse_than_timing_cnn": bool(r["ctr_fwhm_ps"] <= 1.0),
            # a spectrum narrowed by pulling energies towards 511 keV is not a better measurement
            "joint_energy_slope": comparison["joint"].get("energy_slope"),
            "separate_energy_slope": comparison["separate"].get("energy_slope"),
            "change_pct": {k: 100.0 * (v - 1.0) for k, v in r.items()}}
